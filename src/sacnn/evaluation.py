"""Gather a model's chunk predictions into one file and score every neuron.

``python -m sacnn.evaluation --dataset results/<site>/dataset.nc --site <site> --model <model>
--label <label> --fraction f100 --out-predictions .../predictions.nc --out-metrics
.../metrics.csv chunk0/predictions.nc chunk1/predictions.nc ...`` (the workflow's
``evaluate_model`` rule). ``metrics.csv`` has one row per neuron with the columns of
:data:`METRIC_COLUMNS`; peak-tuning indices (PT_J, PT_S: the paper's, scale dependent) and
``peak_overlap`` (their scale-free check, :func:`sacnn.metrics.peak_overlap`) are fractions in
[0, 1] (tables print x100).
An undefined value (e.g. a correlation with a constant prediction) is an empty cell (NaN),
never silently dropped: tables count such neurons as ``n_undefined``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sacnn import metrics as M
from sacnn import noise_ceiling
from sacnn.fileio import write_csv, write_netcdf
from sacnn.provenance import code_version
from sacnn.settings import fraction_argument

log = logging.getLogger("sacnn.evaluation")

METRIC_COLUMNS = [
    "site", "model", "label", "fraction", "neuron", "corr", "pt_j", "pt_s", "peak_overlap",
    "feve", "cc_norm", "best_epoch", "n_val_images", "pt_k",
]
"""Columns of metrics.csv, in order (``init_seed`` follows as provenance). ``pt_k`` is the
number of top images PT and ``peak_overlap`` count (1 % of ``n_val_images``,
:func:`sacnn.metrics.n_top`)."""


class EvaluationError(ValueError):
    """Chunk files that do not fit together; the message names the file."""


_CHUNK_VARIABLES = ("prediction", "response", "best_epoch")

#: The validation-image dimension of ``predictions.nc``: the name ``dataset.nc`` gives it, so
#: predictions and dataset merge without renaming (docs/data-format.md).
VAL_IMAGE = "val_image"
#: What that dimension was called in files written before it took the dataset's name.
_OLD_VAL_IMAGE = "image"

#: How to replace a bad result file, as written: the default target lists every
#: intermediate file (sacnn.plan.WorkflowPlan.intermediate_files), so Snakemake rebuilds a
#: deleted one and everything made from it (with another target it would not notice).
REBUILD = ("delete it and run `snakemake --cores all` again, with the --configfile/--config "
           "options of your run and no target (the default target rebuilds a deleted file "
           "and everything made from it)")
#: Why a merged predictions file may be unusable, and how to get a good one.
REWRITE_MERGED = f"it is written by the evaluate_model job: {REBUILD}"


def check_predictions(ds: xr.Dataset, path: str | Path, rerun: str,
                      variables: Sequence[str] = ("prediction", "response")) -> xr.Dataset:
    """``ds`` if it has ``variables``, with ``prediction`` and ``response`` on dims (neuron,
    val_image); an error naming ``path``, the field and what was expected otherwise
    (``rerun`` says how to get a good file)."""
    if VAL_IMAGE not in ds.dims and _OLD_VAL_IMAGE in ds.dims:
        raise EvaluationError(
            f"{path}: dimension {VAL_IMAGE!r} missing, expected predictions on dims "
            f"(neuron, {VAL_IMAGE}); the file has the old name {_OLD_VAL_IMAGE!r} (written by "
            f"an older sacnn); {rerun}")
    missing = [v for v in (*variables, VAL_IMAGE, "neuron") if v not in ds.variables]
    if missing:
        raise EvaluationError(f"{path}: field(s) {missing} missing, expected predictions "
                              f"(docs/architecture.md); {rerun}")
    for name in ("prediction", "response"):
        if name in ds and set(ds[name].dims) != {"neuron", VAL_IMAGE}:
            raise EvaluationError(f"{path}: field {name!r} has dims {ds[name].dims}, expected "
                                  f"(neuron, {VAL_IMAGE}); {rerun}")
    return ds


def read_predictions(path: str | Path, rerun: str = REWRITE_MERGED,
                     variables: Sequence[str] = ("prediction", "response")) -> xr.Dataset:
    """A predictions.nc (a chunk's or a model's), loaded into memory, closed and checked."""
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4/HDF5 raise OSError, RuntimeError, ValueError, ...
        raise EvaluationError(f"{path}: not a readable predictions file ({exc}); {rerun}"
                              ) from exc
    return check_predictions(ds, path, rerun, variables)


def _read_chunk(path: Path) -> xr.Dataset:
    """One chunk's predictions, checked; an unreadable file says which job to rerun."""
    return read_predictions(path, f"it is written by the train_chunk job of this chunk: {REBUILD}",
                            _CHUNK_VARIABLES)


def read_dataset_trials(path: Path) -> xr.Dataset:
    """The validation trials of a canonical dataset (plain xarray: no torch in this job)."""
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            if "val_responses" not in ds:
                raise EvaluationError(f"{path}: field 'val_responses' missing, expected a "
                                      "canonical dataset (docs/data-format.md)")
            return ds[["val_responses"]].load()
    except EvaluationError:
        raise
    except Exception as exc:
        raise EvaluationError(f"{path}: not a readable canonical dataset ({exc}); it is "
                              f"written by the ingest_site job: {REBUILD}") from exc


def gather(paths: Sequence[str | Path]) -> xr.Dataset:
    """Concatenate chunk predictions (in the given order) along ``neuron``.

    The chunks must be of the same site, model and fraction, cover distinct neurons and share
    the validation images. Attributes come from the first chunk, plus the list of chunks.
    """
    if not paths:
        raise EvaluationError("no chunk predictions given")
    parts = [_read_chunk(Path(p)) for p in paths]
    first = parts[0]
    for p, ds in zip(paths, parts, strict=True):
        for key in ("site", "model"):
            if ds.attrs.get(key) != first.attrs.get(key):
                raise EvaluationError(f"{p}: attribute {key!r} is {ds.attrs.get(key)!r}, "
                                      f"expected {first.attrs.get(key)!r} (from {paths[0]})")
        if not np.array_equal(ds[VAL_IMAGE].values, first[VAL_IMAGE].values):
            raise EvaluationError(f"{p}: validation images differ from those of {paths[0]}")
    out = xr.concat(parts, dim="neuron", data_vars="minimal", coords="minimal",
                    compat="override", join="override", combine_attrs="override")
    ids = [str(n) for n in out["neuron"].values]
    if len(set(ids)) != len(ids):
        dup = sorted({n for n in ids if ids.count(n) > 1})
        raise EvaluationError(f"neurons {dup[:5]} appear in more than one chunk")
    attrs = dict(first.attrs)
    attrs.pop("chunk", None)
    attrs.update({
        "chunks": json.dumps([str(p) for p in paths]),
        "chunk_code_versions": json.dumps(sorted({str(d.attrs.get("code_version")) for d in parts})),
        "gather_code_version": code_version(),
    })
    out.attrs = attrs
    return out


def _trials(dataset: xr.Dataset | None, neurons: np.ndarray, images: np.ndarray
            ) -> np.ndarray | None:
    """Validation trials (neuron, image, repeat) aligned with the predictions, if available."""
    if dataset is None or "val_responses" not in dataset:
        return None
    vr = dataset["val_responses"]
    try:
        vr = vr.sel(neuron=neurons, val_image=images)
    except (KeyError, IndexError, ValueError):
        as_str = {str(n): i for i, n in enumerate(vr["neuron"].values)}
        img_str = {str(n): i for i, n in enumerate(vr["val_image"].values)}
        try:
            vr = vr.isel(neuron=[as_str[str(n)] for n in neurons],
                         val_image=[img_str[str(i)] for i in images])
        except KeyError as exc:
            raise EvaluationError(f"prediction neuron or image {exc} is not in the dataset"
                                  ) from None
    return vr.transpose("neuron", "val_image", "repeat").values.astype(np.float64)


def measure_or_nan(fn, *arrays: np.ndarray) -> float:
    """One neuron's measure; undefined (NaN) instead of raising on unusable inputs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            return float(fn(*arrays))
    except ValueError:
        return float("nan")


def score(preds: xr.Dataset, dataset: xr.Dataset | None = None, *, site: str = "",
          model: str = "", label: str = "", fraction: str = "f100",
          top_fraction: float = 0.01) -> pd.DataFrame:
    """Per-neuron metrics of gathered predictions.

    ``corr``, ``pt_j``, ``pt_s`` and ``peak_overlap`` compare the prediction with the
    recorded response (mean over repeats) on the validation images, with :mod:`sacnn.metrics`. ``feve`` and
    ``cc_norm`` need the single trials from ``dataset`` (NaN without at least 2 repeats, or
    for ``cc_norm`` with missing repeats). A neuron whose prediction is not finite (a
    diverged fit) gets NaN for every measure and a warning in the log.
    """
    pred = preds["prediction"].transpose("neuron", VAL_IMAGE).values.astype(np.float64)
    real = preds["response"].transpose("neuron", VAL_IMAGE).values.astype(np.float64)
    neurons = preds["neuron"].values
    trials = _trials(dataset, neurons, preds[VAL_IMAGE].values)
    rows = []
    for i, neuron in enumerate(neurons):
        p, r = pred[i], real[i]
        usable = bool(np.isfinite(p).all() and np.isfinite(r).all())
        if not usable:
            log.warning("%s/%s neuron %s: non-finite prediction or response; metrics NaN",
                        site, model, neuron)
        nan = float("nan")
        row = {
            "site": site, "model": model, "label": label, "fraction": fraction,
            "neuron": neuron,
            "corr": measure_or_nan(M.pearson, p, r) if usable else nan,
            "pt_j": measure_or_nan(lambda a, b: M.peak_tuning_joint(a, b, top_fraction), p, r)
            if usable else nan,
            "pt_s": measure_or_nan(lambda a, b: M.peak_tuning_separate(a, b, top_fraction), p, r)
            if usable else nan,
            "peak_overlap": measure_or_nan(lambda a, b: M.peak_overlap(a, b, top_fraction), p, r)
            if usable else nan,
            "feve": nan, "cc_norm": nan,
            "best_epoch": int(preds["best_epoch"].values[i]) if "best_epoch" in preds else -1,
            "n_val_images": int(p.size),
            "pt_k": M.n_top(p.size, top_fraction),
        }
        if usable and trials is not None and trials.shape[-1] >= 2:
            row["feve"] = measure_or_nan(noise_ceiling.feve, p, trials[i])
            row["cc_norm"] = measure_or_nan(noise_ceiling.normalized_correlation, p, trials[i])
        row["init_seed"] = int(preds["init_seed"].values[i]) if "init_seed" in preds else -1
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*METRIC_COLUMNS, "init_seed"])
    n_bad = int(df["corr"].isna().sum())
    if n_bad:
        log.warning("%s/%s/%s: correlation undefined for %d of %d neurons (kept as NaN, "
                    "counted as n_undefined in tables)", site, model, fraction, n_bad, len(df))
    return df


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Read a metrics.csv, checking its columns."""
    df = pd.read_csv(path)
    missing = [c for c in METRIC_COLUMNS if c not in df.columns]
    if missing:
        raise EvaluationError(f"{path}: missing columns {missing}; it was written by an "
                              f"older sacnn: {REBUILD}")
    return df


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.evaluation") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("chunks", nargs="+", type=Path, help="chunk predictions.nc, in chunk order")
    p.add_argument("--dataset", type=Path, help="canonical dataset (trials for FEVE, cc_norm)")
    p.add_argument("--site", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--label", default="")
    p.add_argument("--fraction", default="f100")
    p.add_argument("--top-fraction", type=fraction_argument, default=0.01,
                   help="share of the validation images PT counts, in (0, 1]")
    p.add_argument("--out-predictions", required=True, type=Path)
    p.add_argument("--out-metrics", required=True, type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        preds = gather(args.chunks)
        dataset = read_dataset_trials(args.dataset) if args.dataset else None
    except EvaluationError as exc:
        raise SystemExit(f"sacnn.evaluation: error: {exc}") from None
    df = score(preds, dataset, site=args.site, model=args.model,
               label=args.label or str(preds.attrs.get("label", args.model)),
               fraction=args.fraction, top_fraction=args.top_fraction)
    write_netcdf(preds, args.out_predictions)
    write_csv(df, args.out_metrics)
    s = M.summarize(df["corr"].to_numpy())
    log.info("%s %s %s: %d neurons, corr %s", args.site, args.model, args.fraction, len(df),
             s.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
