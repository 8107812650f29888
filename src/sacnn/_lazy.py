"""Packages whose members load on first use (PEP 562), so that the workflow can import their
light modules (settings, specs, options) while it parses without loading torch, xarray or
scipy.

A package lists its members in ``_EXPORTS`` (name -> the module that defines it, a literal
dict: ``sacnn.provenance`` reads it to find what a module imports) and ends with
``lazy_package(__name__)``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class LazyPackage(types.ModuleType):
    """A package module whose ``_EXPORTS`` are imported when first read."""

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails
        exports = self.__dict__.get("_EXPORTS", {})
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_EXPORTS", {})))

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing a submodule sets it as an attribute of its package; where an export has
        # the submodule's name (sacnn.data.ingest defines ingest) it would shadow the export,
        # and `from sacnn.data import ingest` would give the module.
        if name in self.__dict__.get("_EXPORTS", {}) and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


def lazy_package(name: str) -> None:
    """Make the package ``name`` (call with ``__name__`` at the end of its ``__init__``) load
    its ``_EXPORTS`` on first use; its ``__all__`` is their names."""
    module = sys.modules[name]
    module.__class__ = LazyPackage
    module.__all__ = sorted(module._EXPORTS)
