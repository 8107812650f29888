"""The experiment matrix of a workflow config: which (site, model, fraction) cells are trained.

One home for what the workflow (``workflow/rules/common.smk``) and the cost projection
(``sacnn.training.cost``) both need to know about a config: the cells each table and figure
reads, the incremental chain a model starts from, and the training jobs they imply. Pure
config logic: no torch, no data files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TABLES = ("table1", "table2", "table3", "tableA")
FIGURE_NAMES = ("fig1b", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9",
                "fig10")

Cell = tuple[str, str, str]  # (site, model, fraction such as "f100")


class ExperimentConfigError(ValueError):
    """A config whose experiment matrix does not hold together; the message names the key."""


def table_cells(config: Mapping[str, Any], table: str) -> list[Cell]:
    """(site, model, fraction) cells a table reads."""
    spec = config["experiments"][table]
    if table == "tableA":
        models = [m for row in spec["rows"] for m in (row["model"], row["versus"])]
    else:
        models = [*spec["models"], spec["baseline"]]
    fractions = spec.get("fractions") or [spec.get("fraction", "f100")]
    return [(s, m, f) for s in spec["sites"] for m in dict.fromkeys(models) for f in fractions]


def figure_site(config: Mapping[str, Any]) -> str:
    return config["figures"].get("site") or config["experiments"]["table1"]["sites"][0]


def figures(config: Mapping[str, Any]) -> list[str]:
    """The paper figures the config asks for, in the paper's order."""
    return [f for f in FIGURE_NAMES if f in config["figures"]]


def figure_sites(config: Mapping[str, Any], fig: str) -> list[str]:
    return config["figures"][fig].get("sites") or [figure_site(config)]


def figure_models(config: Mapping[str, Any], fig: str) -> list[str]:
    return config["figures"][fig].get("models") or []


def all_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every (site, model, fraction) that some table or figure reads."""
    cells = [c for t in TABLES for c in table_cells(config, t)]
    figs = figures(config)
    cells += [(s, m, "f100") for f in figs for s in figure_sites(config, f)
              for m in figure_models(config, f)]
    if figs:
        example = config["figures"]["example_neuron"].get("models") or []
        cells += [(figure_site(config), m, "f100") for m in example]
    return list(dict.fromkeys(cells))


def model_chain(models: Mapping[str, Mapping[str, Any]], model: str) -> list[str]:
    """``model`` and the stages it is initialised from, earliest first."""
    out = [model]
    while models[out[0]].get("init_from"):
        parent = models[out[0]]["init_from"]
        if parent not in models:
            raise ExperimentConfigError(f"models.{out[0]}.init_from: unknown model {parent!r}")
        if parent in out:
            raise ExperimentConfigError(f"models.{model}: init_from forms a cycle {out}")
        out.insert(0, parent)
    return out


def trained_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every cell that is trained: those read, and the earlier stages they start from."""
    cells = []
    for s, m, f in all_cells(config):
        cells += [(s, stage, f) for stage in model_chain(config["models"], m)]
    return list(dict.fromkeys(cells))


def fraction_value(fraction: str) -> float:
    """``f25`` -> 0.25: the share of the training images a cell is trained on."""
    return int(fraction[1:]) / 100


def n_chunks(n_neurons: int, chunk_size: int) -> int:
    """Training jobs per (site, model, fraction)."""
    return math.ceil(n_neurons / chunk_size)
