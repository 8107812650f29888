"""The workflow's plan: which files every job reads and writes, and what it is handed.

``workflow/rules/*.smk`` only wire paths: each input function and param is a one-line call
(through ``workflow/rules/common.smk``) into a :class:`WorkflowPlan` built from the
validated config. Everything here is pure config and path logic (no torch, no xarray, no
data read except the raw files' headers for a site's neuron count), so the plan is
unit-tested without Snakemake and the workflow parses fast. Its parts: where files are
(``sacnn.paths``), the JSON handed to tables and figures, typed once (``sacnn.handoffs``),
and the checks of the config as a whole that run when it is built (``sacnn.config_checks``).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sacnn import experiment
from sacnn.cli import COMMANDS
from sacnn.config_checks import (
    WorkflowConfigError,
    check_config,
    check_raw_site,
    check_references,
)
from sacnn.data.validate import DataValidationError
from sacnn.handoffs import CLAIMS_SETTINGS, FigureInputs, FigureParams, TableSpec
from sacnn.models.specs import get_architecture
from sacnn.paths import (
    RAW_OPTIONAL,
    RAW_REFERENCE,
    flatten_paths,
    metrics_file,
    model_dir,
    site_file_stem,
    site_raw_dir,
    site_size,
)
from sacnn.provenance import code_digest
from sacnn.training.config import ModelSpec, TrainConfig


class WorkflowPlan:
    """The jobs of one validated workflow config, as paths and hand-offs.

    ``notebooks``: figure name -> path of its notebook (the workflow resolves these with
    ``workflow.source_path`` so that a deployment using the workflow as a module finds them).
    """

    def __init__(self, config: Mapping[str, Any],
                 notebooks: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.sites: Mapping[str, Any] = config["sites"]
        check_references(config)  # every model and fraction named exists, before any is used
        # The config's models plus the extra training seeds the claims ask for.
        self.models: dict[str, Any] = experiment.all_models(config)
        self.architectures: Mapping[str, Any] = config["architectures"]
        self.experiments: Mapping[str, Any] = config.get("experiments") or {}
        self.tables = experiment.tables(config)
        self.figures_cfg: Mapping[str, Any] = config["figures"]
        self.figures = experiment.figures(config)
        self.figure_site = experiment.figure_site(config)
        self.groundtruth: Mapping[str, Any] = config.get("groundtruth") or {}
        self.claims: Mapping[str, Any] = config.get("claims") or {}
        self.groundtruth_sites = list(self.groundtruth.get("sites") or [])
        self.notebooks = dict(notebooks or {})
        self._neurons: dict[str, int] = {}
        self._chunk_sizes: dict[str, int] = {}
        check_config(config, self.models)  # the config as a whole, naming the key
        for s in dict.fromkeys(s for s, _, _ in experiment.trained_cells(config)):
            if not self.is_simulated(s) and check_raw_site(self.sites[s], s):
                self.site_n_neurons(s)  # the training chunks, planned now

    # -------------------------------------------------------------------------- sites

    def is_simulated(self, site: str) -> bool:
        return "simulate" in self.sites[site]

    def simulated_sites(self) -> list[str]:
        return [s for s in self.sites if self.is_simulated(s)]

    def site_files(self, site: str) -> str:
        """The site's name inside its raw file names (train_img_<file_stem>.npy)."""
        return site_file_stem(self.sites[site], site)

    def site_raw_dir(self, site: str) -> str:
        return site_raw_dir(self.sites[site], site)

    def raw_inputs(self, site: str) -> list[str]:
        """The raw files ingest reads: the simulator's output or the files found on disk."""
        files, folder = self.site_files(site), Path(self.site_raw_dir(site))
        if self.is_simulated(site):
            return [str(folder / n.format(files)) for n in (*RAW_REFERENCE, "site.yaml")]
        netcdf = folder / f"{files}.nc"
        if not (folder / RAW_REFERENCE[0].format(files)).exists() and netcdf.exists():
            return [str(netcdf)] + [str(folder / "site.yaml")] * (folder / "site.yaml").exists()
        required = [str(folder / n.format(files)) for n in RAW_REFERENCE]
        optional = [str(folder / n.format(files)) for n in RAW_OPTIONAL]
        return required + [p for p in optional if Path(p).exists()]

    def site_n_neurons(self, site: str) -> int:
        """Neurons of a site, known before ingest so that a dry run can plan every chunk.

        Simulated: the simulator's setting. Raw: ``n_neurons`` from config, else the file
        headers (``sacnn.data.raw.site_shape``, ingest's checks, nothing loaded), never
        trusted: a file they reject plans one chunk, so that the ingest job (which owns the
        file) fails with its message naming file and field. With ingest's
        ``nan_policy: mask_neuron`` give ``n_neurons`` (the count after masking).
        """
        if site not in self._neurons:
            self._neurons[site] = self._count_neurons(site)
        return self._neurons[site]

    def _count_neurons(self, site: str) -> int:
        cfg = self.sites[site]
        if "n_neurons" in cfg and not self.is_simulated(site):
            return int(cfg["n_neurons"])  # the files are not read: a dry run needs none
        try:
            return site_size(cfg, site).neurons
        except WorkflowConfigError as exc:
            raise WorkflowConfigError(f"{exc}; see docs/data-format.md, or set "
                                      f"sites.{site}.n_neurons to plan a dry run") from None
        except DataValidationError as exc:
            print(f"sacnn: cannot read the neuron count of site {site} ({exc}); planning one "
                  "training chunk for it: its ingest_site job will report the problem",
                  file=sys.stderr)
            return 1

    def chunk_size(self, model: str) -> int:
        """Neurons per training job of ``model`` (``chunk_sizes`` by architecture, else
        ``chunk_size``; one size per incremental chain: experiment.model_chunk_size)."""
        if model not in self._chunk_sizes:
            self._chunk_sizes[model] = experiment.model_chunk_size(self.config, model)
        return self._chunk_sizes[model]

    def site_chunks(self, site: str, model: str) -> list[int]:
        """The chunk indices of ``model`` at ``site`` (balanced: experiment.chunk_bounds)."""
        return list(range(experiment.n_chunks(self.site_n_neurons(site),
                                              self.chunk_size(model))))

    def train_resources(self) -> dict[str, int]:
        """threads, mem_mb, runtime (minutes) and gpu of every training job."""
        return dict(self.config["resources"]["train"])

    def simulate_args(self, site: str) -> str:
        cfg = self.sites[site]["simulate"]
        return " ".join(f"-s {shlex.quote(f'{k}={json.dumps(v)}')}"
                        for k, v in sorted(cfg.items()))

    def ingest_options(self, site: str) -> str:
        return json.dumps(self.sites[site].get("ingest") or {}, sort_keys=True)

    # ------------------------------------------------------------------------- models

    def model_label(self, model: str) -> str:
        return self.models[model].get("label") or model

    def model_stage(self, model: str) -> ModelSpec:
        return ModelSpec.from_dict(model, self.models[model])

    def model_architecture(self, model: str) -> dict[str, Any]:
        """The effective architecture spec (config overrides first) as a plain dict."""
        spec = get_architecture(self.models[model]["architecture"], self.architectures)
        return spec.to_dict()

    def model_chain(self, model: str) -> list[str]:
        """``model`` and the stages it is initialised from, earliest first."""
        return experiment.model_chain(self.models, model)

    def train_settings(self, model: str) -> str:
        """The config sections one training job depends on, and nothing else.

        Only the model's own chain and the architectures it uses are passed, so adding a
        model or changing a figure setting does not invalidate trained models (params are
        a rerun trigger).
        """
        models = {m: self.models[m] for m in self.model_chain(model)}
        names = {spec["architecture"] for spec in models.values()}
        return json.dumps({
            "training": self.config["training"],
            "architectures": {k: v for k, v in self.architectures.items() if k in names},
            "models": models,
        }, sort_keys=True)

    def chunk_files(self, site: str, model: str, fraction: str, name: str) -> list[str]:
        return [f"{model_dir(site, model, fraction)}/chunk{k}/{name}"
                for k in self.site_chunks(site, model)]

    def init_weights(self, site: str, model: str, fraction: str, chunk: str) -> list[str]:
        """The weights a stage starts from (same site, fraction and chunk), if any."""
        parent = self.models[model].get("init_from")
        if not parent:
            return []
        return [f"{model_dir(site, parent, fraction)}/chunk{chunk}/weights.pt"]

    def gather_inputs(self, site: str, model: str, fraction: str) -> list[str]:
        return self.chunk_files(site, model, fraction, "predictions.nc")

    # ------------------------------------------------------------------------- tables

    def table_cells(self, table: str) -> list[experiment.Cell]:
        """(site, model, fraction) triples a table reads."""
        return experiment.table_cells(self.config, table)

    def table_inputs(self, table: str) -> list[str]:
        return [metrics_file(*cell) for cell in self.table_cells(table)]

    def run_provenance(self, sites: Iterable[str], models: Iterable[str]) -> dict[str, Any]:
        """What made a result, besides the code version (recorded at run time)."""
        sites, models = list(sites), list(models)
        config = self.config
        return {
            "sites": {s: self.sites[s] for s in sites},
            "training": config["training"],
            "chunk_size": config["chunk_size"],
            "chunk_sizes": {m: self.chunk_size(m) for m in models},
            "models": {m: self.models[m] for m in models},
            "architectures": {m: self.model_architecture(m) for m in models},
            "seeds": {
                "training": TrainConfig.from_dict(config["training"]).seed,
                "simulate": {s: self.sites[s]["simulate"].get("seed", 0)
                             for s in sites if self.is_simulated(s)},
                "ingest": {s: (self.sites[s].get("ingest") or {}).get("seed", 0)
                           for s in sites},
                "per_neuron": "init_seed column of metrics.csv "
                              "(derive_seed(seed, site, model, neuron, 'init'))",
            },
        }

    def table_spec(self, table: str) -> TableSpec:
        spec: TableSpec = dict(self.experiments[table])  # type: ignore[assignment]
        cells = self.table_cells(table)
        models = list(dict.fromkeys(m for _, m, _ in cells))
        metrics: dict[str, dict[str, dict[str, str]]] = {}
        for s, m, f in cells:
            metrics.setdefault(s, {}).setdefault(m, {})[f] = metrics_file(s, m, f)
        spec.update(table=table, labels={m: self.model_label(m) for m in models},
                    metrics=metrics,
                    provenance=self.run_provenance(self.experiments[table]["sites"], models))
        return spec

    def parameter_spec(self) -> dict[str, Any]:
        used = {self.models[m]["architecture"] for _, m, _ in self.all_cells()}
        return {name: get_architecture(name, self.architectures).to_dict()
                for name in sorted(used)}

    # ------------------------------------------------------------------------ figures

    def figure_sites(self, fig: str) -> list[str]:
        return experiment.figure_sites(self.config, fig)

    def figure_models(self, fig: str) -> list[str]:
        return experiment.figure_models(self.config, fig)

    def figure_inputs(self, fig: str, fraction: str = "f100") -> FigureInputs:
        """Every file figure ``fig`` reads: its sites and models, plus the metrics of the
        example-neuron rule's models at ``figures.site`` (any figure may pick the example
        neuron)."""
        sites, models = self.figure_sites(fig), self.figure_models(fig)
        metrics = {s: {m: metrics_file(s, m, fraction) for m in models} for s in sites}
        for m in self.figures_cfg["example_neuron"].get("models") or []:
            metrics.setdefault(self.figure_site, {})[m] = metrics_file(
                self.figure_site, m, fraction)
        return {
            "datasets": {s: f"results/{s}/dataset.nc" for s in sites},
            "predictions": {s: {m: f"{model_dir(s, m, fraction)}/predictions.nc"
                                for m in models} for s in sites},
            "metrics": metrics,
            "weights": {s: {m: self.chunk_files(s, m, fraction, "weights.pt")
                            for m in models} for s in sites},
        }

    def figure_params(self, fig: str) -> FigureParams:
        own = {k: v for k, v in self.figures_cfg[fig].items() if k not in ("sites", "models")}
        models = self.figure_models(fig)
        params: FigureParams = {
            "site": self.figure_site,
            "sites": self.figure_sites(fig),
            "models": models,
            "labels": {m: self.model_label(m) for m in models},
            "architectures": {m: self.model_architecture(m) for m in models},
            # what each model inherits and freezes (Fig. 3 draws it; empty: from scratch)
            "stages": {m: {k: self.models[m][k] for k in ("init_from", "load", "freeze")
                           if k in self.models[m]} for m in models},
            "fraction": "f100",
            "example_neuron": self.figures_cfg["example_neuron"],
        }
        return {**params, **own}  # type: ignore[typeddict-item]

    def notebook(self, fig: str) -> str:
        try:
            return self.notebooks[fig]
        except KeyError:
            raise WorkflowConfigError(f"figures.{fig}: no notebook for this figure") from None

    # ------------------------------------------------------------------------ code

    def code(self, command: str) -> str:
        """Digest of the code a rule runs, named by its ``sacnn`` command (the rule's shell
        is that command's ``python -m`` line, :data:`sacnn.cli.COMMANDS`): a ``code`` param,
        so editing that code reruns the rule."""
        if command not in COMMANDS:
            raise WorkflowConfigError(f"no sacnn command {command!r}; known {sorted(COMMANDS)}")
        return code_digest(COMMANDS[command].entry)

    def figure_code(self, fig: str) -> str:
        """The figure's module and its notebook: editing either rebuilds that figure only."""
        return code_digest(f"sacnn.plots.{fig}", files=(self.notebook(fig),))

    # ------------------------------------------------------- ground truth and claims

    def groundtruth_models(self, site: str) -> dict[str, Any]:
        """What ``python -m sacnn.groundtruth site`` reads for one site (its --spec models)."""
        return {m: {"label": self.model_label(m), "fraction": "f100",
                    "predictions": f"{model_dir(site, m, 'f100')}/predictions.nc",
                    "weights": self.chunk_files(site, m, "f100", "weights.pt")}
                for m in self.groundtruth["models"]}

    def groundtruth_site_inputs(self, site: str) -> dict[str, Any]:
        models = self.groundtruth_models(site)
        return {
            "truth": f"{self.site_raw_dir(site)}/truth_{site}.nc",
            "dataset": f"results/{site}/dataset.nc",
            "models": flatten_paths({m: [v["predictions"], *v["weights"]]
                                     for m, v in models.items()}),
        }

    def groundtruth_site_spec(self, site: str) -> dict[str, Any]:
        return {"models": self.groundtruth_models(site), "top_fraction": 0.01}

    def groundtruth_provenance(self) -> dict[str, Any]:
        return self.run_provenance(self.groundtruth_sites, self.groundtruth["models"])

    def claims_spec(self) -> dict[str, Any]:
        """The spec of ``python -m sacnn.claims``: the tests, the statistics settings, each
        site's controls among the claims' sites (:func:`sacnn.experiment.site_controls`) and
        every file they read (a site's dataset and weights only where a test measures
        ``centre_share``)."""
        config, claims = self.config, self.claims
        sites: dict[str, Any] = {}
        for test in claims["tests"]:
            networks = test["measure"] == "centre_share"
            for s in experiment.claim_sites(config, test):
                entry = sites.setdefault(
                    s, {"surround": experiment.site_surround(config, s), "metrics": {}})
                if networks:
                    entry["dataset"] = f"results/{s}/dataset.nc"
                for base in (test["model"], test["versus"]):
                    for m in experiment.claim_replicates(config, test, base):
                        for f in experiment.claim_fractions(test):
                            entry["metrics"].setdefault(m, {})[f] = metrics_file(s, m, f)
                            if networks:
                                entry.setdefault("weights", {}).setdefault(m, {})[f] = (
                                    self.chunk_files(s, m, f, "weights.pt"))
        models = list(dict.fromkeys(m for t in claims["tests"]
                                    for m in (t["model"], t["versus"])))
        return {
            "tests": [{**t, "seeds": experiment.claim_seeds(config, t)}
                      for t in claims["tests"]],
            "default_sites": claims["sites"],
            # the schema fills in the defaults of these settings (and of each margin)
            **{k: claims[k] for k in CLAIMS_SETTINGS},
            # each site's controls among the sites the claims cover (interaction rows)
            "controls": {s: c for s in sites
                         if (c := [x for x in experiment.site_controls(config, s)
                                   if x in sites])},
            "sites": sites,
            "provenance": self.run_provenance(list(sites), models),
        }

    def claims_inputs(self) -> list[str]:
        return flatten_paths({s: {k: v for k, v in entry.items() if k != "surround"}
                              for s, entry in self.claims_spec()["sites"].items()})

    # -------------------------------------------------------------------- all targets

    def all_cells(self) -> list[experiment.Cell]:
        """Every (site, model, fraction) that some table or figure reads."""
        return experiment.all_cells(self.config)

    def final_targets(self) -> list[str]:
        gt, claims = bool(self.groundtruth), bool(self.claims)
        return [
            *(f"results/{t}.csv" for t in self.tables),
            *(f"results/tables/{t}.html" for t in self.tables),
            "results/tables/parameters.csv",
            "results/tables/parameters.html",
            *(f"results/figures/{f}.{ext}" for f in self.figures for ext in ("pdf", "png")),
            *(["results/groundtruth.csv"] if gt else []),
            *(["results/claims.csv"] if claims else []),
            *([f"results/figures/groundtruth.{ext}" for ext in ("pdf", "png")]
              if gt and claims else []),
        ]

    def intermediate_files(self) -> list[str]:
        """Every file the final targets are made from: simulated raw files, datasets, chunk
        weights and predictions, merged predictions, metrics and per-site ground truth. Inputs of the default target
        too, because Snakemake does not rebuild a deleted intermediate file whose products
        exist: so "delete it and run snakemake" rebuilds it and everything made from it."""
        cells, trained = self.all_cells(), experiment.trained_cells(self.config)
        sites = dict.fromkeys(s for s, _, _ in trained)
        return [
            *(p for s in sites if self.is_simulated(s) for p in self.raw_inputs(s)),
            *(f"{self.site_raw_dir(s)}/truth_{s}.nc" for s in sites if self.is_simulated(s)),
            *(f"results/{s}/dataset.nc" for s in sites),
            *(p for s, m, f in trained for name in ("weights.pt", "predictions.nc")
              for p in self.chunk_files(s, m, f, name)),
            *(f"{model_dir(s, m, f)}/{name}" for s, m, f in cells
              for name in ("predictions.nc", "metrics.csv")),
            *(f"results/{s}/groundtruth.csv" for s in self.groundtruth_sites),
        ]
