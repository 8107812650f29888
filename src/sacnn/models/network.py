"""Building blocks (alpha/beta CPBs, self-attention) and the per-neuron network (readouts:
``sacnn.models.readouts``).

Block order follows the released code: conv -> (2x2 max-pool) -> batch norm -> sigmoid ->
Dropout2d, valid convolutions, no dropout after the last block. Two deliberate differences,
both function-preserving (see docs/reproduction-notes.md): convolutions that feed a batch norm
have no bias, and the attention key projection has no bias (their gradients are exactly zero).

Dropout masks can be passed in explicitly. The trainer draws them with the counter-based hash
of :mod:`sacnn.models.dropout`, so a neuron's masks do not depend on which other neurons share
its chunk or on the execution strategy (per-model loop or stacked models on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sacnn.models.dropout import dropout_masks
from sacnn.models.readouts import READOUT_MODULES, Readout
from sacnn.models.specs import ArchitectureSpec, SpecError


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




class Network(nn.Module):
    """One neuron's model, built from an :class:`ArchitectureSpec`.

    Blocks live in three lists named by kind (``alpha``, ``attention``, ``beta``) plus a
    ``readout``, so parameter names (``alpha.1.conv.weight``) are stable across the
    architectures of an incremental chain and stages can load each other's blocks.
    """

    def __init__(self, spec: ArchitectureSpec) -> None:
        super().__init__()
        self.spec = spec
        self.alpha = nn.ModuleList()
        self.attention = nn.ModuleList()
        self.beta = nn.ModuleList()
        self.order: list[tuple[str, int]] = []
        channels_in, c, n = 1, spec.channels, len(spec.layers)
        for i, layer in enumerate(spec.layers):
            p = 0.0 if i == n - 1 else spec.dropout  # no dropout right before the readout
            if layer.kind == "sa":  # never the first layer (ArchitectureSpec checks)
                block: nn.Module = AttentionBlock(c, spec.attention_dim, layer.v_mapping, p)
            else:
                block = ConvBlock(channels_in, c, layer.kernel, layer.kind == "alpha", p)
            group = getattr(self, layer.group)
            group.append(block)
            self.order.append((layer.group, len(group) - 1))
            channels_in = c
        self.readout: Readout = READOUT_MODULES[spec.readout](c, spec.output_size)
        self.frozen: tuple[str, ...] = ()
        self.frozen_mode = "eval"

    # -- dropout ------------------------------------------------------------------------
    def dropout_channels(self) -> list[int]:
        """Channels of each dropout site, in forward order (one mask per site)."""
        return [self.spec.channels for g, i in self.order if getattr(self, g)[i].p > 0]

    def draw_masks(self, batch: int, key: int, step: int,
                   dtype: torch.dtype = torch.float32) -> list[Tensor]:
        """Dropout2d masks (B, C, 1, 1) for every site at optimiser step ``step``.

        ``key`` is the neuron's :func:`~sacnn.models.dropout.neuron_key`. Masks are drawn
        for all sites, frozen ones included, and depend on (key, step) alone: the stacked
        GPU path draws the same masks for this neuron whatever its chunk.
        """
        channels = self.dropout_channels()
        if not channels:
            return []
        masks = dropout_masks([key], [step], batch, channels, self.spec.dropout, dtype)
        return [masks[0, s, 0, :, :c].reshape(batch, c, 1, 1) for s, c in enumerate(channels)]

    # -- forward ------------------------------------------------------------------------
    def features(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        """The final feature map (B, C, H, W) that the readout sees."""
        site = 0
        for group, i in self.order:
            block = getattr(self, group)[i]
            mask = None
            if block.p > 0:
                mask = masks[site] if masks is not None else None
                site += 1
            x = block(x, mask)
        return x

    def forward(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        """Predicted response, shape (B,), for images x of shape (B, 1, H, W)."""
        return self.readout(self.features(x, masks))

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Attention (B, HW, HW) of every self-attention layer, in eval mode semantics."""
        maps = []
        for group, i in self.order:
            block = getattr(self, group)[i]
            if group == "attention":
                out, att = block.sa.attend(x)
                maps.append(att)
                x = torch.sigmoid(block.bn(out))
            else:
                x = block(x, None)
        return maps

    # -- incremental learning -----------------------------------------------------------
    def freeze(self, modules: Sequence[str], mode: str = "eval") -> None:
        """Fix the parameters of the named submodules (``alpha``, ``readout.centre`` ...).

        ``mode="eval"`` also keeps the frozen blocks in evaluation mode while training, so
        their batch-norm statistics and dropout are frozen too; ``"train"`` keeps them in
        training mode as the released code does (statistics drift, dropout stays on).
        """
        if mode not in ("eval", "train"):
            raise ValueError(f"frozen_mode must be 'eval' or 'train', got {mode!r}")
        for name in modules:
            try:
                module = self.get_submodule(name)
            except AttributeError as err:
                raise SpecError(f"architecture {self.spec.name!r}: cannot freeze {name!r}: "
                                "no such module") from err
            for p in module.parameters():
                p.requires_grad_(False)
        self.frozen = tuple(modules)
        self.frozen_mode = mode
        self.train(self.training)

    def train(self, mode: bool = True) -> Network:
        super().train(mode)
        if self.frozen_mode == "eval":
            for name in self.frozen:
                self.get_submodule(name).train(False)
        return self


def build_network(spec: ArchitectureSpec, seed: int | None = None) -> Network:
    """Build a network; with ``seed`` its initial weights depend on that seed alone.

    PyTorch's default initialisation draws from the global generator, so the build runs in
    a forked RNG state: the caller's random stream is left untouched.
    """
    if seed is None:
        return Network(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return Network(spec)
