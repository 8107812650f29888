"""Fig. 2: the architectures (ff-CNN, ff+sa-CNN, rf-CNN, rf+sa-CNN) drawn from their specs.

Every box (kind, kernel, pooling, gamma, channels, feature-map size, readout width) is read
from ``params['architectures'][model]`` (an ``ArchitectureSpec.to_dict()``), so the drawing
follows the code. inputs: none. params: ``models``, ``architectures``, ``labels``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from sacnn.analysis import architecture_layers
from sacnn.models import spec_from_dict
from sacnn.plots import _io, _style
from sacnn.plots._blocks import block_text, chain_arrow, colour, finish_chain

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig2"


def draw_chain(ax, spec, title: str) -> None:
    """One architecture as a left-to-right chain of boxes on ``ax`` (axis off)."""
    rows = architecture_layers(spec)
    n = len(rows)
    width, gap = 1.2, 0.3
    for i, row in enumerate(rows):
        x = i * (width + gap)
        ax.add_patch(FancyBboxPatch((x, 0.0), width, 1.0, boxstyle="round,pad=0.02",
                                    fc=colour(row["kind"]), ec="0.3", lw=0.7))
        ax.text(x + width / 2, 0.5, block_text(row, spec), ha="center", va="center",
                fontsize=6)
        if i < n - 1:
            chain_arrow(ax, x, width, gap)
    ax.set_xlim(-0.1, n * (width + gap))
    finish_chain(ax, title, fontsize=8)


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    models = _io.models(params, NAME)
    archs = _io.need(params, NAME, "params", "architectures")
    with _style.styled():
        n_max = max(len(_io.need(archs, NAME, "params['architectures']", m)["layers"])
                    for m in models) + 2
        fig = _style.figure(max(6.0, 1.05 * n_max), 1.05 * len(models) + 0.45)
        axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
        for k, (ax, m) in enumerate(zip(axes, models, strict=True)):
            spec = spec_from_dict(str(archs[m].get("name", m)), archs[m])
            draw_chain(ax, spec, f"({chr(97 + k)}) {_io.label(params, m)}  "
                                 f"[{spec.name}, c={spec.channels}]")
            ax.set_xlim(-0.1, n_max * 1.5)
        fig.text(0.01, 0.0, "CPB: conv (no padding) → [2×2 max-pool] → batch norm → sigmoid → "
                 "Dropout2d.  SA: single-head attention over hypercolumns (+ BN, sigmoid).\n"
                 "Shapes: channels×height×width, read from the architecture specs.", fontsize=6,
                 va="bottom")
    return fig
