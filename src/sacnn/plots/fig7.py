"""Fig. 7: FCL decomposition of ff+sa-CNN* trained differently (Simul., Incr.FC1, Incr.FC2).

Per neuron, on the validation images: prediction = centre + surround + bias, where centre is
the contribution of the centre hypercolumn, surround the summed contribution of all other
hypercolumns (``sacnn.analysis.fcl_decomposition``, eval mode) and bias the readout's constant
term, attributed to neither (drawn dashed). Each neuron's curves are rank-ordered by its
prediction, then averaged over neurons at each rank.
inputs: ``weights[site][model]``, ``datasets[site]``. params: ``site``, ``models``, ``labels``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sacnn.analysis import fcl_decomposition, load_networks
from sacnn.data import open_dataset
from sacnn.plots import _io, _style

NAME = "fig7"


def decomposed_curves(weights: list[str], images: np.ndarray) -> dict[str, np.ndarray]:
    """Population-average centre, surround, bias and prediction, ranked by prediction."""
    _, nets = load_networks(weights)
    curves: dict[str, list[np.ndarray]] = {"centre": [], "surround": [], "bias": [],
                                           "prediction": []}
    for net in nets:
        centre, surround, bias = fcl_decomposition(net, images)
        pred = centre + surround + bias
        order = np.argsort(-pred, kind="stable")
        curves["centre"].append(centre[order])
        curves["surround"].append(surround[order])
        curves["prediction"].append(pred[order])
        curves["bias"].append(np.full(pred.size, bias))
    return {k: np.mean(v, axis=0) for k, v in curves.items()}


def make(inputs: dict[str, Any], params: dict[str, Any]) -> Figure:
    site = str(_io.need(params, NAME, "params", "site"))
    models = _io.models(params, NAME)
    ds = open_dataset(_io.need(inputs, NAME, "inputs", "datasets", site))
    images = ds["val_images"].values
    with _style.styled():
        fig = _style.figure(2.4 * len(models) + 0.4, 2.6)
        axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
        for k, (ax, m) in enumerate(zip(axes, models, strict=True)):
            curves = decomposed_curves(_io.need(inputs, NAME, "inputs", "weights", site, m),
                                       images)
            ranks = np.arange(1, images.shape[0] + 1)
            ax.plot(ranks, curves["prediction"], color=_style.PREDICTION, lw=1.2,
                    label="prediction")
            ax.plot(ranks, curves["centre"], color=_style.CENTRE, lw=1.0, label="centre")
            ax.plot(ranks, curves["surround"], color=_style.SURROUND, lw=1.0,
                    label="surround (sum)")
            ax.plot(ranks, curves["bias"], color="0.5", lw=0.8, ls="--", label="bias")
            ax.axhline(0, color="0.8", lw=0.5, zorder=0)
            ax.set_title(_io.label(params, m))
            ax.set_xlabel("validation image (rank by prediction)")
            _style.panel_label(ax, chr(97 + k))
        axes[0].set_ylabel("mean contribution (dF/F)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
        fig.suptitle(f"{site}: FCL decomposition, prediction = centre + surround + bias "
                     "(mean over neurons at each rank)", fontsize=8)
    return fig
