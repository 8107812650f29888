"""Training: one trainer API for every stage, execution strategies per device, checkpoints.

The parts: ``config`` (the settings), ``hardware`` (device, strategy, arithmetic, runner),
``initial`` (seeded initial states, inherited blocks), ``runners`` and ``stacked_step`` (the
epochs), ``selection`` (each neuron's best epoch), ``checkpoint`` (resume after a kill),
``trainer`` (the loop), ``weights`` and ``outputs`` (what a job writes).
"""

from sacnn._lazy import lazy_package

# Loaded on first use (sacnn._lazy): the workflow imports the light modules of this package
# (config) while it parses, and must not load torch to do so.
_EXPORTS = {
    "CheckpointError": "sacnn.training.state",
    "ChunkResult": "sacnn.training.chunk",
    "epoch_order": "sacnn.training.trainer",
    "initial_state": "sacnn.training.initial",
    "load_networks": "sacnn.training.weights",
    "load_weights": "sacnn.training.weights",
    "ModelSpec": "sacnn.training.config",
    "neuron_seed": "sacnn.training.initial",
    "NeuronState": "sacnn.training.state",
    "predictions_dataset": "sacnn.training.outputs",
    "save_weights": "sacnn.training.weights",
    "STRATEGIES": "sacnn.training.config",
    "train_chunk": "sacnn.training.trainer",
    "TrainConfig": "sacnn.training.config",
    "TrainingConfigError": "sacnn.training.config",
    "WEIGHTS_FORMAT": "sacnn.training.weights",
    "write_netcdf": "sacnn.fileio",
}

lazy_package(__name__)
