"""``python -m sacnn.training``: train one chunk of neurons of one model at one site.

The workflow's training rule calls this. Settings come from the workflow config (sections
``training``, ``architectures`` and ``models``); the command line only names what to train
and where the files go.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sacnn.data import DataValidationError, open_dataset, training_arrays
from sacnn.experiment import chunk_bounds
from sacnn.fileio import write_netcdf
from sacnn.models import SpecError, get_architecture
from sacnn.settings import fraction_argument, json_object_argument
from sacnn.training.checkpoint import discard_checkpoint
from sacnn.training.config import ModelSpec, TrainConfig, TrainingConfigError
from sacnn.training.hardware import resolve_device
from sacnn.training.outputs import predictions_dataset
from sacnn.training.runners import tune_glibc_malloc
from sacnn.training.state import CheckpointError
from sacnn.training.trainer import train_chunk
from sacnn.training.weights import save_weights


def stage_from_config(config: dict[str, Any], model: str) -> ModelSpec:
    models = config.get("models") or {}
    if model not in models:
        raise TrainingConfigError(f"models: no model {model!r}; known: {sorted(models)}")
    return ModelSpec.from_dict(model, models[model])


def chunk_slice(chunk: int, chunk_size: int, n_neurons: int) -> slice:
    """Neuron positions of chunk ``chunk`` (0-based) when chunks hold at most ``chunk_size``
    neurons (the workflow's geometry: sacnn.experiment.chunk_bounds)."""
    if chunk_size < 1 or n_neurons < 1:
        raise TrainingConfigError(f"--chunk-size {chunk_size}: expected >= 1 for the "
                                  f"{n_neurons} neurons of the dataset")
    bounds = chunk_bounds(n_neurons, chunk_size)
    if not 0 <= chunk < len(bounds):
        raise TrainingConfigError(f"chunk {chunk} of size {chunk_size} is outside the "
                                  f"{n_neurons} neurons of the dataset ({len(bounds)} chunks)")
    return slice(*bounds[chunk])


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.training") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", type=json_object_argument, required=True,
                   help="the config sections 'training', 'architectures' and 'models' as one "
                        "JSON object (the workflow passes only those the model depends on, so "
                        "only changes to them rerun a job)")
    p.add_argument("--dataset", required=True, type=Path, help="canonical site dataset (.nc)")
    p.add_argument("--site", required=True)
    p.add_argument("--model", required=True, help="a key of the config's 'models'")
    p.add_argument("--fraction", type=fraction_argument, default=1.0,
                   help="share of the training images, in (0, 1]")
    p.add_argument("--chunk", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=0, help="neurons per chunk (0: all)")
    p.add_argument("--init-weights", type=Path, help="weights of the stage this one starts from")
    p.add_argument("--weights", required=True, type=Path, help="output: per-neuron weights")
    p.add_argument("--predictions", required=True, type=Path, help="output: predictions (.nc)")
    p.add_argument("--checkpoint", type=Path, help="resume file, rewritten every epoch")
    p.add_argument("--workers", type=int, help="worker processes (overrides the config)")
    p.add_argument("--gpus", type=int, default=0,
                   help="GPUs this job was given (the workflow passes its 'gpu' resource); "
                        "with device 'auto' the job then fails rather than train on the CPU")
    p.add_argument("--log", type=Path, help="log file (default: stderr)")
    args = p.parse_args(argv)

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log))
    logging.basicConfig(level=logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    tune_glibc_malloc()  # a training process: keep big activation blocks mapped
    try:
        return _train(args)
    except (TrainingConfigError, CheckpointError, SpecError, DataValidationError) as err:
        raise SystemExit(f"sacnn.training: error: {err}") from err


def _train(args: argparse.Namespace) -> int:
    config = args.settings
    training = dict(config.get("training") or {})
    if args.workers is not None:
        training["workers"] = args.workers
    cfg = TrainConfig.from_dict(training)
    resolve_device(cfg, args.gpus)  # a GPU job without a usable GPU fails before any work
    stage = stage_from_config(config, args.model)
    spec = get_architecture(stage.architecture, config.get("architectures"))
    ds = open_dataset(args.dataset)
    n = ds.sizes["neuron"]
    neurons = chunk_slice(args.chunk, args.chunk_size or n, n)
    data = training_arrays(ds, args.fraction, neurons=neurons)
    result = train_chunk(spec, stage, data, cfg, site=args.site, checkpoint=args.checkpoint,
                         init_weights=args.init_weights, gpus=args.gpus)
    save_weights(result, spec, stage, cfg, args.site, args.weights)
    preds = predictions_dataset(
        result, spec, stage, cfg, args.site, data.val_image_ids, data.val_responses,
        attrs={"fraction": args.fraction, "chunk": args.chunk,
               "chunk_size": args.chunk_size or n, "dataset": str(args.dataset),
               "slurm_job_id": _slurm_job_id()},
        response_units=ds["val_responses"].attrs.get("units"))
    write_netcdf(preds, args.predictions)
    if args.checkpoint is not None:
        discard_checkpoint(args.checkpoint)
    return 0


def _slurm_job_id() -> str:
    """The SLURM job id when running under SLURM (recorded so cluster runs can be traced)."""
    return os.environ.get("SLURM_JOB_ID", "")


if __name__ == "__main__":
    sys.exit(main())
