"""Fig. 5: mean peak-tuning indices PT_J and PT_S (percent, SEM error bars) of the Table-1
models; one row per site, PT_J left, PT_S middle, and right the peak overlap
(``sacnn.metrics.peak_overlap``), a scale-free check that is not a panel of the paper (PT moves
with the prediction's scale; the overlap does not).

inputs: ``metrics[site][model]`` for every site and model. params: ``sites`` (or ``site``),
``models``, ``labels``, ``fraction`` (rows of other fractions are ignored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from sacnn.plots._pt_bars import pt_bars

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig5"


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    return pt_bars(inputs, params, NAME)
