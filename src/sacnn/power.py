"""How many neurons a paired claim needs: the power of a test of a mean per-neuron difference.

A claim compares two models neuron by neuron (``sacnn.claims``): the unit of replication is
the neuron, and the effect is the mean of the per-neuron differences ``d_i``. For a design
decision (how many neurons a simulated site needs, or whether a recorded site can settle a
claim) the power of that test is approximated by the two-sided one-sample t-test on ``d``,
which the sign-flip permutation test of ``sacnn.claims`` matches for continuous differences
once n is in the tens (both are tests of the mean; the permutation test's null distribution
converges to the t's). Many claims are decided at once with Holm's adjustment: its first step
tests the smallest p at ``alpha / family``, so planning at that level (a Bonferroni bound) is
conservative for every step.

PT differences are sparse (most neurons 0, a few +-1/k): their spread is not measured at
the paper's scale anywhere we can read, so :func:`sparse_pt_sd` derives it from the two
models' mean PT, assuming each of a neuron's k top images is reached independently.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["neurons_for_power", "power_of", "sparse_pt_sd"]


def power_of(n: int, effect: float, sd: float, *, alpha: float = 0.05, family: int = 1) -> float:
    """Power of the two-sided one-sample t-test of ``n`` per-neuron differences with mean
    ``effect`` and standard deviation ``sd``, at level ``alpha / family`` (noncentral t)."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if effect != 0 else 0.0
    level = alpha / family
    df = n - 1
    crit = stats.t.ppf(1.0 - level / 2.0, df)
    nc = abs(effect) / sd * math.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def neurons_for_power(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8,
                      family: int = 1, n_max: int = 1_000_000) -> int:
    """The smallest number of neurons whose paired test reaches ``power`` for a true mean
    difference ``effect`` with per-neuron spread ``sd`` (see :func:`power_of`).

    Raises:
        ValueError: ``effect`` is 0 (no number of neurons has power against no effect), a
            non-positive ``sd``, or more than ``n_max`` neurons would be needed.
    """
    if effect == 0:
        raise ValueError("effect 0: no number of neurons gives power against no effect")
    if not sd > 0:
        raise ValueError(f"sd must be > 0, got {sd}")
    level = alpha / family
    z = stats.norm.ppf(1.0 - level / 2.0) + stats.norm.ppf(power)
    n = max(2, math.floor((z * sd / abs(effect)) ** 2) - 2)  # the normal bound, then t
    while power_of(n, effect, sd, alpha=alpha, family=family) < power:
        n += 1
        if n > n_max:
            raise ValueError(f"more than {n_max} neurons needed (effect {effect}, sd {sd})")
    return n


def sparse_pt_sd(pt_model: float, pt_versus: float, k: int) -> float:
    """Per-neuron spread of a PT difference (PT as a fraction of ``k`` top images) when each
    model reaches each top image independently with probability ``pt_model`` / ``pt_versus``
    (their population means) and the two models' hits are independent: the variance of a
    neuron's difference is ``(p_m (1 - p_m) + p_v (1 - p_v)) / k``. Independence of the two
    models' hits makes this an upper bound where the models tend to reach the same images."""
    for name, p in (("pt_model", pt_model), ("pt_versus", pt_versus)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {p}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float(np.sqrt((pt_model * (1 - pt_model) + pt_versus * (1 - pt_versus)) / k))
