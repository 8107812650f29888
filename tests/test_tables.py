"""sacnn.tables: the paper's tables from metrics.csv files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sacnn.evaluation import METRIC_COLUMNS
from sacnn.tables import (
    build_table,
    delta_pct,
    main,
    model_summary,
    parameters_table,
    rounded,
    write_table,
)


def metrics_csv(path, corr, pt_j=0.1, pt_s=0.2, site="s", model="m", fraction="f100",
                peak_overlap=1.0):
    n = len(corr)
    df = pd.DataFrame({
        "site": site, "model": model, "label": model, "fraction": fraction,
        "neuron": range(n), "corr": corr, "pt_j": pt_j, "pt_s": pt_s,
        "peak_overlap": peak_overlap, "feve": 0.0,
        "cc_norm": 0.0, "best_epoch": 1, "n_val_images": 100, "pt_k": 1,
    })[METRIC_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def spec(tmp_path):
    metrics = {}
    values = {"base": [0.4, 0.5, 0.6], "sa": [0.5, 0.6, np.nan]}
    for site in ("A", "B"):
        for model, corr in values.items():
            for fraction in ("f100", "f25"):
                path = tmp_path / site / model / fraction / "metrics.csv"
                metrics.setdefault(site, {}).setdefault(model, {})[fraction] = metrics_csv(
                    path, corr, pt_j=[0.1, 0.0, 0.2], site=site, model=model, fraction=fraction)
    return {"table": "table1", "sites": ["A", "B"], "models": ["base", "sa"],
            "baseline": "base", "fraction": "f100", "labels": {"base": "ff-CNN", "sa": "ff+sa"},
            "metrics": metrics, "provenance": {"seeds": {"training": 0}}}


def test_model_summary_and_delta():
    df = pd.DataFrame({"corr": [0.4, 0.6, np.nan], "pt_j": [0.1, 0.3, 0.2],
                       "pt_s": [0.2, 0.2, 0.2], "peak_overlap": [0.5, 0.3, np.nan],
                       "pt_k": 10})
    s = model_summary(df)
    assert s["corr"] == pytest.approx(0.5) and s["n"] == 2 and s["n_undefined"] == 1
    assert s["corr_sem"] == pytest.approx(np.std([0.4, 0.6], ddof=1) / np.sqrt(2))
    assert s["pt_j"] == pytest.approx(20.0) and s["pt_s"] == pytest.approx(20.0)  # percent
    assert s["peak_overlap"] == pytest.approx(40.0) and s["peak_overlap_hits"] == 8
    assert delta_pct(0.416, 0.393) == pytest.approx(5.852, abs=1e-3)
    assert np.isnan(delta_pct(0.4, 0.0))


def test_models_table_rows_and_columns(spec):
    df = build_table(spec)
    assert list(df["model"]) == ["ff-CNN", "ff+sa"] and list(df["key"]) == ["base", "sa"]
    row = df.set_index("key").loc["sa"]
    assert row["A_corr"] == pytest.approx(0.55)
    assert row["A_delta_pct"] == pytest.approx(10.0)
    assert row["A_n_undefined"] == 1 and row["A_n"] == 2
    assert df.set_index("key").loc["base", "B_delta_pct"] == 0.0


def test_fraction_table_has_columns_per_site_and_fraction(spec):
    spec = dict(spec, sites=["A"], fractions=["f25", "f100"])
    df = build_table(spec)
    assert {"A_f25_corr", "A_f25_delta_pct", "A_f100_pt_s"} <= set(df.columns)


def test_appendix_table_compares_each_row_with_its_versus(spec):
    spec = dict(spec, rows=[{"section": "A.1", "model": "sa", "versus": "base"},
                            {"section": "A.2", "model": "base", "versus": "base"}])
    df = build_table(spec)
    assert list(df["section"]) == ["A.1", "A.2"] and list(df["versus"]) == ["ff-CNN"] * 2
    assert df["A_delta_pct"].tolist() == pytest.approx([10.0, 0.0])


def test_missing_metrics_are_named(spec):
    spec = dict(spec, models=["base", "nope"])
    with pytest.raises(ValueError, match="nope"):
        build_table(spec)


def test_write_table_and_sidecar(spec, tmp_path):
    out, meta = tmp_path / "t" / "table1.csv", tmp_path / "t" / "table1.json"
    write_table(spec, out, meta)
    df = pd.read_csv(out)
    assert df.loc[0, "A_corr"] == 0.5
    side = json.loads(meta.read_text())
    assert side["code_version"] and side["provenance"]["seeds"]["training"] == 0
    assert len(side["inputs"]) == 8 and "metrics" not in side["spec"]


def test_rounding_keeps_counts_and_rounds_by_stat():
    df = pd.DataFrame({"A_corr": [0.123456], "A_corr_sem": [0.0123456], "A_delta_pct": [1.23456],
                       "A_pt_j": [0.123456], "A_n": [3]})
    r = rounded(df)
    assert r.loc[0, "A_corr"] == 0.1235 and r.loc[0, "A_corr_sem"] == 0.0123
    assert r.loc[0, "A_delta_pct"] == 1.23 and r.loc[0, "A_pt_j"] == 0.123
    assert r.loc[0, "A_n"] == 3


def test_parameters_table_shows_run_and_paper_widths(tmp_path):
    from sacnn.models import NAMED_ARCHITECTURES

    narrow = NAMED_ARCHITECTURES["ff-CNN"].to_dict() | {"channels": 8}
    df = parameters_table({"ff-CNN": narrow})
    row = df.iloc[0]
    assert row["channels"] == 8 and row["paper_channels"] == 32
    assert row["parameters"] < row["paper_parameters"]
    out = tmp_path / "p.csv"
    assert main(["parameters", "--spec", json.dumps({"ff-CNN": narrow}), "--out", str(out)]) == 0
    assert pd.read_csv(out).loc[0, "architecture"] == "ff-CNN"


def test_pt_says_how_many_top_images_it_is_made_of_and_why_it_is_zero(tmp_path):
    """A PT of 0 made of 30 chances (10 neurons x k = 3) is 'below resolution', not a finding;
    the table says so in pt_note and gives hits, k and the resolution."""
    metrics = {"A": {}}
    for model, pt_j in (("zero", [0.0] * 10), ("some", [1 / 3] + [0.0] * 9)):
        path = tmp_path / model / "metrics.csv"
        df = pd.DataFrame({
            "site": "A", "model": model, "label": model, "fraction": "f100",
            "neuron": range(10), "corr": np.linspace(0.1, 0.5, 10), "pt_j": pt_j,
            "pt_s": pt_j, "peak_overlap": pt_j, "feve": 0.0, "cc_norm": 0.0, "best_epoch": 1,
            "n_val_images": 300, "pt_k": 3})[METRIC_COLUMNS]
        path.parent.mkdir(parents=True)
        df.to_csv(path, index=False)
        metrics["A"][model] = {"f100": str(path)}
    spec = {"table": "table1", "sites": ["A"], "models": ["zero", "some"], "baseline": "zero",
            "fraction": "f100", "metrics": metrics}
    out = tmp_path / "t.csv"
    write_table(spec, out)
    t = pd.read_csv(out).set_index("key")
    assert t.loc["zero", "A_pt_k"] == 3 and t.loc["zero", "A_pt_j_hits"] == 0
    assert t.loc["zero", "A_pt_resolution"] == pytest.approx(100 / 30, abs=1e-3)
    assert "PT = 0 because no prediction reached" in t.loc["zero", "pt_note"]
    # the 0 is not printed as a finding: the cell is empty, the note says why
    assert pd.isna(t.loc["zero", "A_pt_j"]) and pd.isna(t.loc["zero", "A_pt_s"])
    assert pd.isna(t.loc["zero", "A_peak_overlap"]) and t.loc["zero", "A_peak_overlap_hits"] == 0
    assert "PT_J and PT_S left empty" in t.loc["zero", "pt_note"]
    assert "peak overlap left empty: no prediction's top 3 held any" in t.loc["zero", "pt_note"]
    assert "300 validation images" in t.loc["zero", "pt_note"] and "3.33 %" in t.loc["zero",
                                                                                   "pt_note"]
    assert t.loc["some", "A_pt_j_hits"] == 1 and pd.isna(t.loc["some", "pt_note"])
    assert t.loc["some", "A_pt_j"] == pytest.approx(100 / 30, abs=1e-3)
    assert t.loc["some", "A_peak_overlap"] == pytest.approx(100 / 30, abs=1e-3)


def test_delta_of_means_and_mean_of_per_neuron_deltas_are_both_offered():
    from sacnn.tables import delta_pct_per_neuron

    # two neurons: +100 % from a weak baseline, -10 % from a strong one
    base = pd.DataFrame({"neuron": [0, 1, 2], "corr": [0.1, 0.5, np.nan]})
    model = pd.DataFrame({"neuron": ["1", "0", "2"], "corr": [0.45, 0.2, 0.3]})  # other order
    assert delta_pct_per_neuron(model, base) == pytest.approx((100.0 - 10.0) / 2)
    # the ratio of the population means (what delta_pct reports) differs: 0.325 / 0.3
    assert delta_pct(0.325, 0.3) == pytest.approx(8.333, abs=1e-3)
    zero = pd.DataFrame({"neuron": [0], "corr": [0.0]})
    assert np.isnan(delta_pct_per_neuron(zero.assign(corr=0.2), zero))


def test_models_table_has_both_deltas(spec):
    df = build_table(spec).set_index("key")
    assert {"A_delta_pct", "A_delta_pct_neuron"} <= set(df.columns)
    assert df.loc["base", "A_delta_pct_neuron"] == 0.0


# -- the tables in the paper's layout (HTML for the report) ---------------------------------

class _Grid:
    """Rows of an HTML table as [(tag, text, attrs)], from the stdlib parser."""

    def __init__(self, text: str) -> None:
        from html.parser import HTMLParser

        grid = self
        self.rows: list[list[tuple[str, str, dict]]] = []
        self.notes: list[str] = []
        self.text = ""
        self.raw = text

        class P(HTMLParser):
            cell = None
            in_note = False

            def handle_starttag(self, tag, attrs):
                if tag == "tr":
                    grid.rows.append([])
                elif tag in ("td", "th"):
                    self.cell = [tag, "", dict(attrs)]
                elif tag == "li":
                    self.in_note = True
                    grid.notes.append("")

            def handle_endtag(self, tag):
                if tag in ("td", "th") and self.cell is not None:
                    grid.rows[-1].append(tuple(self.cell))
                    self.cell = None
                elif tag == "li":
                    self.in_note = False

            def handle_data(self, data):
                grid.text += data
                if self.cell is not None:
                    self.cell[1] += data
                if self.in_note:
                    grid.notes[-1] += data

        P(convert_charrefs=True).feed(text)


@pytest.fixture
def html_spec(spec, tmp_path):
    """The models-table spec with PT values the tables can show (k = 10 top images)."""
    for models in spec["metrics"].values():
        for fractions in models.values():
            for path in fractions.values():
                df = pd.read_csv(path)
                df["pt_k"] = 10
                df["pt_j"], df["pt_s"] = [0.1, 0.0, 0.2], [0.3, 0.1, 0.2]
                df["peak_overlap"] = [0.4, 0.2, 0.3]
                df.to_csv(path, index=False)
    return spec


def _html_of(spec, tmp_path, name="t.html"):
    out = tmp_path / name
    assert main(["table", "--spec", json.dumps(spec), "--out", str(tmp_path / "t.csv"),
                 "--html", str(out)]) == 0
    return _Grid(out.read_text()), build_table(spec)


def test_html_table_has_the_sites_as_column_groups(html_spec, tmp_path):
    g, df = _html_of(html_spec, tmp_path)
    groups, columns = g.rows[0], g.rows[1]
    assert [c[1] for c in groups] == ["Model", "A", "B"]  # n differs by row: an n column
    assert [c[2].get("colspan") for c in groups[1:]] == ["7", "7"]
    per_group = ["CORR. ± SEM", "Δ ff-CNN (%)", "Δ per neuron (%)", "PT_J (%)", "PT_S (%)",
                 "peak overlap† (%)", "n"]
    assert [c[1] for c in columns] == [h.replace("_J", "J").replace("_S", "S")
                                       for h in per_group] * 2
    body = {r[0][1]: [c[1] for c in r[1:]] for r in g.rows[2:]}
    sa = df.set_index("key").loc["sa"]
    assert body["ff+sa"][:7] == [f"{sa['A_corr']:.3f} ± {sa['A_corr_sem']:.3f}", "+10.0 %",
                                 f"{sa['A_delta_pct_neuron']:+.1f} %", f"{sa['A_pt_j']:.3f}",
                                 f"{sa['A_pt_s']:.3f}", f"{sa['A_peak_overlap']:.3f}", "2"]
    # the scale-free column says it is ours, not the paper's
    assert "not a column of the paper" in g.text
    assert body["ff-CNN"][1] == "0.0 %"  # the baseline against itself
    # the highest CORR. of each column is bold, as in the paper (ff+sa on A, B)
    assert g.raw.count("<b>") == 2
    assert f"<b>{sa['A_corr']:.3f} &plusmn; {sa['A_corr_sem']:.3f}</b>" in g.raw
    assert "nan" not in g.text.lower().split()


def test_html_table_shows_a_uniform_n_in_the_heading(html_spec, tmp_path):
    spec = dict(html_spec, models=["base"], sites=["A"])
    out = tmp_path / "one.html"
    write_table(spec, tmp_path / "one.csv", html=out)
    text = out.read_text()
    assert "A (n = 3 neurons)" in text and "<b>0.500 &plusmn; 0.058</b>" in text


def test_html_empty_pt_cells_say_why(html_spec, tmp_path):
    """A PT no prediction reached reads n/a with the table's pt_note as its numbered note,
    not 'nan'; the other site's PT of the same row keeps its value."""
    spec = html_spec
    metrics = spec["metrics"]
    # right peaks at the wrong scale: PT 0 everywhere, every recorded top image (k = 1) found
    metrics["B"]["sa"]["f100"] = metrics_csv(tmp_path / "zero.csv", [0.5, 0.6, 0.7],
                                             pt_j=0.0, pt_s=0.0, site="B", model="sa",
                                             peak_overlap=1.0)
    g, df = _html_of(spec, tmp_path)
    sa = next(r for r in g.rows[2:] if r[0][1] == "ff+sa")
    cells = [c[1] for c in sa[1:]]
    assert cells[3] == f"{df.set_index('key').loc['sa', 'A_pt_j']:.3f}"  # site A has PT
    assert cells[7 + 3] == cells[7 + 4] == "n/a1"  # site B: PT_J, PT_S empty, note 1
    assert cells[7 + 5] == "100.000"  # its peak overlap is shown
    note = df.set_index("key").loc["sa", "pt_note"]
    assert note.startswith("B: PT_J and PT_S left empty")
    assert g.notes == [note.removeprefix("B: ")]
    assert "nan" not in g.text.lower().split()


def test_html_fraction_table_groups_each_fraction_of_a_site(spec, tmp_path):
    g, _ = _html_of(dict(spec, table="table3", sites=["A"], fractions=["f25", "f100"]),
                    tmp_path)
    assert [c[1] for c in g.rows[0]] == ["Model", "25 % of A", "100 % of A"]
    assert "Table 3" in g.text


def test_html_appendix_table_names_each_rows_reference(spec, tmp_path):
    spec = dict(spec, table="tableA", rows=[{"section": "A.1", "model": "sa", "versus": "base"}])
    g, _ = _html_of(spec, tmp_path)
    assert [c[1] for c in g.rows[0]][:3] == ["Section", "Model", "vs."]
    assert g.rows[1][1][1] == "Δ vs. (%)"
    assert [c[1] for c in g.rows[2]][:5] == ["A.1", "ff+sa", "ff-CNN", "0.550 ± 0.050",
                                             "+10.0 %"]


def test_html_note_segments_split_at_the_group_prefixes_only():
    from sacnn.table_html import note_segments

    note = "A: x; y (a; b); A_f25: z"
    assert note_segments(note, ["A", "A_f25"]) == {"A": "x; y (a; b)", "A_f25": "z"}
    assert note_segments("", ["A"]) == {}


def test_html_parameters_table_explains_missing_paper_counts(tmp_path):
    from sacnn.models import NAMED_ARCHITECTURES

    narrow = NAMED_ARCHITECTURES["ff-CNN"].to_dict() | {"channels": 8}
    out = tmp_path / "p.html"
    assert main(["parameters", "--spec", json.dumps({"ff-CNN": narrow, "mine": {**narrow, "name": "mine"}}),
                 "--out", str(tmp_path / "p.csv"), "--html", str(out)]) == 0
    g = _Grid(out.read_text())
    rows = {r[0][1]: [c[1] for c in r] for r in g.rows[1:]}
    assert rows["ff-CNN"][-2] == "32"
    assert rows["mine"][-2] == rows["mine"][-1] == "n/a1"
    assert g.notes and "not one of the paper's named architectures" in g.notes[0]
