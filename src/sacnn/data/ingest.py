"""Raw site -> one canonical, validated NetCDF per site, written atomically; and reading it back."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sacnn.data.options import IngestOptions, resolve_options
from sacnn.data.preprocess import (
    area_downsample,
    holdout_from_rank,
    normalise_images,
    permutation_rank,
    scale_responses,
)
from sacnn.data.raw import RawSite, load_netcdf, read_site
from sacnn.data.validate import (
    DataValidationError,
    check_finite_after,
    check_finite_responses,
    check_images,
    check_neuron_variance,
    check_unique_ids,
    check_value_range,
)
from sacnn.fileio import CONVENTIONS, write_netcdf
from sacnn.provenance import code_version, config_json

FORMAT_VERSION = "1"

log = logging.getLogger("sacnn.data")


class OutputPathError(ValueError):
    """The canonical dataset cannot be written where asked; the message names the path."""


def _apply_nan_policy(raw: RawSite, opts: IngestOptions) -> tuple[RawSite, list]:
    """Refuse or drop neurons with non-finite responses; NaN validation trials are missing repeats.

    A NaN trial in validation is accepted as a missing repeat when the same neuron has at least
    one finite repeat for that image; inf anywhere, NaN in training, or an image with no finite
    repeat count as bad values.
    """
    tfile = raw.file_of.get("train_responses", "train_responses")
    vfile = raw.file_of.get("val_responses", "val_responses")
    vr = raw.val_responses
    val_bad = np.isinf(vr).any(axis=(1, 2)) | (~np.isfinite(vr)).all(axis=2).any(axis=1)
    train_bad = ~np.isfinite(raw.train_responses).all(axis=1)
    if opts.nan_policy == "refuse":
        check_finite_responses(raw.train_responses, 0, tfile, "train_responses")
        if val_bad.any():
            idx = np.flatnonzero(val_bad)
            raise DataValidationError(
                vfile, "val_responses",
                "finite responses, NaN only for a missing repeat with at least one finite repeat "
                "per image (or set nan_policy: mask_neuron to drop such neurons)",
                f"inf or all-NaN repeats for {idx.size} neuron(s), first at neuron index "
                f"{int(idx[0])}",
            )
        return raw, []
    bad = train_bad | val_bad
    if bad.all():
        raise DataValidationError(
            tfile, "train_responses", "at least one neuron with finite responses",
            "every neuron has NaN or inf",
        )
    keep = ~bad
    dropped = [_py(v) for v in raw.neuron_ids[bad]]
    raw.train_responses = raw.train_responses[keep]
    raw.val_responses = np.where(np.isfinite(vr[keep]), vr[keep], np.nan)
    raw.neuron_ids = raw.neuron_ids[keep]
    return raw, dropped


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def check_values(raw: RawSite) -> None:
    """Value-level checks that need the whole arrays (images, ranges, zero-variance neurons,
    ids)."""
    check_images(raw.train_images, raw.file_of.get("train_images", "train_images"), "train_images")
    check_images(raw.val_images, raw.file_of.get("val_images", "val_images"), "val_images")
    for name in ("train_images", "val_images", "train_responses", "val_responses"):
        check_value_range(getattr(raw, name), raw.file_of.get(name, name), name)
    check_neuron_variance(
        raw.train_responses, raw.file_of.get("train_responses", "train_responses"),
        "train_responses", list(raw.neuron_ids),
    )
    check_unique_ids(raw.neuron_ids, raw.file_of.get("train_responses", "neuron"), "neuron ids")
    check_unique_ids(raw.train_ids, raw.file_of.get("train_images", "train_image"), "train_image ids")
    check_unique_ids(raw.val_ids, raw.file_of.get("val_images", "val_image"), "val_image ids")


@dataclass
class _Prepared:
    """A site's arrays after downsampling, image normalisation and response scaling."""

    side: int                      # the raw images' side
    size: int                      # the side after downsampling
    train: np.ndarray
    val: np.ndarray
    image_info: dict[str, Any]
    train_responses: np.ndarray
    val_responses: np.ndarray
    response_scale: np.ndarray | None


def _prepare(raw: RawSite, opts: IngestOptions) -> _Prepared:
    """Downsample and normalise the images, scale the responses, cast to float32; every
    step that could make a value non-finite is checked, naming the file."""
    size = int(opts.image_size)
    side = raw.train_images.shape[1]
    if side < size or side % size:
        raise DataValidationError(
            raw.file_of.get("train_images", "train_images"), "train_images",
            f"square images whose side is a multiple of {size} (e.g. {size} or {2 * size})",
            f"side {side}",
        )
    train = area_downsample(raw.train_images, size)
    val = area_downsample(raw.val_images, size)
    train, val, img_info = normalise_images(train, val, opts.image_norm)
    tresp, vresp, rscale = scale_responses(raw.train_responses, raw.val_responses,
                                           opts.response_scale)
    steps = f"downsampling and image_norm '{opts.image_norm}' (float32)"
    for name, arr in (("train_images", train), ("val_images", val)):
        check_finite_after(arr, steps, raw.file_of.get(name, name), name)
    tresp = tresp.astype(np.float32)
    vresp = vresp.astype(np.float32)
    steps = f"response_scale '{opts.response_scale}' and the cast to float32"
    check_finite_after(tresp, steps, raw.file_of.get("train_responses", "train_responses"),
                       "train_responses")
    if np.isinf(vresp).any():
        check_finite_after(vresp[np.isinf(vresp)], steps,
                           raw.file_of.get("val_responses", "val_responses"), "val_responses")
    return _Prepared(side, size, train, val, img_info, tresp, vresp, rscale)


def _preprocessing(raw: RawSite, opts: IngestOptions, prep: _Prepared, dropped: list
                   ) -> dict[str, Any]:
    """What ingest did to the raw data (the dataset's ``preprocessing`` attribute)."""
    side, size = prep.side, prep.size
    return {
        "downsample": f"area average {side // size}x{side // size} blocks"
        if side > size else "none",
        "source_image_size": side,
        "image_size": size,
        **prep.image_info,
        "response_scale": opts.response_scale,
        "nan_policy": opts.nan_policy,
        "dropped_neurons": dropped,
        "split_seed": int(opts.seed),
        "holdout_fraction": float(opts.holdout_fraction),
        "fraction_rule": "train_rank < round(fraction * n_train); hold-out = train_holdout "
                         "within that subset",
        "holdout_rule": "floor((rank + 1) * h) > floor(rank * h)",
        "assumed": list(raw.notes),
    }


def build_dataset(
    raw: RawSite, site: str, opts: IngestOptions, config: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """Validated raw arrays -> the canonical xarray Dataset (see docs/data-format.md)."""
    raw, dropped = _apply_nan_policy(raw, opts)
    check_values(raw)
    prep = _prepare(raw, opts)
    rank = permutation_rank(prep.train.shape[0], opts.seed, site)
    holdout = holdout_from_rank(rank, opts.holdout_fraction)
    image_units = {"none": opts.image_units, "unit": f"{opts.image_units} / 255",
                   "zscore": f"z-scored {opts.image_units}"}[opts.image_norm]
    response_units = opts.response_units if prep.response_scale is None else \
        f"{opts.response_units} / training std per neuron"
    data_vars = {
        "train_images": (("train_image", "y", "x"), prep.train.astype(np.float32, copy=False)),
        "train_responses": (("neuron", "train_image"), prep.train_responses),
        "val_images": (("val_image", "y", "x"), prep.val.astype(np.float32, copy=False)),
        "val_responses": (("neuron", "val_image", "repeat"), prep.val_responses),
        "train_rank": (("train_image",), rank.astype(np.int32)),
        "train_holdout": (("train_image",), holdout.astype(bool)),
    }
    if prep.response_scale is not None:
        data_vars["response_scale"] = (("neuron",), prep.response_scale.astype(np.float32))
    ds = xr.Dataset(data_vars, coords={"neuron": raw.neuron_ids, "train_image": raw.train_ids,
                                       "val_image": raw.val_ids,
                                       "repeat": np.arange(prep.val_responses.shape[2])})
    for name, units in (("train_images", image_units), ("val_images", image_units),
                        ("train_responses", response_units), ("val_responses", response_units)):
        ds[name].attrs["units"] = units
    ds.attrs.update({
        "Conventions": CONVENTIONS,
        "title": f"sacnn canonical dataset for site {site}",
        "format_version": FORMAT_VERSION,
        "site": site,
        "layout": raw.layout,
        "val_layout": raw.val_layout,
        "image_units": image_units,
        "response_units": response_units,
        "source_sha256": json.dumps(raw.sha256, sort_keys=True),
        "preprocessing": json.dumps(_preprocessing(raw, opts, prep, dropped), sort_keys=True),
        "code_version": code_version(),
        "config": config_json({"ingest": opts.to_dict(), **dict(config or {})}),
    })
    validate_canonical(ds, "the dataset built from " + ", ".join(sorted(raw.files)))
    return ds


def write_dataset_atomic(ds: xr.Dataset, out: Path) -> Path:
    """Write with :func:`sacnn.fileio.write_netcdf` (a temporary file in the same folder,
    then renamed: never a half-written file); an unwritable place is an OutputPathError."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a path below a file
        raise OutputPathError(f"{out}: cannot create the folder {out.parent} for the dataset "
                              f"({exc.strerror or exc})") from None
    try:
        return write_netcdf(ds, out)
    except OSError as exc:
        raise OutputPathError(f"{out}: cannot write the dataset there ({exc})") from None


def ingest(
    site_dir: str | Path,
    site: str,
    options: IngestOptions | Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Read, validate and preprocess ``site_dir`` and write the canonical NetCDF.

    ``options`` is an IngestOptions, or a mapping laid over ``site_dir/site.yaml``. ``out``
    defaults to ``results/<site>/dataset.nc`` (relative to the working directory). ``config``
    (e.g. the workflow config) is recorded in the file's ``config`` attribute.
    """
    site_dir = Path(site_dir)
    opts = resolve_options(site_dir, options)
    raw = read_site(site_dir, site, opts)
    ds = build_dataset(raw, site, opts, config)
    out = Path(out) if out is not None else Path("results") / site / "dataset.nc"
    written = write_dataset_atomic(ds, out)
    for note in raw.notes:  # also in the file's `preprocessing` attribute, under "assumed"
        log.warning("%s", note)
    return written


_CANONICAL = {
    "train_images": (("train_image", "y", "x"), "f"),
    "train_responses": (("neuron", "train_image"), "f"),
    "val_images": (("val_image", "y", "x"), "f"),
    "val_responses": (("neuron", "val_image", "repeat"), "f"),
    "train_rank": (("train_image",), "iu"),
    "train_holdout": (("train_image",), "b"),
}


def validate_canonical(ds: xr.Dataset, path: str | Path = "<dataset>") -> None:
    """Check a dataset against the canonical contract (docs/data-format.md)."""
    for name, (dims, kinds) in _CANONICAL.items():
        if name not in ds:
            raise DataValidationError(path, name, f"a variable with dims {dims}", "missing")
        if ds[name].dims != dims:
            raise DataValidationError(path, name, f"dims {dims}", f"dims {ds[name].dims}")
        if ds[name].dtype.kind not in kinds:
            raise DataValidationError(path, name, f"dtype kind in '{kinds}'", str(ds[name].dtype))
    for name in ("train_images", "val_images"):
        check_images(ds[name].values, path, name)
    check_finite_responses(ds["train_responses"].values, 0, path, "train_responses")
    vr = ds["val_responses"].values
    if np.isinf(vr).any() or (~np.isfinite(vr)).all(axis=2).any():
        raise DataValidationError(
            path, "val_responses", "finite values, NaN only for missing repeats",
            "inf or an image without any finite repeat",
        )
    rank = ds["train_rank"].values
    if not np.array_equal(np.sort(rank), np.arange(rank.size)):
        raise DataValidationError(path, "train_rank", f"a permutation of 0..{rank.size - 1}",
                                  "repeated or missing ranks")
    for dim in ("neuron", "train_image", "val_image"):
        if dim in ds.coords:
            check_unique_ids(ds[dim].values, path, dim)
    for attr in ("site", "source_sha256", "preprocessing", "code_version"):
        if attr not in ds.attrs:
            raise DataValidationError(path, f"attribute {attr}", "present", "missing")


def open_dataset(path: str | Path) -> xr.Dataset:
    """Open a canonical NetCDF fully into memory (the file is closed again) and validate it."""
    path = Path(path)
    ds = load_netcdf(path)
    if "train_holdout" in ds and ds["train_holdout"].dtype.kind != "b":
        ds["train_holdout"] = ds["train_holdout"].astype(bool)
    validate_canonical(ds, path)
    return ds
