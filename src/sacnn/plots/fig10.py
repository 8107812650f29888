"""Fig. 10 (A.6): attention highlighting: where the centre hypercolumn attends.

For the example neuron's two validation images with the strongest recorded response (mean
over repeats), the attention weights of the centre hypercolumn's query over all keys
(``sacnn.analysis.centre_attention``; a 9x9 map summing to 1) are laid over the image. The map
is placed approximately: hypercolumn (i, j) is drawn as a stride x stride tile (4 px) centred
on its receptive-field centre (``sacnn.analysis.feature_grid``) and smoothed bilinearly; the
receptive fields themselves (16 px) overlap, so this is a guide, not an exact footprint. The
red square marks the query (centre) hypercolumn; each model's colour range spans its own
minimum to maximum weight (1/81 would be uniform attention).
inputs: ``weights[site][model]`` (models with self-attention), ``datasets[site]``
(``metrics`` or ``predictions`` for the example-neuron rule). params: ``site``, ``models``,
``labels``, ``example_neuron``, optional ``n_images`` (2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sacnn.analysis import centre_attention, feature_grid, load_networks
from sacnn.data import open_dataset
from sacnn.models.kinds import LAYER_KINDS
from sacnn.plots import _io, _style

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig10"


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    site = str(_io.need(params, NAME, "params", "site"))
    models = _io.models(params, NAME)
    ds = open_dataset(_io.need(inputs, NAME, "inputs", "datasets", site))
    neuron = _io.example_neuron(inputs, params, NAME, site, models)
    i = _io.neuron_index(ds["neuron"].values, neuron, f"the dataset of {site}")
    with np.errstate(invalid="ignore"):
        resp = np.nanmean(ds["val_responses"].values[i], axis=-1)
    n_images = int(params.get("n_images", 2))
    top = np.argsort(-resp, kind="stable")[:n_images]
    images = ds["val_images"].values[top]
    side_px = images.shape[-1]
    with _style.styled():
        fig = _style.figure(1.9 * n_images + 0.9, 1.8 * len(models) + 0.5)
        axes = fig.subplots(len(models), n_images, squeeze=False)
        for r, m in enumerate(models):
            ids, nets = load_networks(_io.need(inputs, NAME, "inputs", "weights", site, m))
            k = _io.neuron_index(ids, neuron, f"the weights of {m}")
            net = nets[k]
            if not net.spec.has_attention:
                raise ValueError(f"{NAME}: model {m!r} ({net.spec.name}) has no self-attention")
            att = centre_attention(net, images)
            n_before = next(j for j, layer in enumerate(net.spec.layers)
                            if LAYER_KINDS[layer.kind].attention)
            offset, stride, _ = feature_grid(net.spec, n_before)
            side = att.shape[-1]
            lo, hi = offset - stride / 2, offset + stride * (side - 0.5)
            vmin, vmax = float(att.min()), float(att.max())  # contrast per model
            for c in range(n_images):
                ax = axes[r, c]
                ax.imshow(images[c], cmap="gray", extent=(-0.5, side_px - 0.5, side_px - 0.5,
                                                          -0.5))
                im = ax.imshow(att[c], cmap="inferno", alpha=0.6, interpolation="bilinear",
                               extent=(lo, hi, hi, lo), vmin=vmin, vmax=vmax)
                q = offset + stride * (side // 2)
                ax.add_patch(Rectangle((q - stride / 2, q - stride / 2), stride, stride,
                                       fill=False, ec="red", lw=1.0))
                ax.set_xlim(-0.5, side_px - 0.5)
                ax.set_ylim(side_px - 0.5, -0.5)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_frame_on(False)
                if r == 0:
                    ax.set_title(f"image {ds['val_image'].values[top[c]]} "
                                 f"(top {c + 1}: {resp[top[c]]:.2f})")
                if c == 0:
                    ax.set_ylabel(_io.label(params, m))
            fig.colorbar(im, ax=axes[r, -1], shrink=0.8, label="attention weight")
        fig.suptitle(f"{site} neuron {neuron}: centre-hypercolumn attention\n"
                     "(tiles placed approximately; colour range per model)", fontsize=8)
    return fig
