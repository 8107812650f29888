"""Shared look of the figures: a figure factory, the style context and model colours."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import seaborn as sns
from matplotlib.figure import Figure

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,
}

#: Recorded responses are always drawn in this colour.
REAL = "black"
#: The FCL decomposition (paper Fig. 7): centre green, surround pink, prediction orange.
CENTRE, SURROUND, PREDICTION = "#2ca02c", "#e377c2", "#ff7f0e"


def styled():
    """Context manager with the project rcParams; wrap a figure's whole construction."""
    return mpl.rc_context(RC)


def figure(width: float, height: float) -> Figure:
    """A new figure of ``width`` x ``height`` inches, independent of pyplot (no display)."""
    return Figure(figsize=(width, height), layout="constrained")


def model_colours(models: Sequence[str]) -> dict[str, tuple]:
    """One colour-blind-safe colour per model, in the given model order."""
    palette = sns.color_palette("colorblind", max(len(models), 1))
    return {m: palette[i % len(palette)] for i, m in enumerate(models)}


def panel_label(ax, text: str) -> None:
    """A bold panel letter above the top-left corner of ``ax``."""
    ax.text(0.0, 1.02, text, transform=ax.transAxes, fontweight="bold", va="bottom",
            ha="left")
