"""Where and how a chunk's epochs run: the device, the strategy, the arithmetic, the runner.

Chosen once per job from the settings and the machine (:class:`Hardware`), before any
work: a job that was given a GPU its torch cannot use fails here rather than train on the
CPU; the combinations that fail whatever the device are refused earlier, by
``TrainConfig`` itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from sacnn.models import ArchitectureSpec
from sacnn.training.chunk import ChunkArrays
from sacnn.training.config import ModelSpec, TrainConfig, TrainingConfigError
from sacnn.training.runners import (
    InProcessRunner,
    ModelSetup,
    PoolRunner,
    StackedRunner,
    available_cores,
)
from sacnn.training.stacked_step import StackedOptions


def gpu_was_given() -> str:
    """Why this process should have a GPU ('' if nothing says so): a scheduler's or the
    user's CUDA_VISIBLE_DEVICES, SLURM's GPU variables, or ``--gpus`` from the workflow."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if cvd and cvd not in ("-1", "NoDevFiles", "none"):
        return f"CUDA_VISIBLE_DEVICES={cvd}"
    for var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):  # lists of GPU ids
        value = os.environ.get(var, "").strip()
        if value:
            return f"{var}={value}"
    count = os.environ.get("SLURM_GPUS_ON_NODE", "").strip()  # a count
    if count.isdigit() and int(count) > 0:
        return f"SLURM_GPUS_ON_NODE={count}"
    return ""


def resolve_device(cfg: TrainConfig, gpus: int = 0) -> torch.device:
    """The device to train on; ``auto`` takes CUDA when torch can use it.

    ``auto`` never falls back to the CPU silently in a job that was given a GPU (``gpus``
    from the workflow's resources, or the scheduler's environment): a CPU-only torch build
    or a broken driver would otherwise turn a GPU job into a CPU job a hundred times slower.
    """
    if cfg.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        reason = f"the workflow asked for {gpus} GPU(s)" if gpus > 0 else gpu_was_given()
        if reason:
            build = ("a CPU-only build" if torch.version.cuda is None
                     else f"built for CUDA {torch.version.cuda}, but no usable GPU was found")
            raise TrainingConfigError(
                f"training.device: 'auto' and this job was given a GPU ({reason}), but torch "
                f"{torch.__version__} cannot use it ({build}). Install a CUDA build of torch "
                "in the environment that runs the jobs (README: 'Running on a SLURM cluster'), "
                "or set training.device: cpu to train on the CPU on purpose.")
        return torch.device("cpu")
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingConfigError("training.device: 'cuda' requested but CUDA is not available")
    return dev


def resolve_strategy(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.strategy != "auto":
        if device.type == "cuda" and cfg.strategy != "stacked":
            raise TrainingConfigError(f"training.strategy: {cfg.strategy!r} runs on the CPU "
                                      "only; use 'stacked' (or 'auto') on a GPU")
        return cfg.strategy
    return "stacked" if device.type == "cuda" else "per_model"


#: What ``precision: auto`` means on a GPU (measured in docs/performance.md).
GPU_PRECISION = "bf16"


def resolve_precision(cfg: TrainConfig, device: torch.device, strategy: str) -> str:
    """``auto``: :data:`GPU_PRECISION` on CUDA, exact arithmetic in ``dtype`` elsewhere."""
    if cfg.precision == "auto":
        return GPU_PRECISION if device.type == "cuda" and cfg.dtype == "float32" else "exact"
    if cfg.precision != "exact" and strategy != "stacked":
        raise TrainingConfigError(f"training.precision: {cfg.precision!r} needs the stacked "
                                  "strategy (a GPU); use 'exact' or 'auto'")
    if cfg.precision == "tf32" and device.type != "cuda":
        raise TrainingConfigError("training.precision: 'tf32' exists on CUDA devices only")
    if cfg.precision != "exact" and cfg.dtype != "float32":
        raise TrainingConfigError(f"training.precision: {cfg.precision!r} needs dtype float32")
    return cfg.precision


def check_cuda_graph(cfg: TrainConfig, device: torch.device, strategy: str) -> None:
    """``cuda_graph`` replays a captured CUDA graph: it needs the stacked strategy on CUDA."""
    if cfg.cuda_graph and (device.type != "cuda" or strategy != "stacked"):
        raise TrainingConfigError(
            f"training.cuda_graph: true needs the stacked strategy on a CUDA device, but this "
            f"chunk runs {strategy} on {device.type}; set training.cuda_graph: false")


@dataclass(frozen=True)
class Hardware:
    """Where and how a chunk's epochs run."""

    device: torch.device
    strategy: str
    precision: str

    @classmethod
    def choose(cls, cfg: TrainConfig, gpus: int) -> Hardware:
        device = resolve_device(cfg, gpus)
        strategy = resolve_strategy(cfg, device)
        check_cuda_graph(cfg, device, strategy)
        return cls(device, strategy, resolve_precision(cfg, device, strategy))


def make_runner(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, arrays: ChunkArrays,
                 hw: Hardware, n_neurons: int) -> tuple[Any, str]:
    """The runner of the chunk's epochs on ``hw``, and how to name it in the log."""
    setup = ModelSetup(spec=spec, freeze=stage.freeze, frozen_mode=cfg.frozen_mode,
                       learning_rate=cfg.learning_rate, batch_size=cfg.batch_size,
                       eval_batch_size=cfg.eval_batch_size, dtype=cfg.dtype,
                       channels_last=cfg.channels_last and hw.strategy == "per_model")
    workers = max(1, min(cfg.workers or available_cores(), n_neurons))
    args = (setup, arrays.fit_x, arrays.fit_y, arrays.eval_x)
    if hw.strategy == "stacked":
        options = StackedOptions.of(cfg, hw.precision)
        return StackedRunner(*args, hw.device, options), f"stacked ({_describe(options)})"
    if hw.strategy == "per_model" and workers > 1:
        return PoolRunner(*args, workers), f"per_model x{workers}"
    return InProcessRunner(*args, single_thread=hw.strategy == "per_model"), hw.strategy


def _describe(options: StackedOptions) -> str:
    """The options that differ from the defaults, for the log (precision always)."""
    default = StackedOptions(precision=options.precision)
    changed = [f"{k}={v}" for k, v in vars(options).items()
               if k != "precision" and v != getattr(default, k)]
    return ", ".join([options.precision, *changed])
