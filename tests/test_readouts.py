"""The readout registry: each kind is its entry in sacnn.models.kinds.READOUT_KINDS and its
module in sacnn.models.readouts.READOUT_MODULES, and nothing else needs to know it. A kind
registered here at run time (a 3x3 centre readout) builds, trains stacked as the per-model
network does in float64, is costed and drawn, with no other code changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from sacnn.models import build_network, spec_from_dict
from sacnn.models.cost import parameter_count
from sacnn.models.dropout import dropout_masks
from sacnn.models.kinds import READOUT_KINDS, ReadoutKind
from sacnn.models.readouts import READOUT_MODULES, Linear, Readout
from sacnn.models.stacked import StackedNetwork


def test_every_kind_has_its_module_and_their_parts_and_parameters_agree():
    assert set(READOUT_KINDS) == set(READOUT_MODULES)
    for name, kind in READOUT_KINDS.items():
        module = READOUT_MODULES[name](channels=3, size=5)
        assert module.kind == name
        assert tuple(n for n, _ in module.named_children()) == kind.parts, name
        params = sum(p.numel() for p in module.parameters())
        assert params == kind.parameters(3, 25), name


class Centre3x3Readout(Readout):
    """A new kind for the test: a linear map of the 3x3 hypercolumns around the centre."""

    kind = "ctl3x3"

    def __init__(self, channels: int, size: int) -> None:
        super().__init__(channels, size)
        self.linear = nn.Linear(channels * 9, 1)

    def _window(self, x: Tensor) -> Tensor:
        c = self.centre_index
        return x[..., c - 1:c + 2, c - 1:c + 2]

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self._window(x).flatten(1)).squeeze(-1)

    def weight_map(self) -> Tensor:
        w = self.linear.weight
        out = torch.zeros(self.channels, self.size, self.size, dtype=w.dtype, device=w.device)
        self._window(out)[...] = w.reshape(self.channels, 3, 3)
        return out

    def bias_term(self) -> Tensor:
        return self.linear.bias[0]

    @staticmethod
    def stacked(x: Tensor, linear: Linear, centre: int) -> Tensor:
        b, n, c, hw = x.shape
        side = round(hw ** 0.5)
        y0 = centre // side
        window = x.reshape(b, n, c, side, side)[..., y0 - 1:y0 + 2, y0 - 1:y0 + 2]
        return linear("linear", window.reshape(b, n, -1))


@pytest.fixture
def new_kind(monkeypatch):
    """The two lines a new kind adds (its entry and its module), for this test only."""
    kind = ReadoutKind("ctl3x3", "CTL 3x3", ("linear",), centred=True,
                       inputs=lambda c, hw: 9 * c, macs=lambda c, hw: 9 * c,
                       parameters=lambda c, hw: 9 * c + 1)
    monkeypatch.setitem(READOUT_KINDS, kind.name, kind)
    monkeypatch.setitem(READOUT_MODULES, kind.name, Centre3x3Readout)
    return spec_from_dict("tiny rf 3x3", {"base": "rf-CNN (c=30)", "channels": 3,
                                          "readout": "ctl3x3"})


def test_a_new_readout_kind_needs_only_its_entry_and_its_module(new_kind):
    from sacnn.analysis import architecture_layers
    from sacnn.plots._blocks import block_text

    spec = new_kind
    assert spec.modules()[-2:] == ["readout", "readout.linear"]
    nets = [build_network(spec, seed=s).double() for s in range(3)]
    assert parameter_count(spec) == sum(p.numel() for p in nets[0].parameters()
                                        if p.requires_grad)
    state = {k: torch.stack([n.state_dict()[k] for n in nets]) for k in nets[0].state_dict()}
    params = {k: v.requires_grad_(True) for k, v in state.items()
              if v.is_floating_point() and "running" not in k}
    x = torch.rand(4, 1, 50, 50, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64)
    stacked = StackedNetwork(spec)
    masks = list(dropout_masks([1, 2, 3], [0], 4, stacked.dropout_channels(), spec.dropout,
                               torch.float64)[0])
    out = stacked(state, x, masks, training=True)
    out.sum().backward()
    for i, net in enumerate(nets):
        net.train(True)
        ref = net(x, [m[i].reshape(4, -1, 1, 1) for m in masks])
        ref.sum().backward()
        np.testing.assert_allclose(out[i].detach().numpy(), ref.detach().numpy(), atol=1e-10)
        grad = params["readout.linear.weight"].grad[i].numpy()
        np.testing.assert_allclose(grad, net.readout.linear.weight.grad.numpy(), atol=1e-10)
    row = architecture_layers(spec)[-1]
    assert row["inputs"] == 27 and block_text(row, spec) == "CTL 3x3\n27→1"
    r = nets[0].readout
    feats = torch.rand(2, 3, spec.output_size, spec.output_size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(r(feats), (feats * r.weight_map()).sum((1, 2, 3))
                                   + r.bias_term(), rtol=0, atol=1e-12)


def test_an_unknown_readout_kind_is_refused_with_the_known_ones():
    from sacnn.models import SpecError

    with pytest.raises(SpecError, match=r"readout 'ctl9', expected one of \('fcl', 'ctl', "):
        spec_from_dict("x", {"base": "rf-CNN", "readout": "ctl9"})
