"""A simulated V1 site with known ground truth, written in the reference raw layout.

``write_site(out_dir, config)`` generates stimuli (photo crops and dead leaves), a neuron
population (Gabor centre, divisive normalisation, MGSM-gated surround) and two-photon-like
noise; ``load_oracle`` gives back the true model for in-silico experiments.
"""

from sacnn._lazy import lazy_package

# Loaded on first use (sacnn._lazy), so that `sacnn.simulate.config` stays light to import:
# the workflow validates simulation settings when it starts without loading scipy.
_EXPORTS = {
    "aperture_mask": "sacnn.simulate.filters",
    "load_oracle": "sacnn.simulate.site",
    "NoiseParams": "sacnn.simulate.noise",
    "Population": "sacnn.simulate.neurons",
    "realism_stats": "sacnn.simulate.realism",
    "simulate_site": "sacnn.simulate.site",
    "SiteConfig": "sacnn.simulate.config",
    "write_site": "sacnn.simulate.site",
}

lazy_package(__name__)
