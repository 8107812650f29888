"""The paper's tables as HTML, laid out as the paper prints them, for the Snakemake report.

One self-contained page per table (``results/tables/<table>.html``, written beside the CSV by
``python -m sacnn.tables table --html ...``): the sites (Table 3: each data fraction of a site)
are column groups, each with CORR. +- SEM, the change relative to the baseline in percent
(ratio of the means, and beside it the mean of the per-neuron changes), PT_J and PT_S in
percent, and beside them the peak overlap in percent (the scale-free check, marked as not a
column of the paper). The highest CORR. of each group is bold, as in the paper. A cell with no
value shows "n/a" with a numbered note that says why (for PT and peak overlap the table's
``pt_note``: no prediction reached any top-k threshold, and 0 would not rank the models),
never "nan". The CSV keeps every column at full precision (k, hits, resolution of PT).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sacnn.experiment import is_pairs_table
from sacnn.fileio import write_atomic

#: the paper's caption of each table (ours where it has none)
TITLES = {
    "table1": "Table 1: Average Pearson correlation for the models of Fig. 2",
    "table2": "Table 2: Average Pearson correlation for models incrementally (Incr.) and "
              "simultaneously (Simul.) trained",
    "table3": "Table 3 (A.7): Average Pearson correlation for models trained at different "
              "data sizes",
    "tableA": "Appendix A.1-A.3: architecture comparisons, each row against its own "
              "reference (vs.)",
}

STYLE = """
body { font-family: "Helvetica Neue", Arial, sans-serif; font-size: 13px; color: #111;
       background: #fff; margin: 12px; }
h1 { font-size: 15px; margin: 0 0 8px 0; }
table { border-collapse: collapse; margin: 6px 0 10px 0; }
th, td { padding: 3px 8px; text-align: center; white-space: nowrap; }
thead tr.groups th { border-bottom: 1px solid #444; font-weight: 600; }
thead tr.columns th { border-bottom: 2px solid #111; font-weight: 600; }
table { border-top: 2px solid #111; border-bottom: 2px solid #111; }
td.model, th.model { text-align: left; }
th.group, td.group { border-left: 1px solid #bbb; }
.na { color: #a33; }
sup { font-size: 9px; }
ol.notes { font-size: 12px; color: #333; padding-left: 18px; max-width: 70em; }
p.legend { font-size: 12px; color: #333; max-width: 70em; }
"""


GROUP_START = ' class="group"'  # the left rule of a column group


class _Notes:
    """Numbered explanations of the empty cells, one number per distinct text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def cell(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        k = self.texts.index(text) + 1
        return (f'<span class="na" title="{html.escape(text)}">n/a<sup>{k}</sup></span>')

    def html(self) -> str:
        if not self.texts:
            return ""
        items = "".join(f"<li>{html.escape(t)}</li>" for t in self.texts)
        return f'<p class="legend">n/a: no value, because</p><ol class="notes">{items}</ol>'


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def note_segments(note: str, prefixes: Sequence[str]) -> dict[str, str]:
    """Split a row's ``pt_note`` ("<prefix>: text; <prefix>: text") by column-group prefix.

    The texts themselves contain "; ", so the split is at the known prefixes only.
    """
    if not isinstance(note, str) or not note:
        return {}
    starts: list[tuple[int, int, str]] = []
    for p in prefixes:
        for m in re.finditer(rf"(?:^|; ){re.escape(p)}: ", note):
            starts.append((m.start(), m.end(), p))
    starts.sort()
    out = {}
    for i, (_, end, p) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else len(note)
        out[p] = note[end:stop]
    return out


def _groups(df: pd.DataFrame, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(column prefix, heading) of each column group, in the table's order."""
    sites = [str(s) for s in spec["sites"]]
    fractions = spec.get("fractions")
    if fractions:
        groups = [(f"{s}_{f}", f"{_percent_of(f)} of {s}") for s in sites for f in fractions]
    else:
        groups = [(s, s) for s in sites]
    missing = [p for p, _ in groups if f"{p}_corr" not in df.columns]
    if missing:
        raise ValueError(f"table {spec.get('table', '')!r}: no column {missing[0]}_corr for "
                         f"the spec's sites/fractions (columns: {list(df.columns)})")
    return groups


def _percent_of(fraction: str) -> str:
    return f"{fraction[1:]} %" if re.fullmatch(r"f\d+", str(fraction)) else str(fraction)


def _corr_cell(row: Mapping[str, Any], p: str, notes: _Notes) -> str:
    corr, sem = row[f"{p}_corr"], row.get(f"{p}_corr_sem")
    if not _finite(corr):
        n_undef = row.get(f"{p}_n_undefined", 0)
        return notes.cell(f"CORR.: no neuron has a defined correlation ({int(n_undef)} "
                          "undefined: a constant prediction or response)")
    if not _finite(sem):
        return f"{float(corr):.3f} &plusmn; " + notes.cell(
            "SEM: needs at least two neurons with a defined correlation")
    return f"{float(corr):.3f} &plusmn; {float(sem):.3f}"


def _delta_cell(value: Any, notes: _Notes, what: str) -> str:
    if not _finite(value):
        return notes.cell(what)
    v = float(value)
    return "0.0 %" if v == 0 else f"{v:+.1f} %"


def _pt_cell(row: Mapping[str, Any], p: str, stat: str, segments: Mapping[str, str],
             notes: _Notes) -> str:
    value = row.get(f"{p}_{stat}")
    if _finite(value):
        return f"{float(value):.3f}"
    text = segments.get(p)
    if not text:
        name = {"pt_j": "PT_J", "pt_s": "PT_S"}.get(stat, stat.replace("_", " "))
        text = f"{name}: no neuron has a defined value"
    return notes.cell(text)


def _uniform(df: pd.DataFrame, column: str) -> Any:
    values = df[column].dropna().unique() if column in df else []
    return values[0] if len(values) == 1 else None


def _header(groups: list[tuple[str, str]], stats: list[tuple[str, str]],
            show_n: Mapping[str, bool], n_const: Mapping[str, Any], appendix: bool
            ) -> tuple[str, str]:
    """The two header rows: the lead columns and a group per site (and fraction), then
    each group's columns."""
    lead = ["Section", "Model", "vs."] if appendix else ["Model"]
    head1 = "".join(f'<th class="model" rowspan="2">{h}</th>' for h in lead)
    head2 = ""
    for p, title in groups:
        width = len(stats) + show_n[p]
        n_text = "" if show_n[p] else f" (n = {int(n_const[p])} neurons)"
        head1 += (f'<th class="group" colspan="{width}">{html.escape(title)}'
                  f"{html.escape(n_text)}</th>")
        cols = [h for _, h in stats] + (["n"] if show_n[p] else [])
        head2 += "".join(f"<th{GROUP_START if i == 0 else ''}>{h}</th>"
                         for i, h in enumerate(cols))
    return head1, head2


def _row(row: pd.Series, prefixes: list[str], appendix: bool, per_neuron: bool,
         show_n: Mapping[str, bool], best: Mapping[str, Any], notes: _Notes) -> str:
    """One model's row: its lead cells, then each group's cells (notes numbered in order)."""
    segments = note_segments(row.get("pt_note", ""), prefixes)
    cells = []
    if appendix:
        cells += [html.escape(str(row["section"])), html.escape(str(row["model"])),
                  html.escape(str(row["versus"]))]
    else:
        cells.append(f'<span title="{html.escape(str(row.get("key", "")))}">'
                     f'{html.escape(str(row["model"]))}</span>')
    lead_html = "".join(f'<td class="model">{c}</td>' for c in cells)
    group_html = ""
    for p in prefixes:
        corr = _corr_cell(row, p, notes)
        if best.get(p) is not None and _finite(row[f"{p}_corr"]) \
                and float(row[f"{p}_corr"]) == best[p]:
            corr = f"<b>{corr}</b>"
        values = [corr, _delta_cell(
            row.get(f"{p}_delta_pct"), notes,
            "Δ: the reference's CORR. is 0 or undefined, so there is no relative "
            "change")]
        if per_neuron:
            values.append(_delta_cell(
                row.get(f"{p}_delta_pct_neuron"), notes,
                "Δ per neuron: no neuron has a defined correlation under both models with "
                "a non-zero reference"))
        values += [_pt_cell(row, p, stat, segments, notes)
                   for stat in ("pt_j", "pt_s", "peak_overlap")]
        if show_n[p]:
            values.append(str(int(row[f"{p}_n"])) if _finite(row[f"{p}_n"]) else "0")
        group_html += "".join(f"<td{GROUP_START if i == 0 else ''}>{v}</td>"
                              for i, v in enumerate(values))
    return f"<tr>{lead_html}{group_html}</tr>\n"


def _legend(name: str, reference: str, per_neuron: bool, undefined: list[str],
            appendix: bool) -> str:
    """What every column means, under the table."""
    return (
        "CORR.: mean Pearson correlation over neurons between predicted and recorded "
        "validation responses, &plusmn; its SEM. "
        f"&Delta;: change of the mean CORR. relative to {html.escape(reference)}, as the "
        "ratio of the means"
        + ("; &Delta; per neuron: mean of the per-neuron relative changes (the two differ "
           "where gains are uneven across neurons, and the per-neuron mean is dominated by "
           "neurons whose reference correlation is near 0, where a small change is a large "
           "relative one; see docs/reproduction-notes.md)"
           if per_neuron else "")
        + ". PT<sub>J</sub>, PT<sub>S</sub>: mean peak-tuning indices in percent, as the paper "
        "prints them (they compare predicted with recorded magnitudes, so they move with the "
        "prediction's scale)"
        + "; peak overlap<sup>&dagger;</sup>: the share of each neuron's recorded top-k "
        "images that are among its prediction's top k, mean in percent, unchanged by the "
        "prediction's scale: our scale-free check beside PT, not a column of the paper"
        + ". n: neurons with a defined correlation"
        + (f" (undefined, left out: {html.escape(', '.join(undefined))})" if undefined else "")
        + ("." if appendix else "; bold: the highest CORR. of the column.")
        + f" Full precision, PT's top-k, hits and resolution: results/{html.escape(name)}.csv."
    )


def render_table(df: pd.DataFrame, spec: Mapping[str, Any]) -> str:
    """One of the paper's tables (a :func:`sacnn.tables.build_table` frame) as an HTML page.

    ``spec`` is the table's spec (or the ``spec`` of its JSON sidecar): ``table``, ``sites``,
    ``fractions`` (Table 3), ``baseline`` and ``labels`` (Tables 1-3) or ``rows`` (appendix).
    """
    name = str(spec.get("table", ""))
    appendix = is_pairs_table(spec)
    groups = _groups(df, spec)
    labels = spec.get("labels") or {}
    baseline = None if appendix else labels.get(spec["baseline"], spec["baseline"])
    per_neuron = all(f"{p}_delta_pct_neuron" in df.columns for p, _ in groups)
    notes = _Notes()
    delta_head = "&Delta; vs. (%)" if appendix else f"&Delta; {html.escape(baseline)} (%)"
    stats = [("corr", "CORR. &plusmn; SEM"), ("delta_pct", delta_head)]
    if per_neuron:
        stats.append(("delta_pct_neuron", "&Delta; per neuron (%)"))
    stats += [("pt_j", "PT<sub>J</sub> (%)"), ("pt_s", "PT<sub>S</sub> (%)"),
              ("peak_overlap", "peak overlap<sup>&dagger;</sup> (%)")]
    n_const = {p: _uniform(df, f"{p}_n") for p, _ in groups}
    show_n = {p: n_const[p] is None for p, _ in groups}
    head1, head2 = _header(groups, stats, show_n, n_const, appendix)
    best = {}
    if not appendix:
        for p, _ in groups:
            col = pd.to_numeric(df[f"{p}_corr"], errors="coerce")
            best[p] = col.max() if col.notna().any() else None
    prefixes = [p for p, _ in groups]
    body = "".join(_row(row, prefixes, appendix, per_neuron, show_n, best, notes)
                   for _, row in df.iterrows())
    undefined = [f"{p}: {int(v)}" for p in prefixes
                 if _finite(v := _uniform(df, f"{p}_n_undefined")) and int(v) > 0]
    reference = ("each row's model against the model in its vs. column" if appendix
                 else f"{baseline} (same site{' and fraction' if spec.get('fractions') else ''})")
    legend = _legend(name, reference, per_neuron, undefined, appendix)
    title = TITLES.get(name, name)
    return _page(title, f"<table><thead><tr class=\"groups\">{head1}</tr>"
                        f"<tr class=\"columns\">{head2}</tr></thead><tbody>{body}</tbody>"
                        f"</table><p class=\"legend\">{legend}</p>{notes.html()}")


def render_parameters(df: pd.DataFrame) -> str:
    """The parameter table (:func:`sacnn.tables.parameters_table`) as an HTML page."""
    notes = _Notes()
    heads = {"architecture": "Architecture", "channels": "Channels", "layers": "Layers",
             "readout": "Readout", "parameters": "Parameters",
             "parameters_released_code": "Parameters (released code)",
             "paper_channels": "Channels (paper)", "paper_parameters": "Parameters (paper widths)"}
    cols = [c for c in heads if c in df.columns] + [c for c in df.columns if c not in heads]
    head = "".join(f"<th>{html.escape(heads.get(c, c))}</th>" for c in cols)
    body = ""
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c.startswith("paper_") and (v is None or pd.isna(v)):
                cells.append(notes.cell("not one of the paper's named architectures, so the "
                                        "paper gives no width or count to compare"))
            elif v is None or (not isinstance(v, str) and pd.isna(v)):
                cells.append(notes.cell(f"{c}: not recorded"))
            elif isinstance(v, float) and v.is_integer():
                cells.append(f"{int(v):,}")
            elif isinstance(v, (int, float)):
                cells.append(f"{v:,}")
            else:
                cells.append(html.escape(str(v)))
        body += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>\n"
    legend = ("Parameter counts of the architectures this run trained (its widths), beside "
              "the counts at the paper's widths, to check the parameter matching.")
    return _page("Parameter counts", f"<table><thead><tr class=\"columns\">{head}</tr></thead>"
                                     f"<tbody>{body}</tbody></table>"
                                     f"<p class=\"legend\">{legend}</p>{notes.html()}")


def _page(title: str, content: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n{content}\n</body></html>\n")


def write_html(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically (a reader never sees half a page)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
