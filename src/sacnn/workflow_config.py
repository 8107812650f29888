"""How the workflow's config is assembled: the matrix, the scale config, overlays, ``--config``.

The experiment matrix (``config/matrix.yaml``: models, tables, figures, claims, ground truth)
is declared once; a scale config (``config/config.yaml``, ``paper.yaml``, ...) says its
sites, training, widths, chunk sizes and resources and overlays the matrix
(:func:`assemble`): mappings merge key by key, lists and values replace, a key set to null is
left out (a model set to null also leaves every list that names it), the matrix's site
roles (``main``, ``first``, ``all``, ``simulated``: :func:`site_roles`) become the scale
config's sites, and the claims' ``tests`` (a mapping by claim name in the matrix, so that a
scale config can change one) become the list ``sacnn.claims`` reads. The result is the
config the schema validates and the plan reads; what changed is only how it is written.

A config file is either complete (it has ``sites``: an experiment of its own, which replaces
the default so that the demo's narrower settings cannot leak into it) or an overlay merged
onto the default (:func:`is_complete`). Snakemake reads ``--config key=value`` with YAML's
base loader, so every scalar arrives as a string (``--config 'training={epochs: 8}'`` gives
``"8"``): :func:`coerce_overrides` turns the values given on the command line into the type
the schema asks for (for ``training`` and ``architectures``, which the schema leaves to their
typed settings, the types those declare), before validation, and leaves anything it cannot
convert for the validator or the start checks to report. :func:`load_config` does all of it for the tools that read a config
without Snakemake (``sacnn cost``, the tests), as the Snakefile does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from sacnn.config_checks import WorkflowConfigError

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "config" / "matrix.yaml"
DEFAULT = ROOT / "config" / "config.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
#: The sections of the experiment matrix (config/matrix.yaml).
MATRIX_SECTIONS = ("models", "experiments", "figures", "claims", "groundtruth")

_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def is_complete(config: Mapping[str, Any]) -> bool:
    """Whether a config (file or files, merged) describes a whole experiment."""
    return "sites" in config


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return schema
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _child(schema: Mapping[str, Any], key: Any, root: Mapping[str, Any]
           ) -> Mapping[str, Any] | None:
    schema = _resolve(schema, root)
    if isinstance(key, int):
        items = schema.get("items")
        return items if isinstance(items, Mapping) else None
    if key in (schema.get("properties") or {}):
        return schema["properties"][key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _types(schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[str]:
    schema = _resolve(schema, root)
    kind = schema.get("type")
    types = [kind] if isinstance(kind, str) else list(kind or [])
    for alt in (*schema.get("oneOf", ()), *schema.get("anyOf", ())):
        types += _types(alt, root)
    return types


def _coerce(text: str, types: list[str]) -> Any:
    if "string" in types:
        return text
    low = text.strip().lower()
    if "integer" in types:
        try:
            return int(low)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(low)
        except ValueError:
            pass
    if "boolean" in types and low in _BOOLEANS:
        return _BOOLEANS[low]
    if "null" in types and low in ("null", "none", "~", ""):
        return None
    return text


def _with_settings_types(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema with the types of ``training``'s fields, which TrainConfig declares, and
    of every architecture's keys, which ``sacnn.models.specs.spec_from_dict`` declares."""
    from sacnn.models.specs import spec_field_types  # light: no torch
    from sacnn.training.config import TrainConfig  # light: settings only

    types = {k: {"type": t} for k, t in TrainConfig.field_types().items()}
    properties = dict(schema.get("properties") or {})
    properties["training"] = {**(properties.get("training") or {}), "properties": types}
    architecture = {"type": "object",
                    "properties": {k: {"type": t} for k, t in spec_field_types().items()}}
    properties["architectures"] = {**(properties.get("architectures") or {}),
                                   "additionalProperties": architecture}
    return {**schema, "properties": properties}


def coerce_overrides(config: MutableMapping[str, Any], overrides: Mapping[str, Any],
                     schema: Mapping[str, Any]) -> None:
    """Convert, in ``config``, the string values that ``overrides`` (``--config``) set to
    the type ``schema`` gives their key; other values are left to the validator."""

    schema = _with_settings_types(schema)

    def walk(target: Any, given: Any, node: Mapping[str, Any] | None) -> None:
        keys = (given.keys() if isinstance(given, Mapping)
                else range(len(given)) if isinstance(given, list) else ())
        for key in keys:
            sub = _child(node, key, schema) if node is not None else None
            value = given[key]
            if isinstance(value, Mapping | list):
                walk(target[key], value, sub)
            elif isinstance(value, str) and sub is not None:
                target[key] = _coerce(value, _types(sub, schema))

    walk(config, overrides, schema)


# ------------------------------------------------------------------ the matrix overlaid


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base``: mappings merged key by key, lists and values replaced
    (what Snakemake does with several ``--configfile``); neither argument is changed."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def site_roles(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """What each site role of the matrix names in ``config``: ``main`` (its ``main_sites``,
    default every site), ``first`` (the first main site), ``all`` (every site, controls
    included) and ``simulated`` (every site with ``simulate:``), in the config's order."""
    sites = dict(config.get("sites") or {})
    named_like_a_role = [s for s in sites if s in ("main", "first", "all", "simulated")]
    if named_like_a_role:
        raise WorkflowConfigError(f"sites.{named_like_a_role[0]}: a site cannot be named like a "
                                  "site role (main, first, all, simulated); rename it")
    main = list(config.get("main_sites") or sites)
    unknown = [s for s in main if s not in sites]
    if unknown:
        raise WorkflowConfigError(f"main_sites: unknown sites {unknown}; known {list(sites)}")
    return {"main": main, "first": main[:1], "all": list(sites),
            "simulated": [s for s in sites if "simulate" in (sites[s] or {})]}


def _role_sites(where: str, sites: Any, roles: Mapping[str, list[str]]) -> Any:
    """A role's sites; a list of sites (or anything else, for the schema) as it is."""
    if not isinstance(sites, str):
        return sites
    if sites not in roles:
        raise WorkflowConfigError(f"{where}: {sites!r} is neither a list of sites nor a site "
                                  f"role; the roles are {', '.join(roles)}")
    return list(roles[sites])


def _entries_with_sites(config: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """(key, parent, name) of every entry of the matrix that names its ``sites``."""
    found = []
    for section in ("experiments", "figures"):
        for name, entry in (config.get(section) or {}).items():
            if isinstance(entry, dict):
                found.append((f"{section}.{name}", config[section], name))
    if isinstance(config.get("groundtruth"), dict):
        found.append(("groundtruth", config, "groundtruth"))
    tests = (config.get("claims") or {}).get("tests")
    if isinstance(tests, list):
        found += [(f"claims.tests[{i}]", tests, i) for i, t in enumerate(tests)
                  if isinstance(t, dict)]
    return found


def _place_sites(config: dict[str, Any]) -> None:
    """Every site role becomes the scale config's sites; an entry whose role names no site
    (the ground truth of a config of recorded sites) is left out."""
    roles = site_roles(config)
    figures = config.get("figures") or {}
    if figures.get("site") in roles:  # one site: a role of one ('first'), or a site's name
        named = roles[figures["site"]]
        if len(named) != 1:
            raise WorkflowConfigError(f"figures.site: role {figures['site']!r} names "
                                      f"{len(named)} sites {named}; it takes one ('first')")
        figures["site"] = named[0]
    claims = config.get("claims") or {}
    if "sites" in claims:
        claims["sites"] = _role_sites("claims.sites", claims["sites"], roles)
    for key, parent, name in reversed(_entries_with_sites(config)):
        entry = parent[name]
        if "sites" not in entry:
            continue
        entry["sites"] = _role_sites(f"{key}.sites", entry["sites"], roles)
        if entry["sites"] == []:
            del parent[name]


def _drop_models(config: dict[str, Any], removed: Sequence[str]) -> None:
    """Leave the models a config set to null out of every list of models that names them;
    a baseline, a tableA row or a claim that names one is refused later, by its key."""
    lists = [*(config.get("experiments") or {}).values(),
             *(config.get("figures") or {}).values(), config.get("groundtruth")]
    for entry in lists:
        if isinstance(entry, dict) and isinstance(entry.get("models"), list):
            entry["models"] = [m for m in entry["models"] if m not in removed]


def _claims_as_list(config: dict[str, Any]) -> None:
    """The matrix's claims by name -> the list of tests ``sacnn.claims`` reads (in order)."""
    claims = config.get("claims")
    if not isinstance(claims, dict) or not isinstance(claims.get("tests"), Mapping):
        return
    tests = []
    for name, test in claims["tests"].items():
        test = dict(test or {})
        if test.setdefault("claim", name) != name:
            raise WorkflowConfigError(f"claims.tests.{name}.claim: {test['claim']!r} differs "
                                      f"from the name of its entry {name!r}; leave it out")
        tests.append(test)
    claims["tests"] = tests


def assemble(config: Mapping[str, Any], matrix: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment of ``config`` (a scale config with its overlays and ``--config``
    values): the ``matrix`` with ``config`` laid over it, nulls left out, the claims as a
    list and every site role replaced by the config's sites. A config that already is an
    assembled one gives itself back."""
    merged = merge(matrix, config)
    removed = [m for m, v in (merged.get("models") or {}).items() if v is None]
    out = _without_nulls(merged)
    _drop_models(out, removed)
    _claims_as_list(out)
    _place_sites(out)
    return out


def load_config(paths: Sequence[str | Path], *, matrix: str | Path = MATRIX,
                default: str | Path = DEFAULT, schema: str | Path = SCHEMA) -> dict[str, Any]:
    """The config the workflow would run with ``--configfile paths``: the files merged in
    order (the default under them unless they are complete), assembled on the matrix,
    validated with the schema's defaults filled in. Every file is read strictly
    (``sacnn.yamlfile``: a key given twice is refused)."""
    from snakemake.utils import validate  # the workflow's own validation and defaults

    from sacnn.yamlfile import load_yaml

    def read(path: str | Path) -> dict[str, Any]:
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            raise WorkflowConfigError(f"{path}: expected a mapping of config sections")
        return data

    config: dict[str, Any] = {}
    for path in paths:
        config = merge(config, read(path))
    if not is_complete(config):
        config = merge(read(default), config)
    config = assemble(config, read(matrix))
    validate(config, str(schema), set_default=True)
    return config
