"""A simulated V1 site with known ground truth, written in the reference raw layout.

``write_site(out_dir, config)`` generates stimuli (photo crops and dead leaves), a neuron
population (Gabor centre, divisive normalisation, MGSM-gated surround) and two-photon-like
noise; ``load_oracle`` gives back the true model for in-silico experiments.
"""

from sacnn.simulate.neurons import Population, aperture_mask
from sacnn.simulate.noise import NoiseParams
from sacnn.simulate.realism import realism_stats
from sacnn.simulate.site import SiteConfig, load_oracle, simulate_site, write_site

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
