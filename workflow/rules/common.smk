# Input functions and target lists, all derived from the (validated) config.
#
# Nothing here runs science code: it only wires paths. The experiment matrix lives in
# config["experiments"] and config["figures"]; adding a site, a model or an architecture is a
# config change.

import functools
import json
import shlex
import sys
from pathlib import Path


from sacnn import experiment
from sacnn.data.options import IngestOptions
from sacnn.data.raw import site_shape
from sacnn.data.validate import DataValidationError
from sacnn.models import get_architecture
from sacnn.simulate.config import SiteConfig
from sacnn.training.config import StageSpec

# Every step runs `python -m sacnn...` with the interpreter that runs Snakemake: the Makefile
# calls .venv/bin/snakemake without activating the venv, so its bin/ goes first on PATH. (Not
# passed as a param: params are a rerun trigger, and the venv's path is no reason to rerun.)
shell.prefix(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; ')
# The repository (Snakefile's parent) holds the notebooks and the plotting modules; paths to
# them are absolute so that a run with --directory elsewhere still finds them.
REPO = Path(workflow.basedir).parent

SITES = config["sites"]
# The config's models plus the extra training seeds the claims ask for (<model>.seed<k>).
MODELS = experiment.all_models(config)
ARCHITECTURES = config["architectures"]
EXPERIMENTS = config.get("experiments") or {}
# The experiment matrix (tables, figures, cells, incremental chains): sacnn.experiment.
FIGURE_NAMES = list(experiment.FIGURE_NAMES)
TABLES = experiment.tables(config)


class WorkflowConfigError(ValueError):
    """A config that validates against the schema but does not make sense as a whole."""


def _alternatives(names):
    """A wildcard regex matching exactly one of ``names`` (and nothing when empty)."""
    import re

    if not names:
        return "(?!)"
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


# ------------------------------------------------------------------------------ sites


def is_simulated(site):
    return "simulate" in SITES[site]


def site_files(site):
    """The site's name inside its raw file names (train_img_<files>.npy)."""
    if is_simulated(site):
        return site
    return SITES[site].get("files", site.lower())


def site_raw_dir(site):
    return f"resources/{site}" if is_simulated(site) else SITES[site]["raw"]


_REFERENCE = ("train_img_{}.npy", "trainRsp_{}.npy", "val_img_{}.npy", "valRsp_{}.npy")
_OPTIONAL = ("train_ids_{}.npy", "val_ids_{}.npy", "neuron_ids_{}.npy", "site.yaml")


def raw_inputs(wildcards):
    """The raw files ingest reads: the simulator's output or the files found on disk."""
    site, files = wildcards.site, site_files(wildcards.site)
    folder = Path(site_raw_dir(site))
    if is_simulated(site):
        names = [*_REFERENCE, "site.yaml"]
        return [str(folder / n.format(files)) for n in names]
    netcdf = folder / f"{files}.nc"
    if not (folder / _REFERENCE[0].format(files)).exists() and netcdf.exists():
        return [str(netcdf)] + [str(folder / "site.yaml")] * (
            folder / "site.yaml"
        ).exists()
    required = [str(folder / n.format(files)) for n in _REFERENCE]
    optional = [str(folder / n.format(files)) for n in _OPTIONAL]
    return required + [p for p in optional if Path(p).exists()]


@functools.cache
def site_n_neurons(site):
    """Neurons of a site, known before ingest so that a dry run can plan every chunk.

    Simulated: the simulator's setting. Raw: ``n_neurons`` from config, else the file
    headers (``sacnn.data.raw.site_shape``, ingest's checks, nothing loaded), never trusted:
    a file they reject plans one chunk, so that the ingest job (which owns the file) fails
    with its message naming file and field. With ingest's ``nan_policy: mask_neuron`` give
    ``n_neurons`` (the count after masking).
    """
    cfg = SITES[site]
    if is_simulated(site):
        return SiteConfig.from_dict(cfg["simulate"]).n_neurons
    if "n_neurons" in cfg:
        return int(cfg["n_neurons"])
    folder, files = Path(site_raw_dir(site)), site_files(site)
    if (
        not (folder / f"trainRsp_{files}.npy").exists()
        and not (folder / f"{files}.nc").exists()
    ):
        raise WorkflowConfigError(
            f"sites.{site}: no raw data found in {folder}: expected trainRsp_{files}.npy ... "
            f"(reference layout) or {files}.nc; see docs/data-format.md, or set "
            f"sites.{site}.n_neurons to plan a dry run"
        )
    try:
        return site_shape(folder, files).neurons
    except DataValidationError as exc:
        return _plan_one_chunk(site, exc)


def _plan_one_chunk(site, problem):
    print(
        f"sacnn: cannot read the neuron count of site {site} ({problem}); planning one "
        f"training chunk for it: its ingest_site job will report the problem",
        file=sys.stderr,
    )
    return 1


def site_chunks(site):
    return list(range(experiment.n_chunks(site_n_neurons(site), config["chunk_size"])))


def simulate_args(wildcards):
    cfg = SITES[wildcards.site]["simulate"]
    return " ".join(
        f"-s {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in sorted(cfg.items())
    )


def ingest_options(wildcards):
    return json.dumps(SITES[wildcards.site].get("ingest") or {}, sort_keys=True)


# ----------------------------------------------------------------------------- models


def model_label(model):
    return MODELS[model].get("label") or model


def model_stage(model):
    return StageSpec.from_dict(model, MODELS[model])


def model_architecture(model):
    """The effective architecture spec (config overrides first) as a plain dict."""
    return get_architecture(MODELS[model]["architecture"], ARCHITECTURES).to_dict()


def model_chain(model):
    """``model`` and the stages it is initialised from, earliest first."""
    return experiment.model_chain(MODELS, model)


def train_settings(wildcards):
    """The config sections one training job depends on, and nothing else.

    Only the model's own chain and the architectures it uses are passed, so adding a model
    or changing a figure setting does not invalidate trained models (params are a rerun
    trigger).
    """
    models = {m: MODELS[m] for m in model_chain(wildcards.model)}
    names = {spec["architecture"] for spec in models.values()}
    return json.dumps(
        {
            "training": config["training"],
            "architectures": {k: v for k, v in ARCHITECTURES.items() if k in names},
            "models": models,
        },
        sort_keys=True,
    )


def fraction_value(fraction):
    return experiment.fraction_value(fraction)


def model_dir(site, model, fraction):
    return f"results/{site}/models/{model}/{fraction}"


def chunk_files(site, model, fraction, name):
    return [
        f"{model_dir(site, model, fraction)}/chunk{k}/{name}" for k in site_chunks(site)
    ]


def init_weights(wildcards):
    parent = MODELS[wildcards.model].get("init_from")
    if not parent:
        return []
    return f"{model_dir(wildcards.site, parent, wildcards.fraction)}/chunk{wildcards.chunk}/weights.pt"


def init_weights_arg(wildcards, input):
    return f"--init-weights {input.init}" if input.init else ""


def gather_inputs(wildcards):
    return chunk_files(
        wildcards.site, wildcards.model, wildcards.fraction, "predictions.nc"
    )


def metrics_file(site, model, fraction):
    return f"{model_dir(site, model, fraction)}/metrics.csv"


# ----------------------------------------------------------------------------- tables


def table_cells(table):
    """(site, model, fraction) triples a table reads."""
    return experiment.table_cells(config, table)


def table_inputs(wildcards):
    return [metrics_file(*cell) for cell in table_cells(wildcards.table)]


def run_provenance(sites, models):
    """What made a result, besides the code version (recorded at run time)."""
    return {
        "sites": {s: SITES[s] for s in sites},
        "training": config["training"],
        "chunk_size": config["chunk_size"],
        "models": {m: MODELS[m] for m in models},
        "architectures": {m: model_architecture(m) for m in models},
        "seeds": {
            "training": config["training"]["seed"],
            "simulate": {
                s: SITES[s]["simulate"].get("seed", 0) for s in sites if is_simulated(s)
            },
            "ingest": {s: (SITES[s].get("ingest") or {}).get("seed", 0) for s in sites},
            "per_neuron": "init_seed column of metrics.csv (derive_seed(seed, site, model, neuron, 'init'))",
        },
    }


def table_spec(wildcards):
    table = wildcards.table
    spec = dict(EXPERIMENTS[table])
    cells = table_cells(table)
    models = list(dict.fromkeys(m for _, m, _ in cells))
    metrics = {}
    for s, m, f in cells:
        metrics.setdefault(s, {}).setdefault(m, {})[f] = metrics_file(s, m, f)
    spec.update(
        table=table,
        labels={m: model_label(m) for m in models},
        metrics=metrics,
        provenance=run_provenance(spec["sites"], models),
    )
    return json.dumps(spec, sort_keys=True)


def parameter_spec():
    used = {MODELS[m]["architecture"] for _, m, _ in all_cells()}
    return json.dumps(
        {
            name: get_architecture(name, ARCHITECTURES).to_dict() | {"label": name}
            for name in sorted(used)
        },
        sort_keys=True,
    )


# ---------------------------------------------------------------------------- figures

FIGURES_CFG = config["figures"]
FIGURE_SITE = experiment.figure_site(config)
FIGURES = experiment.figures(config)


def figure_sites(fig):
    return experiment.figure_sites(config, fig)


def figure_models(fig):
    return experiment.figure_models(config, fig)


def figure_inputs_dict(fig, fraction="f100"):
    """The contract of a figure notebook's ``inputs_json`` (README, Figures).

    Restricted to the figure's sites and models, plus the metrics of the example-neuron
    rule's models at ``figures.site`` (every figure may pick the example neuron).
    """
    sites, models = figure_sites(fig), figure_models(fig)
    metrics = {s: {m: metrics_file(s, m, fraction) for m in models} for s in sites}
    for m in FIGURES_CFG["example_neuron"].get("models") or []:
        metrics.setdefault(FIGURE_SITE, {})[m] = metrics_file(FIGURE_SITE, m, fraction)
    return {
        "datasets": {s: f"results/{s}/dataset.nc" for s in sites},
        "predictions": {
            s: {m: f"{model_dir(s, m, fraction)}/predictions.nc" for m in models}
            for s in sites
        },
        "metrics": metrics,
        "weights": {
            s: {m: chunk_files(s, m, fraction, "weights.pt") for m in models}
            for s in sites
        },
    }


def _flatten_paths(obj):
    if isinstance(obj, dict):
        return [p for v in obj.values() for p in _flatten_paths(v)]
    if isinstance(obj, list):
        return [p for v in obj for p in _flatten_paths(v)]
    return [obj]


def figure_inputs(wildcards):
    fig = wildcards.fig
    return {
        "notebook": str(REPO / "workflow" / "notebooks" / f"{fig}.ipynb"),
        "module": str(REPO / "src" / "sacnn" / "plots" / f"{fig}.py"),
        # Code every figure shares: editing it rebuilds every figure, as it should.
        "shared": sorted(
            str(p) for p in (REPO / "src" / "sacnn" / "plots").glob("_*.py")
        )
        + [str(REPO / "src" / "sacnn" / "analysis.py")],
        "data": _flatten_paths(figure_inputs_dict(fig)),
    }


def figure_inputs_json(wildcards):
    return json.dumps(figure_inputs_dict(wildcards.fig), sort_keys=True)


def figure_params_json(wildcards):
    fig = wildcards.fig
    own = {k: v for k, v in FIGURES_CFG[fig].items() if k not in ("sites", "models")}
    models = figure_models(fig)
    params = {
        "site": FIGURE_SITE,
        "sites": figure_sites(fig),
        "models": models,
        "labels": {m: model_label(m) for m in models},
        "architectures": {m: model_architecture(m) for m in models},
        # what each model inherits and freezes (Fig. 3 draws it; empty: trained from scratch)
        "stages": {
            m: {
                k: MODELS[m][k]
                for k in ("init_from", "load", "freeze")
                if k in MODELS[m]
            }
            for m in models
        },
        "fraction": "f100",
        "example_neuron": FIGURES_CFG["example_neuron"],
        **own,
    }
    return json.dumps(params, sort_keys=True)


# --------------------------------------------------------- ground truth and claims

GROUNDTRUTH = config.get("groundtruth") or {}
CLAIMS = config.get("claims") or {}
GROUNDTRUTH_SITES = list(GROUNDTRUTH.get("sites") or [])


def groundtruth_models_dict(site):
    """What ``python -m sacnn.groundtruth site`` reads for one site (its --spec models)."""
    return {
        m: {
            "label": model_label(m),
            "fraction": "f100",
            "predictions": f"{model_dir(site, m, 'f100')}/predictions.nc",
            "weights": chunk_files(site, m, "f100", "weights.pt"),
        }
        for m in GROUNDTRUTH["models"]
    }


def groundtruth_site_inputs(wildcards):
    site = wildcards.site
    models = groundtruth_models_dict(site)
    return {
        "truth": f"{site_raw_dir(site)}/truth_{site}.nc",
        "dataset": f"results/{site}/dataset.nc",
        "models": _flatten_paths(
            {m: [v["predictions"], *v["weights"]] for m, v in models.items()}
        ),
    }


def groundtruth_site_spec(wildcards):
    return json.dumps(
        {"models": groundtruth_models_dict(wildcards.site), "top_fraction": 0.01},
        sort_keys=True,
    )


def claims_spec_dict():
    """The spec of ``python -m sacnn.claims``: the tests and every file they read (a site's
    dataset and weights only where a test measures ``centre_share``)."""
    sites = {}
    for test in CLAIMS["tests"]:
        for s in experiment.claim_sites(config, test):
            entry = sites.setdefault(
                s,
                {"surround": experiment.site_surround(config, s), "metrics": {}},
            )
            networks = test["measure"] == "centre_share"
            if networks:
                entry["dataset"] = f"results/{s}/dataset.nc"
            for base in (test["model"], test["versus"]):
                for m in experiment.claim_replicates(config, test, base):
                    for f in experiment.claim_fractions(test):
                        entry["metrics"].setdefault(m, {})[f] = metrics_file(s, m, f)
                        if networks:
                            entry.setdefault("weights", {}).setdefault(m, {})[f] = (
                                chunk_files(s, m, f, "weights.pt")
                            )
    return {
        "tests": [
            {**t, "seeds": experiment.claim_seeds(config, t)} for t in CLAIMS["tests"]
        ],
        "default_sites": CLAIMS["sites"],
        # bootstrap, confidence, alpha and seed: the schema fills in their defaults
        **{k: CLAIMS[k] for k in ("bootstrap", "confidence", "alpha", "seed")},
        "sites": sites,
    }


def claims_inputs(wildcards):
    return _flatten_paths(
        {
            s: {k: v for k, v in entry.items() if k != "surround"}
            for s, entry in claims_spec_dict()["sites"].items()
        }
    )


def claims_spec(wildcards):
    spec = claims_spec_dict()
    models = list(
        dict.fromkeys(m for t in CLAIMS["tests"] for m in (t["model"], t["versus"]))
    )
    spec["provenance"] = run_provenance(list(spec["sites"]), models)
    return json.dumps(spec, sort_keys=True)


def groundtruth_provenance(wildcards):
    return json.dumps(
        run_provenance(GROUNDTRUTH_SITES, GROUNDTRUTH["models"]), sort_keys=True
    )


# ------------------------------------------------------------------------ all targets


def all_cells():
    """Every (site, model, fraction) that some table or figure reads."""
    return experiment.all_cells(config)


def check_workflow_config():
    """Cross-checks the schema cannot express; fail before any job with a readable message."""
    for site, cfg in SITES.items():  # the settings each site's first job would reject
        try:
            IngestOptions.from_dict(
                cfg.get("ingest") or {}, where=f"sites.{site}.ingest"
            )
            if is_simulated(site):
                SiteConfig.from_dict(cfg["simulate"], where=f"sites.{site}.simulate")
        except ValueError as exc:
            raise WorkflowConfigError(str(exc)) from None
    for model in MODELS:
        model_chain(model)
        model_stage(model)
        try:
            model_architecture(model)
        except ValueError as exc:
            raise WorkflowConfigError(f"models.{model}: {exc}") from None
    where = [(f"experiments.{t}", EXPERIMENTS[t]) for t in TABLES]
    where += [(f"figures.{f}", FIGURES_CFG[f]) for f in FIGURES]
    for name, spec in where:
        for s in spec.get("sites") or []:
            if s not in SITES:
                raise WorkflowConfigError(
                    f"{name}.sites: unknown site {s!r}; known {sorted(SITES)}"
                )
    for s, m, f in all_cells():
        if m not in MODELS:
            raise WorkflowConfigError(
                f"a table or figure uses unknown model {m!r}; known {sorted(MODELS)}"
            )
        if not 0 < int(f[1:]) <= 100:
            raise WorkflowConfigError(f"fraction {f!r}: expected f1 ... f100")
    for name, listed in (
        ("groundtruth.sites", GROUNDTRUTH_SITES),
        (
            "claims.sites",
            experiment.claims_sites(config) + list(CLAIMS.get("sites") or []),
        ),
    ):
        for s in listed:
            if s not in SITES:
                raise WorkflowConfigError(
                    f"{name}: unknown site {s!r}; known {sorted(SITES)}"
                )
    for s in GROUNDTRUTH_SITES:
        if not is_simulated(s):
            raise WorkflowConfigError(
                f"groundtruth.sites: site {s!r} has no ground truth (only a simulated site, "
                "one with `simulate:`, has one); list it under claims instead"
            )
    example = FIGURES_CFG["example_neuron"].get("models") or []
    for m in example + [FIGURE_SITE]:
        if m not in MODELS and m not in SITES:
            raise WorkflowConfigError(f"figures: unknown model or site {m!r}")


check_workflow_config()


def final_targets():
    return [
        *(f"results/{t}.csv" for t in TABLES),
        "results/tables/parameters.csv",
        *(f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")),
        *(["results/groundtruth.csv"] if GROUNDTRUTH else []),
        *(["results/claims.csv"] if CLAIMS else []),
        *(
            [f"results/figures/groundtruth.{ext}" for ext in ("pdf", "png")]
            if GROUNDTRUTH and CLAIMS
            else []
        ),
    ]
