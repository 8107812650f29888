"""The paper's tables (1, 2, 3, appendix A) and the parameter table, from per-neuron metrics.

``python -m sacnn.tables table --spec '<json>' --out results/table1.csv --meta results/table1.json``
and ``python -m sacnn.tables parameters --spec '<json>' --out results/tables/parameters.csv``
(the workflow's ``table`` and ``parameter_table`` rules build the specs from config); with
``--html results/tables/<table>.html`` each also writes the table laid out as the paper prints
it (``sacnn.table_html``), which the Snakemake report shows.

Every table has one row per model, labelled with the paper's name (``model``) and the
config key (``key``), and for each site (and, in Table 3, each data fraction) the columns

=====================  ====================================================================
``<site>_corr``        mean Pearson r over the neurons with a defined correlation (CORR.)
``<site>_corr_sem``    its standard error (ddof = 1), the paper's SEM
``<site>_delta_pct``   (corr - corr of the baseline) / corr of the baseline x 100 (Delta, %):
                       the ratio of the population means
``<site>_delta_pct_neuron`` the mean over neurons of each neuron's relative change
                       (r - r_baseline) / |r_baseline| x 100, paired by neuron (neurons with
                       r_baseline = 0 or an undefined r left out); see reproduction notes
``<site>_pt_j``        mean PT_J in percent, as the paper prints it (0.232 = 0.232 %); empty
                       where no prediction reached any top-k threshold (see ``pt_note``)
``<site>_pt_s``        mean PT_S in percent (empty likewise)
``<site>_peak_overlap`` mean peak overlap in percent (:func:`sacnn.metrics.peak_overlap`):
                       the scale-free check beside PT, not a column of the paper; empty
                       where no prediction's top k held any recorded top image
``<site>_n``           neurons with a defined correlation
``<site>_n_undefined`` neurons whose correlation is undefined (left out of the means)
``<site>_pt_k``        top images per neuron that PT counts (1 % of the validation images)
``<site>_pt_j_hits``   top images, over all neurons, whose prediction reached the threshold
``<site>_pt_s_hits``   the same for PT_S (PT = hits / (neurons x k))
``<site>_peak_overlap_hits`` recorded top images found among the prediction's top k
``<site>_pt_resolution`` the smallest non-zero mean PT (or peak overlap) these neurons and
                       k can show (percent)
``pt_note``            why a row's PT (or peak overlap) cell is empty: no prediction reached
                       any threshold, so its PT would be 0, which is below the resolution
                       (with 10 neurons x k = 10 it is 1 %, above most of the paper's PT
                       values) and does not rank the models
=====================  ====================================================================

Table 3's columns are ``<site>_<fraction>_...`` (baseline at the same fraction). The appendix
table adds ``section`` (A.1-A.3) and ``versus`` (the row its delta compares with).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sacnn.evaluation import read_metrics
from sacnn.experiment import is_pairs_table
from sacnn.fileio import sha256_file, write_csv, write_json
from sacnn.metrics import peak_reach, summarize
from sacnn.provenance import code_version
from sacnn.settings import json_object_argument

if TYPE_CHECKING:  # the hand-off's one definition, written by the workflow's plan
    from sacnn.handoffs import TableSpec

STATS = ("corr", "corr_sem", "delta_pct", "delta_pct_neuron", "pt_j", "pt_s", "peak_overlap",
         "n", "n_undefined", "pt_k", "pt_j_hits", "pt_s_hits", "peak_overlap_hits",
         "pt_resolution")

#: the peak measures: metrics.csv column -> name in the notes (fractions per neuron, percent
#: in the tables; PT_J and PT_S are the paper's, peak overlap its scale-free check)
PEAK_MEASURES = {"pt_j": "PT_J", "pt_s": "PT_S", "peak_overlap": "peak overlap"}


class TableError(ValueError):
    """A table spec or metrics file that cannot make the table; the message says which."""


def model_summary(df: pd.DataFrame) -> dict[str, float]:
    """Population means of one model's metrics.csv rows (PT and peak overlap in percent),
    and how many top images those means are made of (:func:`sacnn.metrics.peak_reach`)."""
    corr = summarize(df["corr"].to_numpy(dtype=float))
    out: dict[str, float] = {"corr": corr.mean, "corr_sem": corr.sem, "n": corr.n,
                             "n_undefined": corr.n_undefined}
    for col in PEAK_MEASURES:
        values = df[col].to_numpy(dtype=float)
        reach = peak_reach(values, df["pt_k"].to_numpy())
        # a mean of 0 made of no hit at all is below the measure's resolution, not a
        # finding: the cell stays empty and pt_note says why (hits, k, resolution stay)
        out[col] = summarize(values).mean * 100.0 if reach.hits else math.nan
        out[f"{col}_hits"] = reach.hits
        if col == "pt_j":  # every peak measure counts the same k images of the same neurons
            out["pt_k"], out["pt_resolution"] = reach.k, reach.resolution * 100.0
    return out


def pt_note(summary: dict[str, float], where: str, n_images: int) -> str:
    """Why a PT or peak-overlap cell is empty: no prediction of any neuron reached its top-k
    threshold (PT), or held any of its recorded top-k images among its own top k."""
    k = summary["pt_k"]
    if not k:
        return ""
    parts = []
    empty = [PEAK_MEASURES[c] for c in ("pt_j", "pt_s") if not summary[f"{c}_hits"]]
    if empty:
        parts.append(f"{' and '.join(empty)} left empty: PT = 0 because no prediction "
                     f"reached its neuron's top-{k} threshold (top 1 % of {n_images} "
                     "validation images)")
    if not summary["peak_overlap_hits"]:
        parts.append(f"peak overlap left empty: no prediction's top {k} held any of its "
                     f"neuron's recorded top {k}")
    if not parts:
        return ""
    return (f"{where}: {'; '.join(parts)}; these {summary['n'] + summary['n_undefined']} "
            f"neurons can only show a mean of 0 or >= {summary['pt_resolution']:.2f} %, so 0 "
            "would not rank the models")


def delta_pct(value: float, baseline: float) -> float:
    """Relative change in percent; NaN when the baseline is 0 or undefined."""
    if not math.isfinite(baseline) or baseline == 0:
        return math.nan
    return (value - baseline) / abs(baseline) * 100.0


def delta_pct_per_neuron(df: pd.DataFrame, base: pd.DataFrame) -> float:
    """Mean of the per-neuron relative changes of ``corr`` in percent, paired by neuron id."""
    a = df.assign(neuron=df["neuron"].astype(str)).set_index("neuron")["corr"]
    b = base.assign(neuron=base["neuron"].astype(str)).set_index("neuron")["corr"]
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    both = both[both["b"] != 0]
    if both.empty:
        return math.nan
    return float(((both["a"] - both["b"]) / both["b"].abs()).mean() * 100.0)


class _Summaries:
    """Each (site, model, fraction)'s metrics and their summary, read once per table (a
    baseline or a ``versus`` model is compared with many rows)."""

    def __init__(self, metrics: Mapping[str, Any]) -> None:
        self.metrics = metrics
        self._cache: dict[tuple[str, str, str], tuple[pd.DataFrame, dict[str, float]]] = {}

    def get(self, site: str, model: str, fraction: str
            ) -> tuple[pd.DataFrame, dict[str, float]]:
        key = (site, model, fraction)
        if key not in self._cache:
            df = _load(self.metrics, site, model, fraction)
            self._cache[key] = df, model_summary(df)
        return self._cache[key]


def _load(metrics: Mapping[str, Any], site: str, model: str, fraction: str) -> pd.DataFrame:
    try:
        path = metrics[site][model][fraction]
    except KeyError:
        raise TableError(f"no metrics for site {site!r}, model {model!r}, fraction "
                         f"{fraction!r} in the spec") from None
    return read_metrics(path)


def _cells(summary: dict[str, float], base: dict[str, float], prefix: str,
           df: pd.DataFrame, base_df: pd.DataFrame) -> dict[str, float]:
    row = dict(summary)
    row["delta_pct"] = delta_pct(summary["corr"], base["corr"])
    row["delta_pct_neuron"] = delta_pct_per_neuron(df, base_df)
    return {f"{prefix}_{k}": row[k] for k in STATS}


def _add_note(row: dict[str, Any], summary: dict[str, float], prefix: str,
              df: pd.DataFrame) -> None:
    note = pt_note(summary, prefix, int(df["n_val_images"].max()))
    if note:
        row["pt_note"] = "; ".join(filter(None, [row.get("pt_note", ""), note]))


def models_table(spec: TableSpec) -> pd.DataFrame:
    """Tables 1-3: rows = ``spec['models']``, delta vs ``spec['baseline']`` per site (and
    per fraction when ``spec['fractions']`` is given)."""
    labels = spec.get("labels") or {}
    summaries = _Summaries(spec["metrics"])
    fractions = spec.get("fractions")
    per_fraction = bool(fractions)
    fractions = fractions or [spec.get("fraction", "f100")]
    rows = []
    for model in spec["models"]:
        row: dict[str, Any] = {"model": labels.get(model, model), "key": model, "pt_note": ""}
        for site in spec["sites"]:
            for fraction in fractions:
                prefix = f"{site}_{fraction}" if per_fraction else site
                df, own = summaries.get(site, model, fraction)
                base_df, base = summaries.get(site, spec["baseline"], fraction)
                row.update(_cells(own, base, prefix, df, base_df))
                _add_note(row, own, prefix, df)
        rows.append(row)
    return pd.DataFrame(rows)


def appendix_table(spec: TableSpec) -> pd.DataFrame:
    """Appendix table: one row per ``spec['rows']`` entry, delta vs its ``versus`` model."""
    labels = spec.get("labels") or {}
    fraction = spec.get("fraction", "f100")
    summaries = _Summaries(spec["metrics"])
    rows = []
    for entry in spec["rows"]:
        model, versus = entry["model"], entry["versus"]
        row: dict[str, Any] = {"section": entry["section"], "model": labels.get(model, model),
                               "key": model, "versus": labels.get(versus, versus),
                               "pt_note": ""}
        for site in spec["sites"]:
            df, own = summaries.get(site, model, fraction)
            base_df, base = summaries.get(site, versus, fraction)
            row.update(_cells(own, base, site, df, base_df))
            _add_note(row, own, site, df)
        rows.append(row)
    return pd.DataFrame(rows)


def build_table(spec: TableSpec) -> pd.DataFrame:
    """Dispatch on the spec: ``rows`` -> appendix table, otherwise a models table."""
    return appendix_table(spec) if is_pairs_table(spec) else models_table(spec)


ROUNDING = {"corr": 4, "corr_sem": 4, "delta_pct": 2, "delta_pct_neuron": 2, "pt_j": 3,
            "pt_s": 3, "peak_overlap": 3, "pt_resolution": 3}


def rounded(df: pd.DataFrame) -> pd.DataFrame:
    """Round for printing (CORR 4 decimals, delta 2, PT and peak overlap 3); counts stay
    integers."""
    out = df.copy()
    for col in out.columns:
        # longest suffix first: "_corr_sem" must not be taken for "_corr"
        for stat in sorted(ROUNDING, key=len, reverse=True):
            if col.endswith(f"_{stat}"):
                out[col] = out[col].astype(float).round(ROUNDING[stat])
                break
    return out


def _metric_paths(spec: Mapping[str, Any]) -> list[str]:
    return sorted({p for site in spec["metrics"].values() for model in site.values()
                   for p in model.values()})


def sidecar(spec: Mapping[str, Any], df: pd.DataFrame) -> dict[str, Any]:
    """What made a table: its spec, the config sections, the seeds, the code, the inputs."""
    paths = _metric_paths(spec)
    return {
        "table": spec.get("table", ""),
        "columns": list(df.columns),
        "units": {"corr": "Pearson r", "delta_pct": "percent of the baseline's corr",
                  "pt_j": "percent (mean PT_J x 100)", "pt_s": "percent (mean PT_S x 100)",
                  "peak_overlap": "percent (mean peak_overlap x 100; scale-free, not in the "
                                  "paper)",
                  "pt_k": "images per neuron", "pt_j_hits": "images", "pt_s_hits": "images",
                  "peak_overlap_hits": "images",
                  "pt_resolution": "percent (100 / (neurons x pt_k))"},
        "spec": {k: v for k, v in spec.items() if k not in ("metrics", "provenance")},
        "provenance": spec.get("provenance", {}),
        "code_version": code_version(),
        "inputs": {p: sha256_file(p) for p in paths},
    }


def write_table(spec: TableSpec, out: str | Path, meta: str | Path | None = None,
                html: str | Path | None = None) -> pd.DataFrame:
    """Build the table, write it as CSV (and the JSON sidecar, and the paper-layout HTML
    page); returns the unrounded table."""
    df = build_table(spec)
    write_csv(rounded(df), out)
    if meta is not None:
        write_json(sidecar(spec, df), meta)
    if html is not None:
        from sacnn.table_html import render_table, write_html

        write_html(render_table(df, spec), html)
    return df


def parameters_table(spec: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Parameter counts of the architectures a run uses (its widths), beside the paper's.

    ``spec`` maps an architecture name to its effective spec (``ArchitectureSpec.to_dict()``).
    """
    from sacnn.models import NAMED_ARCHITECTURES, parameter_table, spec_from_dict

    specs = {name: spec_from_dict(name, d) for name, d in spec.items()}
    df = parameter_table(specs)
    paper = parameter_table({n: NAMED_ARCHITECTURES[n] for n in specs if n in NAMED_ARCHITECTURES})
    paper = paper.set_index("architecture")
    df["paper_channels"] = [paper["channels"].get(n, pd.NA) for n in df["architecture"]]
    df["paper_parameters"] = [paper["parameters"].get(n, pd.NA) for n in df["architecture"]]
    return df


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.tables") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="one of the paper's tables from metrics.csv files")
    t.add_argument("--spec", required=True, type=json_object_argument, help="JSON: sites, models/rows, baseline, "
                   "fraction(s), labels, metrics {site: {model: {fraction: path}}}, provenance")
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--meta", type=Path, help="JSON sidecar (config, seeds, code, inputs)")
    t.add_argument("--html", type=Path, help="the table in the paper's layout (HTML page)")
    q = sub.add_parser("parameters", help="parameter counts of the architectures used")
    q.add_argument("--spec", required=True, type=json_object_argument,
                   help="JSON: {name: architecture spec dict}")
    q.add_argument("--out", required=True, type=Path)
    q.add_argument("--html", type=Path, help="the table as an HTML page")
    args = p.parse_args(argv)
    spec = args.spec
    if args.command == "table":
        df = write_table(spec, args.out, args.meta, args.html)
    else:
        df = parameters_table(spec)
        write_csv(df, args.out)
        if args.html is not None:
            from sacnn.table_html import render_parameters, write_html

            write_html(render_parameters(df), args.html)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(rounded(df) if args.command == "table" else df)
    return 0


if __name__ == "__main__":
    sys.exit(main())
