"""Each neuron's best epoch (sacnn.training.selection.BestEpochs), on epochs whose scores
are known: no network is trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sacnn.training.runners import EpochResult
from sacnn.training.selection import BestEpochs
from sacnn.training.state import ChunkState

SEL_Y = np.array([[0.0, 1.0, 2.0, 3.0]] * 3)     # 3 neurons x 4 selection images
VAL_Y = np.array([[3.0, 1.0, 2.0, 0.0, 5.0]] * 3)  # 3 neurons x 5 validation images
UP, DOWN, FLAT = [0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]


def _state(epoch: int) -> ChunkState:
    """A chunk whose only parameter holds the epoch it was written in, per neuron."""
    return ChunkState(model={"w": torch.full((3, 2), float(epoch))}, adam={}, step=epoch)


def _epoch(epoch: int, selection: list[list[float]]) -> EpochResult:
    """Epoch ``epoch`` whose selection predictions give each neuron r = +1, -1 or undefined
    (a constant prediction) with the selection responses."""
    val = np.full((3, 5), float(epoch))
    val[:, 0] += 1 + np.arange(3)  # not constant: a defined validation r
    return EpochResult(state=_state(epoch), losses=np.full(3, 10.0 - epoch),
                       predictions={"selection": np.array(selection), "validation": val})


@pytest.fixture
def run() -> BestEpochs:
    """Neuron 0: r = -1, +1, +1 (best: epoch 1, a tie does not move it); neuron 1: r = +1,
    undefined, -1 (best: epoch 0; an undefined r never improves); neuron 2: undefined at
    every epoch (the first epoch is still its best, its score undefined)."""
    best = BestEpochs.start(_state(-1), epochs=3, n_val=5)
    best.record(0, _epoch(0, [DOWN, UP, FLAT]), SEL_Y, VAL_Y)
    best.record(1, _epoch(1, [UP, FLAT, FLAT]), SEL_Y, VAL_Y)
    best.record(2, _epoch(2, [UP, DOWN, FLAT]), SEL_Y, VAL_Y)
    return best


def test_the_best_epoch_is_the_first_highest_defined_selection_correlation(run):
    np.testing.assert_array_equal(run.best_epoch, [1, 0, 0])
    result = run.result([10, 11, 12], [1, 2, 3], strategy="s", device="cpu",
                        precision="exact", fingerprint="f")
    np.testing.assert_allclose(result.best_score[:2], [1.0, 1.0])
    assert np.isnan(result.best_score[2])  # undefined, said as NaN, never a number
    # the weights and validation predictions are those of each neuron's best epoch
    assert [float(s["w"][0]) for s in result.best_states] == [1.0, 0.0, 0.0]
    np.testing.assert_array_equal(result.val_predictions[:, 1], [1.0, 0.0, 0.0])
    assert result.neuron_ids == [10, 11, 12] and result.init_seeds.tolist() == [1, 2, 3]


def test_every_epoch_is_in_the_history(run):
    np.testing.assert_allclose(run.history["selection_corr"][0], [-1.0, 1.0, 1.0])
    assert np.isnan(run.history["selection_corr"][1, 1])
    assert np.isnan(run.history["selection_corr"][2]).all()
    np.testing.assert_array_equal(run.history["train_loss"][0], [10.0, 9.0, 8.0])
    assert np.isfinite(run.history["val_corr"]).all()


def test_a_checkpoint_restores_the_selection_exactly(run):
    """Restored after epoch 1 and given epoch 2, the selection ends as the uninterrupted one."""
    best = BestEpochs.start(_state(-1), epochs=3, n_val=5)
    best.record(0, _epoch(0, [DOWN, UP, FLAT]), SEL_Y, VAL_Y)
    best.record(1, _epoch(1, [UP, FLAT, FLAT]), SEL_Y, VAL_Y)
    back = BestEpochs.from_checkpoint(best.to_checkpoint())
    back.record(2, _epoch(2, [UP, DOWN, FLAT]), SEL_Y, VAL_Y)
    for name in ("best_score", "best_epoch", "best_pred"):
        np.testing.assert_array_equal(getattr(back, name), getattr(run, name))
    for name, values in run.history.items():
        np.testing.assert_array_equal(back.history[name], values)
    assert torch.equal(back.best_model["w"], run.best_model["w"])
