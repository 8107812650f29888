"""Training: one trainer API for every stage, execution strategies per device, checkpoints."""

from sacnn.training.config import (
    STRATEGIES,
    StageSpec,
    TrainConfig,
    TrainingConfigError,
)
from sacnn.training.outputs import predictions_dataset, save_weights, write_netcdf
from sacnn.training.state import CheckpointError, NeuronState
from sacnn.training.trainer import (
    ChunkResult,
    epoch_order,
    initial_state,
    load_weights,
    neuron_seed,
    train_chunk,
)

__all__ = [
    "STRATEGIES",
    "CheckpointError",
    "ChunkResult",
    "NeuronState",
    "StageSpec",
    "TrainConfig",
    "TrainingConfigError",
    "epoch_order",
    "initial_state",
    "load_weights",
    "neuron_seed",
    "predictions_dataset",
    "save_weights",
    "train_chunk",
    "write_netcdf",
]
