"""Each neuron's best epoch: its history, and its weights, score and predictions there.

A neuron's best epoch is the one with the highest correlation on the selection images (the
hold-out part of the training set, or the validation set with ``selection: validation``);
an undefined correlation (a constant prediction) never counts as an improvement. The
chunk's neurons are selected together, each on its own score, so chunking never changes a
neuron's result. :class:`BestEpochs` is what a checkpoint stores of the selection.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sacnn.metrics import pearson
from sacnn.training.chunk import ChunkResult
from sacnn.training.runners import EpochResult
from sacnn.training.state import ChunkState, unstack_states


def correlations(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-neuron Pearson r; an undefined r (constant prediction) is NaN here, on purpose:
    it never counts as an improvement and is reported as such in the outputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.atleast_1d(np.asarray(pearson(pred, real), dtype=np.float64))


@dataclass
class BestEpochs:
    """Per-neuron history and the best epoch so far (weights, score, predictions)."""

    history: dict[str, np.ndarray]
    best_model: dict[str, torch.Tensor]      # stacked (N, ...), on the state's device
    best_score: np.ndarray
    best_epoch: np.ndarray
    best_pred: np.ndarray

    @classmethod
    def start(cls, state: ChunkState, epochs: int, n_val: int) -> BestEpochs:
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
        sel_r = correlations(res.predictions.get("selection", val_pred), sel_y)
        val_r = correlations(val_pred, val_y)
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

    def result(self, neuron_ids: list, init_seeds: Sequence[int], *, strategy: str,
               device: str, precision: str, fingerprint: str) -> ChunkResult:
        """The chunk's outcome: every neuron at its best epoch (an undefined score as NaN)."""
        best = {k: v.cpu() for k, v in self.best_model.items()}
        return ChunkResult(neuron_ids=neuron_ids, best_states=unstack_states(best),
                           val_predictions=self.best_pred, best_epoch=self.best_epoch,
                           best_score=np.where(np.isfinite(self.best_score),
                                               self.best_score, np.nan),
                           history=self.history,
                           init_seeds=np.array(init_seeds, dtype=np.int64),
                           strategy=strategy, device=device, precision=precision,
                           fingerprint=fingerprint)

    def to_checkpoint(self) -> dict[str, Any]:
        return {"best": {k: v.cpu() for k, v in self.best_model.items()},
                "best_score": torch.from_numpy(self.best_score),
                "best_epoch": torch.from_numpy(self.best_epoch),
                "best_val_pred": torch.from_numpy(self.best_pred),
                "history": {k: torch.from_numpy(v) for k, v in self.history.items()}}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> BestEpochs:
        return cls(history={k: v.numpy().copy() for k, v in ck["history"].items()},
                   best_model=dict(ck["best"]), best_score=ck["best_score"].numpy().copy(),
                   best_epoch=ck["best_epoch"].numpy().copy(),
                   best_pred=ck["best_val_pred"].numpy().copy())
