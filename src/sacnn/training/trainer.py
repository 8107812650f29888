"""One trainer for every stage: a chunk of neurons, one independent model per neuron.

``train_chunk`` seeds each neuron from (seed, site, model, neuron), draws one batch order per
epoch shared by the chunk (from (seed, site, model, epoch), so not from the chunking),
selects each neuron's best epoch by correlation, checkpoints after every epoch and resumes
from the checkpoint after a kill with the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from sacnn.fileio import write_torch
from sacnn.metrics import pearson
from sacnn.models import ArchitectureSpec, DecomposedReadout, build_network
from sacnn.models.dropout import neuron_key
from sacnn.seeding import derive_seed
from sacnn.training.config import EXECUTION_KEYS, ModelSpec, TrainConfig, TrainingConfigError
from sacnn.training.runners import (
    DTYPES,
    EpochResult,
    InProcessRunner,
    ModelSetup,
    PoolRunner,
    StackedRunner,
    available_cores,
)
from sacnn.training.stacked_step import StackedOptions
from sacnn.training.state import (
    CheckpointError,
    ChunkState,
    NeuronState,
    model_state,
    safe_torch_load,
    trainable_names,
    unstack_states,
)
from sacnn.training.weights import load_weights

log = logging.getLogger("sacnn.training")

CHECKPOINT_FORMAT = "sacnn-checkpoint-v2"  # v2: counter-based dropout masks


class TrainingArraysLike(Protocol):
    """The arrays a chunk is trained on (``sacnn.data.TrainingArrays`` provides them)."""

    fit_images: np.ndarray          # (n_fit, H, W)
    fit_responses: np.ndarray       # (n_neurons, n_fit)
    holdout_images: np.ndarray      # (n_hold, H, W)
    holdout_responses: np.ndarray   # (n_neurons, n_hold)
    val_images: np.ndarray          # (n_val, H, W)
    val_responses: np.ndarray       # (n_neurons, n_val)
    neuron_ids: np.ndarray


@dataclass
class ChunkResult:
    """The outcome of a chunk: best weights and validation predictions per neuron."""

    neuron_ids: list
    best_states: list[dict[str, torch.Tensor]]
    val_predictions: np.ndarray       # (n_neurons, n_val), at each neuron's best epoch
    best_epoch: np.ndarray            # (n_neurons,), 0-based
    best_score: np.ndarray            # selection correlation at the best epoch
    history: dict[str, np.ndarray]    # train_loss / selection_corr / val_corr, (n_neurons, epochs)
    init_seeds: np.ndarray
    strategy: str                     # the strategy that ran the epochs (per_model, stacked...)
    device: str
    precision: str                    # arithmetic of the stacked runner ('exact', 'bf16', ...)
    fingerprint: str                  # hash of what determines the numbers (_fingerprint)


def neuron_seed(cfg: TrainConfig, site: str, model: str, neuron: Any, purpose: str,
                *more: Any) -> int:
    """Seed of one neuron's random stream (init or dropout): never depends on chunking."""
    return derive_seed(cfg.seed, site, model, neuron, purpose, *more)


def epoch_order(cfg: TrainConfig, site: str, model: str, epoch: int, n: int) -> torch.Tensor:
    """The shuffled image order of one epoch, shared by all neurons of (site, model)."""
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, site, model, "order", epoch))
    return torch.randperm(n, generator=gen)


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


def _correlations(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-neuron Pearson r; an undefined r (constant prediction) is NaN here, on purpose:
    it never counts as an improvement and is reported as such in the outputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.atleast_1d(np.asarray(pearson(pred, real), dtype=np.float64))


def initial_state(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, site: str,
                  neuron: Any, inherited: dict[str, torch.Tensor] | None) -> NeuronState:
    """A neuron's state before its first epoch: seeded init, inherited blocks, no Adam moments."""
    net = build_network(spec, seed=neuron_seed(cfg, site, stage.model, neuron, "init"))
    if stage.combine_init == "random":
        if not isinstance(net.readout, DecomposedReadout):
            raise TrainingConfigError(
                f"model {stage.model!r}: combine_init 'random' needs a decomposed (FC1) "
                f"readout, {spec.name!r} has {spec.readout!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(neuron_seed(cfg, site, stage.model, neuron, "combine_init"))
            net.readout.combine.reset_parameters()
    net = net.to(DTYPES[cfg.dtype])
    if stage.init_from:
        assert inherited is not None
        own = net.state_dict()
        for src, dst in stage.load:
            keys = [k for k in inherited if k == src or k.startswith(src + ".")]
            if not keys:
                raise CheckpointError(f"model {stage.model!r}: the weights of {stage.init_from!r} "
                                      f"have no module {src!r} to load")
            for k in keys:
                target = dst + k[len(src):]
                if target not in own:
                    raise CheckpointError(f"model {stage.model!r}: {stage.init_from!r} field {k!r} "
                                          f"has no counterpart {target!r} in {spec.name!r}")
                if own[target].shape != inherited[k].shape:
                    raise CheckpointError(
                        f"model {stage.model!r}: field {k!r} of {stage.init_from!r} has shape "
                        f"{tuple(inherited[k].shape)}, expected {tuple(own[target].shape)} "
                        f"for {target!r} of {spec.name!r}")
                own[target] = inherited[k].to(own[target].dtype)
        net.load_state_dict(own)
    if stage.freeze:
        net.freeze(stage.freeze, cfg.frozen_mode)
    return NeuronState(model=model_state(net),
                       adam={n: {} for n in trainable_names(net)}, step=0)


def _fingerprint(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, site: str,
                 neuron_ids: Sequence, data: TrainingArraysLike) -> str:
    """Hash of everything that determines the numbers; a checkpoint resumes only on a match.

    The strategy, worker count, device and the other settings of how a step is computed
    (config.EXECUTION_KEYS) do not enter: a run may resume with another one.
    """
    settings = {k: v for k, v in cfg.to_dict().items() if k not in EXECUTION_KEYS}
    h = hashlib.sha256()
    h.update(json.dumps({"spec": spec.to_dict(), "stage": stage.__dict__, "cfg": settings,
                         "site": site, "neurons": [str(n) for n in neuron_ids]},
                        sort_keys=True, default=str).encode())
    for arr in (data.fit_images, data.fit_responses, data.holdout_images,
                data.holdout_responses, data.val_images, data.val_responses):
        a = np.ascontiguousarray(arr)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class _ChunkArrays:
    """The tensors one chunk trains and selects on."""

    fit_x: torch.Tensor
    fit_y: torch.Tensor
    eval_x: dict[str, torch.Tensor]
    sel_y: np.ndarray
    val_y: np.ndarray

    @classmethod
    def of(cls, data: TrainingArraysLike, cfg: TrainConfig, n_neurons: int) -> _ChunkArrays:
        dtype = DTYPES[cfg.dtype]

        def images(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.asarray(a)).to(dtype).unsqueeze(1)

        fit_x = images(data.fit_images)
        fit_y = torch.from_numpy(np.asarray(data.fit_responses)).to(dtype)
        if cfg.selection == "validation" and len(data.holdout_images):
            # nothing is held out for selection: fit on every training image of the fraction,
            # as the released code does (it picks the epoch on the validation set)
            fit_x = torch.cat([fit_x, images(data.holdout_images)])
            fit_y = torch.cat([fit_y, torch.from_numpy(np.asarray(data.holdout_responses))
                               .to(dtype)], dim=1)
        val_y = np.asarray(data.val_responses, dtype=np.float64)
        eval_x = {"validation": images(data.val_images)}
        sel_y = val_y
        if cfg.selection == "holdout":
            if len(data.holdout_images) < 2:
                raise TrainingConfigError(
                    "training.selection is 'holdout' but the data has fewer than 2 held-out "
                    "images; give the data a hold-out split or select on 'validation'")
            eval_x = {"selection": images(data.holdout_images), **eval_x}
            sel_y = np.asarray(data.holdout_responses, dtype=np.float64)
        if fit_y.shape != (n_neurons, len(fit_x)):
            raise TrainingConfigError(f"fit_responses has shape {tuple(fit_y.shape)}, expected "
                                      f"({n_neurons}, {len(fit_x)})")
        return cls(fit_x, fit_y, eval_x, sel_y, val_y)


@dataclass
class _Progress:
    """Per-neuron history and the best epoch so far (weights, score, predictions)."""

    history: dict[str, np.ndarray]
    best_model: dict[str, torch.Tensor]      # stacked (N, ...), on the state's device
    best_score: np.ndarray
    best_epoch: np.ndarray
    best_pred: np.ndarray

    @classmethod
    def start(cls, state: ChunkState, epochs: int, n_val: int) -> _Progress:
        n = state.n_neurons
        return cls(history={k: np.full((n, epochs), np.nan)
                            for k in ("train_loss", "selection_corr", "val_corr")},
                   best_model={k: v.clone() for k, v in state.model.items()},
                   best_score=np.full(n, -np.inf), best_epoch=np.full(n, -1, dtype=np.int64),
                   best_pred=np.full((n, n_val), np.nan))

    def record(self, epoch: int, res: EpochResult, sel_y: np.ndarray, val_y: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Store an epoch; a neuron's best moves when its selection r improves."""
        val_pred = res.predictions["validation"]
        sel_r = _correlations(res.predictions.get("selection", val_pred), sel_y)
        val_r = _correlations(val_pred, val_y)
        self.history["train_loss"][:, epoch] = res.losses
        self.history["selection_corr"][:, epoch] = sel_r
        self.history["val_corr"][:, epoch] = val_r
        # NaN (undefined r) never improves; the first epoch is always a candidate.
        improved = (self.best_epoch < 0) | (np.nan_to_num(sel_r, nan=-np.inf) > self.best_score)
        rows = np.flatnonzero(improved)
        if len(rows):
            for k, v in res.state.model.items():
                best = self.best_model[k].to(v.device)
                index = torch.as_tensor(rows, device=v.device)
                self.best_model[k] = best.index_copy(0, index, v.index_select(0, index))
            self.best_score[rows] = np.where(np.isfinite(sel_r[rows]), sel_r[rows], -np.inf)
            self.best_epoch[rows] = epoch
            self.best_pred[rows] = val_pred[rows]
        return sel_r, val_r

    def result(self, neuron_ids: list, init_seeds: Sequence[int], hw: _Hardware,
               fingerprint: str) -> ChunkResult:
        """The chunk's outcome: every neuron at its best epoch (an undefined score as NaN)."""
        best = {k: v.cpu() for k, v in self.best_model.items()}
        return ChunkResult(neuron_ids=neuron_ids, best_states=unstack_states(best),
                           val_predictions=self.best_pred, best_epoch=self.best_epoch,
                           best_score=np.where(np.isfinite(self.best_score),
                                               self.best_score, np.nan),
                           history=self.history,
                           init_seeds=np.array(init_seeds, dtype=np.int64),
                           strategy=hw.strategy, device=str(hw.device),
                           precision=hw.precision, fingerprint=fingerprint)

    def to_checkpoint(self) -> dict[str, Any]:
        return {"best": {k: v.cpu() for k, v in self.best_model.items()},
                "best_score": torch.from_numpy(self.best_score),
                "best_epoch": torch.from_numpy(self.best_epoch),
                "best_val_pred": torch.from_numpy(self.best_pred),
                "history": {k: torch.from_numpy(v) for k, v in self.history.items()}}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> _Progress:
        return cls(history={k: v.numpy().copy() for k, v in ck["history"].items()},
                   best_model=dict(ck["best"]), best_score=ck["best_score"].numpy().copy(),
                   best_epoch=ck["best_epoch"].numpy().copy(),
                   best_pred=ck["best_val_pred"].numpy().copy())


def _initial_chunk_state(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, site: str,
                         neuron_ids: list, init_weights: str | Path | None) -> ChunkState:
    """Seeded initial weights, with the blocks an incremental stage inherits loaded."""
    inherited: dict[str, dict[str, torch.Tensor]] = {}
    if stage.init_from:
        if init_weights is None:
            raise TrainingConfigError(f"model {stage.model!r} starts from "
                                      f"{stage.init_from!r}: pass its weights file")
        w = load_weights(init_weights)
        ids = [str(i) for i in w["neuron_ids"]]
        missing = [n for n in neuron_ids if str(n) not in ids]
        if missing:
            raise CheckpointError(f"{init_weights}: field 'neuron_ids' lacks neurons "
                                  f"{missing[:5]} of this chunk")
        inherited = {str(n): s for n, s in zip(ids, unstack_states(w["state"]))}
    return ChunkState.from_neurons([initial_state(spec, stage, cfg, site, n,
                                                  inherited.get(str(n)))
                                    for n in neuron_ids])


def _resume(path: Path, fingerprint: str) -> tuple[ChunkState, _Progress, int]:
    ck = safe_torch_load(path, CHECKPOINT_FORMAT)
    if ck.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path}: field 'fingerprint' does not match this run (the config, "
            "architecture, neurons or data changed since it was written)")
    try:
        return ChunkState.from_checkpoint(ck["states"]), _Progress.from_checkpoint(ck), \
            int(ck["epoch"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a complete {CHECKPOINT_FORMAT} file "
                              f"(field {exc} missing or malformed)") from None


def _aside(path: Path) -> Path:
    return path.with_name(path.name + ".unusable")


def _set_aside(path: Path) -> Path:
    """Move an unusable checkpoint out of the way: never read again, kept for inspection
    while the job runs (a failing job leaves it; :func:`discard_checkpoint` removes it)."""
    aside = _aside(path)
    path.replace(aside)
    return aside


def discard_checkpoint(path: str | Path) -> None:
    """After a job's outputs are written: its checkpoint, and an unusable one it set aside
    (logged with where it was), are of no more use."""
    path = Path(path)
    path.unlink(missing_ok=True)
    aside = _aside(path)
    if aside.exists():
        aside.unlink()
        log.info("removed %s, the unusable checkpoint set aside when this job started (the "
                 "job has succeeded without it)", aside)


@dataclass(frozen=True)
class _Hardware:
    """Where and how a chunk's epochs run."""

    device: torch.device
    strategy: str
    precision: str

    @classmethod
    def choose(cls, cfg: TrainConfig, gpus: int) -> _Hardware:
        device = resolve_device(cfg, gpus)
        strategy = resolve_strategy(cfg, device)
        check_cuda_graph(cfg, device, strategy)
        return cls(device, strategy, resolve_precision(cfg, device, strategy))


def _make_runner(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, arrays: _ChunkArrays,
                 hw: _Hardware, n_neurons: int) -> tuple[Any, str]:
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


def _resume_or_start(ckpt: Path | None, fingerprint: str, spec: ArchitectureSpec,
                     stage: ModelSpec, cfg: TrainConfig, site: str, neuron_ids: list,
                     init_weights: str | Path | None, n_val: int
                     ) -> tuple[ChunkState, _Progress, int]:
    """The state to train from: the checkpoint's if it is usable, else the initial one.

    A checkpoint is a cache of progress: one that cannot be used (corrupt, truncated, of
    other settings) is set aside and training starts over, so that a scheduler's retries can
    succeed; the numbers are those of an uninterrupted run either way.
    """
    if ckpt is not None and ckpt.exists():
        try:
            resumed = _resume(ckpt, fingerprint)
            log.info("resuming %s/%s from %s after epoch %d", site, stage.model, ckpt,
                     resumed[2])
            return resumed
        except CheckpointError as exc:
            log.warning("%s; moved to %s (removed when the job succeeds), training %s/%s "
                        "starts over from epoch 1", exc, _set_aside(ckpt), site, stage.model)
    state = _initial_chunk_state(spec, stage, cfg, site, neuron_ids, init_weights)
    return state, _Progress.start(state, cfg.epochs, n_val), 0


def _save_checkpoint(path: Path, fingerprint: str, epoch: int, state: ChunkState,
                     progress: _Progress) -> None:
    """Everything a resumed run needs after ``epoch`` (0-based), as plain tensors."""
    write_torch({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epoch": epoch + 1,
                 "states": state.to_checkpoint(), **progress.to_checkpoint()}, path)


def train_chunk(spec: ArchitectureSpec, stage: ModelSpec, data: TrainingArraysLike,
                cfg: TrainConfig, *, site: str, checkpoint: str | Path | None = None,
                init_weights: str | Path | None = None, stop_after_epoch: int | None = None,
                gpus: int = 0) -> ChunkResult:
    """Fit one model per neuron of ``data`` and return each neuron's best epoch.

    ``checkpoint``: a file rewritten atomically after every epoch; if it exists the run
    resumes from it (an unusable one is renamed ``<name>.unusable`` and the run starts
    over). ``init_weights``: the weights file of ``stage.init_from`` for the same neurons.
    ``stop_after_epoch`` ends the run early after checkpointing (tests use it to stand in
    for a kill). ``gpus``: GPUs the job was given (``device: auto`` must use one).
    """
    hw = _Hardware.choose(cfg, gpus)
    neuron_ids = list(np.asarray(data.neuron_ids).tolist())
    if not neuron_ids:
        raise TrainingConfigError("train_chunk: the chunk has no neurons")
    arrays = _ChunkArrays.of(data, cfg, len(neuron_ids))
    fingerprint = _fingerprint(spec, stage, cfg, site, neuron_ids, data)
    ckpt = Path(checkpoint) if checkpoint else None
    state, progress, start_epoch = _resume_or_start(ckpt, fingerprint, spec, stage, cfg, site,
                                                    neuron_ids, init_weights,
                                                    arrays.val_y.shape[1])
    keys = [neuron_key(neuron_seed(cfg, site, stage.model, n, "dropout")) for n in neuron_ids]
    runner, how = _make_runner(spec, stage, cfg, arrays, hw, len(neuron_ids))
    log.info("training %s (%s) on %s: %d neurons, %d fit / %d selection / %d validation "
             "images, strategy %s, device %s", stage.model, spec.name, site, len(neuron_ids),
             len(arrays.fit_x), arrays.sel_y.shape[1], arrays.val_y.shape[1], how, hw.device)

    t0 = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            order = epoch_order(cfg, site, stage.model, epoch, len(arrays.fit_x))
            res = runner.run_epoch(state, order, keys)
            state = res.state
            sel_r, val_r = progress.record(epoch, res, arrays.sel_y, arrays.val_y)
            if ckpt is not None:
                _save_checkpoint(ckpt, fingerprint, epoch, state, progress)
            _log_epoch(site, stage.model, epoch, cfg.epochs, res.losses, sel_r, val_r,
                       time.perf_counter() - t0, epoch + 1 - start_epoch)
            if stop_after_epoch is not None and stop_after_epoch <= epoch + 1 < cfg.epochs:
                raise InterruptedError(f"stopped after epoch {epoch + 1} as requested")
    finally:
        runner.close()
    return progress.result(neuron_ids, [neuron_seed(cfg, site, stage.model, n, "init")
                                        for n in neuron_ids], hw, fingerprint)


def _log_epoch(site: str, model: str, epoch: int, epochs: int, losses: np.ndarray,
               sel_r: np.ndarray, val_r: np.ndarray, elapsed: float, done: int) -> None:
    def mean(r: np.ndarray) -> float:
        return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")

    log.info("%s/%s epoch %d/%d  loss %.5f  selection r %.3f  validation r %.3f  "
             "elapsed %.0fs  ETA %.0fs", site, model, epoch + 1, epochs, float(np.mean(losses)),
             mean(sel_r), mean(val_r), elapsed, elapsed / done * (epochs - epoch - 1))
