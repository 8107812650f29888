"""Counter-based Dropout2d masks: a pure function of (neuron key, step, site, image, channel).

Every execution strategy (one model at a time on a CPU, all models of a chunk at once on a
GPU) draws a neuron's masks with this one function, so a neuron's masks never depend on the
chunk it is trained in, on the device or on how many neurons share a kernel. The masks are
computed on the device that uses them, in one vectorised pass for the whole chunk: no
per-neuron generators and no host-to-device copies every step.

The hash is a 32-bit integer mixer (Wellons' "lowbias32") evaluated in int64 arithmetic that
never overflows (multiplications are split into 16-bit halves), so CPU and CUDA give the same
bits. Its statistical quality is far beyond what dropout needs; tests check the keep rate and
the independence of neighbouring keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF


def _mul32(h: Tensor | int, c: int) -> Tensor | int:
    """(h * c) mod 2**32 for 0 <= h < 2**32 without leaving int64's range."""
    lo, hi = c & 0xFFFF, c >> 16
    return (h * lo + (((h * hi) & 0xFFFF) << 16)) & _MASK32


def mix32(h: Tensor | int) -> Tensor | int:
    """A bijective avalanche mix of 32-bit values held in int64 (tensors or Python ints)."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x7FEB352D)
    h = h ^ (h >> 15)
    h = _mul32(h, 0x846CA68B)
    return h ^ (h >> 16)


def neuron_key(seed: int) -> int:
    """Fold a 63-bit seed into the 32-bit key the mask hash starts from."""
    seed = int(seed)
    return int(mix32(mix32(seed & _MASK32) ^ ((seed >> 32) & _MASK32)))


def _site_salt(site: int) -> int:
    return int(mix32((site * 0x9E3779B9 + 1) & _MASK32))


def step_counters(steps: Sequence[int] | Tensor, n_sites: int,
                  device: str | torch.device = "cpu") -> Tensor:
    """(T, S) int64 counters of (step, site), the hash's second input.

    ``steps`` may be a tensor on the device (a CUDA graph advances its own step there); the
    result is the same as from Python integers.
    """
    if isinstance(steps, Tensor):  # kernels only, no copy from the host (capturable)
        sites = torch.arange(n_sites, dtype=torch.int64, device=steps.device)
        salts = mix32((sites * 0x9E3779B9 + 1) & _MASK32)
        return mix32((steps.to(torch.int64).view(-1, 1) & _MASK32) ^ salts)
    counters = [[int(mix32((int(t) & _MASK32) ^ _site_salt(s))) for s in range(n_sites)]
                for t in steps]
    return torch.tensor(counters, dtype=torch.int64, device=device).view(len(counters), n_sites)


def dropout_masks(keys: Sequence[int] | Tensor, steps: Sequence[int] | Tensor, batch: int,
                  channels: Sequence[int], p: float, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu") -> Tensor:
    """Dropout2d masks of a chunk for a block of optimiser steps, in one vectorised pass.

    Returns (T, S, N, batch, C) for T ``steps``, S dropout sites (``channels`` per site; C
    is their largest, a site with fewer uses the first ones) and N neurons with ``keys``
    (:func:`neuron_key` of their dropout seeds). An entry is 0 (dropped) or ``1 / (1 - p)``.
    Entry (t, s, n, b, c) depends on (key n, step t, site s, b, c) alone, so a smaller batch
    is a prefix of a larger one and one neuron's masks are the same in any chunk. ``steps``
    may be a 1-d int64 tensor (on ``device``): nothing then leaves the device.
    """
    keys_t = torch.as_tensor([int(k) for k in keys] if not isinstance(keys, Tensor) else keys,
                             dtype=torch.int64, device=device).view(1, 1, -1, 1)
    c_max = max(channels)
    ctr = step_counters(steps, len(channels), device).view(len(steps), -1, 1, 1)
    idx = torch.arange(batch * c_max, dtype=torch.int64, device=device).view(1, 1, 1, -1)
    h = mix32(keys_t ^ mix32(idx ^ ctr))
    keep = 1.0 - p
    kept = (h >> 8) < int(keep * (1 << 24))  # a uniform 24-bit draw below the keep rate
    # 1/(1-p) rounded to dtype once, on the host: a number, so a CUDA graph can hold it
    scale = float(torch.tensor(1.0, dtype=dtype) / keep)
    return (kept.to(dtype) * scale).view(len(steps), len(channels), -1, batch, c_max)
