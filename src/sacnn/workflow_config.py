"""How the workflow's config is assembled from the default, overlays and ``--config``.

Snakemake reads ``--config key=value`` with YAML's base loader, so every scalar arrives as a
string (``--config 'training={epochs: 8}'`` gives ``"8"``). :func:`coerce_overrides` turns
the values given on the command line into the type the schema asks for, before validation,
and leaves anything it cannot convert for the validator to report. A config file is either
complete (it has ``sites``: an experiment of its own, which replaces the default so that the
demo's narrower settings cannot leak into it) or an overlay merged onto the default
(:func:`is_complete`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

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


def coerce_overrides(config: MutableMapping[str, Any], overrides: Mapping[str, Any],
                     schema: Mapping[str, Any]) -> None:
    """Convert, in ``config``, the string values that ``overrides`` (``--config``) set to
    the type ``schema`` gives their key; other values are left to the validator."""

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
