"""Recovery of a simulated site's truth (sacnn.groundtruth) on the figure tests' tiny tree:
real simulated sites, trained weights and merged predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from sacnn.data import ingest, open_dataset
from sacnn.groundtruth import (
    GROUNDTRUTH_COLUMNS,
    GroundTruthError,
    main,
    model_space,
    read_groundtruth,
    read_truth,
    recovery,
)
from sacnn.simulate import write_site
from sacnn.training.weights import load_networks


def _truth_path(tree, site):
    return tree["root"] / "raw" / site / f"truth_{site}.nc"


def _models(tree, site, names, weights=True):
    return {m: {"label": tree["params"]["labels"][m],
                "predictions": tree["inputs"]["predictions"][site][m],
                "weights": tree["inputs"]["weights"][site][m] if weights else []}
            for m in names}


def _perfect_predictions(tree, site, tmp_path):
    """A predictions file whose prediction is the noiseless truth itself."""
    with xr.open_dataset(tree["inputs"]["predictions"][site]["ff_cnn"]) as p:
        preds = p.load()
    truth = read_truth(_truth_path(tree, site))
    r_true = truth["val_r_true"].sel(neuron=preds["neuron"].values,
                                     val_image=preds["val_image"].values)
    preds["prediction"] = (("neuron", "val_image"), r_true.values.astype(np.float32))
    path = tmp_path / "perfect.nc"
    preds.to_netcdf(path)
    return path


def test_a_perfect_model_recovers_the_truth_and_scores_the_ceiling(tree, tmp_path):
    site = "S1"
    perfect = _perfect_predictions(tree, site, tmp_path)
    df = recovery(site, read_truth(_truth_path(tree, site)),
                  open_dataset(tree["inputs"]["datasets"][site]),
                  {"perfect": {"label": "truth", "predictions": perfect}})
    assert list(df.columns) == GROUNDTRUTH_COLUMNS
    np.testing.assert_allclose(df["corr_truth"], 1.0, atol=1e-6)
    np.testing.assert_allclose(df["corr"], df["ceiling"], atol=1e-6)
    np.testing.assert_array_equal(df["pt_j"], df["truth_pt_j"])
    np.testing.assert_array_equal(df["pt_s"], df["truth_pt_s"])
    # without weights the probes are not run: the columns say so with NaN, not a number
    assert df[["aperture_corr", "centre_corr", "surround_corr"]].isna().all().all()


def test_trained_models_are_probed_on_the_aperture_images(tree):
    site = "S1"
    names = ["ff_cnn", "rf_cnn", "ff_sa_cnn"]
    truth = read_truth(_truth_path(tree, site))
    ds = open_dataset(tree["inputs"]["datasets"][site])
    df = recovery(site, truth, ds, _models(tree, site, names))
    assert len(df) == 3 * 4 and set(df["model"]) == set(names)
    ff = df[df["model"] == "ff_cnn"]
    assert ff["aperture_corr"].notna().all() and ff["centre_corr"].notna().all()
    rf = df[df["model"] == "rf_cnn"]  # centre-only readout: no surround term to compare
    assert rf["centre_corr"].isna().all() and rf["surround_corr"].isna().all()
    assert df[df["model"] == "ff_sa_cnn"]["attention_gate_corr"].notna().all()
    assert ff["attention_gate_corr"].isna().all()
    # the aperture probe is the network on the image with mid-grey outside the aperture
    ids, nets = load_networks(tree["inputs"]["weights"][site]["ff_cnn"], dtype=torch.float64)
    mask = truth["aperture"].values.astype(bool)
    grey = model_space(ds.attrs, np.array(127.5))
    masked = np.where(mask[None], ds["val_images"].values, grey)
    with torch.no_grad():
        out = nets[0](torch.as_tensor(masked).unsqueeze(1)).numpy()
    r_ap = truth["val_r_aperture"].sel(neuron=int(ids[0])).values
    assert np.corrcoef(out, r_ap)[0, 1] == pytest.approx(ff["aperture_corr"].iloc[0], abs=1e-4)


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
        {"prediction": (("neuron", "val_image"), truth["val_r_centre"].values + 0.0),
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
