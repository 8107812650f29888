"""Fig. 7: FCL decomposition of ff+sa-CNN* trained differently (Simul., Incr.FC1, Incr.FC2).

Per neuron, on the validation images: prediction = centre + surround + bias, where centre is
the contribution of the centre hypercolumn, surround the summed contribution of all other
hypercolumns (``sacnn.analysis.fcl_decomposition``, eval mode) and bias the readout's constant
term (for Incr.FC1 every bias pushed through the combination layer). Each neuron's curves are
rank-ordered by its prediction, then averaged over neurons at each rank.

The paper draws only centre (green) and surround (pink), which "sum to the prediction"
(orange); it does not say where the bias went. ``params['bias']`` says where it is drawn:

``separate`` (default)  its own dashed term, so centre + surround + bias = prediction and the
                        centre and surround curves are the hypercolumns' contributions alone
                        (what ``sacnn.analysis.centre_share`` and the claims compare)
``centre``              added to the centre curve: centre + surround = prediction, as drawn
                        in the paper, with the bias counted as the centre's
``surround``            added to the surround curve, likewise

Every panel prints the bias (mean over neurons) and the figure title says which mode drew it.
inputs: ``weights[site][model]``, ``datasets[site]``. params: ``site``, ``models``, ``labels``,
optional ``bias``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from sacnn.analysis import fcl_decomposition, load_networks
from sacnn.data import open_dataset
from sacnn.plots import _io, _style

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig7"
#: where the readout bias is drawn -> how the title says it (the schema's enum, tested)
BIAS_MODES = {
    "separate": "prediction = centre + surround + bias (the readout bias drawn as its own term)",
    "centre": "prediction = centre + surround, the readout bias counted in the centre",
    "surround": "prediction = centre + surround, the readout bias counted in the surround",
}


def bias_mode(params: dict[str, Any]) -> str:
    """``params['bias']`` (default ``separate``), checked against :data:`BIAS_MODES`."""
    mode = str(params.get("bias", "separate"))
    if mode not in BIAS_MODES:
        raise ValueError(f"{NAME}: params['bias'] (config figures.fig7.bias) is {mode!r}, "
                         f"expected one of {list(BIAS_MODES)}")
    return mode


def decomposed_curves(weights: list[str], images: np.ndarray, bias: str = "separate"
                      ) -> dict[str, np.ndarray]:
    """Population-average centre, surround, bias and prediction, ranked by prediction.

    Each neuron's terms are ordered by its own prediction (largest first) and then averaged
    over neurons at each rank; the terms add up to the prediction at every rank. With
    ``bias='centre'`` or ``'surround'`` the bias is added to that term and the ``bias`` curve
    is zero, so centre + surround = prediction. ``readout_bias`` is the bias averaged over
    neurons (a 0-d array), whichever curve it was drawn in.
    """
    if bias not in BIAS_MODES:
        raise ValueError(f"{NAME}: bias {bias!r}, expected one of {list(BIAS_MODES)}")
    _, nets = load_networks(weights)
    curves: dict[str, list[np.ndarray]] = {"centre": [], "surround": [], "bias": [],
                                           "prediction": []}
    biases = []
    for net in nets:
        centre, surround, b = fcl_decomposition(net, images)
        pred = centre + surround + b
        biases.append(b)
        order = np.argsort(-pred, kind="stable")
        constant = np.full(pred.size, b)
        if bias == "centre":
            centre, constant = centre + b, np.zeros(pred.size)
        elif bias == "surround":
            surround, constant = surround + b, np.zeros(pred.size)
        curves["centre"].append(centre[order])
        curves["surround"].append(surround[order])
        curves["bias"].append(constant)
        curves["prediction"].append(pred[order])
    out = {k: np.mean(v, axis=0) for k, v in curves.items()}
    out["readout_bias"] = np.asarray(np.mean(biases))  # wherever it was drawn
    return out


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    site = str(_io.need(params, NAME, "params", "site"))
    models = _io.models(params, NAME)
    bias = bias_mode(params)
    ds = open_dataset(_io.need(inputs, NAME, "inputs", "datasets", site))
    images = ds["val_images"].values
    names = {"centre": "centre", "surround": "surround (sum)"}
    if bias != "separate":
        names[bias] += " + bias"
    with _style.styled():
        fig = _style.figure(2.4 * len(models) + 0.4, 2.7)
        axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
        for k, (ax, m) in enumerate(zip(axes, models, strict=True)):
            curves = decomposed_curves(_io.need(inputs, NAME, "inputs", "weights", site, m),
                                       images, bias)
            ranks = np.arange(1, images.shape[0] + 1)
            ax.plot(ranks, curves["prediction"], color=_style.PREDICTION, lw=1.2,
                    label="prediction")
            ax.plot(ranks, curves["centre"], color=_style.CENTRE, lw=1.0, label=names["centre"])
            ax.plot(ranks, curves["surround"], color=_style.SURROUND, lw=1.0,
                    label=names["surround"])
            if bias == "separate":
                ax.plot(ranks, curves["bias"], color="0.5", lw=0.8, ls="--",
                        label="readout bias")
            ax.axhline(0, color="0.8", lw=0.5, zorder=0)
            ax.text(0.98, 0.98, f"bias = {float(curves['readout_bias']):.3g}"
                    + ("" if bias == "separate" else f"\n(in the {bias})"),
                    transform=ax.transAxes, ha="right", va="top", fontsize=6, color="0.35",
                    bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
            ax.set_title(_io.label(params, m))
            ax.set_xlabel("validation image (rank by prediction)")
            _style.panel_label(ax, chr(97 + k))
        axes[0].set_ylabel("mean contribution (dF/F)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
        fig.suptitle(f"{site}: FCL decomposition (mean over neurons at each rank)\n"
                     f"{BIAS_MODES[bias]}", fontsize=8)
    return fig
