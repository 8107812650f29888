"""The simulated site: determinism, ground truth, controls, oracle, stimuli and the round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from fixtures_data import write_reference

from sacnn.data import ingest, open_dataset
from sacnn.simulate import SiteConfig, load_oracle, simulate_site, write_site
from sacnn.simulate import stimuli as stim
from sacnn.simulate.filters import MODEL_SIZE, aperture_mask, log_gsm
from sacnn.simulate.neurons import Population

TINY = {"site": "t", "n_neurons": 6, "n_train": 120, "n_val": 20, "repeats": 4}


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "t"
    write_site(out, TINY, verbose=False)
    return out


def test_files_written(tiny_site):
    names = sorted(p.name for p in tiny_site.iterdir())
    assert names == sorted(["train_img_t.npy", "trainRsp_t.npy", "val_img_t.npy", "valRsp_t.npy",
                            "site.yaml", "truth_t.nc", "neurons_t.json", "realism_t.json"])
    img = np.load(tiny_site / "train_img_t.npy", allow_pickle=False)
    assert img.shape == (120, 100, 100) and img.dtype == np.uint8
    assert np.load(tiny_site / "valRsp_t.npy").shape == (20, 6, 4)
    assert np.load(tiny_site / "trainRsp_t.npy").shape == (120, 6)
    assert not any(p.name.startswith(".") for p in tiny_site.parent.iterdir())


def test_same_seed_same_bytes(tiny_site, tmp_path):
    write_site(tmp_path / "t", TINY, verbose=False)
    for name in ("train_img_t.npy", "trainRsp_t.npy", "val_img_t.npy", "valRsp_t.npy"):
        assert (tmp_path / "t" / name).read_bytes() == (tiny_site / name).read_bytes(), name
    a = json.loads((tmp_path / "t" / "neurons_t.json").read_text())
    b = json.loads((tiny_site / "neurons_t.json").read_text())
    assert a == b
    with xr.open_dataset(tiny_site / "truth_t.nc") as t1, \
            xr.open_dataset(tmp_path / "t" / "truth_t.nc") as t2:
        xr.testing.assert_identical(t1.load(), t2.load())


def test_other_seed_differs(tiny_site):
    sim = simulate_site(SiteConfig.from_dict(dict(TINY, seed=1)))
    assert not np.array_equal(sim["train_images"], np.load(tiny_site / "train_img_t.npy"))


def test_ground_truth_contents(tiny_site):
    with xr.open_dataset(tiny_site / "truth_t.nc") as t:
        t = t.load()
    for split, n in (("train", 120), ("val", 20)):
        for k in ("r_true", "r_centre", "r_aperture", "gate"):
            assert t[f"{split}_{k}"].shape == (6, n)
        g = t[f"{split}_gate"].values
        assert ((g >= 0) & (g <= 1)).all()
    assert t["aperture"].dims == ("y", "x") and t["aperture"].dtype == bool
    assert set(t["val_source"].values) <= {"coffee", "gravel", "china", "dead_leaves"}
    assert not set(t["train_source"].values) & {"coffee", "gravel", "china"}
    for p in ("param_theta", "param_sf", "param_aperture_corr", "calib_w_surround",
              "calib_power", "noise_r_max"):
        assert t[p].dims == ("neuron",)
    assert t.attrs["surround_kind"] == "divisive" and t.attrs["surround_strength"] == 1.0
    # the surround only divides: removing it can only raise the response
    assert (t["train_r_centre"].values >= t["train_r_true"].values - 1e-6).all()


def test_expected_recording_is_the_mean_over_the_noise():
    """The truth in the recording's units is what infinitely many trials average to: checked
    against 4000 simulated repeats (z-scores of the trial means), with and without gains."""
    from sacnn.simulate import noise

    rng = np.random.default_rng(3)
    r = rng.gamma(0.5, 1.0, (4, 60))
    r[:, :3] = [0.0, 1.0, 4.0]
    for params in (noise.NoiseParams(), noise.NoiseParams(gain_sd=0.0, n_sat=20.0)):
        nn = noise.neuron_noise_params(4, params, 0)
        expected = noise.expected_trials(r, params, nn)
        trials = noise.trials(r, 4000, params, nn, 0, "check").astype(np.float64)
        z = (trials.mean(2) - expected) / (trials.std(2) / np.sqrt(4000))
        assert np.abs(z).max() < 4.5 and abs(z.mean()) < 0.25, z
    # saturation: the expected dF/F grows with the rate, but less than linearly
    rate = np.linspace(0, 200, 50)
    e = noise.expected_dff_of_rate(rate, noise.NoiseParams())
    assert e[0] == 0 and np.all(np.diff(e) > 0) and np.all(np.diff(e, 2) < 1e-12)


def test_truth_holds_the_expected_recording(tiny_site):
    """truth_<site>.nc holds the validation truth in dF/F, computed from the neurons' own rate
    and noise parameters (the units every truth score compares with recordings in)."""
    from sacnn.simulate import noise

    meta = json.loads((tiny_site / "neurons_t.json").read_text())
    params = noise.NoiseParams(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in meta["noise"].items()})
    nn = {k: np.asarray(v) for k, v in meta["noise_neuron"].items()}
    with xr.open_dataset(tiny_site / "truth_t.nc") as t:
        for k in ("true", "centre", "aperture"):
            field = t[f"val_expected_{k}"]
            assert field.dims == ("neuron", "val_image") and field.attrs["units"] == "dF/F"
            np.testing.assert_allclose(
                field.values, noise.expected_trials(t[f"val_r_{k}"].values, params, nn),
                rtol=1e-6)


def test_oracle_reproduces_truth(tiny_site):
    pop = load_oracle(tiny_site, "t")
    from sacnn.data.preprocess import area_downsample

    val = np.load(tiny_site / "val_img_t.npy")
    res = pop(area_downsample(val, 50) / np.float32(255))
    with xr.open_dataset(tiny_site / "truth_t.nc") as t:
        np.testing.assert_allclose(res["r_true"], t["val_r_true"].values, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res["gate"], t["val_gate"].values, rtol=1e-5, atol=1e-6)


def test_oracle_reproduces_the_collinear_kind(tmp_path):
    settings = dict(TINY, site="c", surround_kind="collinear", n_train=300)
    write_site(tmp_path / "c", settings, verbose=False)
    pop = load_oracle(tmp_path / "c", "c")
    assert pop.surround_kind == "collinear"
    meta = json.loads((tmp_path / "c" / "neurons_c.json").read_text())
    assert meta["surround_kind"] == "collinear" and meta["config"]["surround_kind"] == "collinear"
    from sacnn.data.preprocess import area_downsample

    val = np.load(tmp_path / "c" / "val_img_c.npy")
    res = pop(area_downsample(val, 50) / np.float32(255))
    with xr.open_dataset(tmp_path / "c" / "truth_c.nc") as t:
        assert t.attrs["surround_kind"] == "collinear"
        for k in ("r_true", "r_centre", "r_aperture", "gate"):
            np.testing.assert_allclose(res[k], t[f"val_{k}"].values, rtol=1e-5, atol=1e-6)
        # facilitation only: removing it can only lower the response
        assert (t["train_r_centre"].values <= t["train_r_true"].values + 1e-6).all()
    # same seed, same bytes
    write_site(tmp_path / "c2", settings, verbose=False)
    for name in ("trainRsp_c.npy", "valRsp_c.npy", "neurons_c.json"):
        assert (tmp_path / "c2" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


def test_an_oracle_from_another_simulator_is_refused(tiny_site, tmp_path):
    meta = json.loads((tiny_site / "neurons_t.json").read_text())
    del meta["surround_kind"], meta["calibration"]["w_surround"]
    (tmp_path / "neurons_t.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="neurons_t.json: not a population of this simulator "
                       r"\(no \['surround_kind', 'calibration.w_surround'\]\)"):
        load_oracle(tmp_path, "t")
    meta["surround_kind"] = "lateral"
    (tmp_path / "neurons_t.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="neurons_t.json: field 'surround_kind': expected one "
                       "of divisive, collinear, got 'lateral'"):
        load_oracle(tmp_path, "t")


def test_surround_off_control_and_strength():
    base = dict(TINY, n_train=200)
    off = simulate_site(SiteConfig.from_dict(dict(base, surround=False)))
    np.testing.assert_allclose(off["truth_train"]["r_true"], off["truth_train"]["r_centre"])
    weak = simulate_site(SiteConfig.from_dict(dict(base, surround_strength=0.5)))
    strong = simulate_site(SiteConfig.from_dict(dict(base, surround_strength=2.0)))

    def supp(sim):  # mean drive ratio full / centre-only
        return np.mean(sim["truth_train"]["r_true"]) / np.mean(sim["truth_train"]["r_centre"])

    assert supp(strong) < supp(weak) < 1.0


def test_aperture_closes_gate():
    """Surround filters are blind inside the aperture: a masked image gets (almost) no gate."""
    pop = Population.sample(5, 0)
    rng = np.random.default_rng(0)
    imgs = rng.random((300, 50, 50)).astype(np.float32)
    pop.calibrate(pop.raw(imgs))
    masked = np.where(aperture_mask(pop.aperture_radius), imgs, np.float32(0.5))
    assert np.median(pop(masked)["gate"]) < 0.05
    np.testing.assert_allclose(pop(masked)["r_true"], pop(imgs)["r_aperture"], atol=1e-5)


def test_centre_energy_matches_direct_loop():
    """The GEMM path agrees with a per-neuron loop over explicit Gabors (reference)."""
    from sacnn.simulate.filters import gabor_pair

    pop = Population.sample(3, 2)
    imgs = np.random.default_rng(1).random((4, 50, 50)).astype(np.float32)
    e = pop.raw(imgs)["full"]["E"]
    P = pop.params
    for i in range(3):
        ge, go = gabor_pair(P["x0"][i], P["y0"][i], P["theta"][i], P["sf"][i],
                             P["sigma_x"][i], P["sigma_y"][i])
        x = imgs.reshape(4, -1).astype(np.float64) - 0.5
        le, lo = x @ ge, x @ go
        if P["is_complex"][i]:
            ref = le ** 2 + lo ** 2
        else:
            ref = 2 * np.maximum(np.cos(P["phase"][i]) * le + np.sin(P["phase"][i]) * lo, 0) ** 2
        np.testing.assert_allclose(e[:, i], ref, rtol=2e-3, atol=1e-5)


@pytest.mark.parametrize("n", [2, 16, 18])
def test_gsm_density_matches_integral(n):
    """log p(x) of the Rayleigh-mixer GSM against direct numerical integration over v."""
    from scipy.integrate import quad

    for lam in (0.3, 2.0, 9.0):
        def integrand(v, lam=lam):
            return (2 * np.pi * v * v) ** (-n / 2) * np.exp(-lam * lam / (2 * v * v)) * v \
                * np.exp(-v * v / 2)

        val, _ = quad(integrand, 0, np.inf, limit=200)
        got = log_gsm(np.array([lam]), n)[0] - (n / 2) * np.log(2 * np.pi)
        assert got == pytest.approx(np.log(val), abs=5e-3)


def test_photo_checksum_refused(monkeypatch):
    name = "camera"
    file, _, lic = stim.PHOTOS[name]
    monkeypatch.setitem(stim.PHOTOS, name, (file, "0" * 64, lic))
    with pytest.raises(stim.PhotoIntegrityError, match="SHA-256 .*expected 0000"):
        stim.load_photo(name)


def test_a_missing_bundled_photo_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(stim, "PHOTO_DIR", tmp_path)
    with pytest.raises(stim.PhotoIntegrityError, match="photo 'camera': .*camera.png is missing"):
        stim.load_photo("camera")


#: SHA-256 of each bundled photo's decoded grey pixels (float32 in [0, 1], C order) and its
#: shape, as read from the scikit-image 0.26.0, scikit-learn 1.9.1 and matplotlib 3.11.2
#: wheels before the photos moved into sacnn: simulated sites crop exactly these pixels.
PIXELS = {
    "astronaut": ("e6cdcdc3e5893ab2c2ba12f2a4af30dac9fd0200fc5e5be615b61513e077b36b", (512, 512)),
    "camera": ("94fa84d84f89a1db670d8e25b18dbaffb8f1f03a9204542205e224766a82d367", (512, 512)),
    "chelsea": ("22db16301e8db104c121f595274b8735bce68232204d393427865c8844c2135f", (300, 451)),
    "coffee": ("3b576590602897113ca6a763b6eb234897e8b50d07a4eddd102ad29fdb4037a2", (400, 600)),
    "rocket": ("c3c21a56ce42e3cbcb2c3446ccceb314fdf3173dd18404404fa77d1113a4a2d9", (427, 640)),
    "grass": ("1898362c036095ce41c9eef1759acf821f8886c1301bf422d96e82bb134f2ee5", (512, 512)),
    "gravel": ("1d6de1e1d3f9f2e2975adcaed99421a336d68227ea2a7749e2383a125341520d", (512, 512)),
    "brick": ("3311b54fda9938a0794bcbf6eb08be812132f37395ee20fe37c970014b1c87bf", (512, 512)),
    "coins": ("319013ce0bc6c05a671178f8884cc7bf6aa3557a0a17bc0624b433e4655fb27b", (303, 384)),
    "china": ("3098db192e315a9a54ced7207454db1c0c642a1ed6f61212eb0b98fdf98e230d", (427, 640)),
    "flower": ("470e58bf9a54e885d49b7cfbcf29ab38f9f7197e918864db73ed5fe97fab876b", (427, 640)),
    "grace_hopper": ("c7d5d83c042f74e023ad7168f2a216cfc50214284987b270a0bbe4a261e7567f",
                     (600, 512)),
}


def test_bundled_photos_ship_with_the_package_and_keep_their_pixels():
    import hashlib

    assert list(stim.PHOTOS) == list(PIXELS)  # the order crops draw photos in
    for name, (digest, shape) in PIXELS.items():
        path = stim.bundled_photo(name).path
        assert path.parent == stim.PHOTO_DIR and path.is_file(), path
        grey = stim.load_photo(name)  # checks the file's SHA-256 against PHOTOS
        assert grey.dtype == np.float32 and grey.shape == shape, (name, grey.shape)
        got = hashlib.sha256(np.ascontiguousarray(grey).tobytes()).hexdigest()
        assert got == digest, f"photo {name!r}: decoded pixels changed (Pillow's decoder?)"


def test_every_bundled_photo_has_its_licence_and_is_package_data():
    import tomllib
    from pathlib import Path

    readme = (stim.PHOTO_DIR / "README.md").read_text()
    for name, (file, _, licence) in stim.PHOTOS.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{file}` |")),
                   None)
        assert row is not None, f"photos/README.md: no row for {file} ({name})"
        assert licence.split(" (")[0].replace("CC-BY", "CC BY") in row, (file, licence)
    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["sacnn.simulate"]
    shipped = {p.name for pat in patterns for p in stim.PHOTO_DIR.parent.glob(pat)}
    assert {f for f, _, _ in stim.PHOTOS.values()} | {"README.md"} <= shipped
    assert sorted(p.name for p in stim.PHOTO_DIR.iterdir()) == sorted(shipped)


def test_stimuli_need_no_scikit_packages(tmp_path):
    """The photos are read without scikit-image, scikit-learn or matplotlib installed."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('skimage', 'sklearn', 'matplotlib'):\n"
        "    sys.modules[name] = None  # importing it now fails, as when it is not installed\n"
        "from sacnn.simulate import write_site\n"
        f"write_site({str(tmp_path / 's')!r}, {{'site': 's', 'n_neurons': 2, 'n_train': 30,"
        " 'n_val': 6, 'repeats': 2}, verbose=False)\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
    with xr.open_dataset(tmp_path / "s" / "truth_s.nc") as t:
        photos = set(t["train_source"].values.tolist()) | set(t["val_source"].values.tolist())
    assert photos - {"dead_leaves"} <= set(stim.PHOTOS)


def test_dead_leaves_contrast_matched():
    imgs, src = stim.make_stimuli(200, ("camera", "grass"), 0.5, 0, "x")
    is_dl = np.array([s == "dead_leaves" for s in src])
    sd = imgs.reshape(200, -1).std(axis=1)
    assert 0.7 < np.median(sd[is_dl]) / np.median(sd[~is_dl]) < 1.4


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown key"):
        SiteConfig.from_dict({"neurons": 3})
    with pytest.raises(ValueError, match="noise"):
        SiteConfig.from_dict({"noise": {"gain": 1}})
    with pytest.raises(ValueError, match="val_photos"):
        SiteConfig.from_dict({"val_photos": ["lena"]})


def test_cli(tmp_path, capsys):
    from sacnn.simulate.__main__ import main

    assert main([str(tmp_path / "c"), "--site", "c", "--quiet", "-s", "n_neurons=3",
                 "-s", "n_train=60", "-s", "n_val=10", "-s", "repeats=2"]) == 0
    assert (tmp_path / "c" / "valRsp_c.npy").exists()
    assert main([str(tmp_path / "d"), "-s", "bogus=1"]) == 2
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "simulated V1 site" in capsys.readouterr().out


def test_reference_layout_round_trip(tiny_site, tmp_path):
    """A hand-written fixture in the reference layout ingests to the simulator's canonical data."""
    sim_ds = open_dataset(ingest(tiny_site, "t", None, out=tmp_path / "sim.nc"))
    assert sim_ds["val_responses"].shape == (6, 20, 4)
    arrays = {
        "train_images": np.load(tiny_site / "train_img_t.npy")[..., None],  # (N, 100, 100, 1)
        "train_responses": np.load(tiny_site / "trainRsp_t.npy"),
        "val_images": np.load(tiny_site / "val_img_t.npy"),
        "val_responses": np.transpose(np.load(tiny_site / "valRsp_t.npy"), (2, 0, 1)),
    }
    fx = write_reference(tmp_path / "fx", arrays, site="t",
                         sidecar="val_layout: repeat_image_neuron\nrepeats: 4\n")
    fx_ds = open_dataset(ingest(fx, "t", None, out=tmp_path / "fx.nc"))
    for name in ("train_images", "train_responses", "val_images", "val_responses",
                 "train_rank", "train_holdout"):
        np.testing.assert_array_equal(fx_ds[name].values, sim_ds[name].values, err_msg=name)
    assert fx_ds.attrs["preprocessing"] == sim_ds.attrs["preprocessing"]


def test_dead_leaves_never_constant():
    imgs = stim.dead_leaves(400, 0, "const")
    assert (imgs.reshape(400, -1).std(axis=1) >= stim.MIN_CROP_STD).all()


def _photo_folder(root, n=5, size=(320, 240), seed=0):
    """JPEG and PNG photos (smooth random textures) in a folder with a subfolder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "class_b").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (size[1] // 16, size[0] // 16), dtype=np.uint8)
        img = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
        name = f"img{i}.jpg" if i % 2 else f"class_b/img{i}.png"
        img.save(root / name)
    return root


def test_a_folder_of_photos_replaces_the_bundled_ones(tmp_path):
    folder = _photo_folder(tmp_path / "photos")
    (folder / "notes.txt").write_text("not a photo")
    settings = dict(TINY, image_dir=str(folder), max_photos=4, val_photo_fraction=0.5)
    cfg = SiteConfig.from_dict(settings)
    catalogue, train, val = cfg.photo_split()
    assert len(catalogue) == 4 and "notes.txt" not in catalogue and len(val) == 2
    assert "class_b/img0.png" in catalogue or "class_b/img2.png" in catalogue  # subfolders
    assert not set(train) & set(val) and set(train) | set(val) == set(catalogue)
    assert cfg.photo_split()[2] == val  # seeded
    write_site(tmp_path / "t", settings, verbose=False)
    meta = json.loads((tmp_path / "t" / "neurons_t.json").read_text())
    assert set(meta["photos"]) == set(catalogue)
    for name, entry in meta["photos"].items():
        digest = __import__("hashlib").sha256((folder / name).read_bytes()).hexdigest()
        assert entry["sha256"] == digest
        assert entry["split"] == ("val" if name in val else "train")
    with xr.open_dataset(tmp_path / "t" / "truth_t.nc") as t:
        sources = set(t["val_source"].values.tolist()) - {"dead_leaves"}
        assert sources <= set(val) and t.attrs["image_dir"] == str(folder)
        assert set(t["train_source"].values.tolist()) - {"dead_leaves"} <= set(train)


def test_a_bad_photo_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match="setting 'image_dir': .*nowhere is not a folder"):
        SiteConfig.from_dict({"image_dir": str(tmp_path / "nowhere")})
    (tmp_path / "one").mkdir()
    _photo_folder(tmp_path / "one", n=1)
    with pytest.raises(stim.PhotoIntegrityError, match="1 JPEG/PNG file"):
        SiteConfig.from_dict({"image_dir": str(tmp_path / "one")}).photo_split()
    broken = _photo_folder(tmp_path / "broken", n=2)
    (broken / "img1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(stim.PhotoIntegrityError, match="img1.jpg is not a readable image"):
        write_site(tmp_path / "b", dict(TINY, image_dir=str(broken)), verbose=False)
    small = _photo_folder(tmp_path / "small", n=3, size=(150, 120))
    with pytest.raises(stim.PhotoIntegrityError, match="none is large enough"):
        write_site(tmp_path / "s", dict(TINY, image_dir=str(small)), verbose=False)
    with pytest.raises(ValueError, match="val_photos': unknown photos"):
        SiteConfig.from_dict({"image_dir": str(broken), "val_photos": ["coffee"]}).photo_split()


# ------------------------------------------------------------------ surround kinds and the solve


def _calibration_images(n=600, seed=0):
    from sacnn.data.preprocess import area_downsample

    imgs, _ = stim.make_stimuli(n, ("camera", "grass", "brick"), 0.25, seed, "calib")
    return area_downsample(imgs, 50) / np.float32(255)


@pytest.fixture(scope="module")
def images50():
    return _calibration_images()


def _line_probe(pop, i):
    """Bars on grey for neuron ``i`` (placed at the image centre): the centre segment alone
    (inside the aperture), with collinear segments outside it along the preferred edge, with
    those segments rotated 90 degrees around the RF centre, and with parallel flankers."""
    c = (MODEL_SIZE - 1) / 2
    yy, xx = np.mgrid[0:MODEL_SIZE, 0:MODEL_SIZE].astype(float)

    def bar(cx, cy, ori, half_len):
        along = (xx - cx) * np.cos(ori) + (yy - cy) * np.sin(ori)
        across = -(xx - cx) * np.sin(ori) + (yy - cy) * np.cos(ori)
        return (np.abs(across) <= 0.9) & (np.abs(along) <= half_len)

    edge = pop.params["theta"][i] + np.pi / 2  # bars run across the carrier direction
    flank = edge - np.pi / 2
    r = pop.aperture_radius

    def outer(angle, ori):
        return (bar(c + 13 * np.cos(angle), c + 13 * np.sin(angle), ori, 6)
                | bar(c - 13 * np.cos(angle), c - 13 * np.sin(angle), ori, 6))

    centre = bar(c, c, edge, r - 1)
    masks = [centre, centre | outer(edge, edge), centre | outer(flank, flank),
             centre | outer(flank, edge)]
    return np.stack([np.where(m, 1.0, 0.5) for m in masks]).astype(np.float32)


def test_collinear_facilitation_is_an_association_field(images50):
    """A bar through the RF is facilitated by its collinear continuation outside the
    aperture, not by the same continuation rotated 90 degrees around the RF centre, and much
    less by parallel flankers; the divisive kind is suppressed by both iso-oriented ones."""
    pop = Population.sample(4, 3, surround_kind="collinear")
    c = (MODEL_SIZE - 1) / 2
    centred = {"x0": c, "y0": c, "theta": 0.6, "sf": 0.14, "sigma_x": 2.0, "sigma_y": 2.0,
               "is_complex": 1.0, "aperture_corr": 0.9}
    for k, v in centred.items():
        pop.params[k][0] = v
    pop.calibrate(pop.raw(images50))
    assert pop.calib["w_surround"][0] > 0
    d = pop.drives(_line_probe(pop, 0))["D"][0]
    alone, collinear, rotated, flankers = d
    assert collinear > 1.3 * alone, d
    assert abs(rotated / alone - 1) < 0.02, d
    assert flankers / alone - 1 < 0.2 * (collinear / alone - 1), d
    div = Population(dict(pop.params), pop.aperture_radius)
    div.calibrate(div.raw(images50))
    d = div.drives(_line_probe(div, 0))["D"][0]
    # the divisive kind: iso-oriented surrounds suppress, collinear or flanking alike
    assert d[1] < 0.9 * d[0] and d[3] < 0.9 * d[0] and abs(d[2] / d[0] - 1) < 0.01, d


def test_the_aperture_truth_is_the_centre_alone(images50):
    """Centre-pool filters are blind outside the aperture and surround filters inside it:
    the aperture image drives the centre pool as the full image does, and the aperture drive
    of either kind equals that of the surround-free site of the same seed."""
    kinds = {"off": Population.sample(12, 5, surround_strength=0.0),
             "divisive": Population.sample(12, 5),
             "collinear": Population.sample(12, 5, surround_kind="collinear")}
    for pop in kinds.values():
        np.testing.assert_array_equal(pop.params["theta"], kinds["off"].params["theta"])
        pop.calibrate(pop.raw(images50))
    raw = kinds["divisive"].raw(images50[:50])
    np.testing.assert_allclose(raw["aperture"]["Nc"], raw["full"]["Nc"], rtol=1e-5, atol=1e-7)
    assert not raw["aperture"]["Ns"].any() and raw["full"]["Ns"].all()
    masked = np.where(aperture_mask(7.0), images50[:50], np.float32(0.5))
    ref = kinds["off"].drives(masked)["D"]
    for kind in ("divisive", "collinear"):
        assert kinds[kind].calib["w_surround"].max() > 0
        np.testing.assert_allclose(kinds[kind].drives(masked)["D"], ref, rtol=1e-5)
        assert not np.allclose(kinds[kind].drives(images50[:50])["D"],
                               kinds["off"].drives(images50[:50])["D"], rtol=1e-3)
    assert not kinds["collinear"].drives(masked)["gate"].any()


def test_the_surround_weight_is_solved_for_the_aperture_target(images50):
    """Each neuron's solved weight makes its noiseless aperture response correlate
    ``aperture_corr`` with its full response on the calibration images."""
    from sacnn.simulate.calibration import corr_cols

    for kind in ("divisive", "collinear"):
        pop = Population.sample(16, 8, surround_kind=kind, aperture_corr_range=(0.85, 0.95))
        raw = pop.raw(images50)
        pop.calibrate(raw)
        truth = pop.truth(raw)
        got = corr_cols(truth["r_true"].T, truth["r_aperture"].T)
        w = pop.calib["w_surround"]
        solved = (w > 0) & (w < 100)
        assert solved.sum() >= 12, kind
        np.testing.assert_allclose(got[solved], pop.params["aperture_corr"][solved], atol=3e-3)
        # where the weight is 0, the centre alone already explains no more than the target
        assert np.all(got[w == 0] <= pop.params["aperture_corr"][w == 0] + 3e-3)


def test_the_output_is_calibrated_and_has_a_ceiling():
    """r = 1 at the top-0.1 % training drive, a share target_half_peak of the training
    images above 0.5, and a drive far above every training image stops at R_CAP."""
    from sacnn.simulate.calibration import R_CAP, REF_TOP, output_constants, respond

    rng = np.random.default_rng(1)
    d = rng.gamma(1.0, 1.0, (20000, 3))
    k = output_constants(d, np.array([0.8, 0.9, 0.95]), np.array([0.005, 0.01, 0.02]))
    r = respond(d, k)
    np.testing.assert_allclose(np.quantile(r, 1 - REF_TOP, axis=0), 1.0, rtol=1e-3)
    np.testing.assert_allclose((r > 0.5).mean(0), [0.005, 0.01, 0.02], atol=2e-4)
    assert np.all(respond(d.max(0, keepdims=True) * 1e3, k) == np.float32(R_CAP))


def test_output_quantiles_match_numpy():
    from sacnn.simulate.calibration import col_quantiles

    rng = np.random.default_rng(0)
    x = rng.gamma(0.5, 1.0, (501, 7)).astype(np.float32)
    q = rng.uniform(0, 1, 7)
    got = col_quantiles(np.sort(x, axis=0), q)
    ref = [np.quantile(x[:, j].astype(np.float64), q[j]) for j in range(7)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_site_surround_names_the_kind():
    from sacnn import experiment

    sim = {"seed": 1, "n_neurons": 3}
    cfg = {"sites": {
        "div": {"simulate": sim},
        "div2": {"simulate": dict(sim, surround_strength=2.0)},
        "col": {"simulate": dict(sim, surround_kind="collinear")},
        "col_off": {"simulate": dict(sim, surround_kind="collinear", surround=False)},
        "off": {"simulate": dict(sim, surround=False)},
        "zero": {"simulate": dict(sim, surround_strength=0.0)},
        "real": {"raw": "somewhere"},
    }}
    assert {s: experiment.site_surround(cfg, s) for s in cfg["sites"]} == {
        "div": "x1", "div2": "x2", "col": "collinear x1", "col_off": experiment.NO_SURROUND,
        "off": experiment.NO_SURROUND, "zero": experiment.NO_SURROUND, "real": "recorded"}
    assert experiment.NO_SURROUND == "none"


@pytest.mark.parametrize("settings, message", [
    ({"surround_kind": "lateral"}, "'surround_kind': expected one of divisive, collinear"),
    ({"aperture_corr_range": [0.95, 0.9]}, "'aperture_corr_range': expected 0 < low <= high"),
    ({"aperture_corr_range": [0.9, 1.0]}, "'aperture_corr_range': expected 0 < low <= high"),
    ({"surround_strength": -1.0}, "'surround_strength': expected >= 0"),
])
def test_bad_surround_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        SiteConfig.from_dict(settings, where="sites.x.simulate")
