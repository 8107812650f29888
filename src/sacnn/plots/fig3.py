"""Fig. 3: the incremental-learning chain (rf-CNN -> rf+sa-CNN*(Incr.) -> ff+sa-CNN*(Incr.FC1/FC2)).

Blocks are drawn from the specs (``params['architectures']``); which blocks a stage inherits
and freezes comes from ``params['stages'][model] = {init_from, load, freeze}`` (the models'
config entries, passed by the workflow; an empty entry is a model trained from scratch).
inputs: none. params: ``models`` (chain order), ``architectures``, ``labels``, ``stages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from sacnn.analysis import architecture_layers
from sacnn.models import spec_from_dict
from sacnn.plots import _io, _style
from sacnn.plots._blocks import COLOURS, block_text, chain_arrow, colour, finish_chain

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import FigureInputs, FigureParams

NAME = "fig3"

LOADED_EDGE = "#08306b"


def _pairs(load: Any) -> list[tuple[str, str]]:
    """``load`` as (source, destination) prefixes: a mapping, a list of names or of pairs."""
    if not load:
        return []
    if isinstance(load, Mapping):
        return [(str(k), str(v)) for k, v in load.items()]
    return [(str(x), str(x)) if isinstance(x, str) else (str(x[0]), str(x[1])) for x in load]


def _covered(group: str, prefixes: list[str]) -> bool:
    return any(group == p or group.startswith(p + ".") for p in prefixes)


def _box(ax, x, y, w, h, text, colour, frozen, loaded, fontsize=6) -> None:
    ax.add_patch(Rectangle((x, y), w, h, fc=colour, ec=LOADED_EDGE if loaded else "0.35",
                           lw=1.8 if loaded else 0.7, hatch="////" if frozen else None,
                           alpha=0.95))
    ax.text(x + w / 2, y + h / 2, text + ("\n(frozen)" if frozen else ""), ha="center",
            va="center", fontsize=fontsize,
            bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.5} if frozen else None)


def draw_stage(ax, spec, stage: Mapping[str, Any] | None, title: str) -> None:
    """One model of the chain, blocks hatched when frozen and outlined when inherited."""
    stage = stage or {}
    freeze = [str(f) for f in stage.get("freeze") or []]
    loaded = [dst for _, dst in _pairs(stage.get("load"))]
    rows = architecture_layers(spec)
    w, gap = 1.1, 0.3
    for i, row in enumerate(rows):
        x = i * (w + gap)
        group = row["group"]
        if row["kind"] == "readout" and row["readout"] == "fcl_decomposed":
            size = spec.output_size
            parts = [("readout.centre", f"FCL centre\n{spec.channels}→1"),
                     ("readout.surround", (f"surround {spec.channels * (size * size - 1)}→1\n"
                                           "+ combine 2→1"))]
            for k, (g, text) in enumerate(parts):
                frz = _covered("readout", freeze) or (
                    _covered(g, freeze) if g == "readout.centre" else
                    _covered(g, freeze) and _covered("readout.combine", freeze))
                _box(ax, x, 0.5 - 0.5 * k, w, 0.5, text, COLOURS["readout"], frz,
                     _covered(g, loaded) or _covered("readout", loaded), fontsize=5.5)
        else:
            frz = row["kind"] != "input" and _covered(group, freeze)
            _box(ax, x, 0.0, w, 1.0, block_text(row, spec, compact=True), colour(row["kind"]), frz,
                 row["kind"] != "input" and _covered(group, loaded))
        if i < len(rows) - 1:
            chain_arrow(ax, x, w, gap)
    finish_chain(ax, title, fontsize=7.5)


def make(inputs: FigureInputs, params: FigureParams) -> Figure:
    models = _io.models(params, NAME)
    archs = _io.need(params, NAME, "params", "architectures")
    stages = _io.need(params, NAME, "params", "stages")
    letters = {m: chr(97 + k) for k, m in enumerate(models)}
    with _style.styled():
        n_max = max(len(_io.need(archs, NAME, "params['architectures']", m)["layers"])
                    for m in models) + 2
        fig = _style.figure(max(6.5, 1.1 * n_max + 0.5), 1.15 * len(models) + 0.6)
        axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
        for ax, m in zip(axes, models, strict=True):
            spec = spec_from_dict(str(archs[m].get("name", m)), archs[m])
            stage = stages.get(m) or {}
            parent = stage.get("init_from")
            if parent:
                src = f"({letters[parent]})" if parent in letters else _io.label(params, parent)
                how = ", ".join(s if s == d else f"{s}→{d}" for s, d in _pairs(stage.get("load")))
                note = f" — starts from {src}: loads {how or 'nothing'}"
            else:
                note = " — trained from scratch"
            draw_stage(ax, spec, stage, f"({letters[m]}) {_io.label(params, m)}{note}")
            ax.set_xlim(-0.1, n_max * 1.4)
        handles = [Patch(fc="white", ec="0.35", label="trained in this stage"),
                   Patch(fc="white", ec="0.35", hatch="////", label="frozen (not trained)"),
                   Patch(fc="white", ec=LOADED_EDGE, lw=1.8, label="initialised from the "
                                                                   "earlier stage")]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    return fig
