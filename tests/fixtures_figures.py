"""A tiny results tree for the figure tests: a simulated site, trained chunks of every kind of
model (1 epoch, 4 channels), merged predictions, hand-written metrics.csv files, and the
``inputs`` / ``params`` dicts the workflow passes to ``sacnn.plots.<fig>.make``. The session
fixture ``tree`` (tests/conftest.py) builds it once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sacnn.data import ingest, open_dataset, training_arrays
from sacnn.metrics import (
    n_top,
    peak_overlap,
    peak_tuning_joint,
    peak_tuning_separate,
    pearson,
)
from sacnn.models import spec_from_dict
from sacnn.simulate import write_site
from sacnn.training import (
    ModelSpec,
    TrainConfig,
    predictions_dataset,
    save_weights,
    train_chunk,
    write_netcdf,
)

SITES = ("S1", "S2")
SMALL = {"channels": 4, "attention_dim": 2}

#: slug -> (base architecture, label, stage settings)
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ff_cnn": ("ff-CNN", "ff-CNN", {}),
    "ff_sa_cnn": ("ff+sa-CNN", "ff+sa-CNN", {}),
    "rf_cnn": ("rf-CNN (c=30)", "rf-CNN", {}),
    "rf_sa_cnn": ("rf+sa-CNN", "rf+sa-CNN", {}),
    "rf_sa_cnn_star_incr": ("rf+sa-CNN*", "rf+sa-CNN*(Incr.)",
                            {"init_from": "rf_cnn", "load": ["alpha"], "freeze": ["alpha"]}),
    "ff_sa_cnn_star_simul": ("ff+sa-CNN*", "ff+sa-CNN*(Simul.)", {}),
    "ff_sa_cnn_star_incr_fc1": (
        "ff+sa-CNN* (FC1)", "ff+sa-CNN*(Incr.FC1)",
        {"init_from": "rf_sa_cnn_star_incr",
         "load": {"alpha": "alpha", "attention": "attention", "beta": "beta",
                  "readout.linear": "readout.centre"},
         "freeze": ["alpha", "attention", "beta", "readout.centre"]}),
    "ff_sa_cnn_star_incr_fc2": (
        "ff+sa-CNN*", "ff+sa-CNN*(Incr.FC2)",
        {"init_from": "rf_sa_cnn_star_incr", "load": ["alpha", "attention", "beta"],
         "freeze": ["alpha", "attention", "beta"]}),
}
CHUNKS = ([0, 1], [2, 3])  # neuron positions of each chunk of the first site


def _metrics_csv(ds: xr.Dataset, site: str, model: str, label: str, path: Path) -> None:
    pred, real = ds["prediction"].values, ds["response"].values
    corr = np.atleast_1d(pearson(pred, real))
    pd.DataFrame({
        "site": site, "model": model, "label": label, "fraction": "f100",
        "neuron": ds["neuron"].values, "corr": corr,
        "pt_j": np.atleast_1d(peak_tuning_joint(pred, real)),
        "pt_s": np.atleast_1d(peak_tuning_separate(pred, real)),
        "peak_overlap": np.atleast_1d(peak_overlap(pred, real)),
        "feve": np.nan, "cc_norm": np.nan, "best_epoch": ds["best_epoch"].values,
        "n_val_images": pred.shape[1], "pt_k": n_top(pred.shape[1]),
    }).to_csv(path, index=False)


def build(root: Path) -> dict[str, Any]:
    """Write the tree under ``root``; returns {"inputs", "params", "root"}."""
    cfg = TrainConfig(epochs=1, batch_size=12, strategy="per_model", workers=1,
                      eval_batch_size=50)
    specs = {m: spec_from_dict(base, {"base": base, **SMALL}) for m, (base, _, _) in MODELS.items()}
    inputs: dict[str, Any] = {"datasets": {}, "predictions": {}, "metrics": {}, "weights": {}}
    for k, site in enumerate(SITES):
        write_site(root / "raw" / site, {"site": site, "seed": k, "n_neurons": 4, "n_train": 60,
                                         "n_val": 20, "repeats": 3}, verbose=False)
        dpath = ingest(root / "raw" / site, site, out=root / site / "dataset.nc")
        inputs["datasets"][site] = str(dpath)
        ds = open_dataset(dpath)
        for slug in ("predictions", "metrics", "weights"):
            inputs[slug][site] = {}
        for model, (_, label, stage_cfg) in MODELS.items():
            stage = ModelSpec.from_dict(model, {"architecture": specs[model].name, "label": label,
                                                **stage_cfg})
            mdir = root / site / "models" / model / "f100"
            chunk_preds, weights = [], []
            for c, rows in enumerate(CHUNKS if k == 0 else ([0, 1, 2, 3],)):
                arrays = training_arrays(ds, 1.0, neurons=slice(rows[0], rows[-1] + 1))
                init = (mdir.parent.parent / stage.init_from / "f100" / f"chunk{c}" /
                        "weights.pt") if stage.init_from else None
                res = train_chunk(specs[model], stage, arrays, cfg, site=site, init_weights=init)
                wpath = mdir / f"chunk{c}" / "weights.pt"
                save_weights(res, specs[model], stage, cfg, site, wpath)
                weights.append(str(wpath))
                pred = predictions_dataset(res, specs[model], stage, cfg, site,
                                           arrays.val_image_ids, arrays.val_responses)
                write_netcdf(pred, mdir / f"chunk{c}" / "predictions.nc")
                chunk_preds.append(pred)
            merged = xr.concat([p[["prediction", "response", "best_epoch", "selection_corr"]]
                                for p in chunk_preds], dim="neuron")
            write_netcdf(merged, mdir / "predictions.nc")
            _metrics_csv(merged, site, model, label, mdir / "metrics.csv")
            inputs["predictions"][site][model] = str(mdir / "predictions.nc")
            inputs["metrics"][site][model] = str(mdir / "metrics.csv")
            inputs["weights"][site][model] = weights
    params = {
        "site": SITES[0], "sites": list(SITES), "models": list(MODELS),
        "labels": {m: label for m, (_, label, _) in MODELS.items()},
        "architectures": {m: specs[m].to_dict() for m in MODELS},
        "fraction": "f100",
        "example_neuron": {"rule": "highest_mean_corr"},
        "stages": {m: stage for m, (_, _, stage) in MODELS.items()},
    }
    return {"inputs": inputs, "params": params, "root": root}


def restrict(tree: dict[str, Any], sites: list[str], models: list[str], **extra: Any
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``inputs`` / ``params`` the workflow would pass for these sites and models."""
    inputs = {kind: {s: ({m: v[m] for m in models} if kind != "datasets" else v)
                     for s, v in per_site.items() if s in sites}
              for kind, per_site in tree["inputs"].items()}
    p = tree["params"]
    params = dict(p, site=sites[0], sites=list(sites), models=list(models),
                  labels={m: p["labels"][m] for m in models},
                  architectures={m: p["architectures"][m] for m in models},
                  stages={m: p["stages"][m] for m in models}, **extra)
    return inputs, params
