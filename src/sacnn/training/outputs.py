"""What a trained chunk leaves behind besides its weights (``sacnn.training.weights``):
labelled predictions.

Predictions: an xarray dataset (dims neuron, val_image, epoch) written as NetCDF with
:func:`sacnn.fileio.write_netcdf`, recording the seeds, the config, the architecture and the
code version. The validation-image dimension is ``val_image``, as in ``dataset.nc``, so the
two files merge without renaming (docs/data-format.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from sacnn.fileio import CONVENTIONS
from sacnn.models import ArchitectureSpec
from sacnn.provenance import code_version
from sacnn.training.chunk import ChunkResult
from sacnn.training.config import ModelSpec, TrainConfig


def predictions_dataset(result: ChunkResult, spec: ArchitectureSpec, stage: ModelSpec,
                        cfg: TrainConfig, site: str, val_image_ids: Sequence,
                        val_responses: np.ndarray, attrs: dict[str, Any] | None = None,
                        response_units: str | None = None) -> xr.Dataset:
    """Labelled predictions on the validation images at each neuron's best epoch.

    ``response_units``: the units of the responses trained on (the ``units`` of the
    dataset's ``val_responses``); predictions are in the same units. Without them the two
    variables say in a ``comment`` that the units are unknown.
    """
    epochs = np.arange(1, cfg.epochs + 1)
    units = ({"units": response_units} if response_units
             else {"comment": "units unknown: the dataset's val_responses records none"})
    r = {"units": "1"}  # correlations are dimensionless (CF)
    ds = xr.Dataset(
        {
            "prediction": (("neuron", "val_image"), result.val_predictions.astype(np.float64),
                           {"long_name": "predicted response at the selected epoch", **units}),
            "response": (("neuron", "val_image"), np.asarray(val_responses, dtype=np.float64),
                         {"long_name": "recorded response, mean over repeats", **units}),
            "best_epoch": ("neuron", result.best_epoch + 1,
                           {"long_name": "selected epoch (1-based)"}),
            "selection_corr": ("neuron", result.best_score,
                               {"long_name": f"Pearson r on the {cfg.selection} images at "
                                             "the selected epoch (NaN: undefined)", **r}),
            "init_seed": ("neuron", result.init_seeds,
                          {"long_name": "seed of the initial weights, "
                                        "derive_seed(seed, site, model, neuron, 'init')"}),
            "train_loss": (("neuron", "epoch"), result.history["train_loss"],
                           {"long_name": "training loss (mean squared error), mean over the epoch"}),
            "selection_corr_history": (("neuron", "epoch"), result.history["selection_corr"],
                                       {"long_name": f"Pearson r on the {cfg.selection} "
                                                     "images", **r}),
            "val_corr_history": (("neuron", "epoch"), result.history["val_corr"],
                                 {"long_name": "Pearson r on the validation images", **r}),
        },
        coords={"neuron": np.asarray(result.neuron_ids),
                "val_image": np.asarray(val_image_ids), "epoch": epochs},
        attrs={
            "Conventions": CONVENTIONS,
            "site": site,
            "model": stage.model,
            "label": stage.label or stage.model,
            "architecture": json.dumps(spec.to_dict()),
            "stage": json.dumps(stage.__dict__, default=list),
            "training_config": json.dumps(cfg.to_dict(), sort_keys=True),
            "strategy": result.strategy,
            "precision": result.precision,
            "device": result.device,
            "code_version": code_version(),
            "fingerprint": result.fingerprint,
            **(attrs or {}),
        },
    )
    return ds
