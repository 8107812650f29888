"""The statistics of :mod:`sacnn.claims`, on per-neuron values in memory.

The unit of replication is the neuron: every model is fitted to the same neurons, so a claim
is a statistic of per-neuron values (the mean paired difference, or a ratio of sums for a
percent effect) and every interval and test resamples or re-signs neurons.

A statistic ``stat`` maps per-neuron data ``x`` of shape ``(..., n, c)`` (n neurons, c
columns) to shape ``(...)``; the leading axes let one call treat many data sets at once (the
coverage tests do). Intervals (:data:`INTERVALS`):

- ``t``: the estimate +- t(n-1) x the jackknife standard error (for a mean this is the
  classic t interval: the jackknife SE of a mean is sd / sqrt(n));
- ``bca``: the bias-corrected and accelerated bootstrap (acceleration from the jackknife);
- ``percentile``: the percentile bootstrap (too narrow with few neurons: about 90 % coverage
  at n = 10 for a nominal 95 %).

Tests: :func:`sign_flip_test` (a mean difference; exact for few non-zero differences) and
:func:`jackknife_t_test` (a statistic that is no mean, such as a ratio); :func:`holm` adjusts
a family of p-values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]

INTERVALS = ("t", "bca", "percentile")
"""Interval methods (``claims.interval``)."""

ADJUSTMENTS = ("holm", "none")
"""Multiplicity adjustments (``claims.adjust``)."""

EXACT_MAX = 30
"""Sign-flip tests with at most this many non-zero differences enumerate all 2^m sign
patterns exactly (meet in the middle: two halves of at most 2^15 sums); more are sampled."""

TIE_TOLERANCE = 1e-9
"""A permuted statistic counts as at least as extreme as the observed one when it falls
short by less than this share of the largest possible statistic (float ties)."""

_CHUNK = 2000  # Monte-Carlo sign patterns drawn at a time


# ------------------------------------------------------------------------ resampling


def mean_of(x: np.ndarray) -> np.ndarray:
    """The statistic of a paired difference: the mean of column 0 over neurons."""
    return x[..., 0].mean(axis=-1)


def percent_statistic(signs: Sequence[int]) -> Statistic:
    """Sum over components of sign x 100 (sum(model) / sum(versus) - 1), columns m0 v0 m1 v1
    ...: the tables' delta percent (ratio of means), or differences of it."""
    s = np.asarray(signs, dtype=float)

    def stat(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return 100.0 * (x[..., 0::2].sum(axis=-2) / x[..., 1::2].sum(axis=-2) - 1.0) @ s

    return stat


def jackknife(stat: Statistic, x: np.ndarray) -> np.ndarray:
    """Leave-one-neuron-out values of ``stat``, shape ``(..., n)``."""
    n = x.shape[-2]
    keep = np.array([np.delete(np.arange(n), i) for i in range(n)])  # (n, n-1)
    return stat(x[..., keep, :])


def jackknife_se(stat: Statistic, x: np.ndarray) -> np.ndarray:
    """Jackknife standard error of ``stat`` over neurons (``sd / sqrt(n)`` for a mean)."""
    n = x.shape[-2]
    loo = jackknife(stat, x)
    dev = loo - loo.mean(axis=-1, keepdims=True)
    return np.sqrt((n - 1) / n * (dev ** 2).sum(axis=-1))


def bootstrap(stat: Statistic, x: np.ndarray, n_boot: int, rng: np.random.Generator
              ) -> np.ndarray:
    """``stat`` on ``n_boot`` resamples of the neurons (with replacement), ``(..., n_boot)``."""
    n = x.shape[-2]
    idx = rng.integers(0, n, size=(*x.shape[:-2], n_boot, n))
    resampled = np.take_along_axis(x[..., None, :, :], idx[..., None], axis=-2)
    return stat(resampled)


def _quantile_rows(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantile ``q[...]`` of ``values[..., :]`` row by row (linear interpolation)."""
    s = np.sort(values, axis=-1)
    pos = np.clip(q, 0.0, 1.0) * (s.shape[-1] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, s.shape[-1] - 1)
    w = pos - lo
    take = lambda i: np.take_along_axis(s, i[..., None], axis=-1)[..., 0]
    return (1 - w) * take(lo) + w * take(hi)


# ------------------------------------------------------------------------- intervals


def interval(stat: Statistic, x: np.ndarray, method: str, confidence: float, *,
             n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided ``confidence`` interval of ``stat`` over neurons by ``method``."""
    from scipy.stats import norm, t

    n = x.shape[-2]
    tail = (1.0 - confidence) / 2.0
    est = stat(x)
    if method == "t":
        half = t.ppf(1.0 - tail, n - 1) * jackknife_se(stat, x)
        return est - half, est + half
    if method not in ("bca", "percentile"):
        raise ValueError(f"interval {method!r}: expected one of {list(INTERVALS)}")
    boot = bootstrap(stat, x, n_boot, rng)
    q = np.broadcast_to(np.array([tail, 1.0 - tail]), (*est.shape, 2))
    if method == "bca":
        below = (boot < est[..., None]).mean(-1) + 0.5 * (boot == est[..., None]).mean(-1)
        z0 = norm.ppf(np.clip(below, 0.5 / n_boot, 1 - 0.5 / n_boot))
        u = jackknife(stat, x)
        u = u.mean(axis=-1, keepdims=True) - u
        ss = (u ** 2).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(ss > 0, (u ** 3).sum(axis=-1) / (6 * ss ** 1.5), 0.0)
        w = z0[..., None] + norm.ppf(q)
        q = norm.cdf(z0[..., None] + w / (1 - a[..., None] * w))
    ends = np.stack([_quantile_rows(boot, q[..., i]) for i in range(2)])
    return ends[0], ends[1]


# ----------------------------------------------------------------------------- tests


def _signed_sums(x: np.ndarray) -> np.ndarray:
    """All ``2**len(x)`` sums ``sum(s_i x_i)`` with signs ``s_i`` = +-1, sorted."""
    sums = np.zeros(1)
    for v in x:
        sums = np.concatenate([sums + v, sums - v])
    return np.sort(sums)


def _count_exact(x: np.ndarray, threshold: float) -> int:
    """Sign patterns of ``x`` whose |sum| reaches ``threshold``, counted by meet in the
    middle: every sum is a sum of one half's and one of the other half's."""
    if threshold <= 0:
        return 2 ** x.size
    h = x.size // 2
    left, right = _signed_sums(x[:h]), _signed_sums(x[h:])
    high = right.size - np.searchsorted(right, threshold - left, side="left")
    low = np.searchsorted(right, -threshold - left, side="right")
    return int((high + low).sum())


def sign_flip_test(d: np.ndarray, permutations: int, rng: np.random.Generator
                   ) -> tuple[float, float, str]:
    """Two-sided sign-flip permutation test of the mean of paired differences ``d``.

    Under the null each neuron's difference is as likely to have either sign. Zeros cannot
    change the statistic, so only the ``m`` non-zero differences are re-signed: exactly over
    all ``2**m`` patterns when ``m <= EXACT_MAX`` (p = count / 2**m), else over
    ``permutations`` seeded random patterns, ``p = (1 + count) / (1 + permutations)``
    (Phipson & Smyth 2010: never 0). Returns ``(p, floor, test)``: ``floor`` is the smallest
    p these differences can give (``2 / 2**m`` exact, ``1 / (permutations + 1)`` sampled).
    """
    x = np.abs(d[d != 0]).astype(float)
    m = x.size
    threshold = abs(float(d.sum())) - TIE_TOLERANCE * float(x.sum())
    if m <= EXACT_MAX:
        total = 2.0 ** m
        return (_count_exact(x, threshold) / total, min(1.0, 2.0 / total),
                f"sign-flip exact (2^{m} patterns)")
    count, left = 0, permutations
    while left > 0:
        k = min(left, _CHUNK)
        signs = rng.integers(0, 2, size=(k, m), dtype=np.int8) * 2 - 1
        count += int((np.abs(signs @ x) >= threshold).sum())
        left -= k
    return ((1 + count) / (1 + permutations), 1.0 / (1 + permutations),
            f"sign-flip Monte-Carlo ({permutations} patterns)")


def jackknife_t_test(estimate: float, se: float, n: int) -> float:
    """Two-sided p of ``estimate / se`` on a t distribution with ``n - 1`` degrees of
    freedom: the test of a statistic that is no mean (a ratio), with its jackknife SE."""
    from scipy.stats import t

    if se == 0:
        return 1.0 if estimate == 0 else 0.0
    return float(2 * t.sf(abs(estimate) / se, n - 1))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of the finite entries of ``p`` (NaN stays NaN): the
    family-wise error rate is at most alpha under any dependence between the tests."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    k = order.size
    steps = (k - np.arange(k)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return out
