"""Raw-data contract, validation, ingest into the canonical NetCDF, preprocessing and splits.

See docs/data-format.md for the files a site needs and the canonical dataset"s layout.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# Loaded on first use (PEP 562): the workflow imports the light modules of this package
# (options, raw, validate) while it parses, and must not load xarray to do so.
_EXPORTS = {
    "DataValidationError": "sacnn.data.validate",
    "IngestOptions": "sacnn.data.options",
    "RawSite": "sacnn.data.raw",
    "TrainingArrays": "sacnn.data.preprocess",
    "build_dataset": "sacnn.data.ingest",
    "fraction_count": "sacnn.data.preprocess",
    "ingest": "sacnn.data.ingest",
    "open_dataset": "sacnn.data.ingest",
    "read_site": "sacnn.data.raw",
    "training_arrays": "sacnn.data.preprocess",
    "validate_canonical": "sacnn.data.ingest",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """Keeps the exported function ``ingest`` from being shadowed by the submodule of the
    same name: importing ``sacnn.data.ingest`` sets the package's attribute ``ingest`` to the
    module, after which ``from sacnn.data import ingest`` would give the module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return  # the export stays reachable through __getattr__
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DataValidationError",
    "IngestOptions",
    "RawSite",
    "TrainingArrays",
    "build_dataset",
    "fraction_count",
    "ingest",
    "open_dataset",
    "read_site",
    "training_arrays",
    "validate_canonical",
]
