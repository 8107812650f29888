"""Arithmetic cost of an architecture: multiply-accumulates per image, FLOPs per training step.

Benchmarks divide these by measured time to report TFLOP/s and a share of the device's peak;
the cost projection (``sacnn.cost``) uses them to compare architectures.
"""

from __future__ import annotations

from dataclasses import dataclass

from sacnn.models.kinds import LAYER_KINDS, READOUT_KINDS
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
        macs = LAYER_KINDS[layer.kind].macs(layer, conv, c_in, c, d)
        out.append(LayerCost(f"{i}:{layer.token}", macs))
        c_in = c
    hw = spec.output_size ** 2
    readout = READOUT_KINDS[spec.readout].macs(c, hw)
    out.append(LayerCost(f"readout:{spec.readout}", readout))
    return out


def training_flops(spec: ArchitectureSpec) -> int:
    """FLOPs of one image through one model in a training step: forward, input and weight
    gradients (3 x the forward's 2 x MACs), less the first layer's input gradient (the
    image needs none). The usual convention for reporting training throughput."""
    layers = forward_macs(spec)
    total = 3 * 2 * sum(layer.macs for layer in layers)
    return total - 2 * layers[0].macs


def activation_bytes(spec: ArchitectureSpec) -> int:
    """Bytes one image through one model keeps for the backward in a stacked bf16 step,
    plus the float32 gradient of the largest map (alive while its layer's backward runs);
    each layer's share is its kind's ``activation_bytes`` (``sacnn.models.specs``)."""
    total, largest = 0, 0
    c, d = spec.channels, spec.attention_dim
    for layer, (conv, size) in zip(spec.layers, spec.sizes(), strict=True):
        largest = max(largest, conv * conv * c)
        total += LAYER_KINDS[layer.kind].activation_bytes(layer, conv, size, c, d)
    return total + 4 * largest


def parameter_count(spec: ArchitectureSpec) -> int:
    """Trainable parameters of one model (batch-norm statistics aside), from the spec."""
    c, d, c_in, total = spec.channels, spec.attention_dim, 1, 0
    for layer in spec.layers:
        total += LAYER_KINDS[layer.kind].parameters(layer, c_in, c, d)
        c_in = c
    hw = spec.output_size ** 2
    return total + READOUT_KINDS[spec.readout].parameters(c, hw)


def training_memory_bytes(spec: ArchitectureSpec, neurons: int, batch: int) -> int:
    """Estimated peak device memory of a stacked training step of ``neurons`` models:
    activations (:func:`activation_bytes`) for ``batch`` images, and per parameter its
    value, gradient and two Adam moments in float32. Checked against the H200's measured
    peaks (tests: within 0.9-1.4x of ff-CNN and ff+sa-CNN at 300 neurons and of the c=375
    model at 32); an estimate for a warning, not a guarantee."""
    return neurons * (batch * activation_bytes(spec) + 16 * parameter_count(spec))
