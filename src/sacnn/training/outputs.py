"""What a trained chunk leaves behind: per-neuron weights and labelled predictions.

Weights: a torch file of plain tensors and strings (read with ``weights_only=True``).
Predictions: an xarray dataset (dims neuron, image, epoch) written as NetCDF, recording the
seeds, the config, the architecture and the code version.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from sacnn.models import ArchitectureSpec
from sacnn.provenance import code_version
from sacnn.training.config import StageSpec, TrainConfig
from sacnn.training.state import atomic_torch_save, stack_states
from sacnn.training.trainer import WEIGHTS_FORMAT, ChunkResult


def save_weights(result: ChunkResult, spec: ArchitectureSpec, stage: StageSpec,
                 cfg: TrainConfig, site: str, path: str | Path) -> None:
    """Each neuron's best-epoch parameters and buffers, stacked along the first axis."""
    atomic_torch_save({
        "format": WEIGHTS_FORMAT,
        "site": site,
        "model": stage.model,
        "architecture": json.dumps(spec.to_dict()),
        "stage": json.dumps(stage.__dict__, default=list),
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "code_version": code_version(),
        "neuron_ids": [str(n) for n in result.neuron_ids],
        "best_epoch": torch.from_numpy(result.best_epoch),
        "init_seeds": torch.from_numpy(result.init_seeds),
        "state": stack_states(result.best_states),
    }, path)


def predictions_dataset(result: ChunkResult, spec: ArchitectureSpec, stage: StageSpec,
                        cfg: TrainConfig, site: str, val_image_ids: Sequence,
                        val_responses: np.ndarray, attrs: dict[str, Any] | None = None
                        ) -> xr.Dataset:
    """Labelled predictions on the validation images at each neuron's best epoch."""
    epochs = np.arange(1, cfg.epochs + 1)
    ds = xr.Dataset(
        {
            "prediction": (("neuron", "image"), result.val_predictions.astype(np.float64),
                           {"long_name": "predicted response at the selected epoch"}),
            "response": (("neuron", "image"), np.asarray(val_responses, dtype=np.float64),
                         {"long_name": "recorded response, mean over repeats"}),
            "best_epoch": ("neuron", result.best_epoch + 1,
                           {"long_name": "selected epoch (1-based)"}),
            "selection_corr": ("neuron", result.best_score,
                               {"long_name": f"Pearson r on the {cfg.selection} images at "
                                             "the selected epoch (NaN: undefined)"}),
            "init_seed": ("neuron", result.init_seeds,
                          {"long_name": "seed of the initial weights, "
                                        "derive_seed(seed, site, model, neuron, 'init')"}),
            "train_loss": (("neuron", "epoch"), result.history["train_loss"]),
            "selection_corr_history": (("neuron", "epoch"), result.history["selection_corr"]),
            "val_corr_history": (("neuron", "epoch"), result.history["val_corr"]),
        },
        coords={"neuron": np.asarray(result.neuron_ids), "image": np.asarray(val_image_ids),
                "epoch": epochs},
        attrs={
            "site": site,
            "model": stage.model,
            "label": stage.label or stage.model,
            "architecture": json.dumps(spec.to_dict()),
            "stage": json.dumps(stage.__dict__, default=list),
            "training_config": json.dumps(cfg.to_dict(), sort_keys=True),
            "strategy": result.strategy,
            "precision": result.meta.get("precision", ""),
            "device": result.device,
            "code_version": code_version(),
            "fingerprint": result.meta.get("fingerprint", ""),
            **(attrs or {}),
        },
    )
    return ds


def write_netcdf(ds: xr.Dataset, path: str | Path) -> None:
    """Write NetCDF atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
