"""The experiment matrix (config/matrix.yaml) and the scale configs laid over it
(sacnn.workflow_config.assemble): each config runs the matrix at its own sites, and says only
what it changes of it."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from sacnn import experiment
from sacnn.config_checks import WorkflowConfigError, check_references
from sacnn.workflow_config import MATRIX, MATRIX_SECTIONS, assemble, load_config, site_roles

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {name: ROOT / "config" / f"{name}.yaml"
           for name in ("config", "paper", "reference", "simulated", "rf_question")}
CONFIGS["tiny"] = ROOT / "tests" / "workflow" / "config.yaml"


def raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def matrix() -> dict:
    return raw(MATRIX)


@pytest.fixture(scope="module")
def assembled() -> dict[str, dict]:
    return {name: load_config([path]) for name, path in CONFIGS.items()}


def test_the_matrix_is_declared_once_and_the_scale_configs_say_their_scale(matrix):
    """The matrix holds exactly its sections; no scale config restates a whole one of them
    (what a config changes of the matrix is a few entries, said where it differs)."""
    assert set(matrix) == set(MATRIX_SECTIONS)
    for name in ("config", "paper", "tiny"):
        cfg = raw(CONFIGS[name])
        assert "experiments" not in cfg and "figures" not in cfg, name
        assert not set(cfg.get("models") or {}) & set(matrix["models"]), name
    matrix_lines = {line.strip() for line in MATRIX.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")}
    for name, path in CONFIGS.items():
        lines = {line.strip() for line in path.read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")}
        again = lines & matrix_lines - {"models:", "experiments:", "figures:", "claims:",
                                        "groundtruth:", "tests:", "seed: 0"}
        # rf_question.yaml gives its own list of claims, the paper's rf_beats_ff among them
        assert len(again) <= (4 if name == "rf_question" else 2), (name, sorted(again))


def test_each_config_runs_the_matrix_at_its_own_sites(assembled):
    demo, paper, sim = assembled["config"], assembled["paper"], assembled["simulated"]
    assert demo["experiments"]["table1"]["sites"] == ["sim1", "sim2"]  # main
    assert demo["experiments"]["table3"]["sites"] == ["sim1"]  # first
    assert demo["figures"]["site"] == "sim1" and demo["figures"]["fig5"]["sites"] == [
        "sim1", "sim2"]
    surround = {t["claim"]: t.get("sites") for t in demo["claims"]["tests"]}
    assert surround["sa_correlation"] == ["sim1", "sim2", "sim1_off", "sim1_strong"]  # all
    assert surround["incremental_beats_simultaneous"] is None  # the claims' own sites
    assert demo["claims"]["sites"] == ["sim1", "sim2"]
    assert demo["groundtruth"]["sites"] == list(demo["sites"])  # simulated
    assert paper["experiments"]["table1"]["sites"] == ["M1S1", "M2S1"]
    assert "groundtruth" not in paper  # no simulated site: no ground truth
    assert [t["claim"] for t in paper["claims"]["tests"]] == [
        t["claim"] for t in demo["claims"]["tests"]]
    # simulated.yaml: its main site, Table 1 and Fig. 5 on all three, no rf+sa-CNN, no A
    assert sim["experiments"]["table1"]["sites"] == ["simA", "simA_col", "simA_off"]
    assert sim["experiments"]["table2"]["sites"] == ["simA"] and "tableA" not in sim["experiments"]
    assert sim["experiments"]["table3"] == {"sites": ["simA"], "models": ["ff_cnn", "ff_sa_cnn"],
                                            "baseline": "ff_cnn", "fractions": ["f25"],
                                            "fraction": "f100"}
    assert "rf_sa_cnn" not in sim["models"]
    assert all("rf_sa_cnn" not in (e.get("models") or []) for e in (
        *sim["experiments"].values(), *sim["figures"].values(), sim["groundtruth"])
        if isinstance(e, dict))
    rf = assembled["rf_question"]
    assert experiment.figures(rf) == [] and experiment.tables(rf) == ["table1"]
    assert [t["claim"] for t in rf["claims"]["tests"]] == [
        "rf_beats_ff", "dropout_holds_rf_back", "rf_beats_ff_without_dropout"]
    tiny = {t["claim"]: t for t in assembled["tiny"]["claims"]["tests"]}
    assert tiny["rf_beats_ff"]["seeds"] == 2 and tiny["rf_beats_ff"]["measure"] == "corr"


def test_a_figure_added_to_the_matrix_reaches_every_config(matrix):
    """One line in the matrix: every config that does not leave out the figures makes it."""
    more = copy.deepcopy(matrix)
    more["figures"]["fig11"] = {"models": ["ff_cnn", "rf_cnn"]}
    for name, path in CONFIGS.items():
        cfg = assemble(raw(path), more)
        if name == "rf_question":  # `figures: null`: a run without figures
            assert experiment.figures(cfg) == []
            continue
        assert experiment.figures(cfg)[-1] == "fig11", name
        assert cfg["figures"]["fig11"]["models"] == ["ff_cnn", "rf_cnn"]


def test_an_assembled_config_assembles_to_itself(matrix, assembled):
    for name in ("config", "paper", "tiny"):
        once = assemble(raw(CONFIGS[name]), matrix)
        assert assemble(once, matrix) == once, name


def test_null_leaves_an_entry_out_and_a_null_model_leaves_every_list(matrix):
    cfg = raw(CONFIGS["config"])
    cfg["models"] = {"rf_sa_cnn": None}
    cfg["experiments"] = {"tableA": None}
    cfg["training"]["seed"] = None
    out = assemble(cfg, matrix)
    assert "tableA" not in out["experiments"] and "seed" not in out["training"]
    assert out["experiments"]["table1"]["models"] == ["ff_cnn", "ff_sa_cnn", "rf_cnn"]
    assert out["groundtruth"]["models"] == ["ff_cnn", "ff_sa_cnn", "rf_cnn"]
    assert "rf_sa_cnn" not in out["figures"]["example_neuron"]["models"]
    cfg["experiments"] = {}  # tableA still compares rf_sa_cnn: refused at its key
    with pytest.raises(WorkflowConfigError, match=re.escape(
            "experiments.tableA.rows[0].model: unknown model 'rf_sa_cnn'")):
        check_references(assemble(cfg, matrix))


@pytest.mark.parametrize("change, message", [
    (lambda c: c["experiments"].update(table1={"sites": "mian"}),
     ("experiments.table1.sites: 'mian' is neither a list of sites nor a site role; the "
      "roles are main, first, all, simulated")),
    (lambda c: c.update(main_sites=["sim1", "sim9"]),
     "main_sites: unknown sites ['sim9']"),
    (lambda c: c["sites"].update(all=c["sites"]["sim2"]),
     "sites.all: a site cannot be named like a site role"),
    (lambda c: c["claims"]["tests"].update(rf_beats_ff={"claim": "rf_wins"}),
     "claims.tests.rf_beats_ff.claim: 'rf_wins' differs from the name of its entry"),
    (lambda c: c["figures"].update(site="main"),
     "figures.site: role 'main' names 2 sites ['sim1', 'sim2']; it takes one ('first')"),
])
def test_a_matrix_mistake_is_named_by_its_key(matrix, change, message):
    cfg = raw(CONFIGS["config"])
    cfg.setdefault("experiments", {})
    cfg.setdefault("figures", {})
    cfg.setdefault("claims", {"tests": {}})
    change(cfg)
    with pytest.raises(WorkflowConfigError, match=re.escape(message)):
        assemble(cfg, matrix)


def test_site_roles_of_the_shipped_configs():
    assert site_roles(raw(CONFIGS["config"])) == {
        "main": ["sim1", "sim2"], "first": ["sim1"],
        "all": ["sim1", "sim2", "sim1_off", "sim1_strong"],
        "simulated": ["sim1", "sim2", "sim1_off", "sim1_strong"]}
    assert site_roles(raw(CONFIGS["paper"])) == {
        "main": ["M1S1", "M2S1"], "first": ["M1S1"], "all": ["M1S1", "M2S1"], "simulated": []}


def test_a_figure_without_its_plotting_module_is_refused_when_the_plan_is_built(assembled):
    from sacnn.plan import WorkflowPlan

    cfg = copy.deepcopy(assembled["tiny"])
    cfg["figures"]["fig11"] = {"models": ["ff_cnn"]}
    with pytest.raises(WorkflowConfigError, match=re.escape(
            "figures.fig11: no plotting module sacnn.plots.fig11 (src/sacnn/plots/fig11.py")):
        WorkflowPlan(cfg)
