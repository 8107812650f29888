"""Per-neuron calibration of the simulated neurons: the output's threshold, scale and power,
and the surround weight solved for a target share of the response the centre explains.

Pure numpy on (image, neuron) arrays; every neuron is solved at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

REF_TOP = 0.001  # share of training images with r >= 1
MAX_POWER = 3.0  # steeper outputs leave sparse neurons silent on a 300-image validation set
R_CAP = 50.0
"""Ceiling of r (50 times the top-0.1 % training level): far above any response of a realistic
site (at most 26 on 300-neuron sites with 5000 training images), it bounds the rates of a
site calibrated on a few dozen images, where an image unlike every training image (an empty
surround, say) would otherwise drive r to 1e4-1e5."""
SOLVE_IMAGES = 10000  # training images the surround weight is solved on (the first ones)
SOLVE_STEPS = 16  # bisection steps in log w
W_RANGE = (1e-3, 5.0)
"""Surround weights the solver considers. 99 % of the solved weights are below 3 on realistic
sites (300 neurons, 5000-10000 training images); on a few dozen training images larger ones
fit noise and leave images without surround energy a drive far above every training image."""


def respond(d: np.ndarray, k: dict[str, np.ndarray]) -> np.ndarray:
    """The output nonlinearity r = min(([d - threshold]_+ / scale) ** power, R_CAP)."""
    u = np.maximum(d - k["threshold"][None, :], 0) / k["scale"][None, :]
    return np.minimum(u ** k["power"][None, :], R_CAP).astype(np.float32)


def col_quantiles(sorted_cols: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per column j, the ``q[j]`` quantile of the sorted column (numpy's linear method)."""
    n = sorted_cols.shape[0]
    pos = np.clip(np.asarray(q, np.float64), 0.0, 1.0) * (n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    cols = np.arange(sorted_cols.shape[1])
    a = sorted_cols[lo, cols].astype(np.float64)
    return a + (pos - lo) * (sorted_cols[hi, cols] - a)


def output_constants(d: np.ndarray, threshold_quantile: np.ndarray,
                     target_half_peak: np.ndarray) -> dict[str, np.ndarray]:
    """Threshold, scale and power of the output from the training drives ``d`` (image,
    neuron): threshold at each neuron's ``threshold_quantile``; r = 1 at the top-0.1 % level
    rather than at the single largest image, so that the peak of a 300-1000-image validation
    set sits near 1 instead of far below it; power solved so that a share
    ``target_half_peak`` of the training images has r > 0.5."""
    s = np.sort(d, axis=0)
    thr = col_quantiles(s, threshold_quantile)
    above = np.maximum(s - thr[None, :], 0)  # still sorted
    scale = np.maximum(col_quantiles(above, np.full(d.shape[1], 1 - REF_TOP)), 1e-12)
    q = col_quantiles(above, 1 - np.asarray(target_half_peak)) / scale
    q = np.clip(q, 1e-6, 1 - 1e-6)
    power = np.clip(np.log(0.5) / np.log(q), 0.2, MAX_POWER)
    return {"threshold": thr, "scale": scale, "power": power}


def corr_cols(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``a`` with the same column of ``b`` (NaN if constant)."""
    a = a - a.mean(axis=0, dtype=np.float64)
    b = b - b.mean(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def solve_weights(aperture_corr: Callable[[np.ndarray], np.ndarray],
                  target: np.ndarray) -> np.ndarray:
    """Per neuron, the weight w in W_RANGE at which ``aperture_corr(w)`` (per-neuron weights
    to per-neuron correlations; NaN counts as below every target) falls to ``target``:
    bisection in log w, SOLVE_STEPS steps. 0 where the centre alone (w = 0) already explains
    no more than the target; W_RANGE[1] where even that weight leaves it above."""
    def corr(w: np.ndarray) -> np.ndarray:
        return np.nan_to_num(aperture_corr(w), nan=-1.0)

    n = np.asarray(target).size
    lo, hi = np.full(n, np.log(W_RANGE[0])), np.full(n, np.log(W_RANGE[1]))
    for _ in range(SOLVE_STEPS):
        mid = (lo + hi) / 2
        weaker = corr(np.exp(mid)) < target
        lo, hi = np.where(weaker, lo, mid), np.where(weaker, mid, hi)
    w = np.exp((lo + hi) / 2)
    w[corr(np.zeros(n)) <= target] = 0.0
    w[corr(np.full(n, W_RANGE[1])) > target] = W_RANGE[1]
    return w
