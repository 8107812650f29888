"""The JSON the workflow hands to the tables and the figures, typed once.

``sacnn.plan.WorkflowPlan`` writes these (``table_spec``, ``figure_inputs``,
``figure_params``, ``claims_spec``); ``sacnn.tables`` and ``sacnn.plots`` read them.
"""

from __future__ import annotations

from typing import Any, TypedDict


class TableSpec(TypedDict, total=False):
    """``python -m sacnn.tables table --spec``: the table's config entry plus these keys."""

    table: str
    labels: dict[str, str]                           # model -> printed label
    metrics: dict[str, dict[str, dict[str, str]]]    # site -> model -> fraction -> metrics.csv
    provenance: dict[str, Any]


class FigureInputs(TypedDict):
    """A figure notebook's ``inputs_json``: every file it reads (all of them rule inputs)."""

    datasets: dict[str, str]                         # site -> dataset.nc
    predictions: dict[str, dict[str, str]]           # site -> model -> predictions.nc
    metrics: dict[str, dict[str, str]]               # site -> model -> metrics.csv
    weights: dict[str, dict[str, list[str]]]         # site -> model -> chunk weights.pt


class FigureParams(TypedDict, total=False):
    """A figure notebook's ``params_json``: these keys plus the figure's own config keys."""

    site: str
    sites: list[str]
    models: list[str]
    labels: dict[str, str]
    architectures: dict[str, dict[str, Any]]
    stages: dict[str, dict[str, Any]]                # model -> init_from / load / freeze
    fraction: str
    example_neuron: dict[str, Any]


CLAIMS_SETTINGS = ("bootstrap", "confidence", "alpha", "seed", "interval", "adjust",
                   "permutations", "margins")
"""Keys of the config's ``claims`` section passed to ``python -m sacnn.claims`` as they are."""
