"""The simulated neurons' fixed filters on the 50x50 model grid.

Quadrature Gabor pairs, the bank of (spatial frequency, orientation) channels at the centre and
on three rings around it, the analysis aperture that masks them, the inputs of the MGSM gate,
and the Gaussian scale mixture's density the gate uses. :mod:`sacnn.simulate.neurons` builds
every neuron's filter matrix from these.
"""

from __future__ import annotations

import numpy as np
from scipy.special import kve

MODEL_SIZE = 50
N_ORI = 8
BANK_SF = (0.08, 0.14, 0.25)
RING1 = (4.0, 8)  # radius (px), positions: centre pool
RING2 = (10.0, 16)  # near surround (gate uses every other position)
RING3 = (16.0, 16)  # far surround
SUBNORMAL = 1e-6
"""Filter entries below this are set to 0: float32 subnormals make the GEMM ~10x slower."""


def grid_centre() -> float:
    """The image centre on the model grid, in pixels."""
    return (MODEL_SIZE - 1) / 2.0


def _grid() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:MODEL_SIZE, 0:MODEL_SIZE].astype(np.float64)
    return yy, xx


def aperture_mask(radius: float) -> np.ndarray:
    """Disc of ``radius`` px around the image centre (50x50 grid): the analysis aperture."""
    yy, xx = _grid()
    c = grid_centre()
    return (yy - c) ** 2 + (xx - c) ** 2 <= radius ** 2


def gabor_pair(x0, y0, theta, f, sx, sy) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean quadrature Gabors, flattened (2500,). sx is along the carrier direction."""
    yy, xx = _grid()
    dx, dy = xx - x0, yy - y0
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    env = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    ge = env * np.cos(2 * np.pi * f * u)
    go = env * np.sin(2 * np.pi * f * u)
    ge -= env * (ge.sum() / env.sum())  # no response to uniform luminance
    return ge.ravel(), go.ravel()


def bank_positions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_pos, 2) positions (x, y), the ring of each (0 centre, 1..3), and gate positions."""
    c = grid_centre()
    pos = [(c, c)]
    ring = [0]
    for k, (radius, count) in enumerate((RING1, RING2, RING3), start=1):
        for j in range(count):
            a = 2 * np.pi * j / count
            pos.append((c + radius * np.cos(a), c + radius * np.sin(a)))
            ring.append(k)
    ring_arr = np.array(ring)
    gate = np.flatnonzero(ring_arr == 2)[::2]
    return np.array(pos), ring_arr, gate


def bank(pos: np.ndarray, ring: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Quadrature pairs of every bank channel (sf, ori) at every position, (2500, columns) in
    the order (sf, ori, pos, quadrature). Surround filters (rings 2, 3) are blind inside the
    aperture and centre-pool filters (rings 0, 1) outside it: the aperture image then drives
    the centre pool exactly as the full image does, and the surround not at all."""
    columns = []
    for f in BANK_SF:
        s = float(np.clip(0.5 / f, 1.2, 3.5))
        for th in np.arange(N_ORI) * np.pi / N_ORI:
            for k, (x, y) in enumerate(pos):
                inside = mask if ring[k] <= 1 else ~mask
                a, b = gabor_pair(x, y, th, f, s, s)
                columns.extend([np.where(inside, a, 0.0), np.where(inside, b, 0.0)])
    return np.stack(columns, axis=1)


def gate_weights(sf: np.ndarray, theta: np.ndarray, n_pos: int) -> np.ndarray:
    """The MGSM gate's surround input: the bank channel closest to each neuron's orientation
    and SF at the 8 gate positions of ring 2, (channel, position, neuron)."""
    _, _, gate_pos = bank_positions()
    oris = np.arange(N_ORI) * np.pi / N_ORI
    sf_idx = np.argmin(np.abs(np.log(np.array(BANK_SF))[:, None] - np.log(sf)[None, :]), axis=0)
    dori = np.abs(((oris[:, None] - theta[None, :]) + np.pi / 2) % np.pi - np.pi / 2)
    ori_idx = np.argmin(dori, axis=0)
    wg = np.zeros((len(BANK_SF) * N_ORI, n_pos, sf.size))
    for i in range(sf.size):
        wg[sf_idx[i] * N_ORI + ori_idx[i], gate_pos, i] = 1.0
    return wg


# -------------------------------------------------------------------- GSM density (Bessel table)
_LOGLAM = np.linspace(np.log(1e-4), np.log(1e4), 4000)
_TABLES: dict[float, np.ndarray] = {}


def _log_kve_table(nu: float) -> np.ndarray:
    if nu not in _TABLES:
        _TABLES[nu] = np.log(kve(nu, np.exp(_LOGLAM)))
    return _TABLES[nu]


def log_gsm(lam: np.ndarray, n: int) -> np.ndarray:
    """log p(x) + (n/2) log 2pi for a Rayleigh-mixer GSM with identity covariance.

    p(x) = (2 pi)^(-n/2) lam^(1 - n/2) K_(n/2 - 1)(lam),  lam = |x|. log K_nu is interpolated
    from a table of log kve (4000 points in log lam), far cheaper than calling the Bessel
    function per entry.
    """
    nu = abs(n / 2 - 1)
    lam = np.clip(lam.astype(np.float64), 1e-4, 1e4)
    loglam = np.log(lam)
    logk = np.interp(loglam, _LOGLAM, _log_kve_table(nu)) - lam
    return (1 - n / 2) * loglam + logk
