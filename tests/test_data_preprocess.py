"""Downsampling, normalisation, nested fractions, hold-out and training_arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_data import SITE, tiny_arrays, write_reference

from sacnn.data import ingest, open_dataset, training_arrays
from sacnn.data.preprocess import area_downsample, holdout_from_rank, permutation_rank


def test_area_downsample_block_mean():
    img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    out = area_downsample(img, 2)
    np.testing.assert_allclose(out[0], [[2.5, 4.5], [10.5, 12.5]])
    assert out.dtype == np.float32


@pytest.mark.parametrize("n", [7, 100, 1001])
def test_fractions_nested_and_holdout_nested(n):
    rank = permutation_rank(n, seed=3, site="s")
    assert sorted(rank) == list(range(n))
    hold = holdout_from_rank(rank, 0.1)
    prev_set, prev_hold = set(), set()
    for f in (0.25, 0.5, 1.0):
        k = round(f * n)
        sub = set(np.flatnonzero(rank < k))
        h = set(np.flatnonzero((rank < k) & hold))
        assert prev_set <= sub and prev_hold <= h
        assert len(h) == int(np.floor(k * 0.1 + 1e-9))
        prev_set, prev_hold = sub, h


def test_rank_is_seeded():
    a = permutation_rank(50, 1, "s")
    assert np.array_equal(a, permutation_rank(50, 1, "s"))
    assert not np.array_equal(a, permutation_rank(50, 2, "s"))
    assert not np.array_equal(a, permutation_rank(50, 1, "t"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pre")
    d = write_reference(tmp / SITE, tiny_arrays(n_train=200, n_val=10, n_neurons=4, repeats=3))
    return open_dataset(ingest(d, SITE, {"seed": 5, "holdout_fraction": 0.2},
                               out=tmp / "ds.nc"))


def test_zscore_uses_training_stats(dataset):
    x = dataset["train_images"].values.astype(np.float64)
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-4
    pre = json.loads(dataset.attrs["preprocessing"])
    assert pre["image_norm"] == "zscore" and pre["source_image_size"] == 100
    assert dataset.attrs["image_units"].startswith("z-scored")


def test_training_arrays_fractions(dataset):
    ids = {}
    for f in (0.25, 0.5, 1.0):
        ta = training_arrays(dataset, f)
        n_sub = round(f * 200)
        assert ta.fit_images.shape[0] + ta.holdout_images.shape[0] == n_sub
        assert ta.holdout_images.shape[0] == int(np.floor(n_sub * 0.2 + 1e-9))
        assert ta.fit_images.shape[1:] == (50, 50) and ta.fit_images.dtype == np.float32
        assert ta.fit_responses.shape == (4, ta.fit_images.shape[0])
        assert ta.val_responses.shape == (4, 10)
        assert ta.val_responses_trials.shape == (4, 10, 3)
        np.testing.assert_allclose(ta.val_responses, ta.val_responses_trials.mean(axis=2),
                                   rtol=1e-6)
        ids[f] = set(ta.fit_image_ids.tolist())
    assert ids[0.25] <= ids[0.5] <= ids[1.0]


def test_training_arrays_neuron_selection(dataset):
    ta = training_arrays(dataset, 1.0, neurons=[3, 1])
    assert list(ta.neuron_ids) == [3, 1]
    full = training_arrays(dataset, 1.0)
    np.testing.assert_array_equal(ta.fit_responses[0], full.fit_responses[3])
    tb = training_arrays(dataset, 1.0, neurons=slice(1, 3))
    assert list(tb.neuron_ids) == [1, 2]


def test_val_mean_is_nan_aware(tmp_path):
    a = tiny_arrays()
    v = a["val_responses"].copy()
    v[2, 1, 0] = np.nan
    d = write_reference(tmp_path / SITE, dict(a, val_responses=v))
    ds = open_dataset(ingest(d, SITE, {}, out=tmp_path / "d.nc"))
    ta = training_arrays(ds, 1.0)
    np.testing.assert_allclose(ta.val_responses[1, 2], np.mean(v[2, 1, 1:]), rtol=1e-6)


@pytest.mark.parametrize("layout", ["image_neuron_repeat", "repeat_image_neuron", "mean"])
def test_val_layouts_and_image_shapes_agree(tmp_path, layout):
    a = tiny_arrays()
    base = open_dataset(ingest(write_reference(tmp_path / "a" / SITE, a), SITE, {},
                               out=tmp_path / "a.nc"))
    b = dict(a)
    v = a["val_responses"]
    if layout == "repeat_image_neuron":
        b["val_responses"] = np.transpose(v, (2, 0, 1))
    elif layout == "mean":
        b["val_responses"] = v.mean(axis=2)
    # already-downsampled images in (N, 50, 50, 1): same canonical images
    b["train_images"] = area_downsample(a["train_images"], 50)[..., None]
    b["val_images"] = area_downsample(a["val_images"], 50)[..., None]
    other = open_dataset(ingest(write_reference(tmp_path / "b" / SITE, b), SITE,
                                {"val_layout": layout}, out=tmp_path / "b.nc"))
    np.testing.assert_allclose(other["train_images"].values, base["train_images"].values,
                               rtol=1e-5, atol=1e-5)
    expect = base["val_responses"].values
    if layout == "mean":
        expect = expect.mean(axis=2, keepdims=True)
    np.testing.assert_allclose(other["val_responses"].values, expect, rtol=1e-5)
    np.testing.assert_array_equal(other["train_rank"].values, base["train_rank"].values)


def test_image_norm_none_keeps_raw_values(tmp_path):
    a = tiny_arrays(side=50)
    d = write_reference(tmp_path / SITE, a)
    ds = open_dataset(ingest(d, SITE, {"image_norm": "none"}, out=tmp_path / "d.nc"))
    np.testing.assert_array_equal(ds["train_images"].values, a["train_images"].astype(np.float32))


def test_netcdf_layout_round_trip(tmp_path):
    import xarray as xr

    a = tiny_arrays()
    ref = open_dataset(ingest(write_reference(tmp_path / "r" / SITE, a), SITE, {},
                              out=tmp_path / "r.nc"))
    raw = xr.Dataset({
        "train_images": (("train_image", "y", "x"), a["train_images"]),
        "train_responses": (("neuron", "train_image"), a["train_responses"].T),
        "val_images": (("val_image", "y", "x"), a["val_images"]),
        "val_responses": (("neuron", "val_image", "repeat"),
                          np.transpose(a["val_responses"], (1, 0, 2))),
    }, coords={"neuron": np.arange(5), "train_image": np.arange(40), "val_image": np.arange(12)})
    (tmp_path / "n").mkdir()
    raw.to_netcdf(tmp_path / "n" / f"{SITE}.nc")
    nc = open_dataset(ingest(tmp_path / "n", SITE, {}, out=tmp_path / "n.nc"))
    for name in ("train_images", "train_responses", "val_images", "val_responses",
                 "train_rank", "train_holdout"):
        np.testing.assert_array_equal(nc[name].values, ref[name].values)
    assert nc.attrs["layout"] == "netcdf"


def test_cli_ingest(tmp_path, capsys):
    from sacnn.data.__main__ import main

    d = write_reference(tmp_path / SITE, tiny_arrays(), sidecar="repeats: 4\n")
    assert main(["ingest", str(d), SITE, "--out", str(tmp_path / "c.nc"), "-o", "seed=2"]) == 0
    assert main(["check", str(tmp_path / "c.nc")]) == 0
    assert main(["ingest", str(d), SITE, "--out", str(tmp_path / "e.nc"), "-o", "repeats=9"]) == 2
    assert "valRsp" in capsys.readouterr().err


def test_the_package_export_ingest_is_the_function_even_after_its_module_is_imported():
    """sacnn.data loads its members lazily; importing the submodule sacnn.data.ingest (as
    the workflow's jobs do) must not turn ``from sacnn.data import ingest`` into the module."""
    import subprocess
    import sys

    code = ("import sacnn.data.ingest\n"
            "from sacnn.data import ingest, open_dataset\n"
            "import sacnn.data.ingest as again\n"
            "assert callable(ingest) and ingest.__name__ == 'ingest', ingest\n"
            "assert again is ingest and open_dataset.__module__ == 'sacnn.data.ingest'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
