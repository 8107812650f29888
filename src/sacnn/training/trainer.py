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
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from sacnn.metrics import pearson
from sacnn.models import ArchitectureSpec, build_network
from sacnn.seeding import derive_seed
from sacnn.training.config import StageSpec, TrainConfig, TrainingConfigError
from sacnn.training.runners import (
    DTYPES,
    InProcessRunner,
    ModelSetup,
    PoolRunner,
    StackedRunner,
    available_cores,
)
from sacnn.training.state import (
    CheckpointError,
    NeuronState,
    atomic_torch_save,
    model_state,
    safe_torch_load,
    stack_neuron_states,
    stack_states,
    unstack_neuron_states,
    unstack_states,
)

log = logging.getLogger("sacnn.training")

CHECKPOINT_FORMAT = "sacnn-checkpoint-v1"
WEIGHTS_FORMAT = "sacnn-weights-v1"


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
    strategy: str
    device: str
    meta: dict[str, Any] = field(default_factory=dict)


def neuron_seed(cfg: TrainConfig, site: str, model: str, neuron: Any, purpose: str,
                *more: Any) -> int:
    """Seed of one neuron's random stream (init or dropout): never depends on chunking."""
    return derive_seed(cfg.seed, site, model, neuron, purpose, *more)


def epoch_order(cfg: TrainConfig, site: str, model: str, epoch: int, n: int) -> torch.Tensor:
    """The shuffled image order of one epoch, shared by all neurons of (site, model)."""
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, site, model, "order", epoch))
    return torch.randperm(n, generator=gen)


def resolve_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def _correlations(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-neuron Pearson r; an undefined r (constant prediction) is NaN here, on purpose:
    it never counts as an improvement and is reported as such in the outputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.atleast_1d(np.asarray(pearson(pred, real), dtype=np.float64))


def load_weights(path: str | Path) -> dict[str, Any]:
    """Read a weights file written by :func:`save_weights` (never unpickles)."""
    return safe_torch_load(path, WEIGHTS_FORMAT)


def initial_state(spec: ArchitectureSpec, stage: StageSpec, cfg: TrainConfig, site: str,
                  neuron: Any, inherited: dict[str, torch.Tensor] | None) -> NeuronState:
    """A neuron's state before its first epoch: seeded init, inherited blocks, no Adam moments."""
    net = build_network(spec, seed=neuron_seed(cfg, site, stage.model, neuron, "init"))
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
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    return NeuronState(model=model_state(net),
                       adam={n: {} for n in names}, step=0)


def _fingerprint(spec: ArchitectureSpec, stage: StageSpec, cfg: TrainConfig, site: str,
                 neuron_ids: Sequence, data: TrainingArraysLike) -> str:
    """Hash of everything that determines the numbers; a checkpoint resumes only on a match.

    The strategy, worker count and device do not enter: a run may resume with another one.
    """
    settings = {k: v for k, v in cfg.to_dict().items()
                if k not in ("strategy", "workers", "device", "eval_batch_size")}
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


def train_chunk(spec: ArchitectureSpec, stage: StageSpec, data: TrainingArraysLike,
                cfg: TrainConfig, *, site: str, checkpoint: str | Path | None = None,
                init_weights: str | Path | None = None, stop_after_epoch: int | None = None
                ) -> ChunkResult:
    """Fit one model per neuron of ``data`` and return each neuron's best epoch.

    ``checkpoint``: a file rewritten atomically after every epoch; if it exists the run
    resumes from it. ``init_weights``: the weights file of ``stage.init_from`` for the same
    neurons. ``stop_after_epoch`` ends the run early after checkpointing (tests use it to
    stand in for a kill).
    """
    device = resolve_device(cfg)
    strategy = resolve_strategy(cfg, device)
    dtype = DTYPES[cfg.dtype]
    neuron_ids = list(np.asarray(data.neuron_ids).tolist())
    n_neurons = len(neuron_ids)
    if n_neurons == 0:
        raise TrainingConfigError("train_chunk: the chunk has no neurons")
    fit_x = torch.from_numpy(np.asarray(data.fit_images)).to(dtype).unsqueeze(1)
    fit_y = torch.from_numpy(np.asarray(data.fit_responses)).to(dtype)
    val_x = torch.from_numpy(np.asarray(data.val_images)).to(dtype).unsqueeze(1)
    val_y = np.asarray(data.val_responses, dtype=np.float64)
    if cfg.selection == "holdout":
        if len(data.holdout_images) < 2:
            raise TrainingConfigError(
                "training.selection is 'holdout' but the data has fewer than 2 held-out "
                "images; give the data a hold-out split or select on 'validation'")
        eval_x = {"selection": torch.from_numpy(np.asarray(data.holdout_images)).to(dtype)
                  .unsqueeze(1), "validation": val_x}
        sel_y = np.asarray(data.holdout_responses, dtype=np.float64)
    else:
        eval_x = {"validation": val_x}
        sel_y = val_y
    if fit_y.shape != (n_neurons, len(fit_x)):
        raise TrainingConfigError(f"fit_responses has shape {tuple(fit_y.shape)}, expected "
                                  f"({n_neurons}, {len(fit_x)})")

    fingerprint = _fingerprint(spec, stage, cfg, site, neuron_ids, data)
    init_seeds = np.array([neuron_seed(cfg, site, stage.model, n, "init") for n in neuron_ids],
                          dtype=np.int64)
    n_val = len(val_x)
    history = {k: np.full((n_neurons, cfg.epochs), np.nan)
               for k in ("train_loss", "selection_corr", "val_corr")}
    best_score = np.full(n_neurons, -np.inf)
    best_epoch = np.full(n_neurons, -1, dtype=np.int64)
    best_pred = np.full((n_neurons, n_val), np.nan)
    start_epoch = 0

    ckpt_path = Path(checkpoint) if checkpoint else None
    if ckpt_path is not None and ckpt_path.exists():
        ck = safe_torch_load(ckpt_path, CHECKPOINT_FORMAT)
        if ck.get("fingerprint") != fingerprint:
            raise CheckpointError(
                f"{ckpt_path}: field 'fingerprint' does not match this run (the config, "
                "architecture, neurons or data changed since it was written); delete the "
                "checkpoint to start over, or restore the settings that wrote it")
        states = unstack_neuron_states(ck["states"])
        best_states = unstack_states(ck["best"])
        best_score = ck["best_score"].numpy().copy()
        best_epoch = ck["best_epoch"].numpy().copy()
        best_pred = ck["best_val_pred"].numpy().copy()
        for k in history:
            history[k] = ck["history"][k].numpy().copy()
        start_epoch = int(ck["epoch"])
        log.info("resuming %s/%s from %s after epoch %d", site, stage.model, ckpt_path,
                 start_epoch)
    else:
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
            per_neuron = unstack_states(w["state"])
            inherited = {str(n): s for n, s in zip(ids, per_neuron)}
        states = [initial_state(spec, stage, cfg, site, n, inherited.get(str(n)))
                  for n in neuron_ids]
        best_states = [dict(s.model) for s in states]

    setup = ModelSetup(spec=spec, freeze=stage.freeze, frozen_mode=cfg.frozen_mode,
                       learning_rate=cfg.learning_rate, batch_size=cfg.batch_size,
                       eval_batch_size=cfg.eval_batch_size, dtype=cfg.dtype,
                       channels_last=cfg.channels_last and strategy == "per_model")
    workers = cfg.workers or available_cores()
    workers = max(1, min(workers, n_neurons))
    if strategy == "stacked":
        runner: Any = StackedRunner(setup, fit_x, fit_y, eval_x, device)
    elif strategy == "per_model" and workers > 1:
        runner = PoolRunner(setup, fit_x, fit_y, eval_x, workers)
    else:
        runner = InProcessRunner(setup, fit_x, fit_y, eval_x,
                                 single_thread=strategy == "per_model")
    log.info("training %s (%s) on %s: %d neurons, %d fit / %d selection / %d validation "
             "images, strategy %s%s, device %s", stage.model, spec.name, site, n_neurons,
             len(fit_x), len(sel_y[0]) if len(sel_y) else 0, n_val, strategy,
             f" x{workers}" if strategy == "per_model" else "", device)

    t0 = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            order = epoch_order(cfg, site, stage.model, epoch, len(fit_x))
            seeds = [neuron_seed(cfg, site, stage.model, n, "dropout", epoch) for n in neuron_ids]
            res = runner.run_epoch(states, order, seeds)
            states = res.states
            sel_pred = res.predictions.get("selection", res.predictions["validation"])
            sel_r = _correlations(sel_pred, sel_y)
            val_r = _correlations(res.predictions["validation"], val_y)
            history["train_loss"][:, epoch] = res.losses
            history["selection_corr"][:, epoch] = sel_r
            history["val_corr"][:, epoch] = val_r
            # NaN (undefined r) never improves; the first epoch is always a candidate.
            improved = (best_epoch < 0) | (np.nan_to_num(sel_r, nan=-np.inf) > best_score)
            for i in np.flatnonzero(improved):
                best_states[i] = states[i].model
                best_score[i] = sel_r[i] if np.isfinite(sel_r[i]) else -np.inf
                best_epoch[i] = epoch
                best_pred[i] = res.predictions["validation"][i]
            if ckpt_path is not None:
                atomic_torch_save({
                    "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epoch": epoch + 1,
                    "states": stack_neuron_states(states), "best": stack_states(best_states),
                    "best_score": torch.from_numpy(best_score),
                    "best_epoch": torch.from_numpy(best_epoch),
                    "best_val_pred": torch.from_numpy(best_pred),
                    "history": {k: torch.from_numpy(v) for k, v in history.items()},
                }, ckpt_path)
            elapsed = time.perf_counter() - t0
            done = epoch + 1 - start_epoch
            eta = elapsed / done * (cfg.epochs - epoch - 1)
            log.info("%s/%s epoch %d/%d  loss %.5f  selection r %.3f  validation r %.3f  "
                     "elapsed %.0fs  ETA %.0fs", site, stage.model, epoch + 1, cfg.epochs,
                     float(np.mean(res.losses)), float(np.nanmean(sel_r)) if np.isfinite(
                         sel_r).any() else float("nan"),
                     float(np.nanmean(val_r)) if np.isfinite(val_r).any() else float("nan"),
                     elapsed, eta)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch \
                    and epoch + 1 < cfg.epochs:
                raise InterruptedError(f"stopped after epoch {epoch + 1} as requested")
    finally:
        runner.close()

    return ChunkResult(neuron_ids=neuron_ids, best_states=best_states,
                       val_predictions=best_pred, best_epoch=best_epoch,
                       best_score=np.where(np.isfinite(best_score), best_score, np.nan),
                       history=history, init_seeds=init_seeds, strategy=strategy,
                       device=str(device), meta={"fingerprint": fingerprint})
