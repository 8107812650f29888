"""Does a fitted model recover what the simulator put in? Per-neuron recovery of the truth.

A simulated site's ``truth_<site>.nc`` (written by :mod:`sacnn.simulate`) holds every neuron's
noiseless response to each validation image (``r_true``), the same neuron with its surround
term removed (``r_centre``), its response to the image with grey outside the analysis
aperture (``r_aperture``), the MGSM surround gate, and for each of the three responses the
recorded response it is expected to give (``expected_true``, ``expected_centre``,
``expected_aperture``: the mean over the trial noise, in dF/F,
:func:`sacnn.simulate.noise.expected_trials`). This module sets each trained model against it,
neuron by neuron::

    python -m sacnn.groundtruth site --site sim1 --truth resources/sim1/truth_sim1.nc \\
        --dataset results/sim1/dataset.nc --spec '<json>' --out results/sim1/groundtruth.csv
    python -m sacnn.groundtruth gather --out results/groundtruth.csv --meta results/groundtruth.json \\
        results/sim1/groundtruth.csv ...

Units. The models are fitted to the recording, so every truth score compares in the
recording's units: with the EXPECTED recorded responses (dF/F), never with the rates
``r_*`` (units of the peak rate, before the spikes' noise and the GCaMP saturation), against
which a perfect model would not score perfectly (its PT would compare a rate with a dF/F
threshold). Only ``truth_suppression`` reads the rates, because it is a property of the
neuron's drive (how much the surround divides it), not of the recording.

Columns (:data:`GROUNDTRUTH_COLUMNS`; correlations are Pearson r over the validation images,
NaN where undefined, e.g. a constant input; "expected" = the expected recorded response):

============================  ===============================================================
``corr``                      prediction vs recorded response (mean over repeats): metrics.csv
``corr_truth``                prediction vs ``expected_true``: what the model recovered
``ceiling``                   ``expected_true`` vs recorded: the best ``corr`` a model can reach
``pt_j``, ``pt_s``            the model's peak tuning (fractions, as in metrics.csv)
``peak_overlap``              the model's scale-free peak measure (as in metrics.csv)
``truth_pt_j/_s``             PT of ``expected_true`` against the recording: what a perfect
                              model scores at this noise
``truth_peak_overlap``        the same for ``peak_overlap``
``pt_k``                      top images PT and the overlaps count (1 % of the images)
``aperture_corr``             the model on the aperture images vs ``expected_aperture``
``surround_mod_corr``         the model's surround modulation, its prediction on the full
                              image minus that on the aperture image, vs the truth's,
                              ``expected_true - expected_aperture`` (1 for the truth itself)
``attention_gate_corr``       the surround attention's contribution to the centre hypercolumn
                              (:func:`sacnn.analysis.surround_attention`) vs the MGSM gate
                              (self-attention models; NaN when the contribution is constant,
                              e.g. a residual gain of 0)
``attention_surround_share``  mean over images of that contribution / the norm of the SA
                              output at the centre (0: the attention changes nothing there)
``truth_top_overlap``         share of the top-k images of ``expected_true`` that are top-k of
                              ``expected_centre``: how much the surround reorders the peak
``truth_suppression``         1 - sum(r_true) / sum(r_centre): mean surround suppression of
                              the neuron's rate (rates, see Units)
``truth_aperture_corr``       ``expected_aperture`` vs ``expected_true``: how much of the
                              response the aperture alone explains, the ceiling of a
                              centre-only model (rf-CNN) relative to a model of the whole image
============================  ===============================================================

The probe columns (aperture, surround modulation, attention) need the model's weights; they
are computed from arrays by :func:`aperture_columns` and :func:`attention_columns`, which
:func:`recovery` feeds with the networks' outputs.

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
from sacnn.evaluation import VAL_IMAGE, read_predictions, score
from sacnn.fileio import write_csv, write_json
from sacnn.provenance import code_version
from sacnn.settings import json_object_argument

GROUNDTRUTH_COLUMNS = [
    "site", "model", "label", "fraction", "neuron", "corr", "corr_truth", "ceiling",
    "pt_j", "pt_s", "peak_overlap", "truth_pt_j", "truth_pt_s", "truth_peak_overlap", "pt_k",
    "aperture_corr", "surround_mod_corr", "attention_gate_corr", "attention_surround_share",
    "truth_top_overlap", "truth_suppression", "truth_aperture_corr",
]

TRUTHS = ("r_true", "r_centre", "r_aperture", "gate", "expected_true", "expected_centre",
          "expected_aperture")
"""The truth's per-(neuron, image) fields, read as ``val_<name>``."""

TRUTH_FIELDS = (*(f"val_{t}" for t in TRUTHS), "val_image_mean", "aperture")
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


def _rows(fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A :mod:`sacnn.metrics` measure of each row (neuron) of two (neuron, image) arrays,
    NaN where a row holds a non-finite value (a diverged fit, or a probe that does not apply:
    no warning, the column says so)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.full(a.shape[0], np.nan)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if ok.any():
        out[ok] = np.atleast_1d(fn(a[ok], b[ok]))
    return out


def corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row (:func:`_rows`); a constant row is NaN too, and one
    ``UndefinedCorrelationWarning`` says how many."""
    return _rows(M.pearson, a, b)


def truth_columns(fields: Mapping[str, np.ndarray], recorded: np.ndarray,
                  top_fraction: float = 0.01) -> dict[str, np.ndarray]:
    """Per-neuron properties of the truth itself from :data:`TRUTHS` arrays and the recorded
    responses, all (neuron, image); in the recording's units but ``truth_suppression``."""
    true = fields["expected_true"]
    with np.errstate(divide="ignore", invalid="ignore"):
        centre_sum = fields["r_centre"].sum(axis=1, dtype=np.float64)
        suppression = np.where(centre_sum > 0, 1.0 - fields["r_true"].sum(
            axis=1, dtype=np.float64) / centre_sum, np.nan)
    return {
        "ceiling": corr_rows(true, recorded),
        "truth_pt_j": _rows(lambda a, b: M.peak_tuning_joint(a, b, top_fraction), true,
                            recorded),
        "truth_pt_s": _rows(lambda a, b: M.peak_tuning_separate(a, b, top_fraction), true,
                            recorded),
        "truth_peak_overlap": _rows(lambda a, b: M.peak_overlap(a, b, top_fraction), true,
                                    recorded),
        "truth_top_overlap": _rows(lambda a, b: M.peak_overlap(a, b, top_fraction),
                                   fields["expected_centre"], true),
        "truth_suppression": suppression,
        "truth_aperture_corr": corr_rows(fields["expected_aperture"], true),
    }


def aperture_columns(full: np.ndarray, aperture: np.ndarray, expected_true: np.ndarray,
                     expected_aperture: np.ndarray) -> dict[str, np.ndarray]:
    """``aperture_corr`` and ``surround_mod_corr`` of a model from its responses to the full
    and to the aperture images, each (neuron, image), against the expected recorded truths.

    The surround modulation, response to the full image minus response to the image with
    grey outside the aperture, is what the surround adds or takes away, whatever the
    mechanism: it needs no split of the network into centre and surround parts (an additive
    split of a divisive truth is not unique, and the centre hypercolumn of a 5 x 5 final map
    already sees the surround). The truth itself, used as a model, scores 1 on both.
    """
    return {"aperture_corr": corr_rows(aperture, expected_aperture),
            "surround_mod_corr": corr_rows(full - aperture, expected_true - expected_aperture)}


def attention_columns(effect: np.ndarray, output_norm: np.ndarray, gate: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """``attention_gate_corr`` and ``attention_surround_share`` from a model's surround
    attention contribution and SA output norm at the centre
    (:func:`sacnn.analysis.surround_attention`) and the truth's gate, each (neuron, image).
    Rows of NaN (a model without self-attention) give NaN; a constant contribution (a
    residual gain of 0) gives share 0 and an undefined correlation (NaN, with a warning)."""
    effect, output_norm = np.asarray(effect, np.float64), np.asarray(output_norm, np.float64)
    share = np.full(effect.shape[0], np.nan)
    ok = np.isfinite(effect).all(axis=1) & (output_norm > 0).all(axis=1)
    share[ok] = (effect[ok] / output_norm[ok]).mean(axis=1)
    return {"attention_gate_corr": corr_rows(effect, gate),
            "attention_surround_share": share}


def probe_networks(weights: Sequence[str | Path], neurons: Sequence[str], images: np.ndarray,
                   aperture_images: np.ndarray) -> dict[str, np.ndarray]:
    """Run a model's per-neuron networks on the validation and aperture images.

    Returns, per neuron (in ``neurons`` order) and image: ``full`` and ``aperture`` (the
    predictions for the image and for its aperture version), ``effect`` and ``output_norm``
    (:func:`sacnn.analysis.attention_surround_effect` of the first self-attention layer; NaN
    without self-attention).
    """
    import torch

    from sacnn.analysis import attention_surround_effect, one_thread
    from sacnn.training.weights import load_networks

    ids, nets = load_networks(weights, dtype=torch.float32)
    by_id = dict(zip(ids, nets, strict=True))
    missing = [n for n in neurons if n not in by_id]
    if missing:
        raise GroundTruthError(f"{weights[0]}: no weights for neuron(s) {missing[:5]} of the "
                               "predictions; rerun the model's training jobs")
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    xa = torch.as_tensor(np.asarray(aperture_images, dtype=np.float32))
    out = {k: np.full((len(neurons), len(x)), np.nan)
           for k in ("full", "aperture", "effect", "output_norm")}
    with torch.no_grad(), one_thread():  # numbers independent of the machine's cores
        for i, nid in enumerate(neurons):
            net = by_id[nid].eval()
            for key, imgs in (("full", x), ("aperture", xa)):
                out[key][i] = torch.cat([net(imgs[s:s + 500].unsqueeze(1))
                                         for s in range(0, len(imgs), 500)]).double().numpy()
            if net.spec.has_attention:
                out["effect"][i], out["output_norm"][i] = attention_surround_effect(net, x)
    return out


@dataclass
class SiteTruth:
    """The truth of one site aligned with a set of neurons and validation images: read,
    checked and summarised once, whatever number of models is set against it."""

    images: np.ndarray            # (image, y, x) model inputs, in ``image_ids`` order
    aperture_images: np.ndarray   # the same with mid-grey outside the truth's aperture
    fields: dict[str, np.ndarray]  # TRUTHS (r_true, ..., expected_aperture): (neuron, image)
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
        fields = {k: _select(truth, f"val_{k}", neurons, images, where) for k in TRUTHS}
        grey = float(model_space(dataset.attrs, np.array(MID_GREY * RAW_GREY_MAX)))
        mask = truth["aperture"].values.astype(bool)
        return cls(arr, np.where(mask[None], arr, np.float32(grey)), fields,
                   truth_columns(fields, recorded, top_fraction))


def recovery(site: str, truth: xr.Dataset, dataset: xr.Dataset, models: Mapping[str, Any],
             top_fraction: float = 0.01, where: str = "truth") -> pd.DataFrame:
    """Per-(model, neuron) recovery of the truth (see the module docstring for columns).

    ``models`` maps a model key to ``{"label", "fraction", "predictions": path, "weights":
    [chunk weights.pt, ...]}`` (weights optional: without them the probe columns are NaN).
    ``corr``, ``pt_j``, ``pt_s``, ``peak_overlap`` and ``pt_k`` are those of metrics.csv
    (:func:`sacnn.evaluation.score` on the same predictions).
    """
    frames = []
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
        nan = np.full(pred.shape, np.nan)
        probes = (probe_networks(spec["weights"], neurons, t.images, t.aperture_images)
                  if spec.get("weights") else {k: nan for k in
                                               ("full", "aperture", "effect", "output_norm")})
        columns = {
            **{c: scores[c].to_numpy() for c in ("corr", "pt_j", "pt_s", "peak_overlap",
                                                  "pt_k")},
            "corr_truth": corr_rows(pred, t.fields["expected_true"]),
            **t.columns,
            **aperture_columns(probes["full"], probes["aperture"], t.fields["expected_true"],
                               t.fields["expected_aperture"]),
            **attention_columns(probes["effect"], probes["output_norm"], t.fields["gate"]),
        }
        frames.append(pd.DataFrame({"site": site, "model": model, "label": label,
                                    "fraction": fraction, "neuron": neurons, **columns}))
    return pd.concat(frames, ignore_index=True)[GROUNDTRUTH_COLUMNS]


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
    s.add_argument("--spec", required=True, type=json_object_argument, help="JSON {models: {key: {label, fraction, "
                   "predictions, weights: [...]}}, top_fraction}")
    s.add_argument("--out", required=True, type=Path)
    g = sub.add_parser("gather", help="concatenate per-site tables, with a provenance sidecar")
    g.add_argument("tables", nargs="+", type=Path)
    g.add_argument("--out", required=True, type=Path)
    g.add_argument("--meta", type=Path)
    g.add_argument("--provenance", default={}, type=json_object_argument, help="JSON recorded in the sidecar")
    args = p.parse_args(argv)
    try:
        if args.command == "site":
            from sacnn.data.ingest import open_dataset

            spec = args.spec
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
                            "provenance": args.provenance}, args.meta)
    except (GroundTruthError, ValueError) as exc:
        raise SystemExit(f"sacnn.groundtruth: error: {exc}") from None
    summary = df.groupby(["site", "model"], sort=False)[
        ["corr", "corr_truth", "ceiling", "peak_overlap", "surround_mod_corr"]].median()
    with pd.option_context("display.width", 200):
        print(summary.round(3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
