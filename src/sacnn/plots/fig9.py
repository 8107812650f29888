"""Fig. 9 (A.5): average FCL contribution of each hypercolumn, one heatmap per model.

Contribution of hypercolumn (h, w) to a prediction: ``sum_c W[c, h, w] * x[c, h, w]`` with x
the final feature map (eval mode) and W the readout weight (``sacnn.analysis.fcl_contributions``).
The heatmap is its mean absolute value (``statistic: mean_abs``, default) or its signed mean
(``mean``) over validation images and neurons: the paper's "average contribution" does not
say which; the magnitude keeps terms of opposite sign from cancelling (a hypercolumn that
pushes some images up and others down still shows), the signed mean shows the net direction
(docs/reproduction-notes.md). Each heatmap has its own colour scale
(independently contrast-normalised); the centre hypercolumn is outlined in red.
inputs: ``weights[site][model]``, ``datasets[site]``. params: ``site``, ``models``, ``labels``,
optional ``statistic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sacnn.analysis import fcl_contributions, load_networks
from sacnn.data import open_dataset
from sacnn.plots import _io, _style

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig9"
#: config figures.fig9.statistic -> how the title says it (the schema's enum, tested)
STATISTICS = {"mean_abs": "mean |contribution|", "mean": "mean signed contribution"}


def contribution_map(weights: list[str], images: np.ndarray, statistic: str) -> np.ndarray:
    """(H, W) average over neurons and images of each hypercolumn's contribution."""
    _, nets = load_networks(weights)
    maps = []
    for net in nets:
        c = fcl_contributions(net, images)
        maps.append(np.abs(c).mean(axis=0) if statistic == "mean_abs" else c.mean(axis=0))
    return np.mean(maps, axis=0)


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    site = str(_io.need(params, NAME, "params", "site"))
    models = _io.models(params, NAME)
    statistic = str(params.get("statistic", "mean_abs"))
    if statistic not in STATISTICS:
        raise ValueError(f"{NAME}: params['statistic'] (config figures.fig9.statistic) is "
                         f"{statistic!r}, expected one of {list(STATISTICS)}")
    ds = open_dataset(_io.need(inputs, NAME, "inputs", "datasets", site))
    images = ds["val_images"].values
    with _style.styled():
        fig = _style.figure(2.3 * len(models) + 0.3, 2.5)
        axes = fig.subplots(1, len(models), squeeze=False)[0]
        for k, (ax, m) in enumerate(zip(axes, models, strict=True)):
            grid = contribution_map(_io.need(inputs, NAME, "inputs", "weights", site, m),
                                    images, statistic)
            if statistic == "mean":
                lim = float(np.abs(grid).max()) or 1.0
                im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                im = ax.imshow(grid, cmap="viridis", vmin=grid.min(), vmax=grid.max())
            side = grid.shape[0]
            ax.add_patch(Rectangle((side // 2 - 0.5, side // 2 - 0.5), 1, 1, fill=False,
                                   ec="red", lw=1.5))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(_io.label(params, m))
            fig.colorbar(im, ax=ax, shrink=0.75, format="%.2g")
            _style.panel_label(ax, chr(97 + k))
        fig.suptitle(f"{site}: {STATISTICS[statistic]} of each hypercolumn to the prediction "
                     "(each map on its own scale; centre in red)", fontsize=8)
    return fig
