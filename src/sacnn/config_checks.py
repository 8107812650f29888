"""What Snakemake's start checks beyond the schema, each error naming its key.

The schema (``workflow/schemas/config.schema.yaml``) checks types, enums and ranges; the
checks here need the code, and go through the typed settings that own each contract
(``TrainConfig``, ``ArchitectureSpec``, ``ModelSpec``), so no value is declared twice: every
model a table, figure, ground truth or claim names exists (``experiments.table1.models[2]:
unknown model ...``), every data fraction is ``f1`` ... ``f100``, the training settings and
every architecture build, and each stage can load and freeze what it names.
:class:`sacnn.plan.WorkflowPlan` runs them when it is built, so ``snakemake -n`` fails before
any job. Pure config logic: no torch, no data files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sacnn import experiment
from sacnn.models.specs import SpecError, get_architecture
from sacnn.training.config import ModelSpec, TrainConfig, TrainingConfigError, check_stage


class WorkflowConfigError(ValueError):
    """A config that validates against the schema but does not make sense as a whole."""


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
