"""Seeds derived from names, never from positions in a chunk or a job.

A neuron's seed depends only on (base seed, site, model, neuron, purpose), so its result
does not change when the chunk size or the order of jobs changes.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(base_seed: int, *keys: object) -> int:
    """A 63-bit seed from a base seed and any labels (hash of their text form)."""
    text = "\x1f".join([str(int(base_seed))] + [str(k) for k in keys])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def numpy_rng(base_seed: int, *keys: object) -> np.random.Generator:
    """A numpy generator seeded from ``derive_seed(base_seed, *keys)``."""
    return np.random.default_rng(derive_seed(base_seed, *keys))
