"""What the Snakemake report shows and in which order, read from the parsed workflow.

The report (Snakemake 9's HTML reporter) sorts categories by name and a category's entries
by their label texts, first label first (JavaScript ``localeCompare``); it shows a
``text/html`` result inline and offers a CSV only as a download. These tests parse the
workflow (no job runs) and check the report flags its rules carry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sacnn.experiment import figures
from sacnn.workflow_config import MATRIX

ROOT = Path(__file__).resolve().parents[1]
FIGURE_NAMES = figures(yaml.safe_load(MATRIX.read_text()))  # the registry, the paper's order


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    api_mod = pytest.importorskip("snakemake.api")
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    workdir = tmp_path_factory.mktemp("report_wf")
    with api_mod.SnakemakeApi(OutputSettings()) as api:
        wapi = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[ROOT / "config" / "config.yaml"]),
            snakefile=ROOT / "workflow" / "Snakefile", workdir=workdir)
        yield wapi._workflow  # the parsed workflow: rules and their output flags


def report_flags(workflow, rule: str) -> dict[str, object]:
    """output name -> its ``report(...)`` object, for the outputs of ``rule`` in the report."""
    out = workflow.get_rule(rule).output
    return {name: out[i].flags["report"] for i, name in
            ((out._names[n][0], n) for n in out._names) if "report" in out[i].flags}


def expanded_labels(report, **wildcards) -> dict[str, str]:
    """The labels Snakemake's reporter computes for one result (its own expansion code)."""
    from snakemake.iocontainers import Wildcards
    from snakemake.report import expand_labels

    wc = Wildcards(fromdict=wildcards)
    job = SimpleNamespace(params=SimpleNamespace(), input=[], output=[])
    return asyncio.run(expand_labels(report.labels, wc, job))


def report_order(entries: list[dict[str, str]], toggles: set[str]) -> list[dict[str, str]]:
    """The reporter's order of a category's entries: by label values, in label order,
    leaving out toggle labels (abstract_results.js)."""
    return sorted(entries, key=lambda labels: tuple(v.lower() for k, v in labels.items()
                                                    if k not in toggles))


def test_figures_are_listed_in_the_papers_order(workflow):
    assert sorted(FIGURE_NAMES) != list(FIGURE_NAMES)  # by name alone fig10 comes first
    flags = report_flags(workflow, "figure")
    assert set(flags) == {"pdf", "png"}
    for fmt, report in flags.items():
        assert report.category == "Figures"
        entries = [expanded_labels(report, fig=f) for f in FIGURE_NAMES]
        assert all(e["format"] == fmt for e in entries)
        ordered = report_order(entries, toggles={"format"})
        assert [e["figure"] for e in ordered] == list(FIGURE_NAMES)


def test_figure_report_labels_refuse_an_unknown_figure():
    from sacnn.plots import report_labels

    with pytest.raises(ValueError, match="fig11"):
        report_labels("fig11", "pdf", FIGURE_NAMES)


def test_ground_truth_figure_comes_after_the_paper_figures(workflow):
    gt = report_flags(workflow, "groundtruth_figure")
    categories = sorted({"Figures", *(r.category for r in gt.values())})
    assert categories.index("Figures") < categories.index(gt["pdf"].category)


def test_every_table_is_shown_as_html_and_offered_as_csv(workflow):
    """Each table's paper-layout page is a report result (text/html: shown inline), its CSV
    a download in its own category; the tables read parameters, table1, 2, 3, A."""
    import mimetypes

    for rule in ("table", "parameter_table"):
        flags = report_flags(workflow, rule)
        assert flags["html"].category == "Tables", rule
        assert flags["csv"].category == "Tables as CSV", rule
        paths = {str(f) for f in workflow.get_rule(rule).output if "report" in f.flags}
        html = [p for p in paths if p.endswith(".html")]
        assert len(html) == 1 and html[0].startswith("results/tables/"), paths
        assert mimetypes.guess_type(html[0])[0] == "text/html"  # what the reporter checks
    names = [expanded_labels(report_flags(workflow, "table")["html"], table=t)["table"]
             for t in ("tableA", "table3", "table1", "table2")]
    names.append(expanded_labels(report_flags(workflow, "parameter_table")["html"])["table"])
    assert [e["table"] for e in report_order([{"table": n} for n in names], set())] == [
        "parameters", "table1", "table2", "table3", "tableA"]
