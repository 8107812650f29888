"""The layers: one network module per kind of ``sacnn.models.kinds.LAYER_KINDS``.

A layer kind is its entry in that registry (torch-free: token syntax, parameter group,
geometry, cost, drawing) and its module here, registered in :data:`LAYER_MODULES` under the
same name: ``build`` makes the per-neuron ``nn.Module`` (``forward(x, mask=None)``, its
dropout probability as ``p``: a block with ``p > 0`` is a dropout site) and ``stacked`` is
the same block of N stacked models (what ``sacnn.models.stacked`` runs on a GPU). A new layer
kind is one entry there, one entry here and its test (docs/architecture.md).

Block order follows the released code: conv -> (2x2 max-pool) -> batch norm -> sigmoid ->
Dropout2d, valid convolutions, no dropout after the last block. Two deliberate differences,
both function-preserving (see docs/reproduction-notes.md): convolutions that feed a batch norm
have no bias, and the attention key projection has no bias (their gradients are exactly zero).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sacnn.models.kinds import LayerSpec
from sacnn.models.specs import ArchitectureSpec
from sacnn.models.stacked_ops import attention_sdpa


def apply_dropout2d(x: Tensor, mask: Tensor | None, p: float, training: bool) -> Tensor:
    """Channel dropout. ``mask`` (B, C, 1, 1) holds 0 or 1/(1-p); None draws one as torch does."""
    if not training or p == 0.0:
        return x
    if mask is None:
        return F.dropout2d(x, p, training=True)
    return x * mask


class ConvBlock(nn.Module):
    """alpha-CPB (5x5 conv + 2x2 max-pool) or beta-CPB (kxk conv), then BN, sigmoid, dropout."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, pool: bool,
                 dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, bias=False)
        self.pool = pool
        self.bn = nn.BatchNorm2d(out_channels)
        self.p = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.conv(x)
        if self.pool:
            x = F.max_pool2d(x, 2)
        x = torch.sigmoid(self.bn(x))
        return apply_dropout2d(x, mask, self.p, self.training)


class SelfAttention(nn.Module):
    """Single-head SAGAN-style attention between the hypercolumns of a feature map.

    energy[i, j] = q_i . k_j (no 1/sqrt(d) scaling, as released), softmax over keys j,
    out_i = sum_j attention[i, j] v_j, result = x + residual_gain * out with the gain
    initialised to 0 (the layer starts as the identity). ``v_mapping`` is the paper's gamma:
    True maps V by a 1x1 conv (C -> d) and projects back (d -> C); False uses V = x.
    """

    def __init__(self, channels: int, dim: int, v_mapping: bool) -> None:
        super().__init__()
        self.v_mapping = v_mapping
        self.query = nn.Conv2d(channels, dim, 1)
        # A key bias adds q_i . b to every energy of row i: softmax ignores it, gradient 0.
        self.key = nn.Conv2d(channels, dim, 1, bias=False)
        if v_mapping:
            self.value = nn.Conv2d(channels, dim, 1)
            self.project = nn.Conv2d(dim, channels, 1)
        self.residual_gain = nn.Parameter(torch.zeros(1))

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return (output, attention) with attention of shape (B, HW queries, HW keys)."""
        b, _, h, w = x.shape
        q = self.query(x).reshape(b, -1, h * w)
        k = self.key(x).reshape(b, -1, h * w)
        attention = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)
        v = self.value(x) if self.v_mapping else x
        out = torch.bmm(v.reshape(b, v.shape[1], h * w), attention.transpose(1, 2))
        out = out.reshape(b, v.shape[1], h, w)
        if self.v_mapping:
            out = self.project(out)
        return x + self.residual_gain * out, attention

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(x)[0]


class AttentionBlock(nn.Module):
    """Self-attention followed by BN, sigmoid and dropout (the released code's ``sa_reg``)."""

    def __init__(self, channels: int, dim: int, v_mapping: bool, dropout: float) -> None:
        super().__init__()
        self.sa = SelfAttention(channels, dim, v_mapping)
        self.bn = nn.BatchNorm2d(channels)
        self.p = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = torch.sigmoid(self.bn(self.sa(x)))
        return apply_dropout2d(x, mask, self.p, self.training)

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(output, attention (B, HW, HW)) without dropout (``Network.attention_maps``)."""
        out, attention = self.sa.attend(x)
        return torch.sigmoid(self.bn(out)), attention


# -- the stacked forward of each kind (sacnn.models.stacked) --------------------------------


class StackedOps(Protocol):
    """What a layer's stacked forward uses of the stacked network
    (``sacnn.models.stacked.StackedNetwork``, which imports this module): the per-model
    operations in the implementation it was asked for."""

    attention: str

    def convolve(self, h: Tensor, w: Tensor, first: bool) -> Tensor: ...

    def pool(self, h: Tensor) -> Tensor: ...

    def batch_norm(self, h: Tensor, s: Mapping[str, Tensor], name: str, training: bool
                   ) -> Tensor: ...

    def dropout(self, h: Tensor, mask: Tensor | None, name: str, training: bool) -> Tensor: ...


# ``stacked(net, h, s, name, layer, first, mask, training)``: the block ``name`` (``alpha.0``)
# of N models at once on ``h`` (B, N*C, H, W), ``s`` the stacked parameters and buffers by
# name (batch-norm statistics updated in place while training), ``first`` whether ``h`` is
# the image, ``mask`` its dropout site's (N, B, C) masks or None. ``net`` is the
# StackedNetwork (:class:`StackedOps`): its ``convolve``, ``pool``, ``batch_norm`` and
# ``dropout`` are the per-model operations in the implementation it was asked for.


def _conv_stacked(pool: bool) -> Callable[..., Tensor]:
    def stacked(net: StackedOps, h: Tensor, s: Mapping[str, Tensor], name: str,
                layer: LayerSpec, first: bool, mask: Tensor | None, training: bool) -> Tensor:
        dtype = h.dtype
        h = net.convolve(h, s[f"{name}.conv.weight"], first)
        if pool:
            h = net.pool(h)
        h = h.to(dtype)  # the gemm first layer pools in conv_dtype (max is exact in any dtype)
        h = torch.sigmoid(net.batch_norm(h, s, f"{name}.bn", training))
        return net.dropout(h, mask, name, training)
    return stacked


def _attention_stacked(net: StackedOps, h: Tensor, s: Mapping[str, Tensor], name: str,
                       layer: LayerSpec, first: bool, mask: Tensor | None, training: bool
                       ) -> Tensor:
    v_mapping = layer.v_mapping
    b, nc, hh, ww = h.shape
    n = s[f"{name}.sa.residual_gain"].shape[0]
    c = nc // n
    x = h.reshape(b, n, c, hh * ww)

    def project(key: str, inp: Tensor, bias: bool = True) -> Tensor:
        w = s[f"{name}.sa.{key}.weight"]
        out = torch.matmul(w.reshape(n, w.shape[1], w.shape[2]), inp)
        if bias:
            out = out + s[f"{name}.sa.{key}.bias"].reshape(1, n, -1, 1)
        return out

    q, k = project("query", x), project("key", x, bias=False)
    v = project("value", x) if v_mapping else x
    if net.attention == "sdpa":
        out = attention_sdpa(q, k, v)
    else:
        attention = torch.softmax(torch.matmul(q.transpose(-1, -2), k), dim=-1)
        out = torch.matmul(v, attention.transpose(-1, -2))
    if v_mapping:
        out = project("project", out)
    gain = s[f"{name}.sa.residual_gain"].reshape(1, n, 1, 1)
    h = (x + gain * out).reshape(b, nc, hh, ww)
    h = torch.sigmoid(net.batch_norm(h, s, f"{name}.bn", training))
    return net.dropout(h, mask, name, training)


@dataclass(frozen=True)
class LayerModule:
    """A layer kind's network side: ``build(layer, spec, channels_in, p)`` its per-neuron
    module (``p`` its dropout probability), ``stacked`` its forward for N stacked models."""

    build: Callable[[LayerSpec, ArchitectureSpec, int, float], nn.Module]
    stacked: Callable[[StackedOps, Tensor, Mapping[str, Tensor], str, LayerSpec, bool,
                       Tensor | None, bool], Tensor]


#: The network module of every layer kind, by its name in LAYER_KINDS.
LAYER_MODULES: dict[str, LayerModule] = {
    "alpha": LayerModule(lambda layer, spec, c_in, p: ConvBlock(c_in, spec.channels,
                                                                layer.kernel, True, p),
                         _conv_stacked(pool=True)),
    "beta": LayerModule(lambda layer, spec, c_in, p: ConvBlock(c_in, spec.channels,
                                                               layer.kernel, False, p),
                        _conv_stacked(pool=False)),
    # never the first layer (LAYER_KINDS["sa"].not_first), so its input has spec.channels
    "sa": LayerModule(lambda layer, spec, c_in, p: AttentionBlock(
        spec.channels, spec.attention_dim, layer.v_mapping, p), _attention_stacked),
}
