"""Arithmetic cost of an architecture: multiply-accumulates per image, FLOPs per training step.

Benchmarks divide these by measured time to report TFLOP/s and a share of the device's peak;
the cost projection (``sacnn.training.cost``) uses them to compare architectures.
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
    size, c_in, c = spec.input_size, 1, spec.channels
    out: list[LayerCost] = []
    for i, layer in enumerate(spec.layers):
        if layer.kind in ("alpha", "beta"):
            size -= layer.kernel - 1
            out.append(LayerCost(f"{i}:{layer.token}", size * size * c * c_in * layer.kernel ** 2))
            if layer.kind == "alpha":
                size //= 2
        else:
            hw, d = size * size, spec.attention_dim
            dv = d if layer.v_mapping else c
            macs = 2 * hw * d * c + hw * hw * d + hw * hw * dv
            if layer.v_mapping:
                macs += 2 * hw * d * c  # value and output projections
            out.append(LayerCost(f"{i}:{layer.token}", macs))
        c_in = c
    hw = size * size
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
