"""A simulated V1 site with known ground truth, written in the reference raw layout.

``write_site(out_dir, config)`` generates stimuli (photo crops and dead leaves), a neuron
population (Gabor centre, divisive normalisation, MGSM-gated surround) and two-photon-like
noise; ``load_oracle`` gives back the true model for in-silico experiments.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562), so that `sacnn.simulate.config` stays light to import:
# the workflow validates simulation settings when it starts without loading scipy.
_EXPORTS = {
    "Population": "neurons", "aperture_mask": "neurons", "NoiseParams": "noise",
    "realism_stats": "realism", "SiteConfig": "config", "load_oracle": "site",
    "simulate_site": "site", "write_site": "site",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"sacnn.simulate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'sacnn.simulate' has no attribute {name!r}")

__all__ = [
    "NoiseParams",
    "Population",
    "SiteConfig",
    "aperture_mask",
    "load_oracle",
    "realism_stats",
    "simulate_site",
    "write_site",
]
