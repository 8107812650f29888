"""Parameter counts of every architecture, to check the paper's parameter matching."""

from __future__ import annotations

import pandas as pd

from sacnn.models.kinds import LAYER_KINDS
from sacnn.models.network import Network
from sacnn.models.specs import NAMED_ARCHITECTURES, ArchitectureSpec


def count_parameters(net: Network, trainable_only: bool = False) -> int:
    """Number of scalar parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def released_code_extra(spec: ArchitectureSpec) -> int:
    """Parameters the released code has on top of ours, all without effect on the output.

    Conv biases before a batch norm, the attention key bias, and for gamma = False the
    value and output projections that are built but never used (each layer kind's
    ``released_extra``).
    """
    c, d = spec.channels, spec.attention_dim
    return sum(LAYER_KINDS[layer.kind].released_extra(layer, c, d) for layer in spec.layers)


def parameter_table(specs: dict[str, ArchitectureSpec] | None = None) -> pd.DataFrame:
    """One row per architecture: channels, layers, readout and parameter counts."""
    specs = NAMED_ARCHITECTURES if specs is None else specs
    rows = []
    for name, spec in specs.items():
        n = count_parameters(Network(spec))
        rows.append({
            "architecture": name,
            "channels": spec.channels,
            "layers": " -> ".join(layer.token for layer in spec.layers),
            "readout": spec.readout,
            "parameters": n,
            "parameters_released_code": n + released_code_extra(spec),
        })
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional dependency such as tabulate)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
