"""Models: architecture specs (data), blocks, self-attention, readouts, parameter counts."""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): the workflow imports the light modules of this package
# (specs) while it parses, and must not load torch to do so.
_EXPORTS = {
    "ArchitectureSpec": "sacnn.models.specs",
    "AttentionBlock": "sacnn.models.network",
    "CentreReadout": "sacnn.models.network",
    "ConvBlock": "sacnn.models.network",
    "DecomposedReadout": "sacnn.models.network",
    "FeatureMap": "sacnn.models.specs",
    "FullReadout": "sacnn.models.network",
    "LayerSpec": "sacnn.models.specs",
    "NAMED_ARCHITECTURES": "sacnn.models.specs",
    "Network": "sacnn.models.network",
    "Readout": "sacnn.models.network",
    "SelfAttention": "sacnn.models.network",
    "SpecError": "sacnn.models.specs",
    "build_network": "sacnn.models.network",
    "count_parameters": "sacnn.models.parameters",
    "get_architecture": "sacnn.models.specs",
    "parameter_table": "sacnn.models.parameters",
    "parse_layer": "sacnn.models.specs",
    "released_code_extra": "sacnn.models.parameters",
    "spec_from_dict": "sacnn.models.specs",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "NAMED_ARCHITECTURES",
    "ArchitectureSpec",
    "AttentionBlock",
    "CentreReadout",
    "ConvBlock",
    "DecomposedReadout",
    "FeatureMap",
    "FullReadout",
    "LayerSpec",
    "Network",
    "Readout",
    "SelfAttention",
    "SpecError",
    "build_network",
    "count_parameters",
    "get_architecture",
    "parameter_table",
    "parse_layer",
    "released_code_extra",
    "spec_from_dict",
]
