"""Reading a figure's inputs (the workflow's ``inputs`` / ``params`` dicts) with clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sacnn.analysis import choose_example_neuron
from sacnn.evaluation import read_predictions


class FigureInputError(KeyError):
    """A figure was called without an input or parameter it needs; the message names it."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def need(tree: Mapping[str, Any], figure: str, what: str, *keys: str) -> Any:
    """``tree[k0][k1]...``, or a FigureInputError naming the missing key path."""
    node: Any = tree
    path = what
    for k in keys:
        path += f"[{k!r}]"
        if not isinstance(node, Mapping) or k not in node:
            raise FigureInputError(f"{figure}: {path} is missing (this figure needs it)")
        node = node[k]
    return node


def sites(params: Mapping[str, Any], figure: str) -> list[str]:
    """``params['sites']``, else ``[params['site']]``."""
    if params.get("sites"):
        return [str(s) for s in params["sites"]]
    return [str(need(params, figure, "params", "site"))]


def models(params: Mapping[str, Any], figure: str) -> list[str]:
    got = need(params, figure, "params", "models")
    if not got:
        raise FigureInputError(f"{figure}: params['models'] is empty")
    return [str(m) for m in got]


def label(params: Mapping[str, Any], model: str) -> str:
    """The paper label of a model slug (the slug itself if no label is given)."""
    return str((params.get("labels") or {}).get(model, model))


def open_predictions(path: str | Path) -> xr.Dataset:
    """A merged predictions.nc, loaded into memory, closed and checked (dims neuron,
    val_image; an EvaluationError names the file otherwise)."""
    return read_predictions(path)


def predictions(inputs: Mapping[str, Any], figure: str, site: str,
                model_list: list[str]) -> dict[str, xr.Dataset]:
    return {m: open_predictions(need(inputs, figure, "inputs", "predictions", site, m))
            for m in model_list}


def metrics(inputs: Mapping[str, Any], figure: str, site_list: list[str],
            model_list: list[str], fraction: str | None = None,
            required: tuple[str, ...] = ()) -> pd.DataFrame:
    """The metrics.csv of each (site, model), concatenated; ``site`` and ``model`` columns
    are set from the keys, rows of other fractions are dropped when a fraction is given. A
    file without a ``required`` column is an error naming it."""
    frames = []
    for s in site_list:
        for m in model_list:
            path = need(inputs, figure, "inputs", "metrics", s, m)
            df = pd.read_csv(path)
            missing = [c for c in required if c not in df.columns]
            if missing:
                raise FigureInputError(f"{figure}: {path}: column(s) {missing} missing (written "
                                       "by an older sacnn): delete it and run snakemake again")
            df = df.assign(site=s, model=m, neuron=df["neuron"].astype(str))
            if fraction is not None and "fraction" in df:
                df = df[df["fraction"].astype(str) == str(fraction)]
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def example_rule_text(params: Mapping[str, Any]) -> str:
    """How the example neuron was picked, for a figure's title (``explicit``, or the rule)."""
    rule = dict(params.get("example_neuron") or {})
    name = rule.get("rule", "explicit" if "neuron" in rule else "highest_mean_corr")
    return "chosen explicitly" if name == "explicit" else f"picked by {name}"


def example_neuron(inputs: Mapping[str, Any], params: Mapping[str, Any], figure: str,
                   site: str, model_list: list[str]) -> str:
    """Resolve ``params['example_neuron']`` with the site's metrics (or, without them, its
    predictions) of ``model_list``; an explicit ``neuron`` needs neither."""
    rule = dict(params.get("example_neuron") or {})
    if rule.get("rule", "explicit" if "neuron" in rule else None) == "explicit":
        return str(need(rule, figure, "params['example_neuron']", "neuron"))
    rule_models = list(rule.get("models") or model_list
                       or (inputs.get("metrics") or {}).get(site)
                       or (inputs.get("predictions") or {}).get(site) or [])
    if site in (inputs.get("metrics") or {}):
        source: Any = metrics(inputs, figure, [site], rule_models, params.get("fraction"))
    elif site in (inputs.get("predictions") or {}):
        source = predictions(inputs, figure, site, rule_models)
    else:
        raise FigureInputError(f"{figure}: the example-neuron rule {rule.get('rule')!r} needs "
                               f"inputs['metrics'][{site!r}] or inputs['predictions'][{site!r}]"
                               " (or give params['example_neuron'] = {'neuron': id})")
    return choose_example_neuron(source, rule, rule_models)


def neuron_index(ids: Any, neuron: str, where: str) -> int:
    """Position of ``neuron`` in ``ids`` (compared as strings)."""
    ids = [str(i) for i in np.asarray(ids).tolist()]
    if neuron not in ids:
        raise FigureInputError(f"neuron {neuron!r} is not in {where}")
    return ids.index(neuron)
