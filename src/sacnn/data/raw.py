"""Reading a site's raw files (reference .npy layout or NetCDF) into one in-memory form."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sacnn.data.options import IngestOptions
from sacnn.data.validate import (
    DataValidationError,
    check_count,
    check_dtype,
    check_rank,
    check_unique_ids,
)
from sacnn.fileio import sha256_file


@dataclass
class RawSite:
    """Raw arrays in canonical axis order, before preprocessing.

    Images are (image, H, W) in their file dtype; responses are float64 (neuron, image) for
    training and (neuron, image, repeat) for validation.
    """

    train_images: np.ndarray
    train_responses: np.ndarray
    val_images: np.ndarray
    val_responses: np.ndarray
    neuron_ids: np.ndarray
    train_ids: np.ndarray
    val_ids: np.ndarray
    layout: str
    val_layout: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> role
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256
    file_of: dict[str, str] = field(default_factory=dict)  # field -> file path (for errors)
    notes: list[str] = field(default_factory=list)  # what ingest assumed, said and recorded


def reference_paths(site_dir: Path, site: str) -> dict[str, Path]:
    d = Path(site_dir)
    return {
        "train_images": d / f"train_img_{site}.npy",
        "train_responses": d / f"trainRsp_{site}.npy",
        "val_images": d / f"val_img_{site}.npy",
        "val_responses": d / f"valRsp_{site}.npy",
    }


def optional_id_paths(site_dir: Path, site: str) -> dict[str, Path]:
    d = Path(site_dir)
    return {
        "train_ids": d / f"train_ids_{site}.npy",
        "val_ids": d / f"val_ids_{site}.npy",
        "neuron_ids": d / f"neuron_ids_{site}.npy",
    }


def netcdf_path(site_dir: Path, site: str) -> Path:
    return Path(site_dir) / f"{site}.nc"


def detect_layout(site_dir: Path, site: str, layout: str) -> str:
    if layout != "auto":
        return layout
    if reference_paths(site_dir, site)["train_images"].exists():
        return "reference"
    if netcdf_path(site_dir, site).exists():
        return "netcdf"
    raise DataValidationError(
        site_dir, "layout",
        f"either train_img_{site}.npy (+ trainRsp/val_img/valRsp) or {site}.nc in the site folder",
        "neither exists",
    )


def require_site_files(site_dir: Path, site: str, layout: str = "auto") -> None:
    """The folder and every file ingest needs, all missing ones named at once (the workflow
    checks this when Snakemake starts, before any job reads the data)."""
    site_dir = Path(site_dir)
    if not site_dir.is_dir():
        import difflib

        siblings = [p.name for p in site_dir.parent.iterdir() if p.is_dir()] \
            if site_dir.parent.is_dir() else []
        close = difflib.get_close_matches(site_dir.name, siblings, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(str(site_dir.parent / c) for c in close)}?)" \
            if close else ""
        raise DataValidationError(site_dir, "site folder", "an existing folder with the raw "
                                  "files (docs/data-format.md)", f"no such folder{hint}")
    reference = reference_paths(site_dir, site)
    if layout == "netcdf" or (layout == "auto" and not reference["train_images"].exists()
                              and netcdf_path(site_dir, site).exists()):
        wanted = [netcdf_path(site_dir, site)]
    else:
        wanted = list(reference.values())
    missing = [p.name for p in wanted if not p.exists()]
    if missing:
        alternative = f", or {site}.nc" if layout == "auto" else ""
        raise DataValidationError(
            site_dir, "raw files", f"{', '.join(p.name for p in wanted)}{alternative} "
            f"(layout '{layout}', docs/data-format.md)", f"{', '.join(missing)} missing")


_NPY_MAGIC = b"\x93NUMPY"


def read_npy_header(path: Path, field_name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, checked, without reading (or unpickling) the data.

    Refuses, naming the file and field: a missing or empty file, a file that is not .npy
    (e.g. text saved under that name), an unreadable header, and object arrays (which only
    pickle can load).
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(path, field_name, "an existing .npy file", "missing file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_NPY_MAGIC))
            if not head:
                raise DataValidationError(path, field_name, "a .npy array",
                                          "an empty file (0 bytes)")
            if head != _NPY_MAGIC:
                raise DataValidationError(
                    path, field_name, "a .npy array (a file written by numpy.save)",
                    f"no .npy header: the file starts with {head!r}")
            fh.seek(0)
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(fh)
    except DataValidationError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise DataValidationError(path, field_name, "a readable .npy header",
                                  f"a malformed header ({exc})") from exc
    if dtype.hasobject:
        raise DataValidationError(
            path, field_name, "a plain numeric .npy array",
            f"dtype {dtype} holds Python objects, which only pickle can load (refused for "
            "untrusted files)")
    return tuple(shape), dtype


@dataclass(frozen=True)
class SiteShape:
    """A raw site's counts, known before ingest (to plan jobs or project their cost)."""

    neurons: int
    train_images: int
    val_images: int | None  # None: the validation images are not there (yet)


def site_shape(site_dir: Path, site: str) -> SiteShape:
    """Neuron and image counts from ``trainRsp``/``val_img`` headers (reference layout) or
    the dimensions of ``<site>.nc``: nothing is loaded, and every problem is a
    :class:`DataValidationError` naming the file, as ingest would report it."""
    paths = reference_paths(site_dir, site)
    netcdf = netcdf_path(site_dir, site)
    if not paths["train_responses"].exists() and netcdf.exists():
        try:
            import netCDF4

            with netCDF4.Dataset(netcdf) as nc:
                return SiteShape(*(len(nc.dimensions[d])
                                   for d in ("neuron", "train_image", "val_image")))
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            raise DataValidationError(netcdf, "dataset", "a readable NetCDF4 file with "
                                      "dimensions neuron, train_image, val_image", str(exc)
                                      ) from exc
    shape, _ = read_npy_header(paths["train_responses"], "train_responses")
    if len(shape) != 2:
        raise DataValidationError(paths["train_responses"], "train_responses",
                                  "(N_train, neurons) (rank 2)", f"shape {shape}")
    n_val = None
    if paths["val_images"].exists():
        val, _ = read_npy_header(paths["val_images"], "val_images")
        if len(val) < 3:
            raise DataValidationError(paths["val_images"], "val_images",
                                      "images shaped (N, H, W) or (N, H, W, 1)", f"shape {val}")
        n_val = val[0]
    return SiteShape(neurons=shape[1], train_images=shape[0], val_images=n_val)


def _load_npy(path: Path, field_name: str) -> np.ndarray:
    shape, dtype = read_npy_header(path, field_name)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        expected = int(np.prod(shape)) * dtype.itemsize
        raise DataValidationError(
            path, field_name, f"a complete .npy array of shape {shape} and dtype {dtype} "
            f"({expected} bytes of data)", f"unreadable data, truncated? ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        raise DataValidationError(path, field_name, "a single .npy array", type(arr).__name__)
    return arr


def _images_as_image_y_x(arr: np.ndarray, path: Path | str, field_name: str) -> np.ndarray:
    """Checked square grey images as (image, y, x); (N, H, W, 1) loses its channel axis."""
    check_dtype(arr, path, field_name)
    check_rank(arr, (3, 4), path, field_name, "images shaped (N, H, W) or (N, H, W, 1)")
    if arr.ndim == 4:
        if arr.shape[3] != 1:
            raise DataValidationError(
                path, field_name, "a single grey channel, shape (N, H, W, 1)", f"shape {arr.shape}"
            )
        arr = arr[..., 0]
    if arr.shape[1] != arr.shape[2] or arr.shape[1] == 0:
        raise DataValidationError(path, field_name, "square images (H == W)", f"shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataValidationError(path, field_name, "at least one image", f"shape {arr.shape}")
    return arr


def _val_responses_as_neuron_image_repeat(
    arr: np.ndarray, n_val: int, opts: IngestOptions, path: Path | str
) -> tuple[np.ndarray, str]:
    """Validation responses to (neuron, image, repeat); returns the layout used."""
    field_name = "val_responses"
    check_dtype(arr, path, field_name)
    check_rank(
        arr, (2, 3), path, field_name,
        "(N_val, neurons), (N_val, neurons, repeats) or (repeats, N_val, neurons)",
    )
    layout = opts.val_layout
    if arr.ndim == 2:
        if opts.repeats is not None and opts.repeats > 1:
            raise DataValidationError(
                path, field_name,
                f"{opts.repeats} repeats per validation image as declared (option 'repeats'), "
                "i.e. a 3-D array",
                f"a 2-D (trial-averaged) array of shape {arr.shape}",
            )
        if layout not in ("auto", "mean"):
            raise DataValidationError(
                path, field_name, f"a 3-D array for val_layout '{layout}'", f"shape {arr.shape}"
            )
        check_count(arr.shape[0], n_val, path, field_name, "validation images along axis 0")
        return arr.T[:, :, None], "mean"
    if layout == "mean":
        raise DataValidationError(
            path, field_name, "a 2-D array (N_val, neurons) for val_layout 'mean'",
            f"shape {arr.shape}",
        )
    if layout == "auto":
        fits_inr = arr.shape[0] == n_val
        fits_rin = arr.shape[1] == n_val
        if fits_inr and fits_rin:
            raise DataValidationError(
                path, field_name,
                "an unambiguous axis order: declare val_layout (image_neuron_repeat or "
                "repeat_image_neuron) in site.yaml or the config",
                f"shape {arr.shape} fits both",
            )
        if not (fits_inr or fits_rin):
            raise DataValidationError(
                path, field_name, f"{n_val} validation images along axis 0 or 1",
                f"shape {arr.shape}",
            )
        layout = "image_neuron_repeat" if fits_inr else "repeat_image_neuron"
    if layout == "image_neuron_repeat":
        check_count(arr.shape[0], n_val, path, field_name, "validation images along axis 0")
        out = np.transpose(arr, (1, 0, 2))
    else:
        check_count(arr.shape[1], n_val, path, field_name, "validation images along axis 1")
        out = np.transpose(arr, (2, 1, 0))
    if opts.repeats is not None:
        check_count(out.shape[2], opts.repeats, path, field_name, "repeats (as declared)")
    return out, layout


def repeats_note(path: Path | str, shape: tuple[int, ...], opts: IngestOptions) -> list[str]:
    """What ingest assumes of validation responses with one repeat per image when the site
    does not declare ``repeats`` (a user who meant single trials finds out here, not from
    empty FEVE and cc_norm columns); ``repeats: 1`` declares it and silences the note."""
    if opts.repeats is not None:
        return []
    note = (f"{path}: field 'val_responses': shape {tuple(shape)} has one repeat per "
            "validation image, taken as responses already averaged over the repeats (option "
            "'repeats' is not declared); FEVE and cc_norm need single trials and will be empty "
            "(NaN) for this site. Declare 'repeats: 1' in site.yaml or the config to confirm "
            "it, or give the single trials (docs/data-format.md, section 1)")
    return [note]


def _ids(path: Path, n: int, field_name: str) -> np.ndarray | None:
    if not path.exists():
        return None
    ids = _load_npy(path, field_name)
    if ids.dtype.kind not in "iuU":
        raise DataValidationError(path, field_name, "integer or unicode string ids", str(ids.dtype))
    check_rank(ids, (1,), path, field_name, "a 1-D array of ids")
    check_count(ids.shape[0], n, path, field_name, "ids (one per entry)")
    check_unique_ids(ids, path, field_name)
    return ids


def read_reference(site_dir: Path, site: str, opts: IngestOptions) -> RawSite:
    paths = reference_paths(site_dir, site)
    for name, p in paths.items():
        if not p.exists():
            raise DataValidationError(p, name, "an existing .npy file", "missing file")
    arrays = {name: _load_npy(p, name) for name, p in paths.items()}
    ti = _images_as_image_y_x(arrays["train_images"], paths["train_images"], "train_images")
    vi = _images_as_image_y_x(arrays["val_images"], paths["val_images"], "val_images")
    if vi.shape[1:] != ti.shape[1:]:
        raise DataValidationError(
            paths["val_images"], "val_images",
            f"the same image size as the training images {ti.shape[1:]}", f"{vi.shape[1:]}",
        )
    tr = arrays["train_responses"]
    p = paths["train_responses"]
    check_dtype(tr, p, "train_responses")
    check_rank(tr, (2,), p, "train_responses", "(N_train, neurons)")
    check_count(tr.shape[0], ti.shape[0], p, "train_responses",
                f"rows (one per training image in {paths['train_images'].name})")
    vr, vlayout = _val_responses_as_neuron_image_repeat(
        arrays["val_responses"], vi.shape[0], opts, paths["val_responses"])
    check_count(vr.shape[0], tr.shape[1], paths["val_responses"], "val_responses",
                f"neurons (as in {p.name})")
    n_neur = tr.shape[1]
    idp = optional_id_paths(site_dir, site)
    train_ids = _ids(idp["train_ids"], ti.shape[0], "train_ids")
    val_ids = _ids(idp["val_ids"], vi.shape[0], "val_ids")
    neuron_ids = _ids(idp["neuron_ids"], n_neur, "neuron_ids")
    used = dict(paths)
    used.update({k: v for k, v in idp.items() if v.exists()})
    return RawSite(
        train_images=ti,
        train_responses=np.asarray(tr.T, dtype=np.float64),
        val_images=vi,
        val_responses=np.asarray(vr, dtype=np.float64),
        neuron_ids=neuron_ids if neuron_ids is not None else np.arange(n_neur),
        train_ids=train_ids if train_ids is not None else np.arange(ti.shape[0]),
        val_ids=val_ids if val_ids is not None else np.arange(vi.shape[0]),
        layout="reference",
        val_layout=vlayout,
        notes=repeats_note(paths["val_responses"], arrays["val_responses"].shape, opts)
        if vr.shape[2] == 1 else [],
        files={p.name: k for k, p in used.items()},
        sha256={p.name: sha256_file(p) for p in used.values()},
        file_of={k: str(v) for k, v in used.items()},
    )


_NC_DIMS = {
    "train_images": ("train_image", "y", "x"),
    "train_responses": ("neuron", "train_image"),
    "val_images": ("val_image", "y", "x"),
}


def load_netcdf(path: Path):
    """Read a NetCDF file fully into memory (the file is closed again), with clear errors."""
    import xarray as xr

    if not path.exists():
        raise DataValidationError(path, "dataset", "an existing NetCDF file", "missing file")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    except Exception as exc:
        raise DataValidationError(path, "dataset", "a readable NetCDF4 file", str(exc)) from exc


def read_netcdf(site_dir: Path, site: str, opts: IngestOptions) -> RawSite:
    path = netcdf_path(site_dir, site)
    ds = load_netcdf(path)
    for name, dims in _NC_DIMS.items():
        if name not in ds:
            raise DataValidationError(path, name, f"a variable with dims {dims}", "missing")
        if ds[name].dims != dims:
            raise DataValidationError(path, name, f"dims {dims}", f"dims {ds[name].dims}")
    if "val_responses" not in ds:
        raise DataValidationError(
            path, "val_responses", "a variable with dims (neuron, val_image[, repeat])", "missing"
        )
    vr = ds["val_responses"]
    if vr.dims == ("neuron", "val_image"):
        if opts.repeats is not None and opts.repeats > 1:
            raise DataValidationError(
                path, "val_responses",
                f"{opts.repeats} repeats per validation image as declared (a 'repeat' dim)",
                "dims ('neuron', 'val_image') without repeats",
            )
        vr_arr, vlayout = vr.values[:, :, None], "mean"
    elif vr.dims == ("neuron", "val_image", "repeat"):
        vr_arr, vlayout = vr.values, "neuron_image_repeat"
        if opts.repeats is not None:
            check_count(vr_arr.shape[2], opts.repeats, path, "val_responses", "repeats (as declared)")
    else:
        raise DataValidationError(
            path, "val_responses", "dims (neuron, val_image[, repeat])", f"dims {vr.dims}"
        )
    for name in ("train_images", "train_responses", "val_images"):
        check_dtype(ds[name].values, path, name)
    check_dtype(vr_arr, path, "val_responses")
    ti = _images_as_image_y_x(ds["train_images"].values, path, "train_images")
    vi = _images_as_image_y_x(ds["val_images"].values, path, "val_images")
    if vi.shape[1:] != ti.shape[1:]:
        raise DataValidationError(
            path, "val_images", f"the training image size {ti.shape[1:]}", f"{vi.shape[1:]}"
        )
    ids = {}
    for dim in ("neuron", "train_image", "val_image"):
        vals = ds[dim].values if dim in ds.coords else np.arange(ds.sizes[dim])
        check_unique_ids(vals, path, dim)
        ids[dim] = vals
    return RawSite(
        train_images=ti,
        train_responses=np.asarray(ds["train_responses"].values, dtype=np.float64),
        val_images=vi,
        val_responses=np.asarray(vr_arr, dtype=np.float64),
        neuron_ids=ids["neuron"],
        train_ids=ids["train_image"],
        val_ids=ids["val_image"],
        layout="netcdf",
        val_layout=vlayout,
        notes=repeats_note(path, vr.shape, opts) if vr_arr.shape[2] == 1 else [],
        files={path.name: "dataset"},
        sha256={path.name: sha256_file(path)},
        file_of={k: str(path) for k in
                 ("train_images", "train_responses", "val_images", "val_responses")},
    )


def read_site(site_dir: Path, site: str, opts: IngestOptions) -> RawSite:
    """Read and structurally validate a site's raw files (shapes, dtypes, counts, ids)."""
    site_dir = Path(site_dir)
    if not site_dir.is_dir():
        raise DataValidationError(site_dir, "site folder", "an existing directory", "missing")
    layout = detect_layout(site_dir, site, opts.layout)
    if layout == "reference":
        return read_reference(site_dir, site, opts)
    return read_netcdf(site_dir, site, opts)
