"""Two-photon-like trial noise: modulated Poisson spikes, GCaMP saturation, additive noise.

    lambda = spont + r_max * r                    spikes per response window
    n      ~ Poisson(lambda * G_shared * G_private)   gamma gains with mean 1
    dF/F   = a * n / (1 + n / n_sat) + N(0, add_sd^2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sacnn.seeding import numpy_rng


@dataclass(frozen=True)
class NoiseParams:
    r_max_range: tuple[float, float] = (7.0, 14.0)
    """Peak driven rate (spikes per window), log-uniform per neuron."""
    spont_range: tuple[float, float] = (0.5, 1.0)
    """Spontaneous rate (spikes per window), uniform per neuron."""
    gain_sd: float = 0.5
    """SD of the shared (population) gamma gain per trial; private gain SD is half of it."""
    add_sd: float = 0.1
    """Additive fluorescence noise (dF/F)."""
    a: float = 0.05
    """dF/F per spike at low counts."""
    n_sat: float = 60.0
    """Spike count at which the GCaMP transform reaches half its linear value."""


def neuron_noise_params(n: int, p: NoiseParams, seed: int) -> dict[str, np.ndarray]:
    rng = numpy_rng(seed, "noise_params")
    lo, hi = np.log(p.r_max_range)
    return {
        "r_max": np.exp(rng.uniform(lo, hi, n)),
        "spont": rng.uniform(*p.spont_range, n),
    }


def _gamma(rng: np.random.Generator, sd: float, shape) -> np.ndarray:
    if sd <= 0:
        return np.ones(shape)
    k = 1.0 / sd ** 2
    return rng.gamma(k, 1.0 / k, shape)


def trials(
    r: np.ndarray, repeats: int, p: NoiseParams, neuron: dict[str, np.ndarray],
    seed: int, tag: str,
) -> np.ndarray:
    """Noisy dF/F trials (neuron, image, repeat) float32 from noiseless ``r`` (neuron, image)."""
    rng = numpy_rng(seed, "trials", tag)
    n_neu, n_img = r.shape
    out = np.empty((n_neu, n_img, repeats), dtype=np.float32)
    rate = neuron["spont"][:, None] + neuron["r_max"][:, None] * r.astype(np.float64)
    for k in range(repeats):
        shared = _gamma(rng, p.gain_sd, (1, n_img))
        private = _gamma(rng, p.gain_sd / 2, (n_neu, n_img))
        spikes = rng.poisson(rate * shared * private)
        dff = p.a * spikes / (1.0 + spikes / p.n_sat)
        dff += rng.normal(0.0, p.add_sd, (n_neu, n_img))
        out[:, :, k] = dff
    return out
