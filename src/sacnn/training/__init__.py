"""Training: one trainer API for every stage, execution strategies per device, checkpoints."""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): the workflow imports the light modules of this package
# (config) while it parses, and must not load torch to do so.
_EXPORTS = {
    "CheckpointError": "sacnn.training.state",
    "WEIGHTS_FORMAT": "sacnn.training.weights",
    "ChunkResult": "sacnn.training.trainer",
    "NeuronState": "sacnn.training.state",
    "STRATEGIES": "sacnn.training.config",
    "ModelSpec": "sacnn.training.config",
    "TrainConfig": "sacnn.training.config",
    "TrainingConfigError": "sacnn.training.config",
    "epoch_order": "sacnn.training.trainer",
    "initial_state": "sacnn.training.trainer",
    "load_networks": "sacnn.training.weights",
    "load_weights": "sacnn.training.weights",
    "neuron_seed": "sacnn.training.trainer",
    "predictions_dataset": "sacnn.training.outputs",
    "save_weights": "sacnn.training.weights",
    "train_chunk": "sacnn.training.trainer",
    "write_netcdf": "sacnn.fileio",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "STRATEGIES",
    "WEIGHTS_FORMAT",
    "CheckpointError",
    "ChunkResult",
    "ModelSpec",
    "NeuronState",
    "TrainConfig",
    "TrainingConfigError",
    "epoch_order",
    "initial_state",
    "load_networks",
    "load_weights",
    "neuron_seed",
    "predictions_dataset",
    "save_weights",
    "train_chunk",
    "write_netcdf",
]
