"""Noise ceilings: how much of a neuron's response its repeated trials say is explainable.

Explainable variance and FEVE (sinzlab/neuralpredictors' definitions), signal power, cc_max and
cc_norm (Sahani & Linden 2003, Schoppe et al. 2016) and split-half reliability, from responses
shaped ``(..., images, repeats)``. They follow :mod:`sacnn.metrics`' conventions (float64,
vectorised over leading dimensions, ``ValueError`` for invalid inputs, NaN plus one
``UndefinedMetricWarning`` for entries undefined by the data) and use its helpers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sacnn.metrics import (
    FloatOrArray,
    UndefinedCorrelationWarning,
    UndefinedMetricWarning,
    _as_float64,
    _out,
    _pearson_last_axis,
    _warn_undefined,
)

__all__ = [
    "cc_max",
    "explainable_variance",
    "feve",
    "normalized_correlation",
    "signal_power",
    "split_half_reliability",
]


def _repeat_stats(
    responses: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]:
    """Checks (..., images, repeats) responses; returns them, the valid mask, noise_var and
    total_var (both ddof=1, NaN where undefined), ignoring NaN (missing) repeats."""
    resp = _as_float64(responses, "responses", allow_nan=True)
    if resp.ndim < 2:
        raise ValueError(f"responses must be shaped (..., images, repeats), got {resp.shape}")
    if resp.shape[-1] < 2:
        raise ValueError(f"need at least 2 repeats, got {resp.shape[-1]}")
    valid = ~np.isnan(resp)
    filled = np.where(valid, resp, 0.0)

    count_img = valid.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_img = filled.sum(axis=-1) / count_img
        dev = np.where(valid, resp - mean_img[..., None], 0.0)
        var_img = (dev**2).sum(axis=-1) / (count_img - 1)
    # Images with fewer than 2 valid repeats carry no noise estimate and are skipped.
    has_var = count_img >= 2
    n_var = has_var.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        noise_var = np.where(has_var, var_img, 0.0).sum(axis=-1) / n_var
    noise_var = np.where(n_var > 0, noise_var, np.nan)

    count = valid.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_all = filled.sum(axis=(-2, -1)) / count
        dev_all = np.where(valid, resp - mean_all[..., None, None], 0.0)
        total_var = (dev_all**2).sum(axis=(-2, -1)) / (count - 1)
    total_var = np.where(count >= 2, total_var, np.nan)
    return resp, valid, noise_var, total_var


def explainable_variance(responses: ArrayLike) -> FloatOrArray:
    """Fraction of explainable variance, FEV = (total_var - noise_var) / total_var.

    ``responses`` is shaped ``(..., images, repeats)``, e.g. ``(neurons, images, repeats)``;
    NaN marks a missing repeat. ``noise_var`` is the mean over images of the across-repeat
    variance (ddof=1; images with fewer than 2 valid repeats are skipped) and ``total_var``
    the variance (ddof=1) of all valid single trials pooled over images and repeats — the
    definitions of sinzlab/neuralpredictors ``measures.np_functions``, without its ``eps``
    (its function ``fev`` returns FEVE, which is :func:`feve` here).

    Entries are NaN (with an ``UndefinedMetricWarning``) where ``total_var`` is 0 or no
    image has 2 valid repeats.

    Raises:
        ValueError: empty input, infinite values, fewer than 2 dimensions or fewer than 2
            repeats.
    """
    _, _, noise_var, total_var = _repeat_stats(responses)
    undefined = ~(total_var > 0) | np.isnan(noise_var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (total_var - noise_var) / total_var
    out = np.where(undefined, np.nan, out)
    _warn_undefined(
        undefined,
        "explainable variance",
        "zero variance or no repeated image",
        UndefinedMetricWarning,
    )
    return _out(out)


def feve(pred: ArrayLike, responses: ArrayLike) -> FloatOrArray:
    """Fraction of explainable variance explained (FEVE).

    ``FEVE = 1 - (MSE - noise_var) / (total_var - noise_var)``.

    ``pred`` is shaped ``(..., images)`` and ``responses`` ``(..., images, repeats)`` (NaN
    marks a missing repeat). ``noise_var`` and ``total_var`` are as in
    :func:`explainable_variance`; ``MSE`` is the mean squared error between the prediction
    and every valid single trial, ``mean((responses - pred[..., None])**2)``. This is the
    FEVE of sinzlab/neuralpredictors ``measures.np_functions.fev``. Because the MSE is to
    single trials, the true mean response scores 1 in expectation, while the sample
    trial average of the same trials scores above 1 (its MSE is noise_var * (N - 1) / N).

    Entries whose explainable variance ``total_var - noise_var`` is <= 0 (no stimulus-driven
    signal detectable) are NaN, with an ``UndefinedMetricWarning``.

    Raises:
        ValueError: shapes disagree, empty input, NaN/infinite prediction, infinite
            responses, or fewer than 2 repeats.
    """
    p = _as_float64(pred, "pred")
    resp, valid, noise_var, total_var = _repeat_stats(responses)
    if resp.shape[:-1] != p.shape:
        raise ValueError(
            f"pred shape {p.shape} != responses shape without repeats {resp.shape[:-1]}"
        )
    sq_err = np.where(valid, (resp - p[..., None]) ** 2, 0.0).sum(axis=(-2, -1))
    explainable = total_var - noise_var
    undefined = ~(explainable > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mse = sq_err / valid.sum(axis=(-2, -1))
        out = 1.0 - (mse - noise_var) / explainable
    out = np.where(undefined, np.nan, out)
    _warn_undefined(
        undefined,
        "FEVE",
        "no explainable variance (total_var <= noise_var)",
        UndefinedMetricWarning,
    )
    return _out(out)


def _complete_repeats(responses: ArrayLike) -> NDArray[np.float64]:
    resp = _as_float64(responses, "responses")
    if resp.ndim < 2:
        raise ValueError(f"responses must be shaped (..., images, repeats), got {resp.shape}")
    if resp.shape[-1] < 2:
        raise ValueError(f"need at least 2 repeats, got {resp.shape[-1]}")
    if resp.shape[-2] < 2:
        raise ValueError(f"need at least 2 images, got {resp.shape[-2]}")
    return resp


def _signal_power_and_mean_var(
    resp: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n_rep = resp.shape[-1]
    # Variances over images (axis -2), ddof=0; any consistent ddof cancels in cc_max/cc_norm.
    var_of_sum = resp.sum(axis=-1).var(axis=-1)
    sum_of_var = resp.var(axis=-2).sum(axis=-1)
    sp = (var_of_sum - sum_of_var) / (n_rep * (n_rep - 1))
    return sp, resp.mean(axis=-1).var(axis=-1)


def signal_power(responses: ArrayLike) -> FloatOrArray:
    """Signal power (Sahani & Linden 2003) of responses shaped ``(..., images, repeats)``.

    ``SP = (Var(sum_n r_n) - sum_n Var(r_n)) / (N (N - 1))`` where ``r_n`` is the response
    to all images on repeat ``n``, ``N`` the number of repeats and ``Var`` the variance over
    images (ddof=0). Equivalently, SP is the mean covariance over images between two
    different repeats, an unbiased estimate of the variance of the stimulus-driven signal.
    It can be negative for noisy data. Repeats must be complete (no NaN).

    Raises:
        ValueError: empty input, NaN/infinite values, fewer than 2 images or repeats.
    """
    sp, _ = _signal_power_and_mean_var(_complete_repeats(responses))
    return _out(sp)


def _cc_max(resp: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    sp, var_mean = _signal_power_and_mean_var(resp)
    undefined = ~(sp >= 0) | ~(var_mean > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ccm = np.sqrt(np.where(undefined, np.nan, sp / var_mean))
    return ccm, undefined


def cc_max(responses: ArrayLike) -> FloatOrArray:
    """Maximum achievable correlation with the trial-averaged response (Schoppe et al. 2016).

    ``cc_max = sqrt(SP / Var(mean_n r_n))`` with ``SP`` from :func:`signal_power` and the
    variance over images of the trial-averaged response; equivalently
    ``sqrt((N Var(r_mean) - mean_n Var(r_n)) / ((N - 1) Var(r_mean)))``. It is the
    expected correlation between the noise-free signal and the N-trial average. Noiseless
    repeats give 1. Repeats must be complete (no NaN).

    Undefined (NaN, with an ``UndefinedMetricWarning``) where ``SP < 0`` or the averaged
    response is constant.

    Raises:
        ValueError: empty input, NaN/infinite values, fewer than 2 images or repeats.
    """
    ccm, undefined = _cc_max(_complete_repeats(responses))
    _warn_undefined(
        undefined,
        "cc_max",
        "negative signal power or constant mean response",
        UndefinedMetricWarning,
    )
    return _out(ccm)


def normalized_correlation(pred: ArrayLike, responses: ArrayLike) -> FloatOrArray:
    """Normalized correlation cc_norm = cc_abs / cc_max (Schoppe et al. 2016).

    ``cc_abs`` is the Pearson r (:func:`sacnn.metrics.pearson`) between ``pred`` ``(..., images)`` and the
    trial-averaged response ``responses.mean(-1)``, and ``cc_max`` is :func:`cc_max`. This
    equals ``Cov(pred, r_mean) / sqrt(Var(pred) * SP)``. Estimation noise can push it
    slightly above 1. Repeats must be complete (no NaN).

    Undefined (NaN, with an ``UndefinedCorrelationWarning``) where the prediction or the
    averaged response is constant or ``SP <= 0``.

    Raises:
        ValueError: shapes disagree, empty input, NaN/infinite values, fewer than 2 images
            or repeats.
    """
    p = _as_float64(pred, "pred")
    resp = _complete_repeats(responses)
    if resp.shape[:-1] != p.shape:
        raise ValueError(
            f"pred shape {p.shape} != responses shape without repeats {resp.shape[:-1]}"
        )
    cc_abs, undef_abs = _pearson_last_axis(p, resp.mean(axis=-1))
    ccm, undef_max = _cc_max(resp)
    undefined = undef_abs | undef_max | ~(ccm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(undefined, np.nan, cc_abs / ccm)
    _warn_undefined(
        undefined,
        "normalized correlation",
        "constant input or signal power <= 0",
        UndefinedCorrelationWarning,
    )
    return _out(out)


def split_half_reliability(responses: ArrayLike, spearman_brown: bool = True) -> FloatOrArray:
    """Split-half reliability of responses shaped ``(..., images, repeats)``.

    The repeats are split deterministically into even (0, 2, ...) and odd (1, 3, ...)
    indices; ``r`` is the Pearson correlation over images between the two half-averages.
    With ``spearman_brown`` the Spearman-Brown correction ``2 r / (1 + r)`` estimates the
    reliability of the full set of repeats. Repeats must be complete (no NaN).

    Undefined (NaN, with an ``UndefinedCorrelationWarning``) where a half-average is
    constant over images (or, with the correction, where ``r = -1``).

    Raises:
        ValueError: empty input, NaN/infinite values, fewer than 2 images or repeats.
    """
    resp = _complete_repeats(responses)
    r, undefined = _pearson_last_axis(resp[..., 0::2].mean(axis=-1), resp[..., 1::2].mean(axis=-1))
    if spearman_brown:
        # r = -1 would give -inf; the corrected reliability is undefined there.
        undefined = undefined | (r == -1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(undefined, np.nan, 2.0 * r / (1.0 + r))
    _warn_undefined(
        undefined,
        "split-half reliability",
        "a half-average is constant",
        UndefinedCorrelationWarning,
    )
    return _out(r)
