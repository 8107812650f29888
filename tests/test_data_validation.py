"""Every validation error names the file, the field and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data import SITE, tiny_arrays, tiny_site, write_reference

from sacnn.data import DataValidationError, IngestOptions, ingest, open_dataset
from sacnn.data.ingest import OutputPathError


def _ingest(site_dir, tmp_path, **opts):
    return ingest(site_dir, SITE, opts, out=tmp_path / "out" / "dataset.nc")


def _expect(site_dir, tmp_path, file_part, field, **opts):
    with pytest.raises(DataValidationError) as info:
        _ingest(site_dir, tmp_path, **opts)
    msg = str(info.value)
    assert file_part in msg and f"'{field}'" in msg and "expected" in msg, msg
    # nothing half-written is left behind
    out_dir = tmp_path / "out"
    assert not (out_dir / "dataset.nc").exists()
    assert not out_dir.exists() or not any(out_dir.iterdir())
    return msg


def test_valid_site_ingests(tmp_path):
    out = _ingest(tiny_site(tmp_path), tmp_path)
    ds = open_dataset(out)
    assert ds["train_images"].shape == (40, 50, 50)
    assert ds["val_responses"].shape == (5, 12, 4)
    assert ds.attrs["site"] == SITE


def test_missing_file(tmp_path):
    d = tiny_site(tmp_path)
    (d / f"valRsp_{SITE}.npy").unlink()
    _expect(d, tmp_path, f"valRsp_{SITE}.npy", "val_responses")


def test_missing_site_folder(tmp_path):
    _expect(tmp_path / "nope", tmp_path, "nope", "site folder")


def test_wrong_rank_images(tmp_path):
    a = tiny_arrays()
    d = tiny_site(tmp_path, train_images=a["train_images"][:, :, :, None, None])
    _expect(d, tmp_path, f"train_img_{SITE}.npy", "train_images")


def test_wrong_channel_count(tmp_path):
    a = tiny_arrays()
    d = tiny_site(tmp_path, val_images=np.repeat(a["val_images"][..., None], 3, axis=3))
    _expect(d, tmp_path, f"val_img_{SITE}.npy", "val_images")


def test_non_square_images(tmp_path):
    a = tiny_arrays()
    d = tiny_site(tmp_path, train_images=a["train_images"][:, :, :60])
    _expect(d, tmp_path, f"train_img_{SITE}.npy", "train_images")


def test_size_not_multiple_of_50(tmp_path):
    a = tiny_arrays(side=70)
    d = write_reference(tmp_path / SITE, a)
    _expect(d, tmp_path, f"train_img_{SITE}.npy", "train_images")


def test_val_image_size_differs(tmp_path):
    d = tiny_site(tmp_path, val_images=tiny_arrays(side=50)["val_images"])
    _expect(d, tmp_path, f"val_img_{SITE}.npy", "val_images")


def test_count_mismatch_images_responses(tmp_path):
    a = tiny_arrays()
    d = tiny_site(tmp_path, train_responses=a["train_responses"][:-1])
    msg = _expect(d, tmp_path, f"trainRsp_{SITE}.npy", "train_responses")
    assert "40" in msg and "39" in msg


def test_val_count_mismatch(tmp_path):
    a = tiny_arrays()
    d = tiny_site(tmp_path, val_responses=a["val_responses"][:-2])
    _expect(d, tmp_path, f"valRsp_{SITE}.npy", "val_responses")


def test_neuron_count_mismatch(tmp_path):
    a = tiny_arrays()
    d = tiny_site(tmp_path, val_responses=a["val_responses"][:, :-1])
    _expect(d, tmp_path, f"valRsp_{SITE}.npy", "val_responses")


def test_nan_refused_by_default(tmp_path):
    a = tiny_arrays()
    r = a["train_responses"].copy()
    r[3, 2] = np.nan
    d = tiny_site(tmp_path, train_responses=r)
    msg = _expect(d, tmp_path, f"trainRsp_{SITE}.npy", "train_responses")
    assert "neuron index 2" in msg


def test_inf_in_val_refused(tmp_path):
    a = tiny_arrays()
    v = a["val_responses"].copy()
    v[0, 1, 0] = np.inf
    d = tiny_site(tmp_path, val_responses=v)
    _expect(d, tmp_path, f"valRsp_{SITE}.npy", "val_responses")


def test_nan_masked_per_neuron_when_configured(tmp_path):
    a = tiny_arrays()
    r = a["train_responses"].copy()
    r[3, 2] = np.nan
    v = a["val_responses"].copy()
    v[0, 4, 1] = np.nan  # a missing repeat: kept as NaN
    d = tiny_site(tmp_path, train_responses=r, val_responses=v)
    ds = open_dataset(_ingest(d, tmp_path, nan_policy="mask_neuron"))
    assert list(ds["neuron"].values) == [0, 1, 3, 4]
    assert np.isnan(ds["val_responses"].sel(neuron=4).values[0, 1])
    assert "2" in ds.attrs["preprocessing"]


def test_missing_repeat_nan_accepted_by_default(tmp_path):
    a = tiny_arrays()
    v = a["val_responses"].copy()
    v[0, 4, 1] = np.nan
    ds = open_dataset(_ingest(tiny_site(tmp_path, val_responses=v), tmp_path))
    assert np.isnan(ds["val_responses"].values[4, 0, 1])


def test_nonfinite_image(tmp_path):
    a = tiny_arrays()
    im = a["train_images"].astype(np.float32)
    im[5, 3, 3] = np.nan
    d = tiny_site(tmp_path, train_images=im)
    msg = _expect(d, tmp_path, f"train_img_{SITE}.npy", "train_images")
    assert "index 5" in msg


def test_constant_image(tmp_path):
    a = tiny_arrays()
    im = a["val_images"].copy()
    im[7] = 128
    d = tiny_site(tmp_path, val_images=im)
    msg = _expect(d, tmp_path, f"val_img_{SITE}.npy", "val_images")
    assert "index 7" in msg


def test_zero_variance_neuron(tmp_path):
    a = tiny_arrays()
    r = a["train_responses"].copy()
    r[:, 3] = 0.25
    d = tiny_site(tmp_path, train_responses=r)
    msg = _expect(d, tmp_path, f"trainRsp_{SITE}.npy", "train_responses")
    assert "neuron 3" in msg


@pytest.mark.parametrize("bad", [np.bool_, np.complex64])
def test_wrong_dtype(tmp_path, bad):
    a = tiny_arrays()
    d = tiny_site(tmp_path, train_responses=a["train_responses"].astype(bad))
    _expect(d, tmp_path, f"trainRsp_{SITE}.npy", "train_responses")


def test_object_array_refused_without_pickle(tmp_path):
    a = tiny_arrays()
    obj = np.empty(a["train_responses"].shape[0], dtype=object)
    d = tiny_site(tmp_path, train_responses=obj)
    _expect(d, tmp_path, f"trainRsp_{SITE}.npy", "train_responses")


def test_duplicate_image_ids(tmp_path):
    a = tiny_arrays()
    ids = np.arange(40)
    ids[10] = ids[11]
    a["train_ids"] = ids
    d = write_reference(tmp_path / SITE, a)
    msg = _expect(d, tmp_path, f"train_ids_{SITE}.npy", "train_ids")
    assert "11" in msg


def test_duplicate_neuron_ids(tmp_path):
    a = tiny_arrays()
    a["neuron_ids"] = np.array(["a", "b", "c", "a", "e"])
    d = write_reference(tmp_path / SITE, a)
    _expect(d, tmp_path, f"neuron_ids_{SITE}.npy", "neuron_ids")


def test_no_repeats_when_declared(tmp_path):
    a = tiny_arrays()
    d = tiny_site(tmp_path, val_responses=a["val_responses"].mean(axis=2))
    msg = _expect(d, tmp_path, f"valRsp_{SITE}.npy", "val_responses", repeats=10)
    assert "10 repeats" in msg


def test_wrong_repeat_count_declared(tmp_path):
    _expect(tiny_site(tmp_path), tmp_path, f"valRsp_{SITE}.npy", "val_responses", repeats=10)


def test_ambiguous_val_layout(tmp_path):
    a = tiny_arrays(n_val=6, n_neurons=6, repeats=6)
    d = write_reference(tmp_path / SITE, a)
    _expect(d, tmp_path, f"valRsp_{SITE}.npy", "val_responses")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import xarray as xr

    def boom(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(OutputPathError, match="cannot write the dataset there.*disk full"):
        _ingest(tiny_site(tmp_path), tmp_path)
    assert list((tmp_path / "out").iterdir()) == []


def test_open_dataset_rejects_non_canonical(tmp_path):
    import xarray as xr

    p = tmp_path / "bad.nc"
    xr.Dataset({"train_images": (("a", "b"), np.zeros((2, 2), np.float32))}).to_netcdf(p)
    with pytest.raises(DataValidationError, match="train_images"):
        open_dataset(p)
    with pytest.raises(DataValidationError, match="missing"):
        open_dataset(tmp_path / "none.nc")


def test_options_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown key"):
        IngestOptions.from_dict({"repeat": 10})
    with pytest.raises(ValueError, match="nan_policy"):
        IngestOptions(nan_policy="ignore")


def test_sidecar_unknown_key(tmp_path):
    d = write_reference(tmp_path / SITE, tiny_arrays(), sidecar="repetitions: 10\n")
    with pytest.raises(ValueError, match="site.yaml"):
        _ingest(d, tmp_path)
