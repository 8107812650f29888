"""Leaner forms of two operations of the stacked network, for the GPU step.

* :func:`max_pool2x2`: the alpha blocks' 2x2 max-pool keeping the window position of each
  maximum as one byte (uint8) instead of F.max_pool2d's int64 index, and not the input:
  on the first layer's 50 x 9,600 x 46 x 46 map of a 300-model chunk that is 0.25 GB of
  indices instead of 2 GB plus the 4 GB input kept for the backward (docs/performance.md).
  Written with strided views and elementwise ops only, so torch.compile fuses it.
* :func:`attention_sdpa`: softmax(q^T k) v through F.scaled_dot_product_attention with
  ``scale=1.0`` (the released attention has no 1/sqrt(d)) and head dimensions zero-padded
  to a multiple of 8, as fused attention kernels want; the padding adds zero terms only.

Both equal the plain operations exactly in float64 (tests), ties of the pool included:
the first maximum in row-major window order wins, as in F.max_pool2d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: (row, column) of each window position, in the order the argmax numbers them.
_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _windows(x: Tensor, ho: int, wo: int) -> list[Tensor]:
    """The four (B, C, ho, wo) strided views of x's 2x2 windows (floor mode: an odd last
    row or column is left out, as F.max_pool2d does)."""
    return [x[..., dy:2 * ho:2, dx:2 * wo:2] for dy, dx in _OFFSETS]


def _is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() \
        and x.is_contiguous(memory_format=torch.channels_last)


class _MaxPool2x2(torch.autograd.Function):
    """2x2, stride 2 max-pool whose backward needs only a uint8 argmax per output."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ho, wo = x.shape[-2] // 2, x.shape[-1] // 2
        a, b, c, d = _windows(x, ho, wo)
        out = torch.maximum(torch.maximum(a, b), torch.maximum(c, d))
        # 0 if a is the maximum, else 1 if b, else 2 if c, else 3: the first in row-major order
        not_a, not_b, not_c = ((w != out).to(torch.uint8) for w in (a, b, c))
        index = not_a * (1 + not_b * (1 + not_c))
        ctx.save_for_backward(index)
        ctx.in_shape = tuple(x.shape)
        ctx.channels_last = _is_channels_last(x)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        out = torch.zeros(ctx.in_shape, dtype=grad.dtype, device=grad.device) \
            .contiguous(memory_format=fmt)
        ho, wo = grad.shape[-2:]
        for k, view in enumerate(_windows(out, ho, wo)):
            view.copy_(torch.where(index == k, grad, 0))
        return out


def max_pool2x2(x: Tensor) -> Tensor:
    """F.max_pool2d(x, 2) for (B, C, H, W) x, keeping a uint8 argmax for the backward."""
    return _MaxPool2x2.apply(x)


def _pad_last(t: Tensor, multiple: int = 8) -> Tensor:
    pad = -t.shape[-1] % multiple
    return F.pad(t, (0, pad)) if pad else t


def attention_sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``v @ softmax(q^T k, -1)^T`` for q, k (..., d, L) and v (..., dv, L): (..., dv, L).

    The same as the stacked network's matmul attention; heads padded with zeros to a
    multiple of 8 (q.k and the output's kept columns are unchanged).
    """
    dv = v.shape[-2]
    out = F.scaled_dot_product_attention(_pad_last(q.transpose(-1, -2)),
                                         _pad_last(k.transpose(-1, -2)),
                                         _pad_last(v.transpose(-1, -2)), scale=1.0)
    return out[..., :dv].transpose(-1, -2)
