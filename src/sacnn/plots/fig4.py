"""Fig. 4: tuning curves of one example neuron: validation images rank-ordered by the recorded
response, recorded response and each model's prediction, each model's Pearson r in the legend.

inputs: ``predictions[site][model]`` for ``params['models']`` (``metrics[site]`` is used by the
example-neuron rule when present). params: ``site``, ``models``, ``labels``, ``example_neuron``,
optional ``zoom_fraction`` (0.05: right panel shows the top 5% of images, at least 10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from sacnn.analysis import rank_ordered_tuning
from sacnn.evaluation import VAL_IMAGE
from sacnn.metrics import pearson
from sacnn.plots import _io, _style

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig4"


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    site = str(_io.need(params, NAME, "params", "site"))
    models = _io.models(params, NAME)
    preds = _io.predictions(inputs, NAME, site, models)
    neuron = _io.example_neuron(inputs, params, NAME, site, models)
    colours = _style.model_colours(models)
    first = preds[models[0]]
    i0 = _io.neuron_index(first["neuron"].values, neuron, f"the predictions of {models[0]}")
    real = first["response"].values[i0]
    n = real.size
    n_zoom = min(n, max(10, round(float(params.get("zoom_fraction", 0.05)) * n)))
    ranks = np.arange(1, n + 1)
    with _style.styled():
        fig = _style.figure(7.0, 2.8)
        ax_all, ax_top = fig.subplots(1, 2, width_ratios=[1.6, 1.0])
        real_sorted, _ = rank_ordered_tuning(real, real)
        for ax in (ax_all, ax_top):
            ax.plot(ranks, real_sorted, color=_style.REAL, lw=1.4, label="recorded", zorder=5)
        for m in models:
            ds = preds[m]
            i = _io.neuron_index(ds["neuron"].values, neuron, f"the predictions of {m}")
            if not np.array_equal(ds[VAL_IMAGE].values, first[VAL_IMAGE].values):
                raise ValueError(f"{NAME}: predictions of {m} and {models[0]} are on different "
                                 "validation images")
            pred = ds["prediction"].values[i]
            r = pearson(pred, real)
            _, pred_sorted = rank_ordered_tuning(pred, real)
            lab = f"{_io.label(params, m)} (r = {r:.3f})"
            ax_all.plot(ranks, pred_sorted, color=colours[m], lw=0.7, alpha=0.85, label=lab)
            ax_top.plot(ranks[:n_zoom], pred_sorted[:n_zoom], color=colours[m], lw=0.9,
                        marker="o", ms=2)
        ax_top.set_xlim(0.5, n_zoom + 0.5)
        ax_all.set_xlabel("validation image (rank by recorded response)")
        ax_top.set_xlabel(f"top {n_zoom} images (rank)")
        ax_all.set_ylabel("response (dF/F)")
        ax_all.set_title(f"{site} neuron {neuron} ({_io.example_rule_text(params)}): "
                         "tuning curves")
        ax_top.set_title("peak (zoom)")
        ax_all.legend(frameon=False, loc="upper right")
        _style.panel_label(ax_all, "a")
        _style.panel_label(ax_top, "b")
    return fig
