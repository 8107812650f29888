"""What Snakemake's start checks beyond the schema, each error naming its key.

The schema (``workflow/schemas/config.schema.yaml``) checks types, enums and ranges; the
checks here need the code, and go through the typed settings that own each contract
(``TrainConfig``, ``ArchitectureSpec``, ``ModelSpec``), so no value is declared twice: every
model a table, figure, ground truth or claim names exists (``experiments.table1.models[2]:
unknown model ...``), every data fraction is ``f1`` ... ``f100``, the training settings and
every architecture build, and each stage can load and freeze what it names, the sites each
part names, the figures' modules and a raw site's files. :class:`sacnn.plan.WorkflowPlan`
runs them when it is built (:func:`check_config`), so ``snakemake -n`` fails before any job.
No torch; of the data, only a raw site's folder, file names and ``site.yaml``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sacnn import experiment
from sacnn.data.options import IngestOptions, resolve_options
from sacnn.data.raw import require_site_files
from sacnn.data.validate import DataValidationError
from sacnn.models.kinds import SpecError
from sacnn.models.specs import get_architecture
from sacnn.paths import site_file_stem, site_raw_dir
from sacnn.settings import SettingError, WorkflowConfigError
from sacnn.simulate.config import SiteConfig
from sacnn.training.config import ModelSpec, TrainConfig, TrainingConfigError, check_stage


def model_references(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, model name) of every place a config names a trained model (not ``models``)."""
    experiments = config.get("experiments") or {}
    for t in experiment.tables(config):
        spec = experiments[t]
        yield from ((f"experiments.{t}.models[{i}]", m)
                    for i, m in enumerate(spec.get("models") or []))
        if "baseline" in spec:
            yield f"experiments.{t}.baseline", spec["baseline"]
        for i, row in enumerate(spec.get("rows") or []):
            yield from ((f"experiments.{t}.rows[{i}].{k}", row[k]) for k in ("model", "versus"))
    figures = config.get("figures") or {}
    for fig in [*experiment.figures(config), "example_neuron"]:
        yield from ((f"figures.{fig}.models[{i}]", m)
                    for i, m in enumerate((figures.get(fig) or {}).get("models") or []))
    groundtruth = config.get("groundtruth") or {}
    yield from ((f"groundtruth.models[{i}]", m)
                for i, m in enumerate(groundtruth.get("models") or []))
    for i, test in enumerate((config.get("claims") or {}).get("tests") or []):
        yield from ((f"claims.tests[{i}].{k}", test[k]) for k in ("model", "versus"))


def fraction_references(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, fraction) of every data fraction a config names."""
    experiments = config.get("experiments") or {}
    for t in experiment.tables(config):
        spec = experiments[t]
        if "fraction" in spec:
            yield f"experiments.{t}.fraction", spec["fraction"]
        yield from ((f"experiments.{t}.fractions[{i}]", f)
                    for i, f in enumerate(spec.get("fractions") or []))
    for i, test in enumerate((config.get("claims") or {}).get("tests") or []):
        yield from ((f"claims.tests[{i}].{k}", test[k])
                    for k in ("fraction", "reference_fraction") if k in test)


def check_fraction(key: str, fraction: str) -> None:
    """``f<percent>`` with a percent in 1 ... 100 written without leading zeros (the name
    is part of every path: ``f050`` and ``f50`` would train the same cell twice)."""
    percent = int(fraction[1:]) if fraction[1:].isdigit() else -1
    if not 0 < percent <= 100:
        raise WorkflowConfigError(
            f"{key}: fraction {fraction!r} is out of range: expected f1 ... f100 (the percent "
            "of the training images a model is trained on)")
    if fraction != f"f{percent}":
        raise WorkflowConfigError(f"{key}: fraction {fraction!r}: write it 'f{percent}' (the "
                                  "name is part of every path)")


def check_references(config: Mapping[str, Any]) -> None:
    """Every model name and data fraction a config uses, named by its key."""
    models = config["models"]
    for key, name in model_references(config):
        if name not in models:
            raise WorkflowConfigError(f"{key}: unknown model {name!r}; known {sorted(models)}")
    for key, fraction in fraction_references(config):
        check_fraction(key, fraction)


def check_settings(config: Mapping[str, Any], models: Mapping[str, Any]) -> None:
    """The training settings, every architecture and every stage of ``models`` (the config's
    and the claims' extra seeds), through the typed settings that own them."""
    try:
        TrainConfig.from_dict(config.get("training"))
    except TrainingConfigError as exc:
        raise WorkflowConfigError(str(exc)) from None
    architectures = config.get("architectures") or {}
    for name in architectures:
        try:
            get_architecture(name, architectures)
        except SpecError as exc:
            raise WorkflowConfigError(f"architectures.{name}: {exc}") from None
    for model, entry in models.items():
        try:
            stage = ModelSpec.from_dict(model, entry)
            spec = get_architecture(stage.architecture, architectures)
            parent = models.get(stage.init_from) if stage.init_from else None
            check_stage(stage, spec, parent and get_architecture(parent["architecture"],
                                                                 architectures))
        except (SpecError, TrainingConfigError) as exc:
            text = str(exc)
            raise WorkflowConfigError(
                text if text.startswith("models.") else f"models.{model}: {text}") from None


def check_sites(config: Mapping[str, Any]) -> None:
    """The settings each site's first job (simulate, ingest) would reject."""
    for site, cfg in config["sites"].items():
        try:
            IngestOptions.from_dict(cfg.get("ingest") or {}, where=f"sites.{site}.ingest")
            if "simulate" in cfg:
                SiteConfig.from_dict(cfg["simulate"], where=f"sites.{site}.simulate")
        except ValueError as exc:
            raise WorkflowConfigError(str(exc)) from None


def check_models(config: Mapping[str, Any], models: Mapping[str, Any]) -> None:
    """Every model's chain, stage, architecture and chunk size (``models``: the config's and
    the claims' extra seeds), then the settings through their typed owners."""
    architectures = config.get("architectures") or {}
    for model in models:
        try:
            experiment.model_chain(models, model)
            ModelSpec.from_dict(model, models[model])
            get_architecture(models[model]["architecture"], architectures)
        except ValueError as exc:
            text = str(exc)
            raise WorkflowConfigError(
                text if text.startswith("models.") else f"models.{model}: {text}") from None
    for model in models:
        experiment.model_chunk_size(config, model)
    check_settings(config, models)


def check_site_names(config: Mapping[str, Any]) -> None:
    """Every site a table, figure, the ground truth or a claim names; ground truth only on
    simulated sites."""
    sites = config["sites"]
    experiments, figures = config.get("experiments") or {}, config.get("figures") or {}
    groundtruth, claims = config.get("groundtruth") or {}, config.get("claims") or {}
    where = [(f"experiments.{t}", experiments[t]) for t in experiment.tables(config)]
    where += [(f"figures.{f}", figures[f]) for f in experiment.figures(config)]
    where += [("groundtruth.sites", {"sites": groundtruth.get("sites")})]
    where += [("claims.sites", {"sites": [*experiment.claims_sites(config),
                                          *(claims.get("sites") or [])]})]
    where += [("figures.site", {"sites": [experiment.figure_site(config)]})]
    for name, spec in where:
        for s in spec.get("sites") or []:
            if s not in sites:
                raise WorkflowConfigError(f"{name}: unknown site {s!r}; known {sorted(sites)}")
    for s in groundtruth.get("sites") or []:
        if "simulate" not in sites[s]:
            raise WorkflowConfigError(
                f"groundtruth.sites: site {s!r} has no ground truth (only a simulated "
                "site, one with `simulate:`, has one); list it under claims instead")


def check_figures(config: Mapping[str, Any]) -> None:
    """A figure is its entry, its plotting module and its notebook: the module is checked."""
    for fig in experiment.figures(config):
        if importlib.util.find_spec(f"sacnn.plots.{fig}") is None:
            raise WorkflowConfigError(
                f"figures.{fig}: no plotting module sacnn.plots.{fig} (src/sacnn/plots/"
                f"{fig}.py with make(inputs, params)); a figure is its entry in "
                "config/matrix.yaml, that module and its notebook")


def check_config(config: Mapping[str, Any], models: Mapping[str, Any]) -> None:
    """Everything Snakemake's start checks of a config beyond the schema (but a raw site's
    files: :func:`check_raw_site`), in the order a user reads a config."""
    check_sites(config)
    check_models(config, models)
    check_site_names(config)
    check_figures(config)


def check_raw_site(site_config: Mapping[str, Any], site: str) -> bool:
    """A raw site's folder, files, ``site.yaml`` and options, when Snakemake starts (the
    ingest job reads the data). Whether its files are there: without the folder only
    ``n_neurons`` plans it."""
    folder = Path(site_raw_dir(site_config, site))
    if "n_neurons" in site_config and not folder.exists():
        return False
    try:
        opts = resolve_options(folder, site_config.get("ingest") or {})
        require_site_files(folder, site_file_stem(site_config, site), opts.layout)
    except (DataValidationError, SettingError) as exc:
        raise WorkflowConfigError(f"sites.{site}: {exc}") from None
    return True
