"""Reading YAML the one strict way: the safe loader, and no key given twice in a mapping.

YAML lets a mapping name a key twice and keeps the last value without a word (a second
``sim1:`` under ``sites:`` silently replaces the first). A user never means that, so every
YAML file the project reads goes through :func:`load_yaml`: the workflow's config files
(``config/config.yaml`` and every ``--configfile``, checked when Snakemake starts), a raw
site's ``site.yaml``, simulation settings (``sacnn simulate --config``) and ``sacnn cost
--configfile``. A repeated key is a :class:`DuplicateKeyError`
naming the file, the key's place and both lines. Light to import (the workflow parses it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from sacnn.settings import SettingError

#: Key tags that are not keys of the mapping itself (``<<: *defaults`` merges another one).
_SPECIAL_KEYS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


class DuplicateKeyError(SettingError):
    """A YAML mapping that gives the same key twice; the message names file, key and lines."""


def _place(parent: str, key: Any) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _duplicates(loader: yaml.SafeLoader, node: yaml.Node, where: str, seen: set[int]
                ) -> Iterator[tuple[str, Any, int, int]]:
    """(place of the mapping, key, first line, second line) of every repeated key."""
    if id(node) in seen:  # an alias: its node was walked where it was defined
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(loader, item, f"{where}[{i}]", seen)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in _SPECIAL_KEYS:
                continue
            key = loader.construct_object(key_node)  # `1` and `"1"` differ, `yes`/`true` not
            line = key_node.start_mark.line + 1
            if key in lines:
                yield where, key, lines[key], line
            else:
                lines[key] = line
            yield from _duplicates(loader, value_node, _place(where, key), seen)


def _message(path: str | Path, where: str, key: Any, first: int, second: int) -> str:
    inside = f" (in '{where}')" if where else ""
    return (f"{path}: key {key!r}{inside} is given twice, on line {first} and on line "
            f"{second}; YAML would silently keep only the second: remove or rename one")


def parse_yaml(text: str, path: str | Path) -> Any:
    """The one YAML document in ``text`` (safe loader), refusing a key given twice.

    Syntax errors propagate as ``yaml.YAMLError`` for the caller to report with its
    context; a repeated key is a :class:`DuplicateKeyError` naming ``path``.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        for where, key, first, second in _duplicates(loader, node, "", set()):
            raise DuplicateKeyError(_message(path, where, key, first, second))
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """:func:`parse_yaml` of a file (UTF-8); ``OSError``/``UnicodeDecodeError`` propagate."""
    return parse_yaml(Path(path).read_text(encoding="utf-8"), path)


def _json_duplicates(text: str, path: str | Path) -> None:
    """A JSON config (Snakemake also reads JSON) that YAML cannot parse: refuse a key given
    twice in one object (JSON's parser gives no line numbers)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        for k in keys:
            if keys.count(k) > 1:
                raise DuplicateKeyError(f"{path}: key {k!r} is given twice in one JSON object; "
                                        "JSON readers silently keep only the second: remove "
                                        "or rename one")
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError:
        pass  # neither YAML nor JSON: Snakemake, which read it, reports that


def check_unique_keys(paths: Iterable[str | Path]) -> None:
    """Refuse a key given twice in any of the config files ``paths`` (YAML or JSON), each
    read once; the first repeated key is a :class:`DuplicateKeyError`."""
    for path in dict.fromkeys(str(p) for p in paths):
        text = Path(path).read_text(encoding="utf-8")
        try:
            parse_yaml(text, path)
        except yaml.YAMLError:
            _json_duplicates(text, path)
