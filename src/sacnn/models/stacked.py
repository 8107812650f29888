"""N independent networks of one architecture evaluated as one network (the GPU fast path).

Parameters and buffers carry the names of :class:`~sacnn.models.network.Network`'s
``state_dict`` with a leading neuron dimension N. Activations are laid out as
(B, N*C, H, W): model n owns channels [n*C, (n+1)*C). With that layout

* the first convolution of every model sees the same image, so it is one dense convolution
  with N*C output channels;
* batch norm, pooling, sigmoid and dropout are the ordinary per-channel operations;
* every later kxk convolution is one grouped convolution with N groups ("grouped", cuDNN,
  in NCHW or channels-last), or ``unfold`` + a matmul per (image, model) ("gemm"; measured
  1.3-3x slower on an H200, kept for comparison: docs/performance.md); 1x1 convolutions,
  attention (plain matmuls or F.scaled_dot_product_attention) and readouts are batched
  matmuls or reductions; the alpha blocks' max-pool is F.max_pool2d or a pool keeping a
  uint8 argmax (:mod:`sacnn.models.stacked_ops`).

Nothing couples two models: each neuron's output, gradient and batch-norm statistics are
those of its own :class:`Network` (tests check it to 1e-9 in float64).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor

from sacnn.models.kinds import LayerSpec
from sacnn.models.layers import LAYER_MODULES
from sacnn.models.network import Network
from sacnn.models.readouts import READOUT_MODULES
from sacnn.models.specs import ArchitectureSpec
from sacnn.models.stacked_ops import max_pool2x2

CONV_IMPLS = ("grouped", "gemm")
FIRST_LAYER_IMPLS = ("cudnn", "gemm")
LAYOUTS = ("nchw", "channels_last")
POOL_IMPLS = ("torch", "uint8")
ATTENTION_IMPLS = ("matmul", "sdpa")
_BN_MOMENTUM, _BN_EPS = 0.1, 1e-5


class StackedNetwork:
    """The forward pass of N models of ``spec`` at once, as a function of stacked tensors.

    ``frozen``/``frozen_mode`` mean what they mean for :meth:`Network.freeze`: frozen
    blocks in ``"eval"`` mode use their running statistics and no dropout while training.
    ``conv_dtype`` (e.g. bfloat16) is the operand type of the per-model kxk convolutions,
    which hold nearly all the arithmetic; they accumulate and return in the parameters'
    dtype, and everything else (first convolution, attention, batch norm, readout) stays in
    it too. ``first_layer="gemm"`` computes the shared first convolution as one matrix
    product of the image patches with every model's filters, writing channels-last (and, with
    ``conv_dtype``, pooling in that dtype before the cast back), so the largest activation of
    the network is written once, narrow, in the layout the next layers read best. It is an
    alternative to cuDNN's convolution for the GPU measurements; both agree to 1e-10 in
    float64. ``layout="channels_last"`` runs the grouped convolutions (and what follows
    them) channels-last; ``max_pool="uint8"`` pools with :func:`max_pool2x2`;
    ``attention="sdpa"`` attends with :func:`attention_sdpa`.
    """

    def __init__(self, spec: ArchitectureSpec, frozen: Sequence[str] = (),
                 frozen_mode: str = "eval", conv: str = "grouped",
                 conv_dtype: torch.dtype | None = None, first_layer: str = "cudnn",
                 layout: str = "nchw", max_pool: str = "torch",
                 attention: str = "matmul") -> None:
        for name, value, choices in (("conv", conv, CONV_IMPLS),
                                     ("first_layer", first_layer, FIRST_LAYER_IMPLS),
                                     ("layout", layout, LAYOUTS),
                                     ("max_pool", max_pool, POOL_IMPLS),
                                     ("attention", attention, ATTENTION_IMPLS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        template = Network(spec)
        self.spec = spec
        # (module name, layer spec, index of its dropout site or None), in forward order;
        # Network.order follows spec.layers, so the two zip.
        self.blocks: list[tuple[str, LayerSpec, int | None]] = []
        for (group, i), layer in zip(template.order, spec.layers, strict=True):
            site = len([b for b in self.blocks if b[2] is not None]) \
                if getattr(template, group)[i].p > 0 else None
            self.blocks.append((f"{group}.{i}", layer, site))
        self.frozen = tuple(frozen)
        self.frozen_mode = frozen_mode
        self.conv = conv
        self.conv_dtype = conv_dtype
        self.first_layer = first_layer
        self.layout = layout
        self.max_pool = max_pool
        self.attention = attention
        self.profile_blocks = False

    # -- the per-model operations the layers' stacked forwards use (sacnn.models.layers) --
    def _in_train_mode(self, module: str, training: bool) -> bool:
        if not training:
            return False
        if self.frozen_mode != "eval":
            return True
        return not any(module == f or module.startswith(f + ".") for f in self.frozen)

    def batch_norm(self, h: Tensor, s: Mapping[str, Tensor], name: str, training: bool
                   ) -> Tensor:
        """Batch norm ``name`` of every model; its running statistics updated while training
        unless it is frozen in eval mode."""
        n_c = h.shape[1]
        train = self._in_train_mode(name, training)
        mean, var = s[f"{name}.running_mean"], s[f"{name}.running_var"]
        out = F.batch_norm(h, mean.view(n_c), var.view(n_c), s[f"{name}.weight"].reshape(n_c),
                           s[f"{name}.bias"].reshape(n_c), training=train,
                           momentum=_BN_MOMENTUM, eps=_BN_EPS)
        if train:
            with torch.no_grad():
                s[f"{name}.num_batches_tracked"].add_(1)
        return out

    def convolve(self, h: Tensor, w: Tensor, first: bool) -> Tensor:
        """Per-model valid convolution; h (B, N*Cin, H, W), w (N, Cout, Cin, k, k)."""
        n, c_out, c_in, k, _ = w.shape
        b, _, hh, ww = h.shape
        if first:  # every model sees the same image: one dense convolution
            if self.first_layer == "gemm":
                return self._first_conv_gemm(h, w.reshape(n * c_out, c_in * k * k), k)
            return F.conv2d(h, w.reshape(n * c_out, c_in, k, k))
        ho, wo = hh - k + 1, ww - k + 1
        if k == 1:
            out = torch.matmul(w.reshape(n, c_out, c_in), h.reshape(b, n, c_in, hh * ww))
            return out.reshape(b, n * c_out, ho, wo)
        dtype = h.dtype
        if self.conv_dtype is not None:
            h, w = h.to(self.conv_dtype), w.to(self.conv_dtype)
        if self.conv == "grouped":
            w = w.reshape(n * c_out, c_in, k, k)
            if self.layout == "channels_last":
                h = h.contiguous(memory_format=torch.channels_last)
                w = w.contiguous(memory_format=torch.channels_last)
            return F.conv2d(h, w, groups=n).to(dtype)
        cols = F.unfold(h, k).reshape(b, n, c_in * k * k, ho * wo)
        out = torch.matmul(w.reshape(n, c_out, c_in * k * k), cols)
        return out.reshape(b, n * c_out, ho, wo).to(dtype)

    def _first_conv_gemm(self, x: Tensor, w: Tensor, k: int) -> Tensor:
        """The shared first convolution as (B*L, Cin*k*k) @ (Cin*k*k, N*C), channels-last.

        Returns a (B, N*C, Ho, Wo) tensor with channels-last strides, in ``conv_dtype`` when
        set (the caller pools, then casts back): the patches' inner dimension is padded to a
        multiple of 8 for tensor cores.
        """
        b, _, hh, ww = x.shape
        ho, wo = hh - k + 1, ww - k + 1
        dtype = self.conv_dtype or x.dtype
        patches = F.unfold(x.to(dtype), k).transpose(1, 2)        # (B, L, Cin*k*k)
        pad = -patches.shape[-1] % 8
        weight = w.to(dtype).t()                                   # (Cin*k*k, N*C)
        if pad:
            patches = F.pad(patches, (0, pad))
            weight = F.pad(weight, (0, 0, 0, pad))
        out = torch.matmul(patches.reshape(b * ho * wo, -1), weight)
        return out.reshape(b, ho, wo, -1).permute(0, 3, 1, 2)

    def pool(self, h: Tensor) -> Tensor:
        """2x2 max-pool of every model (:func:`max_pool2x2` with ``max_pool="uint8"``)."""
        return max_pool2x2(h) if self.max_pool == "uint8" else F.max_pool2d(h, 2)

    def dropout(self, h: Tensor, mask: Tensor | None, name: str, training: bool) -> Tensor:
        """Block ``name``'s dropout: ``mask`` (N, B, C) applied unless the block is not in
        training mode (evaluation, or frozen in eval mode)."""
        return self._dropout(h, mask if self._in_train_mode(name, training) else None)

    @staticmethod
    def _dropout(h: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            return h
        b, nc = h.shape[:2]
        # masks come as (N, B, C) from sacnn.models.dropout; the layout here is (B, N*C).
        return h * mask.transpose(0, 1).reshape(b, nc, 1, 1)

    def _readout(self, h: Tensor, s: Mapping[str, Tensor]) -> Tensor:
        """(B, N) predictions of the spec's readout kind (its module's ``stacked``)."""
        b, nc, hh, ww = h.shape
        n = nc // self.spec.channels
        x = h.reshape(b, n, self.spec.channels, hh * ww)

        def linear(key: str, inp: Tensor) -> Tensor:
            w = s[f"readout.{key}.weight"].reshape(1, n, -1)
            return (inp * w).sum(-1) + s[f"readout.{key}.bias"].reshape(1, n)

        centre_index = (hh // 2) * ww + ww // 2
        return READOUT_MODULES[self.spec.readout].stacked(x, linear, centre_index)

    # -- forward ----------------------------------------------------------------------
    def forward(self, s: Mapping[str, Tensor], x: Tensor, masks: Sequence[Tensor] | None = None,
                training: bool = True) -> Tensor:
        """Predictions (N, B) for images x (B, 1, H, W).

        ``s`` maps every parameter and buffer name to its stacked (N, ...) tensor; in
        training mode batch-norm running statistics in ``s`` are updated in place.
        ``masks`` (one (N, B, C) tensor per dropout site) are used in training mode.
        """
        h = x
        for name, layer, site in self.blocks:
            mask = masks[site] if (site is not None and masks is not None and training) \
                else None
            with self._label(f"{name} {layer.token}"):
                h = LAYER_MODULES[layer.kind].stacked(self, h, s, name, layer, h is x, mask,
                                                      training)
        with self._label("readout"):
            return self._readout(h, s).transpose(0, 1)

    def _label(self, name: str) -> AbstractContextManager:
        """A profiler range named after the block when ``profile_blocks`` is set (the
        measurement scripts set it; an idle range still costs a dispatch per block)."""
        return torch.profiler.record_function(name) if self.profile_blocks else nullcontext()

    __call__ = forward

    def dropout_channels(self) -> list[int]:
        """Channels of each dropout site, in forward order (as :meth:`Network.dropout_channels`)."""
        return [self.spec.channels for _, _, site in self.blocks if site is not None]
