"""What a chunk of neurons is trained on, and what it yields.

:class:`TrainingArraysLike` is the data (``sacnn.data.TrainingArrays`` provides it),
:class:`ChunkArrays` the tensors the epochs fit and select on, :class:`ChunkResult` each
neuron at its best epoch (what ``sacnn.training.weights`` and ``sacnn.training.outputs``
write).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from sacnn.training.config import TrainConfig, TrainingConfigError
from sacnn.training.runners import DTYPES


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
    fingerprint: str                  # hash of what determines the numbers (sacnn.training.checkpoint.fingerprint)


@dataclass
class ChunkArrays:
    """The tensors one chunk trains and selects on."""

    fit_x: torch.Tensor
    fit_y: torch.Tensor
    eval_x: dict[str, torch.Tensor]
    sel_y: np.ndarray
    val_y: np.ndarray

    @classmethod
    def of(cls, data: TrainingArraysLike, cfg: TrainConfig, n_neurons: int) -> ChunkArrays:
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
