"""The readouts: one network module per kind of ``sacnn.models.kinds.READOUT_KINDS``.

A readout kind is its entry in that registry (torch-free: parts, geometry, cost) and its
module here, registered in :data:`READOUT_MODULES` under the same name: the per-neuron
``nn.Module`` (with its own maths, ``weight_map`` and ``bias_term``) and the same readout of
N stacked models (:meth:`Readout.stacked`, what ``sacnn.models.stacked`` runs on a GPU). A
new readout is one entry there, one class here and its test (docs/architecture.md).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

#: ``linear(part, inputs)``: a readout part's N stacked linear maps (sacnn.models.stacked).
Linear = Callable[[str, Tensor], Tensor]


class Readout(nn.Module, metaclass=ABCMeta):
    """A readout: an affine map of the final feature map (B, C, size, size) to one response.

    Each readout states its own maths as one effective weight per (channel, y, x) and a
    constant, ``forward(x) == (x * weight_map()).sum((1, 2, 3)) + bias_term()``, so analysis
    (contributions, the centre/surround split of Fig. 7) asks the readout instead of
    switching on its class. Both are functions of the parameters (autograd intact).
    ``kind`` names its entry in ``sacnn.models.kinds.READOUT_KINDS``.
    """

    kind: ClassVar[str]

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.channels = channels
        self.size = size
        self.centre_index = size // 2

    @abstractmethod
    def weight_map(self) -> Tensor:
        """The effective weight of every feature, shape (C, size, size)."""

    @abstractmethod
    def bias_term(self) -> Tensor:
        """The constant term (0-d): the prediction for an all-zero feature map."""

    @staticmethod
    @abstractmethod
    def stacked(x: Tensor, linear: Linear, centre: int) -> Tensor:
        """The same readout of N models at once (``sacnn.models.stacked``): ``x`` is the
        final map (B, N, C, HW), ``linear(part, inputs)`` the part's N linear maps of
        (B, N, features), ``centre`` the centre hypercolumn's index in HW; (B, N)."""


class CentreReadout(Readout):
    """CTL: a linear map of the centre hypercolumn only (C -> 1)."""

    kind = "ctl"

    def __init__(self, channels: int, size: int) -> None:
        super().__init__(channels, size)
        self.linear = nn.Linear(channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x[:, :, self.centre_index, self.centre_index]).squeeze(-1)

    def weight_map(self) -> Tensor:
        """The linear weights at the centre hypercolumn, zero elsewhere."""
        w = self.linear.weight
        out = torch.zeros(self.channels, self.size, self.size, dtype=w.dtype, device=w.device)
        out[:, self.centre_index, self.centre_index] = w[0]
        return out

    def bias_term(self) -> Tensor:
        return self.linear.bias[0]

    @staticmethod
    def stacked(x: Tensor, linear: Linear, centre: int) -> Tensor:
        return linear("linear", x[..., centre])


class FullReadout(Readout):
    """FCL: a linear map of the whole flattened feature map (C*H*W -> 1), channel-major."""

    kind = "fcl"

    def __init__(self, channels: int, size: int) -> None:
        super().__init__(channels, size)
        self.linear = nn.Linear(channels * size * size, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1)).squeeze(-1)

    def weight_map(self) -> Tensor:
        """The linear weights, unflattened (channel-major, as ``forward`` flattens)."""
        return self.linear.weight.reshape(self.channels, self.size, self.size)

    def bias_term(self) -> Tensor:
        return self.linear.bias[0]

    @staticmethod
    def stacked(x: Tensor, linear: Linear, centre: int) -> Tensor:
        b, n = x.shape[:2]
        return linear("linear", x.reshape(b, n, -1))


class DecomposedReadout(Readout):
    """The FCL of Incr.FC1: centre (C -> 1), surround (C*(HW-1) -> 1), combination (2 -> 1).

    The combination starts at weights (1, 0) and bias 0, so the initial model equals the
    stage it inherits its centre readout from (the released code starts it at random).
    """

    kind = "fcl_decomposed"

    def __init__(self, channels: int, size: int) -> None:
        super().__init__(channels, size)
        self.centre_flat = (size // 2) * size + size // 2
        self.centre = nn.Linear(channels, 1)
        self.surround = nn.Linear(channels * (size * size - 1), 1)
        self.combine = nn.Linear(2, 1)
        with torch.no_grad():
            self.combine.weight.copy_(torch.tensor([[1.0, 0.0]]))
            self.combine.bias.zero_()

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The centre and surround terms before combination, each (B,)."""
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        c = self.centre_flat
        surround = torch.cat([flat[:, :, :c], flat[:, :, c + 1:]], dim=-1)
        return self.centre(flat[:, :, c]).squeeze(-1), self.surround(surround.flatten(1)).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        centre, surround = self.parts(x)
        return self.combine(torch.stack([centre, surround], dim=-1)).squeeze(-1)

    def weight_map(self) -> Tensor:
        """Centre and surround weights, each times its combination weight."""
        a_c, a_s = self.combine.weight[0]
        c, n, ci = self.channels, self.size * self.size, self.centre_flat
        # parts() flattens the surround channel-major over the HW-1 non-centre positions.
        ws = self.surround.weight.reshape(c, n - 1) * a_s
        wc = self.centre.weight.reshape(c, 1) * a_c
        return torch.cat([ws[:, :ci], wc, ws[:, ci:]], dim=1).reshape(c, self.size, self.size)

    def bias_term(self) -> Tensor:
        """Every bias pushed through the combination: a_c b_centre + a_s b_surround + b."""
        a_c, a_s = self.combine.weight[0]
        return a_c * self.centre.bias[0] + a_s * self.surround.bias[0] + self.combine.bias[0]

    @staticmethod
    def stacked(x: Tensor, linear: Linear, centre: int) -> Tensor:
        b, n = x.shape[:2]
        centre_term = linear("centre", x[..., centre])
        surround = torch.cat([x[..., :centre], x[..., centre + 1:]], dim=-1)
        return linear("combine", torch.stack([centre_term, linear("surround",
                                                                  surround.reshape(b, n, -1))],
                                             -1))


#: The network module of every readout kind, by its name in READOUT_KINDS.
READOUT_MODULES: dict[str, type[Readout]] = {
    cls.kind: cls for cls in (FullReadout, CentreReadout, DecomposedReadout)}
