"""``checkpoint.pt``: a chunk's progress after every epoch, so a killed job resumes.

Format :data:`CHECKPOINT_FORMAT` (plain tensors, read without unpickling): the stacked
:class:`~sacnn.training.state.ChunkState` (model, Adam moments, step), the selection so far
(:class:`~sacnn.training.selection.BestEpochs`: best weights, scores, predictions,
history), the epochs done and a :func:`fingerprint` of what determines the numbers. A
checkpoint resumes only on the same fingerprint; one that cannot be used is set aside
(``<name>.unusable``), and both are removed once the job has written its outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sacnn.fileio import write_torch
from sacnn.models import ArchitectureSpec
from sacnn.training.chunk import TrainingArraysLike
from sacnn.training.config import EXECUTION_KEYS, ModelSpec, TrainConfig
from sacnn.training.selection import BestEpochs
from sacnn.training.state import CheckpointError, ChunkState, safe_torch_load

log = logging.getLogger("sacnn.training")

CHECKPOINT_FORMAT = "sacnn-checkpoint-v2"  # v2: counter-based dropout masks


def fingerprint(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, site: str,
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


def save_checkpoint(path: Path, fingerprint: str, epoch: int, state: ChunkState,
                    best: BestEpochs) -> None:
    """Everything a resumed run needs after ``epoch`` (0-based), as plain tensors."""
    write_torch({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epoch": epoch + 1,
                 "states": state.to_checkpoint(), **best.to_checkpoint()}, path)


def load_checkpoint(path: Path, fingerprint: str) -> tuple[ChunkState, BestEpochs, int]:
    """The state, the selection and the epochs done of a checkpoint written with
    ``fingerprint``; anything else is a :class:`CheckpointError` naming the file."""
    ck = safe_torch_load(path, CHECKPOINT_FORMAT)
    if ck.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path}: field 'fingerprint' does not match this run (the config, "
            "architecture, neurons or data changed since it was written)")
    try:
        return ChunkState.from_checkpoint(ck["states"]), BestEpochs.from_checkpoint(ck), \
            int(ck["epoch"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a complete {CHECKPOINT_FORMAT} file "
                              f"(field {exc} missing or malformed)") from None


def _aside(path: Path) -> Path:
    return path.with_name(path.name + ".unusable")


def set_aside(path: Path) -> Path:
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
