# Input functions and target lists: one-line calls into sacnn.plan.WorkflowPlan, which
# derives every path and hand-off from the (validated) config: the experiment matrix
# (config/matrix.yaml) laid under the scale config. Adding a site, a model, an architecture,
# a table's or a figure's entry is a config change. The rules are wired one way: every
# input, param and label is a function below or a value of PLAN (its names, its code
# digests, the training jobs' resources); no rule reads `config` or holds a lambda.

import json
import shlex
import sys
from pathlib import Path

from sacnn.experiment import figures, fraction_value
from sacnn.plots import report_labels
from sacnn.config_checks import WorkflowConfigError
from sacnn.paths import flatten_paths, wildcard_alternatives
from sacnn.plan import WorkflowPlan

# Every step runs `python -m sacnn...` with the interpreter that runs Snakemake: the Makefile
# calls .venv/bin/snakemake without activating the venv, so its bin/ goes first on PATH. (Not
# passed as a param: params are a rerun trigger, and the venv's path is no reason to rerun.)
shell.prefix(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; ')

# Resolved through Snakemake's source cache, so that a deployment that uses this workflow as
# a module (from a local path or a git repository) finds its notebooks. Not an input and not
# a param: the checkout's location is no reason to rerun (the figure's `code` param carries
# the notebook's content).
NOTEBOOKS = {
    fig: str(workflow.source_path(f"../notebooks/{fig}.ipynb"))
    for fig in figures(config)
}

# The plan checks the config as a whole (names, settings, raw sites: sacnn.config_checks)
# before any job; a mistake there ends the start with its message, naming the key.
try:
    PLAN = WorkflowPlan(config, notebooks=NOTEBOOKS)
except WorkflowConfigError as err:
    sys.exit(f"error: {err}")
SITES = PLAN.sites
MODELS = PLAN.models
TABLES = PLAN.tables
FIGURES = PLAN.figures
TRAIN_RESOURCES = PLAN.train_resources()
GROUNDTRUTH_SITES = PLAN.groundtruth_sites


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


# --------------------------------------------------------------- input functions


def raw_inputs(wildcards):
    return PLAN.raw_inputs(wildcards.site)


def site_raw_dir(wildcards):
    return PLAN.site_raw_dir(wildcards.site)


def site_files(wildcards):
    return PLAN.site_files(wildcards.site)


def model_label(wildcards):
    return PLAN.model_label(wildcards.model)


def model_chunk_size(wildcards):
    return PLAN.chunk_size(wildcards.model)


def fraction_share(wildcards):
    return fraction_value(wildcards.fraction)


def init_weights(wildcards):
    return PLAN.init_weights(
        wildcards.site, wildcards.model, wildcards.fraction, wildcards.chunk
    )


def init_weights_arg(wildcards, input):
    paths = [input.init] if isinstance(input.init, str) else list(input.init)
    return " ".join(f"--init-weights {shlex.quote(p)}" for p in paths)


def gather_inputs(wildcards):
    return PLAN.gather_inputs(wildcards.site, wildcards.model, wildcards.fraction)


def table_inputs(wildcards):
    return PLAN.table_inputs(wildcards.table)


def figure_inputs(wildcards):
    return flatten_paths(PLAN.figure_inputs(wildcards.fig))


def groundtruth_site_inputs(wildcards):
    return PLAN.groundtruth_site_inputs(wildcards.site)


def claims_inputs(wildcards):
    return PLAN.claims_inputs()


# ----------------------------------------------------------- params (hand-offs as JSON)


def simulate_args(wildcards):
    return PLAN.simulate_args(wildcards.site)


def ingest_options(wildcards):
    return PLAN.ingest_options(wildcards.site)


def train_settings(wildcards):
    return PLAN.train_settings(wildcards.model)


def table_spec(wildcards):
    return as_json(PLAN.table_spec(wildcards.table))


def parameter_spec():
    return as_json(PLAN.parameter_spec())


def notebook_path(wildcards):
    """The figure's notebook as a Path: Snakemake leaves values it cannot serialise out of
    the params it compares, so the checkout's location does not rerun the figure."""
    return Path(PLAN.notebook(wildcards.fig))


def figure_code(wildcards):
    return PLAN.figure_code(wildcards.fig)


# the report lists fig1b, fig2, ..., fig10 in the matrix's (the paper's) order
def figure_labels_pdf(wildcards):
    return report_labels(wildcards.fig, "pdf", FIGURES)


def figure_labels_png(wildcards):
    return report_labels(wildcards.fig, "png", FIGURES)


def figure_inputs_json(wildcards):
    return as_json(PLAN.figure_inputs(wildcards.fig))


def figure_params_json(wildcards):
    return as_json(PLAN.figure_params(wildcards.fig))


def groundtruth_site_spec(wildcards):
    return as_json(PLAN.groundtruth_site_spec(wildcards.site))


def claims_spec(wildcards):
    return as_json(PLAN.claims_spec())


def groundtruth_provenance(wildcards):
    return as_json(PLAN.groundtruth_provenance())
