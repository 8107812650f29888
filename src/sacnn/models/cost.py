"""Arithmetic cost of an architecture: multiply-accumulates per image, FLOPs per training step.

Benchmarks divide these by measured time to report TFLOP/s and a share of the device's peak;
the cost projection (``sacnn.cost``) uses them to compare architectures.
"""

from __future__ import annotations

from dataclasses import dataclass

from sacnn.models.specs import ArchitectureSpec


@dataclass(frozen=True)
class LayerCost:
    """Multiply-accumulates of one layer for one image through one model."""

    name: str
    macs: int


def forward_macs(spec: ArchitectureSpec) -> list[LayerCost]:
    """Per-layer multiply-accumulates of one image through one model (pools, norms and
    nonlinearities are not counted: they are memory-bound, not arithmetic)."""
    c_in, c, d = 1, spec.channels, spec.attention_dim
    out: list[LayerCost] = []
    for i, (layer, (conv, _)) in enumerate(zip(spec.layers, spec.sizes(), strict=True)):
        if layer.kind in ("alpha", "beta"):
            macs = conv * conv * c * c_in * layer.kernel ** 2
        else:  # query and key projections, q.k and attention.v (values: d or all c channels)
            hw = conv * conv
            macs = 2 * hw * d * c + hw * hw * d + hw * hw * (d if layer.v_mapping else c)
            if layer.v_mapping:
                macs += 2 * hw * d * c  # value and output projections
        out.append(LayerCost(f"{i}:{layer.token}", macs))
        c_in = c
    hw = spec.output_size ** 2
    readout = {"fcl": c * hw, "ctl": c, "fcl_decomposed": c * hw + 2}[spec.readout]
    out.append(LayerCost(f"readout:{spec.readout}", readout))
    return out


def training_flops(spec: ArchitectureSpec) -> int:
    """FLOPs of one image through one model in a training step: forward, input and weight
    gradients (3 x the forward's 2 x MACs), less the first layer's input gradient (the
    image needs none). The usual convention for reporting training throughput."""
    layers = forward_macs(spec)
    total = 3 * 2 * sum(layer.macs for layer in layers)
    return total - 2 * layers[0].macs
