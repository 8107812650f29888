"""Models: architecture specs (data), blocks, self-attention, readouts, parameter counts."""

from sacnn.models.network import (
    GROUPS,
    AttentionBlock,
    CentreReadout,
    ConvBlock,
    DecomposedReadout,
    FullReadout,
    Network,
    SelfAttention,
    build_network,
)
from sacnn.models.parameters import count_parameters, parameter_table, released_code_extra
from sacnn.models.specs import (
    NAMED_ARCHITECTURES,
    ArchitectureSpec,
    LayerSpec,
    SpecError,
    get_architecture,
    parse_layer,
    spec_from_dict,
)

__all__ = [
    "GROUPS",
    "NAMED_ARCHITECTURES",
    "ArchitectureSpec",
    "AttentionBlock",
    "CentreReadout",
    "ConvBlock",
    "DecomposedReadout",
    "FullReadout",
    "LayerSpec",
    "Network",
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
