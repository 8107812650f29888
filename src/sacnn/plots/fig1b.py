"""Fig. 1b: one neuron's responses to all training images, rank-ordered, and its top-20 images,
with the paper's population statistic (share of images above half the peak, over all neurons).

inputs: ``datasets[site]``; plus ``metrics[site]`` or ``predictions[site]`` of ``params['models']``
unless ``params['example_neuron']`` names the neuron.
params: ``site``, ``example_neuron`` (rule), ``models`` (for the rule), optional ``n_top`` (20).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from sacnn.data import open_dataset
from sacnn.plots import _io, _style
from sacnn.simulate.realism import half_peak_shares

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig1b"


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    site = str(_io.need(params, NAME, "params", "site"))
    ds = open_dataset(_io.need(inputs, NAME, "inputs", "datasets", site))
    neuron = _io.example_neuron(inputs, params, NAME, site, list(params.get("models") or []))
    i = _io.neuron_index(ds["neuron"].values, neuron, f"the dataset of {site}")
    resp = ds["train_responses"].values[i].astype(np.float64)
    images = ds["train_images"].values
    n_top = int(params.get("n_top", 20))
    order = np.argsort(-resp, kind="stable")
    ranked = resp[order]
    peak = ranked[0]
    population = half_peak_shares(ds["train_responses"].values) * 100
    share = float(population[i])
    units = ds.attrs.get("response_units", "dF/F")

    with _style.styled():
        fig = _style.figure(7.0, 2.6)
        outer = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.25])
        ax = fig.add_subplot(outer[0])
        ax.plot(np.arange(1, resp.size + 1), ranked, color=_style.REAL, lw=1)
        ax.axhline(peak / 2, color="0.5", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("training image (rank by response)")
        ax.set_ylabel(f"response ({units})")
        ax.set_title(f"{site} neuron {neuron}: {resp.size} training images")
        ax.text(0.97, 0.9, f"{share:.2f}% of images above half peak (dashed)",
                transform=ax.transAxes, ha="right", va="top")
        # the paper's population statistic: "less than 0.5 %" of images above half the peak
        ax.text(0.97, 0.78, f"all {population.size} neurons: median "
                f"{np.nanmedian(population):.2f}%, mean {np.nanmean(population):.2f}% "
                "(paper: < 0.5%)", transform=ax.transAxes, ha="right", va="top", fontsize=6)
        _style.panel_label(ax, "b")
        cols = 5
        rows = int(np.ceil(n_top / cols))
        grid = outer[1].subgridspec(rows, cols, wspace=0.05, hspace=0.25)
        vmin, vmax = np.percentile(images[order[:n_top]], [1, 99])
        for k, idx in enumerate(order[:n_top]):
            a = fig.add_subplot(grid[k // cols, k % cols])
            a.imshow(images[idx], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            a.set_axis_off()
            a.set_title(f"#{k + 1}: {resp[idx]:.2f}", fontsize=6, pad=1.5)
        fig.suptitle(f"Top {n_top} training images of neuron {neuron} (rank: response)",
                     fontsize=8, x=0.72, ha="center")
    return fig
