"""Fig. 8 (A.4): population-average tuning curves of the Table-1 models and the recordings.

Per neuron the validation images are rank-ordered by the recorded response; recorded and
predicted curves are then averaged over neurons at each rank
(``sacnn.analysis.population_tuning``). One row per site: all ranks left, the top ranks right.
inputs: ``predictions[site][model]``. params: ``sites`` (or ``site``), ``models``, ``labels``,
optional ``zoom_fraction`` (0.05, at least 10 images).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from sacnn.analysis import population_tuning
from sacnn.plots import _io, _style

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig8"


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    sites = _io.sites(params, NAME)
    models = _io.models(params, NAME)
    colours = _style.model_colours(models)
    with _style.styled():
        fig = _style.figure(7.0, 2.4 * len(sites) + 0.4)
        axes = fig.subplots(len(sites), 2, squeeze=False, width_ratios=[1.6, 1.0])
        for r, site in enumerate(sites):
            preds = _io.predictions(inputs, NAME, site, models)
            ax_all, ax_top = axes[r]
            real_curve = None
            for m in models:
                ds = preds[m]
                real_m, pred_m = population_tuning(ds["prediction"].values,
                                                   ds["response"].values)
                if real_curve is None:
                    real_curve = real_m
                    n = real_m.size
                    n_zoom = min(n, max(10, round(float(params.get("zoom_fraction", 0.05))
                                                  * n)))
                    ranks = np.arange(1, n + 1)
                    for ax in (ax_all, ax_top):
                        ax.plot(ranks[: (n if ax is ax_all else n_zoom)],
                                real_m[: (n if ax is ax_all else n_zoom)], color=_style.REAL,
                                lw=1.4, label="recorded", zorder=5)
                elif not np.allclose(real_m, real_curve, equal_nan=True):
                    raise ValueError(f"{NAME}: the recorded responses in the predictions of "
                                     f"{m} differ from those of {models[0]} ({site})")
                ax_all.plot(ranks, pred_m, color=colours[m], lw=0.8, label=_io.label(params, m))
                ax_top.plot(ranks[:n_zoom], pred_m[:n_zoom], color=colours[m], lw=0.9,
                            marker="o", ms=2)
            n_neurons = preds[models[0]].sizes["neuron"]
            ax_all.set_title(f"{site}: population average ({n_neurons} neurons)")
            ax_top.set_title("top ranks (zoom)")
            ax_all.set_ylabel("mean response (dF/F)")
            ax_all.set_xlabel("validation image (rank by recorded response, per neuron)")
            ax_top.set_xlabel("rank")
            ax_top.set_xlim(0.5, n_zoom + 0.5)
            _style.panel_label(ax_all, chr(97 + 2 * r))
            _style.panel_label(ax_top, chr(98 + 2 * r))
        axes[0, 0].legend(frameon=False, loc="upper right")
    return fig
