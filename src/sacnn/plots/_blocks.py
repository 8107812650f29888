"""Block colours and box labels shared by the architecture diagrams (Fig. 2 and Fig. 3):
a layer's from its kind (``sacnn.models.kinds.LAYER_KINDS``), a readout's from its kind."""

from __future__ import annotations

from typing import Any

from matplotlib.patches import FancyArrowPatch

from sacnn.models.kinds import LAYER_KINDS, READOUT_KINDS

#: The input's and the readout's colours; a layer's is its kind's (``LAYER_KINDS``).
COLOURS = {"input": "#eeeeee", "readout": "#bcbddc"}


def colour(kind: str) -> str:
    """The fill of a block of ``kind`` (a row's ``kind``: input, a layer kind, readout)."""
    return COLOURS[kind] if kind in COLOURS else LAYER_KINDS[kind].colour


def block_text(row: dict[str, Any], spec, compact: bool = False) -> str:
    """The label of one block (a row of ``sacnn.analysis.architecture_layers``).

    ``compact`` drops the details that do not fit the smaller boxes of Fig. 3 (the word
    "conv", the attention width, the readout's input layout).
    """
    c, s = row["channels"], row["size"]
    shape = f"→ {c}×{s}×{s}"
    if row["kind"] == "input":
        return f"input\n1×{s}×{s}"
    if row["kind"] in LAYER_KINDS:  # its title, its own label if any, its output
        kind = LAYER_KINDS[row["kind"]]
        label = "" if kind.label is None else kind.label(row, compact) + "\n"
        return f"{kind.title}\n{label}{shape}"
    return _readout_text(row["readout"], row["inputs"], spec, compact)


def _readout_text(kind: str, inputs: int, spec, compact: bool) -> str:
    """The paper's readouts in detail; any other kind by its title and inputs."""
    c, size = spec.channels, spec.output_size
    if kind == "ctl":
        return f"CTL\n{c}→1" if compact else f"CTL\ncentre hypercol.\n{c}→1"
    if kind in ("fcl", "fcl_decomposed") and compact:
        return f"FCL\n{inputs}→1"
    if kind == "fcl":
        return f"FCL\n{c}×{size}×{size}\n= {inputs}→1"
    if kind == "fcl_decomposed":
        return (f"FCL (decomposed)\ncentre {c}→1\n"
                f"surround {c * (size * size - 1)}→1\ncombine 2→1")
    return f"{READOUT_KINDS[kind].title}\n{inputs}→1"


def chain_arrow(ax, x: float, width: float, gap: float) -> None:
    """The arrow from the block at ``x`` (``width`` wide) to the next, ``gap`` to its right."""
    ax.add_patch(FancyArrowPatch((x + width + 0.02, 0.5), (x + width + gap - 0.02, 0.5),
                                 arrowstyle="-|>", mutation_scale=7, lw=0.7, color="0.3"))


def finish_chain(ax, title: str, fontsize: float) -> None:
    """A chain's axes: the blocks' height, its title on the left, no axis."""
    ax.set_ylim(-0.1, 1.1)
    ax.set_title(title, loc="left", fontsize=fontsize)
    ax.set_axis_off()
