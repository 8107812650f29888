"""Recovery of a simulated site's truth (sacnn.groundtruth) on the figure tests' tiny tree:
real simulated sites, trained weights and merged predictions; and the truth's own oracle fed
through the probe columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from sacnn import metrics as M
from sacnn.data import ingest, open_dataset
from sacnn.groundtruth import (
    GROUNDTRUTH_COLUMNS,
    GroundTruthError,
    SiteTruth,
    aperture_columns,
    attention_columns,
    main,
    model_space,
    read_groundtruth,
    read_truth,
    recovery,
)
from sacnn.simulate import load_oracle, write_site
from sacnn.simulate.noise import NoiseParams, expected_trials
from sacnn.training.weights import load_networks


def _truth_path(tree, site):
    return tree["root"] / "raw" / site / f"truth_{site}.nc"


def _models(tree, site, names, weights=True):
    return {m: {"label": tree["params"]["labels"][m],
                "predictions": tree["inputs"]["predictions"][site][m],
                "weights": tree["inputs"]["weights"][site][m] if weights else []}
            for m in names}


def _perfect_predictions(tree, site, tmp_path):
    """A predictions file whose prediction is the expected recorded truth itself."""
    with xr.open_dataset(tree["inputs"]["predictions"][site]["ff_cnn"]) as p:
        preds = p.load()
    truth = read_truth(_truth_path(tree, site))
    expected = truth["val_expected_true"].sel(neuron=preds["neuron"].values,
                                              val_image=preds["val_image"].values)
    preds["prediction"] = (("neuron", "val_image"), expected.values.astype(np.float32))
    path = tmp_path / "perfect.nc"
    preds.to_netcdf(path)
    return path, preds, truth


def test_a_perfect_model_recovers_the_truth_and_scores_the_ceiling(tree, tmp_path):
    """The expected recorded response, used as a model, is what every truth score measures
    against: it scores the ceiling, and its PT and peak overlap are the truth's own."""
    site = "S1"
    perfect, preds, truth = _perfect_predictions(tree, site, tmp_path)
    df = recovery(site, truth, open_dataset(tree["inputs"]["datasets"][site]),
                  {"perfect": {"label": "truth", "predictions": perfect}})
    assert list(df.columns) == GROUNDTRUTH_COLUMNS
    np.testing.assert_allclose(df["corr_truth"], 1.0, atol=1e-6)
    np.testing.assert_allclose(df["corr"], df["ceiling"], atol=1e-6)
    np.testing.assert_array_equal(df["pt_j"], df["truth_pt_j"])
    np.testing.assert_array_equal(df["pt_s"], df["truth_pt_s"])
    np.testing.assert_array_equal(df["peak_overlap"], df["truth_peak_overlap"])
    # the truth scores are in the recording's units: PT of the expected response, not the rate
    recorded = preds["response"].values.astype(np.float64)
    expected = preds["prediction"].values.astype(np.float64)
    np.testing.assert_array_equal(df["truth_pt_s"], M.peak_tuning_separate(expected, recorded))
    # without weights the probes are not run: the columns say so with NaN, not a number
    probes = ["aperture_corr", "surround_mod_corr", "attention_gate_corr",
              "attention_surround_share"]
    assert df[probes].isna().all().all()


def test_trained_models_are_probed_on_the_aperture_images(tree):
    site = "S1"
    names = ["ff_cnn", "rf_cnn", "ff_sa_cnn"]
    truth = read_truth(_truth_path(tree, site))
    ds = open_dataset(tree["inputs"]["datasets"][site])
    df = recovery(site, truth, ds, _models(tree, site, names))
    assert len(df) == 3 * 4 and set(df["model"]) == set(names)
    probed = ["aperture_corr", "surround_mod_corr"]
    assert df[probed].notna().all().all()  # every model, centre readout included
    sa = df[df["model"] == "ff_sa_cnn"]
    assert sa["attention_gate_corr"].notna().all()
    assert sa["attention_surround_share"].gt(0).all() and sa["attention_surround_share"].lt(1).all()
    ff = df[df["model"] == "ff_cnn"]
    assert ff["attention_gate_corr"].isna().all() and ff["attention_surround_share"].isna().all()
    # the probes are the network on the image with mid-grey outside the aperture, against
    # the expected recorded truths
    ids, nets = load_networks(tree["inputs"]["weights"][site]["ff_cnn"], dtype=torch.float64)
    mask = truth["aperture"].values.astype(bool)
    grey = model_space(ds.attrs, np.array(127.5))
    full = ds["val_images"].values.astype(np.float64)
    masked = np.where(mask[None], full, grey)
    with torch.no_grad():
        out = nets[0](torch.as_tensor(masked).unsqueeze(1)).numpy()
        out_full = nets[0](torch.as_tensor(full).unsqueeze(1)).numpy()
    sel = {"neuron": int(ids[0])}
    e_ap = truth["val_expected_aperture"].sel(sel).values
    e_true = truth["val_expected_true"].sel(sel).values
    assert np.corrcoef(out, e_ap)[0, 1] == pytest.approx(ff["aperture_corr"].iloc[0], abs=1e-4)
    assert np.corrcoef(out_full - out, e_true - e_ap)[0, 1] == pytest.approx(
        ff["surround_mod_corr"].iloc[0], abs=1e-4)


def test_the_probes_run_on_one_thread_whatever_the_machine_has(tree, monkeypatch):
    """A forward pass's sum order depends on torch's thread count; the ground truth's probes
    run on one thread, so the same config gives the same numbers on any machine."""
    import sacnn.analysis

    seen = []
    real = sacnn.analysis.attention_surround_effect

    def spy(net, images):
        seen.append(torch.get_num_threads())
        return real(net, images)

    monkeypatch.setattr(sacnn.analysis, "attention_surround_effect", spy)
    site, before = "S1", torch.get_num_threads()
    ds = open_dataset(tree["inputs"]["datasets"][site])
    torch.set_num_threads(2)
    try:
        recovery(site, read_truth(_truth_path(tree, site)), ds,
                 _models(tree, site, ["ff_sa_cnn"]))
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(before)


def test_a_truth_with_shuffled_images_is_an_error_not_a_low_number(tree, tmp_path):
    site = "S1"
    truth = read_truth(_truth_path(tree, site))
    order = np.random.default_rng(0).permutation(truth.sizes["val_image"])
    shuffled = truth.isel(val_image=order).assign_coords(val_image=truth["val_image"].values)
    with pytest.raises(GroundTruthError, match="val_image_mean.*differently ordered"):
        recovery(site, shuffled, open_dataset(tree["inputs"]["datasets"][site]),
                 _models(tree, site, ["ff_cnn"], weights=False))


def test_the_truth_of_another_site_is_refused(tree):
    # same ids (0..n-1), other images: only the image check can tell
    with pytest.raises(GroundTruthError, match="val_image_mean"):
        recovery("S1", read_truth(_truth_path(tree, "S2")),
                 open_dataset(tree["inputs"]["datasets"]["S1"]),
                 _models(tree, "S1", ["ff_cnn"], weights=False))


def test_a_truth_file_without_a_field_names_it(tree, tmp_path):
    truth = xr.open_dataset(_truth_path(tree, "S1")).load().drop_vars("val_gate")
    path = tmp_path / "truth_S1.nc"
    truth.to_netcdf(path)
    with pytest.raises(GroundTruthError, match=r"truth_S1.nc: field\(s\) \['val_gate'\] missing"):
        read_truth(path)
    # a truth written before the simulator recorded the expected responses: say how to renew
    old = xr.open_dataset(_truth_path(tree, "S1")).load().drop_vars(
        ["val_expected_true", "val_expected_centre", "val_expected_aperture"])
    old.to_netcdf(path)
    with pytest.raises(GroundTruthError, match=r"truth_S1.nc: field\(s\) \['val_expected_true', "
                       r"'val_expected_centre', 'val_expected_aperture'\] missing.*simulate_site "
                       r"job: delete .* and run snakemake again"):
        read_truth(path)
    (tmp_path / "garbage.nc").write_bytes(b"not netcdf")
    with pytest.raises(GroundTruthError, match="garbage.nc: not a readable truth file"):
        read_truth(tmp_path / "garbage.nc")


def test_a_site_without_surround_has_a_truth_without_surround(tmp_path):
    settings = {"site": "off", "seed": 5, "n_neurons": 3, "n_train": 120, "n_val": 40,
                "repeats": 3, "surround": False}
    write_site(tmp_path / "raw", settings, verbose=False)
    ds = open_dataset(ingest(tmp_path / "raw", "off", out=tmp_path / "dataset.nc"))
    truth = read_truth(tmp_path / "raw" / "truth_off.nc")
    preds = xr.Dataset(
        {"prediction": (("neuron", "val_image"), truth["val_expected_centre"].values + 0.0),
         "response": (("neuron", "val_image"), ds["val_responses"].mean("repeat").values)},
        coords={"neuron": ds["neuron"].values, "val_image": ds["val_image"].values})
    preds.to_netcdf(tmp_path / "p.nc")
    df = recovery("off", truth, ds, {"m": {"predictions": tmp_path / "p.nc"}})
    np.testing.assert_array_equal(df["truth_top_overlap"], 1.0)
    np.testing.assert_allclose(df["truth_suppression"], 0.0, atol=1e-6)
    np.testing.assert_allclose(df["corr_truth"], 1.0, atol=1e-6)
    preds.rename({"val_image": "image"}).to_netcdf(tmp_path / "old.nc")
    with pytest.raises(ValueError, match=r"old\.nc: dimension 'val_image' missing"):
        recovery("off", truth, ds, {"m": {"predictions": tmp_path / "old.nc"}})


def test_cli_site_and_gather(tree, tmp_path):
    import json

    site = "S1"
    spec = {"models": _models(tree, site, ["ff_cnn"], weights=False)}
    out = tmp_path / "S1.csv"
    assert main(["site", "--site", site, "--truth", str(_truth_path(tree, site)),
                 "--dataset", tree["inputs"]["datasets"][site], "--spec", json.dumps(spec),
                 "--out", str(out)]) == 0
    assert main(["gather", str(out), "--out", str(tmp_path / "all.csv"),
                 "--meta", str(tmp_path / "all.json"), "--provenance", '{"k": 1}']) == 0
    df = read_groundtruth(tmp_path / "all.csv")
    assert len(df) == 4 and df["neuron"].tolist() == ["0", "1", "2", "3"]
    meta = json.loads((tmp_path / "all.json").read_text())
    assert meta["provenance"] == {"k": 1} and meta["code_version"]
    with pytest.raises(SystemExit, match="sacnn.groundtruth: error: .*not a readable truth"):
        main(["site", "--site", site, "--truth", str(tmp_path / "none.nc"),
              "--dataset", tree["inputs"]["datasets"][site], "--spec", json.dumps(spec),
              "--out", str(out)])


# -- the probe columns against the site's own oracle ----------------------------------------

@pytest.fixture(scope="module")
def oracle_site(tmp_path_factory):
    """A tiny simulated site, ingested, with its truth aligned as recovery aligns it."""
    root = tmp_path_factory.mktemp("oracle")
    write_site(root / "raw", {"site": "orc", "seed": 3, "n_neurons": 3, "n_train": 120,
                              "n_val": 40, "repeats": 3}, verbose=False)
    ds = open_dataset(ingest(root / "raw", "orc", out=root / "dataset.nc"))
    truth = read_truth(root / "raw" / "truth_orc.nc")
    recorded = ds["val_responses"].mean("repeat").transpose("neuron", "val_image").values
    site = SiteTruth.of(truth, ds, [str(n) for n in ds["neuron"].values],
                        [str(i) for i in ds["val_image"].values], recorded.astype(np.float64),
                        0.01, "orc")
    return root / "raw", ds, site


def _grey_levels(ds, model_images):
    """Model inputs back to the simulator's grey levels in [0, 1] on the 50 x 50 grid (every
    image_norm is affine: two points of it invert it)."""
    a = float(model_space(ds.attrs, np.array(0.0)))
    b = float(model_space(ds.attrs, np.array(255.0)))
    return ((np.asarray(model_images, np.float64) - a) / (b - a)).astype(np.float32)


def test_the_oracle_scores_one_on_the_aperture_and_surround_modulation(oracle_site):
    """The site's true model, run on the analysis's full and aperture images and taken to the
    recording's units, is a perfect model: (a) its aperture response is the truth file's
    r_aperture, so the analysis aperture is the simulator's; (b) fed as a model's predictions
    it scores aperture_corr = surround_mod_corr = 1."""
    raw, ds, site = oracle_site
    oracle = load_oracle(raw, "orc")
    r_full = oracle(_grey_levels(ds, site.images))["r_true"]
    r_ap = oracle(_grey_levels(ds, site.aperture_images))["r_true"]
    np.testing.assert_allclose(r_full, site.fields["r_true"], atol=1e-5)
    np.testing.assert_allclose(r_ap, site.fields["r_aperture"], atol=1e-5)  # (a)
    assert np.abs(r_ap - r_full).max() > 0.05  # the aperture matters on this site
    # another grey outside the aperture would not pass (a): the check can fail
    off_grey = np.where(site.aperture_images == site.aperture_images[0, 0, 0],
                        float(model_space(ds.attrs, np.array(0.45 * 255))), site.aperture_images)
    assert np.abs(oracle(_grey_levels(ds, off_grey))["r_true"] - r_ap).max() > 1e-3
    meta = json.loads((raw / "neurons_orc.json").read_text())
    noise = NoiseParams(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in meta["noise"].items()})
    per_neuron = {k: np.asarray(v) for k, v in meta["noise_neuron"].items()}
    e_full, e_ap = (expected_trials(r, noise, per_neuron) for r in (r_full, r_ap))
    cols = aperture_columns(e_full, e_ap, site.fields["expected_true"],
                            site.fields["expected_aperture"])  # (b)
    np.testing.assert_allclose(cols["aperture_corr"], 1.0, atol=1e-6)
    np.testing.assert_allclose(cols["surround_mod_corr"], 1.0, atol=1e-6)
    # a model that sees no surround (same answer on both images) cannot score it
    with pytest.warns(M.UndefinedCorrelationWarning, match="3 of 3 entries"):
        blind = aperture_columns(e_ap, e_ap, site.fields["expected_true"],
                                 site.fields["expected_aperture"])
    assert np.isnan(blind["surround_mod_corr"]).all()


def test_attention_columns_read_an_inactive_attention_as_such():
    gate = np.random.default_rng(0).random((3, 50))
    effect = np.vstack([np.zeros(50), 0.1 + 0.5 * gate[1], np.full(50, np.nan)])
    norm = np.vstack([np.ones(50), np.full(50, 2.0), np.full(50, np.nan)])
    with pytest.warns(M.UndefinedCorrelationWarning, match="1 of 2 entries"):
        cols = attention_columns(effect, norm, gate)
    # gain 0: share 0 and an undefined correlation; a gate-driven contribution: r = 1, share
    # its mean over the output norm; no attention layer: NaN (no warning for that row)
    assert cols["attention_surround_share"][0] == 0.0
    assert np.isnan(cols["attention_gate_corr"][0])
    assert cols["attention_gate_corr"][1] == pytest.approx(1.0)
    assert cols["attention_surround_share"][1] == pytest.approx(np.mean(effect[1]) / 2.0)
    assert np.isnan(cols["attention_gate_corr"][2]) and np.isnan(
        cols["attention_surround_share"][2])
