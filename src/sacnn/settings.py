"""Type checks for settings read from YAML, JSON or the command line.

A setting of the wrong type (``repeats: [10]``, ``seed: abc``, ``image_size: null``) must fail
with a message naming the setting and what was expected, not with a TypeError deep inside the
code. Callers prefix the message with where the setting came from (a file, a config key).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SettingError(ValueError):
    """A setting with a wrong type or value; the message names it and what was expected."""


class WorkflowConfigError(ValueError):
    """A workflow config that does not hold together (its matrix, names, sites, settings);
    the message names the key. Snakemake's start prints it alone, as ``error: <message>``."""


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_setting(name: str, value: Any, kind: str, where: str = "") -> None:
    """Check ``value`` against ``kind``: int, int?, float, str, bool, mapping?, strs, floats2.

    ``?`` allows None; ``strs`` is a list of strings, ``floats2`` a pair of numbers. Booleans
    are not numbers here (``repeats: true`` is a mistake, not 1).
    """
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if value is None and optional:
        return

    def is_int(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    def is_real(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    ok, expected = {
        "int": (is_int(value), "an integer"),
        "float": (is_real(value), "a number"),
        "str": (isinstance(value, str), "a string"),
        "bool": (isinstance(value, bool), "true or false"),
        "mapping": (isinstance(value, Mapping), "a mapping of settings"),
        "strs": (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value),
                 "a list of strings"),
        "floats2": (isinstance(value, list | tuple) and len(value) == 2
                    and all(is_real(v) for v in value), "a pair of numbers [low, high]"),
    }[base]
    if not ok:
        prefix = f"{where}: " if where else ""
        raise SettingError(f"{prefix}setting '{name}': expected {expected}"
                           f"{' or null' if optional else ''}, got {_describe(value)}")


def check_settings(values: Mapping[str, Any], kinds: Mapping[str, str], where: str = "") -> None:
    """:func:`check_setting` for every entry of ``kinds`` present in ``values``."""
    for name, kind in kinds.items():
        if name in values:
            check_setting(name, values[name], kind, where)


def settings_from_dict(cls: type[T], data: Any, kinds: Mapping[str, str], where: str,
                       convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> T:
    """Build the settings dataclass ``cls`` from a mapping read from a file or a config.

    Refuses a non-mapping, unknown keys and values of the wrong type, and re-raises the
    class's own value checks, every message prefixed with ``where`` (a file or config key).
    ``convert`` adapts checked values (e.g. lists to tuples) before construction.
    """
    if data is not None and not isinstance(data, Mapping):
        raise SettingError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    values = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(known)}")
    check_settings(values, kinds, where)
    if convert is not None:
        values = convert(values)
    try:
        return cls(**values)
    except ValueError as exc:
        raise SettingError(f"{where}: {exc}") from None


# ------------------------------------------------------------- command-line argument types
# For argparse's ``type=``: a malformed value is a usage error, which argparse reports as
# "<prog>: error: argument --x: ..." with exit status 2, like every other usage error.


def json_object_argument(text: str) -> dict[str, Any]:
    """A JSON object given on the command line (``--settings '{...}'``)."""
    import argparse
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def fraction_argument(text: str) -> float:
    """A share in (0, 1] given on the command line (``--fraction 0.25``)."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value
