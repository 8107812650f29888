"""One trainer for every stage: a chunk of neurons, one independent model per neuron.

``train_chunk`` seeds each neuron from (seed, site, model, neuron), draws one batch order per
epoch shared by the chunk (from (seed, site, model, epoch), so not from the chunking),
selects each neuron's best epoch by correlation, checkpoints after every epoch and resumes
from the checkpoint after a kill with the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from sacnn.models import ArchitectureSpec
from sacnn.models.dropout import neuron_key
from sacnn.seeding import derive_seed
from sacnn.training.checkpoint import fingerprint as checkpoint_fingerprint
from sacnn.training.checkpoint import load_checkpoint, save_checkpoint, set_aside
from sacnn.training.chunk import ChunkArrays, ChunkResult, TrainingArraysLike
from sacnn.training.config import ModelSpec, TrainConfig, TrainingConfigError
from sacnn.training.hardware import Hardware, make_runner
from sacnn.training.initial import initial_chunk_state, neuron_seed
from sacnn.training.selection import BestEpochs
from sacnn.training.state import CheckpointError, ChunkState

log = logging.getLogger("sacnn.training")


def epoch_order(cfg: TrainConfig, site: str, model: str, epoch: int, n: int) -> torch.Tensor:
    """The shuffled image order of one epoch, shared by all neurons of (site, model)."""
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, site, model, "order", epoch))
    return torch.randperm(n, generator=gen)


def _resume_or_start(ckpt: Path | None, fingerprint: str, spec: ArchitectureSpec,
                     stage: ModelSpec, cfg: TrainConfig, site: str, neuron_ids: list,
                     init_weights: str | Path | None, n_val: int
                     ) -> tuple[ChunkState, BestEpochs, int]:
    """The state to train from: the checkpoint's if it is usable, else the initial one.

    A checkpoint is a cache of progress: one that cannot be used (corrupt, truncated, of
    other settings) is set aside and training starts over, so that a scheduler's retries can
    succeed; the numbers are those of an uninterrupted run either way.
    """
    if ckpt is not None and ckpt.exists():
        try:
            resumed = load_checkpoint(ckpt, fingerprint)
            log.info("resuming %s/%s from %s after epoch %d", site, stage.model, ckpt,
                     resumed[2])
            return resumed
        except CheckpointError as exc:
            log.warning("%s; moved to %s (removed when the job succeeds), training %s/%s "
                        "starts over from epoch 1", exc, set_aside(ckpt), site, stage.model)
    state = initial_chunk_state(spec, stage, cfg, site, neuron_ids, init_weights)
    return state, BestEpochs.start(state, cfg.epochs, n_val), 0


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
    hw = Hardware.choose(cfg, gpus)
    neuron_ids = list(np.asarray(data.neuron_ids).tolist())
    if not neuron_ids:
        raise TrainingConfigError("train_chunk: the chunk has no neurons")
    arrays = ChunkArrays.of(data, cfg, len(neuron_ids))
    fingerprint = checkpoint_fingerprint(spec, stage, cfg, site, neuron_ids, data)
    ckpt = Path(checkpoint) if checkpoint else None
    state, best, start_epoch = _resume_or_start(ckpt, fingerprint, spec, stage, cfg, site,
                                                neuron_ids, init_weights,
                                                arrays.val_y.shape[1])
    keys = [neuron_key(neuron_seed(cfg, site, stage.model, n, "dropout")) for n in neuron_ids]
    runner, how = make_runner(spec, stage, cfg, arrays, hw, len(neuron_ids))
    log.info("training %s (%s) on %s: %d neurons, %d fit / %d selection / %d validation "
             "images, strategy %s, device %s", stage.model, spec.name, site, len(neuron_ids),
             len(arrays.fit_x), arrays.sel_y.shape[1], arrays.val_y.shape[1], how, hw.device)

    t0 = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            order = epoch_order(cfg, site, stage.model, epoch, len(arrays.fit_x))
            res = runner.run_epoch(state, order, keys)
            state = res.state
            sel_r, val_r = best.record(epoch, res, arrays.sel_y, arrays.val_y)
            if ckpt is not None:
                save_checkpoint(ckpt, fingerprint, epoch, state, best)
            _log_epoch(site, stage.model, epoch, cfg.epochs, res.losses, sel_r, val_r,
                       time.perf_counter() - t0, epoch + 1 - start_epoch)
            if stop_after_epoch is not None and stop_after_epoch <= epoch + 1 < cfg.epochs:
                raise InterruptedError(f"stopped after epoch {epoch + 1} as requested")
    finally:
        runner.close()
    return best.result(neuron_ids, [neuron_seed(cfg, site, stage.model, n, "init")
                                    for n in neuron_ids], strategy=hw.strategy,
                       device=str(hw.device), precision=hw.precision, fingerprint=fingerprint)


def _log_epoch(site: str, model: str, epoch: int, epochs: int, losses: np.ndarray,
               sel_r: np.ndarray, val_r: np.ndarray, elapsed: float, done: int) -> None:
    def mean(r: np.ndarray) -> float:
        return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")

    log.info("%s/%s epoch %d/%d  loss %.5f  selection r %.3f  validation r %.3f  "
             "elapsed %.0fs  ETA %.0fs", site, model, epoch + 1, epochs, float(np.mean(losses)),
             mean(sel_r), mean(val_r), elapsed, elapsed / done * (epochs - epoch - 1))
