"""Models: architecture specs (data), layers (blocks, self-attention), readouts, parameter counts."""

from sacnn._lazy import lazy_package

# Loaded on first use (sacnn._lazy): the workflow imports the light modules of this package
# (specs) while it parses, and must not load torch to do so.
_EXPORTS = {
    "ArchitectureSpec": "sacnn.models.specs",
    "AttentionBlock": "sacnn.models.layers",
    "build_network": "sacnn.models.network",
    "CentreReadout": "sacnn.models.readouts",
    "ConvBlock": "sacnn.models.layers",
    "count_parameters": "sacnn.models.parameters",
    "DecomposedReadout": "sacnn.models.readouts",
    "FeatureMap": "sacnn.models.specs",
    "FullReadout": "sacnn.models.readouts",
    "get_architecture": "sacnn.models.specs",
    "LayerSpec": "sacnn.models.kinds",
    "NAMED_ARCHITECTURES": "sacnn.models.specs",
    "Network": "sacnn.models.network",
    "parameter_table": "sacnn.models.parameters",
    "parse_layer": "sacnn.models.kinds",
    "Readout": "sacnn.models.readouts",
    "released_code_extra": "sacnn.models.parameters",
    "SelfAttention": "sacnn.models.layers",
    "spec_from_dict": "sacnn.models.specs",
    "SpecError": "sacnn.models.kinds",
}

lazy_package(__name__)
