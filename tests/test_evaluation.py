"""sacnn.evaluation: gathering chunk predictions and per-neuron metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sacnn import metrics as M
from sacnn import noise_ceiling
from sacnn.evaluation import (
    METRIC_COLUMNS,
    EvaluationError,
    gather,
    main,
    read_predictions,
    score,
)


def chunk(neurons, n_images=120, seed=0, site="s1", model="m", shift=0.0):
    rng = np.random.default_rng(seed)
    real = rng.gamma(1.0, 1.0, (len(neurons), n_images))
    pred = real * 0.5 + rng.normal(0, 0.3, real.shape) + shift
    return xr.Dataset(
        {
            "prediction": (("neuron", "val_image"), pred),
            "response": (("neuron", "val_image"), real),
            "best_epoch": ("neuron", np.arange(1, len(neurons) + 1)),
            "init_seed": ("neuron", np.arange(len(neurons), dtype=np.int64) + 100),
            "train_loss": (("neuron", "epoch"), rng.random((len(neurons), 2))),
        },
        coords={"neuron": list(neurons), "val_image": np.arange(n_images), "epoch": [1, 2]},
        attrs={"site": site, "model": model, "label": "M", "code_version": "x", "chunk": 0},
    )


def write(ds, path):
    ds.to_netcdf(path, engine="netcdf4")
    return path


def test_gather_concatenates_chunks_in_order(tmp_path):
    a = write(chunk([0, 1], seed=1), tmp_path / "a.nc")
    b = write(chunk([2], seed=2), tmp_path / "b.nc")
    out = gather([a, b])
    assert list(out["neuron"].values) == [0, 1, 2]
    assert out["train_loss"].shape == (3, 2)
    assert json.loads(out.attrs["chunks"]) == [str(a), str(b)]
    assert "chunk" not in out.attrs


def test_gather_refuses_overlapping_or_mismatched_chunks(tmp_path):
    a = write(chunk([0, 1]), tmp_path / "a.nc")
    b = write(chunk([1, 2]), tmp_path / "b.nc")
    with pytest.raises(EvaluationError, match="more than one chunk"):
        gather([a, b])
    c = write(chunk([5], model="other"), tmp_path / "c.nc")
    with pytest.raises(EvaluationError, match="model"):
        gather([a, c])
    d = write(chunk([6], n_images=50), tmp_path / "d.nc")
    with pytest.raises(EvaluationError, match="validation images"):
        gather([a, d])


def test_score_matches_sacnn_metrics_per_neuron():
    ds = chunk([10, 11, 12], seed=3)
    rng = np.random.default_rng(4)
    trials = ds["response"].values[:, :, None] + rng.normal(0, 0.2, (3, 120, 4))
    dataset = xr.Dataset({"val_responses": (("neuron", "val_image", "repeat"), trials)},
                         coords={"neuron": [10, 11, 12], "val_image": np.arange(120)})
    df = score(ds, dataset, site="s1", model="m", label="M", fraction="f50")
    assert list(df.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    p, r = ds["prediction"].values, ds["response"].values
    np.testing.assert_allclose(df["corr"], M.pearson(p, r))
    np.testing.assert_allclose(df["pt_j"], M.peak_tuning_joint(p, r))
    np.testing.assert_allclose(df["pt_s"], M.peak_tuning_separate(p, r))
    np.testing.assert_allclose(df["peak_overlap"], M.peak_overlap(p, r))
    np.testing.assert_allclose(df["feve"], noise_ceiling.feve(p, trials))
    np.testing.assert_allclose(df["cc_norm"], noise_ceiling.normalized_correlation(p, trials))
    assert (df["fraction"] == "f50").all() and (df["n_val_images"] == 120).all()
    assert list(df["best_epoch"]) == [1, 2, 3] and list(df["init_seed"]) == [100, 101, 102]


def test_undefined_values_are_nan_not_errors():
    ds = chunk([0, 1, 2], seed=5)
    ds["prediction"][0] = 1.0  # constant prediction: correlation undefined
    ds["prediction"][1, 3] = np.nan  # diverged fit
    df = score(ds)  # no dataset: FEVE and cc_norm undefined
    assert np.isnan(df["corr"][0]) and np.isnan(df["corr"][1]) and np.isfinite(df["corr"][2])
    assert np.isnan(df["pt_j"][1]) and np.isfinite(df["pt_j"][0])
    assert np.isnan(df["peak_overlap"][1]) and np.isfinite(df["peak_overlap"][0])
    assert df["feve"].isna().all() and df["cc_norm"].isna().all()
    assert M.summarize(df["corr"].to_numpy()).n_undefined == 2


def test_cli_writes_predictions_and_metrics(tmp_path):
    a = write(chunk([0, 1], seed=1), tmp_path / "a.nc")
    b = write(chunk([2], seed=2), tmp_path / "b.nc")
    trials = np.random.default_rng(0).random((3, 120, 2))
    xr.Dataset({"val_responses": (("neuron", "val_image", "repeat"), trials)},
               coords={"neuron": [0, 1, 2], "val_image": np.arange(120)}
               ).to_netcdf(tmp_path / "dataset.nc")
    out_p, out_m = tmp_path / "o" / "predictions.nc", tmp_path / "o" / "metrics.csv"
    assert main([str(a), str(b), "--dataset", str(tmp_path / "dataset.nc"), "--site", "s1",
                 "--model", "m", "--label", "M (x)", "--fraction", "f100",
                 "--out-predictions", str(out_p), "--out-metrics", str(out_m)]) == 0
    df = pd.read_csv(out_m)
    assert len(df) == 3 and (df["label"] == "M (x)").all()
    with xr.open_dataset(out_p) as ds:
        assert ds.sizes["neuron"] == 3 and ds.attrs["gather_code_version"]


def test_predictions_with_the_old_image_dimension_are_refused_by_name(tmp_path):
    """predictions.nc names the validation images ``val_image`` like dataset.nc; a file of an
    older sacnn (``image``) is an error naming the file and the expected dimension."""
    old = write(chunk([0, 1]).rename({"val_image": "image"}), tmp_path / "old.nc")
    with pytest.raises(EvaluationError, match=r"old\.nc: dimension 'val_image' missing.*"
                                              r"old name 'image'.*train_chunk"):
        gather([old])
    with pytest.raises(EvaluationError, match=r"old\.nc: .*'val_image'.*evaluate_model"):
        read_predictions(old)
    swapped = chunk([0]).rename({"val_image": "v", "epoch": "val_image"})
    with pytest.raises(EvaluationError, match=r"x\.nc: field 'prediction' has dims"):
        read_predictions(write(swapped, tmp_path / "x.nc"))
    good = read_predictions(write(chunk([0, 1]), tmp_path / "good.nc"))
    assert good["prediction"].dims == ("neuron", "val_image")


def test_peak_overlap_column_does_not_move_with_the_predictions_scale():
    """metrics.csv's scale-free peak measure beside PT: a stretched and shifted prediction
    keeps its corr and peak_overlap while its PT_S moves."""
    ds = chunk(list(range(8)), n_images=400, seed=7)
    moved = ds.copy()
    moved["prediction"] = 1.5 * ds["prediction"] + 0.5
    a, b = score(ds), score(moved)
    np.testing.assert_allclose(a["corr"], b["corr"])
    np.testing.assert_array_equal(a["peak_overlap"], b["peak_overlap"])
    assert a["peak_overlap"].between(0, 1).all() and a["peak_overlap"].gt(0).any()
    assert not np.array_equal(a["pt_s"], b["pt_s"])
