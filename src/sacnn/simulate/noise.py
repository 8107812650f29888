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
    r_max_range: tuple[float, float] = (9.0, 11.0)
    """Peak driven rate (spikes per window), log-uniform per neuron. A wider range (7-14)
    spread the true model's correlation with the recording across neurons beyond the
    real-data target (docs/reproduction-notes.md, Simulated site)."""
    spont_range: tuple[float, float] = (0.5, 1.0)
    """Spontaneous rate (spikes per window), uniform per neuron."""
    gain_sd: float = 0.6
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


# ----------------------------------------------------------------------------- expectation


def _gain_nodes(sd: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights of a gamma gain with mean 1 and standard deviation
    ``sd`` (generalised Gauss-Laguerre; one node at 1 without a gain)."""
    from scipy.special import roots_genlaguerre

    if sd <= 0:
        return np.ones(1), np.ones(1)
    k = 1.0 / sd ** 2
    t, w = roots_genlaguerre(n, k - 1.0)
    return t / k, w / w.sum()


def _poisson_mean_of(fn, mu: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``E[fn(N)]`` for ``N ~ Poisson(mu)``, each entry of ``mu`` (float64, exact sums over
    every count with a non-negligible probability: within 12 standard deviations + 40 of the
    mean). Means are taken in sorted chunks, each summed over its own window of counts, so
    that memory and time stay bounded for large means."""
    from scipy.stats import poisson

    order = np.argsort(mu, kind="stable")
    out = np.empty_like(mu)
    for s in range(0, mu.size, chunk):
        idx = order[s:s + chunk]
        m = mu[idx]
        lo = max(0.0, np.floor(m[0] - 12.0 * np.sqrt(m[0]) - 40.0))
        counts = np.arange(lo, np.ceil(m[-1] + 12.0 * np.sqrt(m[-1]) + 40.0) + 1)
        out[idx] = poisson.pmf(counts[None, :], m[:, None]) @ fn(counts)
    return out


def expected_dff_of_rate(rate: np.ndarray, p: NoiseParams, nodes: int = 16) -> np.ndarray:
    """The mean over the noise of :func:`trials`' dF/F at driven-plus-spontaneous ``rate``
    (spikes per window): ``E[a N / (1 + N / n_sat)]`` with ``N ~ Poisson(rate G_shared
    G_private)``; the additive noise has mean 0. Quadrature over both gamma gains (nodes whose
    weight is below 1e-12 dropped: dF/F is bounded by ``a n_sat``), exact Poisson sums on a
    grid of means spaced evenly in sqrt(mean) (the Poisson spread), linear interpolation
    between grid points (error ~1e-6 dF/F)."""
    rate = np.asarray(rate, dtype=np.float64)
    gs, ws = _gain_nodes(p.gain_sd, nodes)
    gp, wp = _gain_nodes(p.gain_sd / 2, nodes)
    gain = np.outer(gs, gp).ravel()
    weight = np.outer(ws, wp).ravel()
    keep = weight > 1e-12
    gain, weight = gain[keep], weight[keep] / weight[keep].sum()
    rate_max = max(float(rate.max(initial=0.0)), 1e-9)
    mu_grid = np.linspace(0.0, np.sqrt(rate_max * float(gain.max())), 4001) ** 2
    h = _poisson_mean_of(lambda n: p.a * n / (1.0 + n / p.n_sat), mu_grid)
    rate_grid = np.linspace(0.0, np.sqrt(rate_max), 4001) ** 2
    table = np.interp(rate_grid[:, None] * gain[None, :], mu_grid, h) @ weight
    return np.interp(rate, rate_grid, table)


def expected_trials(r: np.ndarray, p: NoiseParams, neuron: dict[str, np.ndarray]) -> np.ndarray:
    """The expected recorded response (neuron, image) float32 of noiseless ``r``: what
    :func:`trials` gives on average over infinitely many repeats, in the recording's units
    (dF/F). A perfect model of the recording predicts this, not ``r`` (which is in units of
    the peak rate, before the noise and the GCaMP saturation)."""
    rate = neuron["spont"][:, None] + neuron["r_max"][:, None] * np.asarray(r, np.float64)
    return expected_dff_of_rate(rate, p).astype(np.float32)
