"""The layer registry: each kind is its entry in sacnn.models.kinds.LAYER_KINDS and its module
in sacnn.models.layers.LAYER_MODULES, and nothing else needs to know it. A kind registered
here at run time (``delta(k=K)``: a KxK convolution with a bias, 2x2 average pooling, ReLU,
no batch norm) parses, builds, trains stacked as the per-model network does in float64, is
costed, drawn and frozen by its group's name, with no other code changed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sacnn.models import SpecError, build_network, parse_layer, spec_from_dict
from sacnn.models.cost import activation_bytes, forward_macs, parameter_count
from sacnn.models.dropout import dropout_masks
from sacnn.models.kinds import LAYER_KINDS, LayerKind, LayerSpec
from sacnn.models.layers import LAYER_MODULES, LayerModule, apply_dropout2d
from sacnn.models.specs import NAMED_ARCHITECTURES
from sacnn.models.stacked import StackedNetwork


def test_every_kind_has_its_module_and_their_parameters_agree():
    assert set(LAYER_KINDS) == set(LAYER_MODULES)
    for spec in NAMED_ARCHITECTURES.values():
        net = build_network(spec)
        assert parameter_count(spec) == sum(p.numel() for p in net.parameters()), spec.name
        for layer in spec.layers:
            assert parse_layer(layer.token) == layer
            assert LAYER_KINDS[layer.kind].group in dict(net.named_children())


def test_the_kinds_keep_their_tokens_groups_and_errors():
    assert [parse_layer(t).group for t in ("alpha", "beta(k=3)", "sa(gamma=false)")] == \
        ["alpha", "beta", "attention"]
    with pytest.raises(SpecError, match=r"layer 'gamma': expected 'alpha', "
                                        r"'beta\(k=<odd int>\)' or 'sa\(gamma=true\|false\)'"):
        parse_layer("gamma")
    with pytest.raises(SpecError, match="self-attention cannot be the first layer"):
        spec_from_dict("x", {"base": "rf-CNN", "layers": ["sa", "alpha"]})


class DeltaBlock(nn.Module):
    """The new kind's module: conv (with bias) -> 2x2 average pool -> ReLU -> dropout."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, p: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel)
        self.p = p

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = torch.relu(F.avg_pool2d(self.conv(x), 2))
        return apply_dropout2d(x, mask, self.p, self.training)


def _delta_stacked(net: StackedNetwork, h: Tensor, s: Mapping[str, Tensor], name: str,
                   layer: LayerSpec, first: bool, mask: Tensor | None, training: bool) -> Tensor:
    bias = s[f"{name}.conv.bias"]
    h = net.convolve(h, s[f"{name}.conv.weight"], first) + bias.reshape(1, -1, 1, 1)
    return net.dropout(torch.relu(F.avg_pool2d(h, 2)), mask, name, training)


def _delta(kv: Mapping[str, str], token: str) -> LayerSpec:
    if set(kv) != {"k"} or not kv["k"].isdigit():
        raise SpecError(f"layer {token!r}: delta needs a kernel size, e.g. delta(k=3)")
    return LayerSpec("delta", kernel=int(kv["k"]))


@pytest.fixture
def delta(monkeypatch):
    """The two entries a new kind adds (its data and its module), for this test only."""
    kind = LayerKind(
        "delta", "delta(k=<int>)", _delta, lambda layer: f"delta(k={layer.kernel})",
        group="delta", title="δ", colour="#ffff99", pool=2,
        macs=lambda layer, conv, c_in, c, d: conv * conv * c * c_in * layer.kernel ** 2,
        parameters=lambda layer, c_in, c, d: c_in * c * layer.kernel ** 2 + c,
        activation_bytes=lambda layer, conv, size, c, d: 8 * conv * conv * c,
        details=lambda layer, spec: {"kernel": layer.kernel},
        label=lambda row, compact: f"{row['kernel']}×{row['kernel']}, avg 2")
    monkeypatch.setitem(LAYER_KINDS, kind.name, kind)
    monkeypatch.setitem(LAYER_MODULES, kind.name, LayerModule(
        lambda layer, spec, c_in, p: DeltaBlock(c_in, spec.channels, layer.kernel, p),
        _delta_stacked))
    return spec_from_dict("tiny delta", {"channels": 3, "readout": "ctl", "attention_dim": 2,
                                         "layers": ["delta(k=3)", "alpha", "sa(gamma=true)",
                                                    "delta(K=1)", "beta(k=1)"]})


def test_a_new_layer_kind_needs_only_its_entry_and_its_module(delta):
    from sacnn.analysis import architecture_layers, feature_grid
    from sacnn.plots._blocks import block_text, colour

    spec = delta
    assert [layer.token for layer in spec.layers][::3] == ["delta(k=3)", "delta(k=1)"]
    assert spec.to_dict()["layers"][0] == "delta(k=3)"
    # 50 -conv3-> 48 -avg2-> 24 -alpha-> 20 -pool-> 10, kept by sa, 1x1 delta -> 5, beta 5
    assert spec.sizes() == [(48, 24), (20, 10), (10, 10), (10, 5), (5, 5)]
    assert feature_grid(spec, 1) == (1.5, 2, 4)
    assert spec.modules()[:4] == ["delta", "delta.0", "delta.1", "alpha"]
    with pytest.raises(SpecError, match=r"layer 'delta\(j=2\)': delta needs a kernel size"):
        parse_layer("delta(j=2)")

    nets = [build_network(spec, seed=s).double() for s in range(3)]
    assert [k for k in nets[0].state_dict() if k.startswith("delta")] == \
        ["delta.0.conv.weight", "delta.0.conv.bias", "delta.1.conv.weight", "delta.1.conv.bias"]
    assert parameter_count(spec) == sum(p.numel() for p in nets[0].parameters())
    assert forward_macs(spec)[0].macs == 48 * 48 * 3 * 9 and activation_bytes(spec) > 0

    state = {k: torch.stack([n.state_dict()[k] for n in nets]) for k in nets[0].state_dict()}
    params = {k: v.requires_grad_(True) for k, v in state.items()
              if v.is_floating_point() and "running" not in k}
    x = torch.rand(4, 1, 50, 50, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64)
    frozen = ("delta.0",)
    stacked = StackedNetwork(spec, frozen=frozen)
    masks = list(dropout_masks([1, 2, 3], [0], 4, stacked.dropout_channels(), spec.dropout,
                               torch.float64)[0])
    out = stacked(state, x, masks, training=True)
    out.sum().backward()
    for i, net in enumerate(nets):
        net.freeze(frozen)
        net.train(True)
        ref = net(x, [m[i].reshape(4, -1, 1, 1) for m in masks])
        ref.sum().backward()
        np.testing.assert_allclose(out[i].detach().numpy(), ref.detach().numpy(), atol=1e-10)
        for name in ("delta.1.conv.weight", "attention.0.sa.query.weight",
                     "alpha.0.conv.weight"):
            np.testing.assert_allclose(params[name].grad[i].numpy(),
                                       net.get_parameter(name).grad.numpy(), atol=1e-10)
        assert net.delta[0].conv.weight.grad is None  # frozen by its group's name
    assert len(nets[0].eval().attention_maps(x)) == 1

    rows = architecture_layers(spec)
    assert rows[1] == {"kind": "delta", "group": "delta.0", "channels": 3, "kernel": 3,
                       "size": 24}
    assert rows[4]["group"] == "delta.1"
    assert block_text(rows[1], spec) == "δ\n3×3, avg 2\n→ 3×24×24"
    assert colour("delta") == "#ffff99"


def test_a_new_kind_drawn_in_fig2(delta, tmp_path):
    from sacnn.plots import fig2

    params = {"models": ["m"], "architectures": {"m": delta.to_dict()}, "labels": {"m": "m"}}
    fig = fig2.make({}, params)
    fig.savefig(tmp_path / "fig2.png", dpi=50)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "δ\n3×3, avg 2\n→ 3×24×24" in texts
