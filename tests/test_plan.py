"""The workflow's plan (sacnn.plan), config overlays (sacnn.workflow_config) and code digests
(sacnn.provenance): the logic the Snakefile calls, tested without Snakemake."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from sacnn import cost, experiment, handoffs, paths, plan, provenance
from sacnn.workflow_config import MATRIX, coerce_overrides, is_complete, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "workflow" / "config.yaml"
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
NOTEBOOKS = {f: str(ROOT / "workflow" / "notebooks" / f"{f}.ipynb")
             for f in experiment.figures(yaml.safe_load(MATRIX.read_text()))}


@pytest.fixture
def config() -> dict:
    """The tiny test config as the workflow sees it (schema defaults filled in)."""
    return load_config([TINY])


def test_the_plan_and_the_config_modules_import_no_torch_or_xarray():
    code = ("import sys, sacnn.plan, sacnn.workflow_config, sacnn.provenance;"
            "heavy = {'torch', 'xarray', 'scipy', 'matplotlib'} & set(sys.modules);"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_table_spec_is_the_typed_handoff_with_every_metrics_file(config):
    p = plan.WorkflowPlan(config, NOTEBOOKS)
    for table in p.tables:
        spec = p.table_spec(table)
        assert set(typing.get_type_hints(handoffs.TableSpec)) <= set(spec)
        files = paths.flatten_paths(spec["metrics"])
        assert sorted(files) == sorted(set(p.table_inputs(table)))
        assert all(f.endswith("/metrics.csv") for f in files)


def test_figure_handoffs_have_their_typed_keys_and_name_only_rule_inputs(config):
    p = plan.WorkflowPlan(config, NOTEBOOKS)
    for fig in p.figures:
        inputs = p.figure_inputs(fig)
        assert set(inputs) == set(typing.get_type_hints(handoffs.FigureInputs))
        params = p.figure_params(fig)
        assert set(typing.get_type_hints(handoffs.FigureParams)) <= set(params)
        assert params["stages"].keys() == set(params["models"])


def test_incremental_stage_reads_its_parents_weights_of_the_same_chunk(config):
    p = plan.WorkflowPlan(config, NOTEBOOKS)
    assert p.init_weights("sim1", "rf_sa_cnn_star_incr", "f100", "0") == [
        "results/sim1/models/rf_cnn_c30/f100/chunk0/weights.pt"]
    assert p.init_weights("sim1", "rf_cnn", "f100", "0") == []


def test_figure_code_digest_follows_its_notebook(config, tmp_path):
    nb = tmp_path / "fig5.ipynb"
    nb.write_text("{}")
    p = plan.WorkflowPlan(config, {**NOTEBOOKS, "fig5": str(nb)})
    before = p.figure_code("fig5")
    nb.write_text('{"cells": []}')
    assert p.figure_code("fig5") != before


def test_every_command_has_a_code_digest_and_an_unknown_one_is_named(config):
    from sacnn.cli import COMMANDS

    p = plan.WorkflowPlan(config, NOTEBOOKS)
    assert all(re.fullmatch("[0-9a-f]{16}", p.code(c)) for c in COMMANDS)
    assert p.code("train") != p.code("tables")
    with pytest.raises(plan.WorkflowConfigError, match="no sacnn command 'trian'"):
        p.code("trian")


@pytest.mark.parametrize("change, message", [
    (lambda c: c["figures"]["example_neuron"].update(models=["sim1"]),
     "figures.example_neuron.models[0]: unknown model 'sim1'"),
    (lambda c: c["figures"].update(site="rf_cnn"), "figures.site: unknown site 'rf_cnn'"),
    (lambda c: c["experiments"]["table1"]["sites"].append("sim9"),
     "experiments.table1: unknown site 'sim9'"),
    (lambda c: c["models"]["rf_cnn"].update(init_from="nope"),
     "models.rf_cnn.init_from: unknown model 'nope'"),
])
def test_config_cross_checks_name_the_key(config, change, message):
    """A model name is not accepted where a site is expected, nor the reverse."""
    change(config)
    with pytest.raises(ValueError, match=re.escape(message)):
        plan.WorkflowPlan(config, NOTEBOOKS)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["experiments"]["table1"]["models"].insert(2, "rf_cnnn"),
     "experiments.table1.models[2]: unknown model 'rf_cnnn'"),
    (lambda c: c["experiments"]["table2"].update(baseline="rfcnn"),
     "experiments.table2.baseline: unknown model 'rfcnn'"),
    (lambda c: c["experiments"]["tableA"]["rows"][3].update(versus="nope"),
     "experiments.tableA.rows[3].versus: unknown model 'nope'"),
    (lambda c: c["figures"]["fig2"]["models"].append("nope"),
     "figures.fig2.models[4]: unknown model 'nope'"),
    (lambda c: c["groundtruth"]["models"].insert(0, "nope"),
     "groundtruth.models[0]: unknown model 'nope'"),
    (lambda c: c["claims"]["tests"][3].update(versus="nope"),  # 2 seeds: all_models reads it
     "claims.tests[3].versus: unknown model 'nope'"),
    (lambda c: c["experiments"]["table3"]["fractions"].append("f150"),
     "experiments.table3.fractions[2]: fraction 'f150' is out of range: expected f1 ... f100"),
    (lambda c: c["experiments"]["table1"].update(fraction="f0"),
     "experiments.table1.fraction: fraction 'f0' is out of range"),
    (lambda c: c["claims"]["tests"][7].update(reference_fraction="f101"),
     "claims.tests[7].reference_fraction: fraction 'f101' is out of range"),
    (lambda c: c["experiments"]["table3"]["fractions"].__setitem__(0, "f025"),
     "experiments.table3.fractions[0]: fraction 'f025': write it 'f25'"),
])
def test_every_model_and_fraction_a_config_names_is_checked_at_its_key(config, change, message):
    change(config)
    with pytest.raises(plan.WorkflowConfigError, match=re.escape(message)):
        plan.WorkflowPlan(config, NOTEBOOKS)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["training"].update(device="tpu"),
     "training.device: got 'tpu', expected 'auto', 'cpu' or 'cuda[:N]'"),
    (lambda c: c["training"].update(device="cuda:x"), "training.device: got 'cuda:x'"),
    (lambda c: c["training"].update(epochs="many"),  # TrainConfig owns the types too
     "training: setting 'epochs': expected an integer, got 'many' (str)"),
    (lambda c: c["training"].update(epochz=3), "training: unknown keys ['epochz']"),
    (lambda c: c["architectures"].update(mine={"base": "rf-CNN", "readout": "ctl9"}),
     "architectures.mine: architecture 'mine': readout 'ctl9', expected one of ('fcl', "),
    (lambda c: c["architectures"].update(unused={"base": "rf-CNN", "readout": "ctl",
                                                 "layers": ["sa", "alpha"]}),
     "architectures.unused: architecture 'unused': self-attention cannot be the first layer"),
    (lambda c: c["architectures"].update(unused={"base": "ff-CNN", "channels": 0}),
     "architectures.unused: architecture 'unused': channels must be a positive integer"),
])
def test_settings_the_typed_settings_check_fail_when_the_plan_is_built(config, change, message):
    """What a training job would refuse after ingest (and after the stage before it) is
    refused before any job: the training settings, every architecture, every stage."""
    change(config)
    with pytest.raises(plan.WorkflowConfigError, match=re.escape(message)):
        plan.WorkflowPlan(config, NOTEBOOKS)


_A = "architectures.a: architecture 'a': "


@pytest.mark.parametrize("entry, message", [
    ({"base": "ff-CNN", "channels": "abc"}, "setting 'channels': expected an integer, got 'abc'"),
    ({"base": "ff-CNN", "channels": True}, "setting 'channels': expected an integer, got True"),
    ({"base": "ff-CNN", "channels": 2.5}, "setting 'channels': expected an integer, got 2.5"),
    ({"base": "ff-CNN", "channels": -3}, "channels must be a positive integer, got -3"),
    ({"base": "ff-CNN", "layers": "alpha"}, "setting 'layers': expected a list of strings"),
    ({"base": "ff-CNN", "layers": ["alpha", 3]}, "setting 'layers': expected a list of strings"),
    ({"base": "ff-CNN", "layers": ["alpha", "gamma"]},
     "layers[1]: layer 'gamma': expected 'alpha', 'beta(k=<odd int>)' or 'sa(gamma=true|false)'"),
    ({"base": "ff-CNN", "layers": []}, "layers is empty"),
    ({"base": "ff-CNN", "readout": "ctl9"}, "readout 'ctl9', expected one of ('fcl', 'ctl', "),
    ({"base": "ff-CNN", "readout": 1}, "setting 'readout': expected a string, got 1 (int)"),
    ({"base": "ff-CNN", "attention_dim": 0}, "attention_dim must be >= 1, got 0"),
    ({"base": "ff-CNN", "attention_dim": "five"}, "setting 'attention_dim': expected an integer"),
    ({"base": "ff-CNN", "attention_dim": False}, "setting 'attention_dim': expected an integer"),
    ({"base": "ff-CNN", "dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    ({"base": "ff-CNN", "dropout": -0.1}, "dropout must be in [0, 1), got -0.1"),
    ({"base": "ff-CNN", "dropout": "x"}, "setting 'dropout': expected a number, got 'x' (str)"),
    ({"base": "ff-CNN", "dropout": True}, "setting 'dropout': expected a number, got True"),
    ({"base": "ff-CNN", "input_size": 0}, "input_size must be >= 1, got 0"),
    ({"base": "ff-CNN", "input_size": "50"}, "setting 'input_size': expected an integer"),
    ({"base": "ff-CNN", "description": 5}, "setting 'description': expected a string, got 5"),
    ({"base": "ffCNN"}, "base 'ffCNN' is not a known architecture"),
    ({"base": ["ff-CNN"]}, "setting 'base': expected a string, got ['ff-CNN'] (list)"),
    ({"base": "ff-CNN", "chanels": 8}, "unknown keys ['chanels']; allowed: "),
    ({"channels": 8, "layers": ["alpha"]}, "missing keys ['readout']"),
    ({"channels": "8", "layers": ["alpha"], "readout": "fcl"},
     "setting 'channels': expected an integer, got '8' (str)"),
    ("ff-CNN", "expected a mapping of its keys"),
])
def test_every_architecture_key_is_checked_when_the_plan_is_built(config, entry, message):
    """The schema leaves architectures to spec_from_dict: each wrong key, type or value is
    refused at `snakemake -n` with the architecture's and the key's names, never as a bare
    ValueError or TypeError (issue #20)."""
    config["architectures"]["a"] = entry
    with pytest.raises(plan.WorkflowConfigError, match=re.escape(_A + message)):
        plan.WorkflowPlan(config, NOTEBOOKS)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["models"]["rf_cnn"].update(combine_init="random"),
     "models.rf_cnn.combine_init: 'random' needs a decomposed (FC1) readout"),
    # a model entry's keys and types: ModelSpec's (the schema leaves the entry to it)
    (lambda c: c["models"]["rf_cnn"].update(freeze="alpha"),
     "models.rf_cnn: setting 'freeze': expected a list of strings, got 'alpha' (str)"),
    (lambda c: c["models"]["rf_cnn"].update(architecture=30),
     "models.rf_cnn: setting 'architecture': expected a string, got 30 (int)"),
    (lambda c: c["models"]["rf_cnn"].update(labl="rf"), "models.rf_cnn: unknown keys ['labl']"),
    (lambda c: c["models"]["rf_cnn"].pop("architecture"),
     "models.rf_cnn: missing key 'architecture'"),
    (lambda c: c["models"]["rf_sa_cnn_star_incr"].update(load="alpha"),
     "models.rf_sa_cnn_star_incr: setting 'load': expected a list of strings, got 'alpha'"),
    (lambda c: c["models"]["ff_sa_cnn_star_incr_fc1"].update(load={"alpha": 1}),
     ("models.ff_sa_cnn_star_incr_fc1: setting 'load': expected a list of module names or a "
     "mapping of names to names")),
    (lambda c: c["models"]["rf_cnn"].update(combine_init="zeros"),
     "models.rf_cnn.combine_init: 'zeros', expected one of ('identity', 'random')"),
    (lambda c: c["models"]["rf_cnn"].update(init_from="rf_cnn"),
     "models.rf_cnn: init_from forms a cycle ['rf_cnn']"),
    (lambda c: c["models"]["rf_sa_cnn_star_incr"].update(freeze=["alpah"]),
     ("models.rf_sa_cnn_star_incr.freeze[0]: 'alpah' is not a module of architecture "
     "'rf+sa-CNN*'")),
    (lambda c: c["models"]["ff_sa_cnn_star_incr_fc2"].update(freeze=["alpha", "beta.2"]),
     "models.ff_sa_cnn_star_incr_fc2.freeze[1]: 'beta.2' is not a module"),
    (lambda c: c["models"]["rf_sa_cnn_star_incr"].update(load=["attention"]),  # parent: rf-CNN
     ("models.rf_sa_cnn_star_incr.load.attention: 'attention' is not a module of "
     "architecture 'rf-CNN (c=30)'")),
    (lambda c: c["models"]["ff_sa_cnn_star_incr_fc1"]["load"].update(
        {"readout.linear": "readout.center"}),
     "models.ff_sa_cnn_star_incr_fc1.load.readout.linear: 'readout.center' is not a module"),
])
def test_stages_the_typed_settings_check_fail_when_the_plan_is_built(config, change, message):
    """What a training job would refuse after ingest (and after the stage before it) is
    refused before any job: every stage (what it loads and freezes, its readout's options)."""
    change(config)
    with pytest.raises(plan.WorkflowConfigError, match=re.escape(message)):
        plan.WorkflowPlan(config, NOTEBOOKS)


def test_the_shipped_configs_pass_the_start_checks():
    for name in ("config.yaml", "paper.yaml", "reference.yaml", "simulated.yaml",
                 "rf_question.yaml"):
        cfg = load_config([ROOT / "config" / name])
        for site in cfg["sites"].values():  # no raw data here: plan the chunks from a count
            site.setdefault("n_neurons", 1) if "raw" in site else None
        plan.WorkflowPlan(cfg, NOTEBOOKS)


def _raw_site_config(config, tmp_path, folder="M1S1"):
    config["sites"]["M1S1"] = {"raw": str(tmp_path / folder), "file_stem": "m1s1", "ingest": {}}
    config["experiments"]["table1"]["sites"].append("M1S1")
    return config


def _write_raw_site(folder):
    from fixtures_data import tiny_arrays, write_reference

    return write_reference(folder, tiny_arrays(), site="m1s1",
                           sidecar="val_layout: image_neuron_repeat\nrepeats: 4\n")


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.rename(d.parent / "M1S2"),
     ("sites.M1S1: {d}: field 'site folder': expected an existing folder with the raw files "
     "(docs/data-format.md); found no such folder (did you mean {d.parent}/M1S2?)")),
    (lambda d: (d / "trainRsp_m1s1.npy").unlink(),
     ("sites.M1S1: {d}: field 'raw files': expected train_img_m1s1.npy, trainRsp_m1s1.npy, "
     "val_img_m1s1.npy, valRsp_m1s1.npy, or m1s1.nc (layout 'auto', docs/data-format.md); "
     "found trainRsp_m1s1.npy missing")),
    (lambda d: (d / "site.yaml").write_text("repeats: 4\nval_layout: mean\nrepeats: 5\n"),
     "sites.M1S1: {d}/site.yaml: key 'repeats' is given twice, on line 1 and on line 3"),
    (lambda d: (d / "site.yaml").write_text("repeats: 0\n"),
     "sites.M1S1: {d}/site.yaml: ingest option 'repeats': expected >= 1, got 0"),
])
def test_a_raw_sites_folder_files_and_site_yaml_are_checked_when_the_plan_is_built(
        config, tmp_path, damage, message):
    """Not in an input function (Snakemake would wrap the message in an
    InputFunctionException and a traceback): when the plan is built, once per site."""
    folder = _write_raw_site(tmp_path / "M1S1")
    config = _raw_site_config(config, tmp_path)
    assert plan.WorkflowPlan(config, NOTEBOOKS).site_n_neurons("M1S1") == 5
    damage(folder)
    with pytest.raises(plan.WorkflowConfigError) as exc:
        plan.WorkflowPlan(config, NOTEBOOKS)
    assert str(exc.value).startswith(message.format(d=folder)), str(exc.value)


def test_a_raw_site_without_its_folder_plans_from_n_neurons(config, tmp_path):
    config = _raw_site_config(config, tmp_path, folder="not_here")
    config["sites"]["M1S1"]["n_neurons"] = 7
    assert plan.WorkflowPlan(config, NOTEBOOKS).site_n_neurons("M1S1") == 7


def test_the_default_target_lists_every_intermediate_file(config):
    """So that Snakemake rebuilds a deleted one (and what is made from it) on a plain run."""
    p = plan.WorkflowPlan(config, NOTEBOOKS)
    files = set(p.intermediate_files())
    for s, m, f in experiment.trained_cells(config):
        assert set(p.chunk_files(s, m, f, "predictions.nc")) <= files
        assert set(p.chunk_files(s, m, f, "weights.pt")) <= files
    for s, m, f in p.all_cells():
        assert {paths.metrics_file(s, m, f), f"{paths.model_dir(s, m, f)}/predictions.nc"} <= files
    assert {"results/sim1/dataset.nc", "resources/sim1/truth_sim1.nc",
            "resources/sim1/trainRsp_sim1.npy", "results/sim1_off/groundtruth.csv"} <= files
    # nothing that no rule makes: a stage used only to start another has no metrics
    config["experiments"]["table2"]["models"].remove("rf_cnn_c30")
    config["figures"]["fig3"]["models"].remove("rf_cnn_c30")
    files = set(plan.WorkflowPlan(config, NOTEBOOKS).intermediate_files())
    assert "results/sim1/models/rf_cnn_c30/f100/chunk0/weights.pt" in files
    assert paths.metrics_file("sim1", "rf_cnn_c30", "f100") not in files


def test_an_unknown_figure_has_no_notebook(config):
    p = plan.WorkflowPlan(config, {})
    with pytest.raises(plan.WorkflowConfigError, match="figures.fig5: no notebook"):
        p.notebook("fig5")


def test_wildcard_alternatives_match_whole_names_only():
    pattern = paths.wildcard_alternatives(["rf_cnn", "rf_cnn_c30"])
    assert re.fullmatch(pattern, "rf_cnn_c30") and re.fullmatch(pattern, "rf_cnn")
    assert not re.fullmatch(pattern, "rf_cnn_c3")
    assert not re.fullmatch(paths.wildcard_alternatives([]), "")


# ------------------------------------------------------------------ config overlays


def test_command_line_values_are_coerced_to_the_schemas_types(config):
    overrides = {"training": {"epochs": "8", "learning_rate": "0.01", "channels_last": "true"},
                 "chunk_size": "7"}
    merged = copy.deepcopy(config)
    merged["training"].update(overrides["training"])
    merged["chunk_size"] = "7"
    coerce_overrides(merged, overrides, SCHEMA)
    assert merged["training"]["epochs"] == 8
    assert merged["training"]["learning_rate"] == 0.01
    assert merged["training"]["channels_last"] is True
    assert merged["chunk_size"] == 7


def test_command_line_architecture_values_get_the_specs_types(config):
    """`--config 'architectures={x: {channels: 8, ...}}'` arrives as text; the schema leaves
    architectures to spec_from_dict, whose key types (spec_field_types) convert it."""
    given = {"x": {"base": "ff-CNN", "channels": "8", "dropout": "0.25", "attention_dim": "3",
                   "input_size": "50", "description": "10", "layers": ["alpha", "alpha",
                                                                      "beta(k=3)"]}}
    merged = copy.deepcopy(config)
    merged["architectures"] = copy.deepcopy(given)
    coerce_overrides(merged, {"architectures": given}, SCHEMA)
    x = merged["architectures"]["x"]
    assert (x["channels"], x["dropout"], x["attention_dim"], x["input_size"]) == (8, 0.25, 3, 50)
    assert x["description"] == "10" and x["base"] == "ff-CNN"
    assert x["layers"] == ["alpha", "alpha", "beta(k=3)"]
    merged["architectures"]["x"]["channels"] = "abc"
    coerce_overrides(merged, {"architectures": {"x": {"channels": "abc"}}}, SCHEMA)
    with pytest.raises(plan.WorkflowConfigError, match=re.escape(
            "architectures.x: architecture 'x': setting 'channels': expected an integer, "
            "got 'abc' (str)")):
        plan.WorkflowPlan(merged, NOTEBOOKS)


def test_values_that_do_not_convert_are_left_for_the_validator(config):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    merged = copy.deepcopy(config)
    merged["chunk_size"] = "many"
    coerce_overrides(merged, {"chunk_size": "many"}, SCHEMA)
    assert merged["chunk_size"] == "many"
    with pytest.raises(WorkflowError, match="chunk_size"):
        validate(merged, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))


def test_the_explicit_example_neuron_rule_needs_its_neuron_in_the_schema(config):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    config["figures"]["example_neuron"] = {"rule": "explicit"}
    with pytest.raises(WorkflowError, match="'neuron' is a required property"):
        validate(config, schema)
    config["figures"]["example_neuron"]["neuron"] = 3
    validate(config, schema)


def test_strings_the_schema_wants_stay_strings(config):
    merged = copy.deepcopy(config)
    merged["models"]["rf_cnn"]["label"] = "10"
    coerce_overrides(merged, {"models": {"rf_cnn": {"label": "10"}}}, SCHEMA)
    assert merged["models"]["rf_cnn"]["label"] == "10"


def test_a_config_with_sites_is_complete_and_an_overlay_is_not():
    assert is_complete(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    assert not is_complete({"training": {"epochs": 8}})


# -------------------------------------------------------------------- code digests


def test_source_digest_ignores_comments_layout_and_docstrings():
    base = provenance.source_digest('def f(x):\n    """Doc."""\n    return x + 1\n')
    same = provenance.source_digest('def f(x):  # a comment\n    """Other doc."""\n\n'
                                    '    return (x + 1)\n')
    other = provenance.source_digest('def f(x):\n    """Doc."""\n    return x + 2\n')
    assert base == same
    assert base != other


def test_module_closures_follow_imports_and_lazy_exports():
    train = provenance.module_closure("sacnn.training.__main__")
    assert {"sacnn.training.trainer", "sacnn.models.network", "sacnn.metrics",
            "sacnn.data.preprocess"} <= set(train)
    assert "sacnn.plots.fig5" not in train and "sacnn.claims" not in train
    fig5 = provenance.module_closure("sacnn.plots.fig5")
    assert "sacnn.plots.fig5" in fig5 and "sacnn.plots.fig4" not in fig5
    assert "sacnn.plan" not in fig5  # imported under TYPE_CHECKING only: never runs
    # sacnn.simulate loads its members by name (importlib): all of them count
    assert "sacnn.simulate.neurons" in provenance.module_closure("sacnn.simulate.__main__")


def test_code_digest_of_an_unknown_module_is_an_error():
    with pytest.raises(ValueError, match="no module 'sacnn.no_such_module'"):
        provenance.code_digest("sacnn.no_such_module")


# ------------------------------------------------------------------ training chunks


def test_chunks_are_balanced_contiguous_and_never_above_the_size():
    assert experiment.chunk_bounds(302, 50) == [(0, 44)] + [(44 + 43 * k, 87 + 43 * k)
                                                            for k in range(6)]
    assert experiment.chunk_bounds(299, 50)[-1] == (250, 299)  # 5 x 50 + 49
    assert experiment.chunk_bounds(3, 10) == [(0, 3)]
    assert experiment.chunk_bounds(3, 1) == [(0, 1), (1, 2), (2, 3)]
    for n in range(1, 60):
        for size in range(1, 25):
            bounds = experiment.chunk_bounds(n, size)
            sizes = [b - a for a, b in bounds]
            assert len(bounds) == experiment.n_chunks(n, size) == -(-n // size)
            assert max(sizes) <= size and max(sizes) - min(sizes) <= 1
            assert [a for a, _ in bounds] == [0] + [b for _, b in bounds[:-1]]
            assert bounds[-1][1] == n
    with pytest.raises(plan.WorkflowConfigError, match="chunk_size must be >= 1"):
        experiment.chunk_bounds(10, 0)


def test_the_training_command_slices_the_plans_chunks(config):
    """The jobs the plan makes and the neurons each job's command trains: every neuron once,
    in the workflow's balanced chunks, whatever chunk_size."""
    from sacnn.training import TrainingConfigError
    from sacnn.training.__main__ import chunk_slice

    for size in (1, 2, 3, 50):
        cfg = {**config, "chunk_size": size}
        p = plan.WorkflowPlan(cfg, NOTEBOOKS)
        n = p.site_n_neurons("sim1")
        chunks = p.site_chunks("sim1", "ff_cnn")
        covered = [i for k in chunks for i in range(n)[chunk_slice(k, p.chunk_size("ff_cnn"), n)]]
        assert covered == list(range(n))
    with pytest.raises(TrainingConfigError, match="chunk 3 of size 1 is outside the 3 neurons"):
        chunk_slice(3, 1, 3)


def test_chunk_sizes_by_architecture_reach_the_jobs_and_chains_chunk_alike(config):
    cfg = copy.deepcopy(config)
    cfg["chunk_size"] = 3
    arch = cfg["models"]["rf_sa_cnn_star_incr"]["architecture"]
    cfg["chunk_sizes"] = {arch: 1}
    p = plan.WorkflowPlan(cfg, NOTEBOOKS)
    assert p.chunk_size("ff_cnn") == 3 and len(p.gather_inputs("sim1", "ff_cnn", "f100")) == 1
    # the whole chain that loads rf+sa-CNN*(Incr.)'s weights takes its smaller chunks
    for model in ("rf_cnn_c30", "rf_sa_cnn_star_incr", "ff_sa_cnn_star_incr_fc2"):
        assert p.chunk_size(model) == 1
        assert len(p.gather_inputs("sim1", model, "f100")) == 3
    assert p.init_weights("sim1", "rf_sa_cnn_star_incr", "f100", "2") == [
        "results/sim1/models/rf_cnn_c30/f100/chunk2/weights.pt"]
    jobs = {(j.site, j.model, j.fraction): j.chunks for j in cost.training_jobs(cfg, {})}
    assert jobs["sim1", "rf_cnn_c30", "f100"] == [1, 1, 1]
    assert jobs["sim1", "ff_cnn", "f100"] == [3]
    assert p.table_spec(p.tables[0])["provenance"]["chunk_sizes"]["ff_cnn"] == 3
    cfg["chunk_sizes"] = {"rf+sa-CNN (c=999)": 2}
    with pytest.raises(plan.WorkflowConfigError, match=r"chunk_sizes: \['rf\+sa-CNN \(c=999\)'\] "
                                                       "is not the architecture of any model"):
        plan.WorkflowPlan(cfg, NOTEBOOKS)


def test_no_sacnn_module_imports_one_that_imports_it_back():
    """Layers a newcomer can read in order: no two modules of sacnn import each other, at the
    top, inside a function or only for type annotations (a Protocol or ``Any`` says what a
    module needs of one that imports it)."""
    import ast

    root = ROOT / "src"
    files = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
             for p in root.rglob("*.py")}

    def imported(name):
        out = set()
        for node in ast.walk(ast.parse(files[name].read_text())):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
        return {m for m in out if m in files and m != name}

    graph = {name: imported(name) for name in files}
    pairs = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph[b]})
    assert len(graph) > 50 and pairs == []
