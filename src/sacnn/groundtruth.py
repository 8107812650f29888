"""Does a fitted model recover what the simulator put in? Per-neuron recovery of the truth.

A simulated site's ``truth_<site>.nc`` (written by :mod:`sacnn.simulate`) holds every neuron's
noiseless response to each validation image (``r_true``), the same neuron with its surround
term removed (``r_centre``), its response to the image with grey outside the analysis
aperture (``r_aperture``) and the MGSM surround gate. This module sets each trained model
against it, neuron by neuron::

    python -m sacnn.groundtruth site --site sim1 --truth resources/sim1/truth_sim1.nc \\
        --dataset results/sim1/dataset.nc --spec '<json>' --out results/sim1/groundtruth.csv
    python -m sacnn.groundtruth gather --out results/groundtruth.csv --meta results/groundtruth.json \\
        results/sim1/groundtruth.csv ...

Columns (:data:`GROUNDTRUTH_COLUMNS`; correlations are Pearson r over the validation images,
NaN where undefined, e.g. a constant input):

=======================  ===============================================================
``corr``                 prediction vs recorded response (mean over repeats): metrics.csv
``corr_truth``           prediction vs the noiseless ``r_true``: what the model recovered
``ceiling``              ``r_true`` vs recorded: the best ``corr`` any model can reach
``pt_j``, ``pt_s``       the model's peak tuning (fractions, as in metrics.csv)
``truth_pt_j/_s``        PT of ``r_true`` itself: what a perfect model scores at this noise
``pt_k``                 top images PT counts (1 % of the validation images)
``aperture_corr``        the model on the aperture images vs ``r_aperture``
``centre_corr``          FCL centre-hypercolumn contribution vs ``r_centre`` (FCL readouts)
``surround_corr``        FCL surround contribution vs the true surround effect
                         ``r_true - r_centre`` (FCL readouts; NaN on a surround-free site)
``attention_gate_corr``  share of the centre query's attention outside the centre
                         hypercolumn vs the surround gate (self-attention models)
``truth_top_overlap``    share of the top-k images under ``r_true`` also top-k under
                         ``r_centre``: how much the surround reorders the peak (1 = not)
``truth_suppression``    1 - sum(r_true) / sum(r_centre): mean surround suppression
``truth_aperture_corr``  ``r_aperture`` vs ``r_true``: how much of the true response the
                         aperture alone explains, the ceiling of a centre-only model
                         (rf-CNN) relative to a model of the whole image
=======================  ===============================================================

Before anything is compared the truth is tied to the dataset image by image (ids and the mean
grey level of every image), so a truth file that belongs to other images is an error, never a
low number.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sacnn import metrics as M
from sacnn.data.preprocess import apply_image_norm
from sacnn.evaluation import VAL_IMAGE, measure_or_nan, read_predictions, score
from sacnn.fileio import write_csv, write_json
from sacnn.provenance import code_version

GROUNDTRUTH_COLUMNS = [
    "site", "model", "label", "fraction", "neuron", "corr", "corr_truth", "ceiling",
    "pt_j", "pt_s", "truth_pt_j", "truth_pt_s", "pt_k", "aperture_corr", "centre_corr",
    "surround_corr", "attention_gate_corr", "truth_top_overlap", "truth_suppression",
    "truth_aperture_corr",
]

TRUTH_FIELDS = ("val_r_true", "val_r_centre", "val_r_aperture", "val_gate", "val_image_mean",
                "aperture")
"""What a truth file must hold (sacnn.simulate.site writes it)."""

#: grey levels of the simulator's images (uint8); the aperture images are grey (mid-level)
#: outside the aperture, as the simulator's r_aperture
RAW_GREY_MAX = 255.0
MID_GREY = 0.5


class GroundTruthError(ValueError):
    """A truth file that cannot be compared with the dataset; the message names file and field."""


# ----------------------------------------------------------------------------- reading


def read_truth(path: str | Path) -> xr.Dataset:
    """The validation part of a truth file, checked for the fields this module reads."""
    path = Path(path)
    rerun = (f"it is written by the simulate_site job: delete {path.parent}/ and run "
             "snakemake again to simulate the site anew")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            missing = [f for f in TRUTH_FIELDS if f not in ds.variables]
            if missing:
                raise GroundTruthError(f"{path}: field(s) {missing} missing, expected a "
                                       f"simulated site's ground truth; {rerun}")
            return ds[list(TRUTH_FIELDS)].load()
    except GroundTruthError:
        raise
    except Exception as exc:
        raise GroundTruthError(f"{path}: not a readable truth file ({exc}); {rerun}") from exc


def _ids(values: Any) -> list[str]:
    return [str(v) for v in np.asarray(values)]


def _select(truth: xr.Dataset, field: str, neurons: Sequence[str], images: Sequence[str],
            where: str) -> np.ndarray:
    """``truth[field]`` as (neuron, image) in the given id order."""
    da = truth[field]
    n_index = {n: i for i, n in enumerate(_ids(truth["neuron"].values))}
    i_index = {n: i for i, n in enumerate(_ids(truth["val_image"].values))}
    missing_n = [n for n in neurons if n not in n_index]
    missing_i = [i for i in images if i not in i_index]
    if missing_n or missing_i:
        what = (f"neuron(s) {missing_n[:5]}" if missing_n else f"validation image(s) "
                f"{missing_i[:5]}")
        raise GroundTruthError(f"{where}: {what} of the dataset are not in the truth file; "
                               "the truth belongs to another site or simulation")
    sel = {"val_image": [i_index[i] for i in images]}
    if "neuron" in da.dims:
        sel["neuron"] = [n_index[n] for n in neurons]
        da = da.isel(sel).transpose("neuron", "val_image")
    else:
        da = da.isel(sel)
    return da.values.astype(np.float64)


def model_space(dataset_attrs: Mapping[str, Any], raw_values: np.ndarray) -> np.ndarray:
    """Raw grey levels (0-255) -> the dataset's model input (its recorded ``image_norm``)."""
    pre = json.loads(dataset_attrs.get("preprocessing", "{}"))
    try:
        return apply_image_norm(np.asarray(raw_values, dtype=np.float64), pre)
    except (KeyError, ValueError) as exc:
        raise GroundTruthError(f"dataset attribute 'preprocessing': image_norm "
                               f"{pre.get('image_norm')!r} with its statistics expected "
                               f"({exc})") from None


def check_alignment(truth: xr.Dataset, val_images: np.ndarray, dataset_attrs: Mapping[str, Any],
                    images: Sequence[str], where: str, tolerance: float = 1e-3) -> None:
    """Fail unless the truth's rows are the dataset's images, in the same order.

    Compares each image's mean grey level recorded by the simulator with the mean of the
    dataset's (normalised) image mapped back through ``image_norm``: shuffled, dropped or
    foreign images differ by far more than float32 rounding.
    """
    recorded = _select(truth, "val_image_mean", [], images, where) * RAW_GREY_MAX
    expected = model_space(dataset_attrs, recorded)
    actual = val_images.reshape(len(images), -1).mean(axis=1, dtype=np.float64)
    scale = max(float(np.std(expected)), 1e-12)
    bad = np.flatnonzero(np.abs(actual - expected) > tolerance * max(scale, 1.0))
    if bad.size:
        i = int(bad[0])
        raise GroundTruthError(
            f"{where}: field 'val_image_mean' does not match the dataset's val_images at "
            f"{bad.size} of {len(images)} images (first: image {images[i]}, truth "
            f"{expected[i]:.4f}, dataset {actual[i]:.4f}): the truth and the dataset hold "
            "different or differently ordered images")


# ----------------------------------------------------------------------------- measures


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return measure_or_nan(M.pearson, a, b)


def top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the top-``k`` images of ``a`` that are also top-``k`` of ``b`` (stable ties)."""
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


def truth_columns(r_true: np.ndarray, r_centre: np.ndarray, r_aperture: np.ndarray,
                  recorded: np.ndarray, top_fraction: float = 0.01) -> dict[str, np.ndarray]:
    """Per-neuron properties of the truth itself, (neuron, image) inputs."""
    n, n_img = r_true.shape
    k = M.n_top(n_img, top_fraction)
    out = {name: np.full(n, np.nan) for name in
           ("ceiling", "truth_pt_j", "truth_pt_s", "truth_top_overlap", "truth_suppression",
            "truth_aperture_corr")}
    for i in range(n):
        out["truth_aperture_corr"][i] = _corr(r_aperture[i], r_true[i])
        out["ceiling"][i] = _corr(r_true[i], recorded[i])
        out["truth_pt_j"][i] = M.peak_tuning_joint(r_true[i], recorded[i], top_fraction)
        out["truth_pt_s"][i] = M.peak_tuning_separate(r_true[i], recorded[i], top_fraction)
        out["truth_top_overlap"][i] = top_overlap(r_true[i], r_centre[i], k)
        centre_sum = float(r_centre[i].sum())
        if centre_sum > 0:
            out["truth_suppression"][i] = 1.0 - float(r_true[i].sum()) / centre_sum
    return out


def probe_networks(weights: Sequence[str | Path], neurons: Sequence[str], images: np.ndarray,
                   aperture_images: np.ndarray) -> dict[str, np.ndarray]:
    """Run a model's per-neuron networks on the validation and aperture images.

    Returns, per neuron (in ``neurons`` order) and image: ``aperture`` (the prediction for
    the aperture image), ``centre`` and ``surround`` (FCL decomposition; NaN for a centre-only
    readout, which has no surround term) and ``surround_attention`` (1 - the centre query's
    attention on the centre hypercolumn; NaN without self-attention).
    """
    import torch

    from sacnn.analysis import centre_attention, fcl_decomposition
    from sacnn.models import CentreReadout
    from sacnn.training.weights import load_networks

    ids, nets = load_networks(weights, dtype=torch.float32)
    by_id = dict(zip(ids, nets, strict=True))
    missing = [n for n in neurons if n not in by_id]
    if missing:
        raise GroundTruthError(f"{weights[0]}: no weights for neuron(s) {missing[:5]} of the "
                               "predictions; rerun the model's training jobs")
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    xa = torch.as_tensor(np.asarray(aperture_images, dtype=np.float32))
    n_img = len(x)
    out = {k: np.full((len(neurons), n_img), np.nan)
           for k in ("aperture", "centre", "surround", "surround_attention")}
    with torch.no_grad():
        for i, nid in enumerate(neurons):
            net = by_id[nid]
            out["aperture"][i] = torch.cat([net(xa[s:s + 500].unsqueeze(1))
                                            for s in range(0, n_img, 500)]).double().numpy()
            if not isinstance(net.readout, CentreReadout):
                centre, surround, _ = fcl_decomposition(net, x)
                out["centre"][i], out["surround"][i] = centre, surround
            if net.spec.has_attention:
                att = centre_attention(net, x)
                c = att.shape[-1] // 2
                out["surround_attention"][i] = 1.0 - att[:, c, c]
    return out


@dataclass
class SiteTruth:
    """The truth of one site aligned with a set of neurons and validation images: read,
    checked and summarised once, whatever number of models is set against it."""

    images: np.ndarray            # (image, y, x) model inputs, in ``image_ids`` order
    aperture_images: np.ndarray   # the same with mid-grey outside the truth's aperture
    fields: dict[str, np.ndarray]  # r_true, r_centre, r_aperture, gate: (neuron, image)
    columns: dict[str, np.ndarray]  # truth_columns(), per neuron

    @classmethod
    def of(cls, truth: xr.Dataset, dataset: xr.Dataset, neurons: Sequence[str],
           images: Sequence[str], recorded: np.ndarray, top_fraction: float,
           where: str) -> SiteTruth:
        val = dataset["val_images"]
        index = {n: i for i, n in enumerate(_ids(val["val_image"].values))}
        missing = [i for i in images if i not in index]
        if missing:
            raise GroundTruthError(f"validation image(s) {missing[:5]} of the predictions are "
                                   "not in the dataset")
        arr = val.values[[index[i] for i in images]]
        check_alignment(truth, arr, dataset.attrs, images, where)
        fields = {k: _select(truth, f"val_{k}", neurons, images, where)
                  for k in ("r_true", "r_centre", "r_aperture", "gate")}
        grey = float(model_space(dataset.attrs, np.array(MID_GREY * RAW_GREY_MAX)))
        mask = truth["aperture"].values.astype(bool)
        return cls(arr, np.where(mask[None], arr, np.float32(grey)), fields,
                   truth_columns(fields["r_true"], fields["r_centre"], fields["r_aperture"],
                                 recorded, top_fraction))


def recovery(site: str, truth: xr.Dataset, dataset: xr.Dataset, models: Mapping[str, Any],
             top_fraction: float = 0.01, where: str = "truth") -> pd.DataFrame:
    """Per-(model, neuron) recovery of the truth (see the module docstring for columns).

    ``models`` maps a model key to ``{"label", "fraction", "predictions": path, "weights":
    [chunk weights.pt, ...]}`` (weights optional: without them the probe columns are NaN).
    ``corr``, ``pt_j``, ``pt_s`` and ``pt_k`` are those of metrics.csv
    (:func:`sacnn.evaluation.score` on the same predictions).
    """
    rows = []
    aligned: dict[tuple, SiteTruth] = {}
    for model, spec in models.items():
        preds = read_predictions(spec["predictions"])
        neurons, images = _ids(preds["neuron"].values), _ids(preds[VAL_IMAGE].values)
        recorded = preds["response"].transpose("neuron", VAL_IMAGE).values.astype(np.float64)
        key = (tuple(neurons), tuple(images))
        if key not in aligned:
            aligned[key] = SiteTruth.of(truth, dataset, neurons, images, recorded,
                                        top_fraction, where)
        t = aligned[key]
        label, fraction = spec.get("label", model), spec.get("fraction", "f100")
        scores = score(preds, site=site, model=model, label=label, fraction=fraction,
                       top_fraction=top_fraction)
        pred = preds["prediction"].transpose("neuron", VAL_IMAGE).values.astype(np.float64)
        probes = (probe_networks(spec["weights"], neurons, t.images, t.aperture_images)
                  if spec.get("weights") else None)
        r_true, r_centre = t.fields["r_true"], t.fields["r_centre"]
        for i, nid in enumerate(neurons):
            row = {
                "site": site, "model": model, "label": label, "fraction": fraction,
                "neuron": nid,
                **{c: scores[c].iloc[i] for c in ("corr", "pt_j", "pt_s", "pt_k")},
                "corr_truth": _corr(pred[i], r_true[i]) if np.isfinite(pred[i]).all()
                else np.nan,
                **{name: float(v[i]) for name, v in t.columns.items()},
                "aperture_corr": np.nan, "centre_corr": np.nan, "surround_corr": np.nan,
                "attention_gate_corr": np.nan,
            }
            if probes is not None:
                row["aperture_corr"] = _corr(probes["aperture"][i], t.fields["r_aperture"][i])
                row["centre_corr"] = _corr(probes["centre"][i], r_centre[i])
                row["surround_corr"] = _corr(probes["surround"][i], r_true[i] - r_centre[i])
                row["attention_gate_corr"] = _corr(probes["surround_attention"][i],
                                                   t.fields["gate"][i])
            rows.append(row)
    return pd.DataFrame(rows, columns=GROUNDTRUTH_COLUMNS)


# ----------------------------------------------------------------------------- outputs


def read_groundtruth(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"neuron": str})
    missing = [c for c in GROUNDTRUTH_COLUMNS if c not in df.columns]
    if missing:
        raise GroundTruthError(f"{path}: missing columns {missing}; written by an older sacnn: "
                               "delete it and run snakemake again")
    return df


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.groundtruth") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("site", help="one simulated site: every model against the truth")
    s.add_argument("--site", required=True)
    s.add_argument("--truth", required=True, type=Path)
    s.add_argument("--dataset", required=True, type=Path)
    s.add_argument("--spec", required=True, help="JSON {models: {key: {label, fraction, "
                   "predictions, weights: [...]}}, top_fraction}")
    s.add_argument("--out", required=True, type=Path)
    g = sub.add_parser("gather", help="concatenate per-site tables, with a provenance sidecar")
    g.add_argument("tables", nargs="+", type=Path)
    g.add_argument("--out", required=True, type=Path)
    g.add_argument("--meta", type=Path)
    g.add_argument("--provenance", default="{}", help="JSON recorded in the sidecar")
    args = p.parse_args(argv)
    try:
        if args.command == "site":
            from sacnn.data.ingest import open_dataset

            spec = json.loads(args.spec)
            truth = read_truth(args.truth)
            dataset = open_dataset(args.dataset)
            df = recovery(args.site, truth, dataset, spec["models"],
                          float(spec.get("top_fraction", 0.01)), where=str(args.truth))
            write_csv(df, args.out)
        else:
            df = pd.concat([read_groundtruth(t) for t in args.tables], ignore_index=True)
            write_csv(df, args.out)
            if args.meta:
                write_json({"code_version": code_version(),
                            "inputs": [str(t) for t in args.tables],
                            "columns": GROUNDTRUTH_COLUMNS,
                            "provenance": json.loads(args.provenance)}, args.meta)
    except (GroundTruthError, ValueError) as exc:
        raise SystemExit(f"sacnn.groundtruth: error: {exc}") from None
    summary = df.groupby(["site", "model"], sort=False)[["corr", "corr_truth", "ceiling"]].median()
    with pd.option_context("display.width", 200):
        print(summary.round(3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
