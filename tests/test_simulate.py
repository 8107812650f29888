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
from sacnn.simulate.neurons import Population, _log_gsm, aperture_mask

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
    for p in ("param_theta", "param_sf", "param_w_s", "calib_power", "noise_r_max"):
        assert t[p].dims == ("neuron",)
    # the surround only divides: removing it can only raise the response
    assert (t["train_r_centre"].values >= t["train_r_true"].values - 1e-6).all()


def test_oracle_reproduces_truth(tiny_site):
    pop = load_oracle(tiny_site, "t")
    from sacnn.data.preprocess import area_downsample

    val = np.load(tiny_site / "val_img_t.npy")
    res = pop(area_downsample(val, 50) / np.float32(255))
    with xr.open_dataset(tiny_site / "truth_t.nc") as t:
        np.testing.assert_allclose(res["r_true"], t["val_r_true"].values, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res["gate"], t["val_gate"].values, rtol=1e-5, atol=1e-6)


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
    from sacnn.simulate.neurons import _gabor_pair

    pop = Population.sample(3, 2)
    imgs = np.random.default_rng(1).random((4, 50, 50)).astype(np.float32)
    e = pop.raw(imgs)["full"]["E"]
    P = pop.params
    for i in range(3):
        ge, go = _gabor_pair(P["x0"][i], P["y0"][i], P["theta"][i], P["sf"][i],
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
        got = _log_gsm(np.array([lam]), n)[0] - (n / 2) * np.log(2 * np.pi)
        assert got == pytest.approx(np.log(val), abs=5e-3)


def test_photo_checksum_refused(monkeypatch):
    name = "camera"
    pkg, rel, _, lic = stim.PHOTOS[name]
    monkeypatch.setitem(stim.PHOTOS, name, (pkg, rel, "0" * 64, lic))
    with pytest.raises(stim.PhotoIntegrityError, match="SHA-256"):
        stim.load_photo(name)


def test_all_bundled_photos_verify():
    for name in stim.PHOTOS:
        assert stim.load_photo(name).ndim == 2


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
