"""Evaluation measures: correlation, peak tuning, population summaries.

The measures against repeated trials (FEVE, cc_max, cc_norm) are in :mod:`sacnn.noise_ceiling`.

Every measure is a plain function on array-likes (numpy arrays, lists, CPU tensors) that
computes in float64 and is vectorised over leading dimensions: per-neuron inputs shaped
``(neurons, images)`` give one value per neuron. A 1-D input gives a Python float.

Conventions shared by all measures:

* Invalid *inputs* (shape mismatch, empty arrays, NaN or infinite values where none are
  allowed, bad parameters) raise ``ValueError``.
* A measure that is *undefined for the data* (e.g. a correlation with a constant
  prediction) returns NaN for that entry and emits one ``UndefinedMetricWarning``
  (``UndefinedCorrelationWarning`` for correlations) that says how many entries were
  undefined, so a NaN never appears silently.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PeakReach",
    "Summary",
    "UndefinedCorrelationWarning",
    "UndefinedMetricWarning",
    "n_top",
    "peak_overlap",
    "peak_reach",
    "peak_tuning_joint",
    "peak_tuning_separate",
    "pearson",
    "sem",
    "summarize",
]

FloatOrArray = float | NDArray[np.float64]


class UndefinedMetricWarning(RuntimeWarning):
    """A measure was undefined for some entries, which were returned as NaN."""


class UndefinedCorrelationWarning(UndefinedMetricWarning):
    """A correlation was undefined (an input constant along the axis) and set to NaN."""


# --------------------------------------------------------------------------- helpers


def _as_float64(x: ArrayLike, name: str, allow_nan: bool = False) -> NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if allow_nan:
        if np.isinf(arr).any():
            raise ValueError(f"{name} contains infinite values")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_same_shape(a: NDArray, b: NDArray, names: tuple[str, str]) -> None:
    # No broadcasting: a silently broadcast prediction is almost always a bug.
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} shape {a.shape} != {names[1]} shape {b.shape}")


def _out(x: NDArray[np.float64]) -> FloatOrArray:
    return float(x) if x.ndim == 0 else x


def _warn_undefined(
    undefined: NDArray[np.bool_], what: str, why: str, category: type[Warning]
) -> None:
    n_bad = int(np.count_nonzero(undefined))
    if n_bad:
        warnings.warn(
            f"{what} undefined for {n_bad} of {undefined.size} entries ({why}); "
            "returned NaN for those entries",
            category,
            stacklevel=3,
        )


def _pearson_last_axis(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Pearson r along the last axis without warnings; also returns the undefined mask."""
    xm = x - x.mean(axis=-1, keepdims=True)
    ym = y - y.mean(axis=-1, keepdims=True)
    sxx = np.einsum("...i,...i->...", xm, xm)
    syy = np.einsum("...i,...i->...", ym, ym)
    sxy = np.einsum("...i,...i->...", xm, ym)
    # Exact constancy is tested on the raw values: the mean of a constant float array
    # need not equal the constant, so x - mean can be tiny noise rather than exactly zero.
    constant = (np.ptp(x, axis=-1) == 0) | (np.ptp(y, axis=-1) == 0)
    denom = np.sqrt(sxx) * np.sqrt(syy)
    undefined = constant | ~(denom > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sxy / denom
    # np.corrcoef clips to [-1, 1] to absorb rounding; do the same to match it.
    r = np.clip(r, -1.0, 1.0)
    r = np.where(undefined, np.nan, r)
    return r, undefined


# ----------------------------------------------------------------------- correlation


def pearson(pred: ArrayLike, real: ArrayLike, axis: int = -1) -> FloatOrArray:
    """Pearson correlation coefficient between ``pred`` and ``real`` along ``axis``.

    Computes ``r = sum(dp * dr) / sqrt(sum(dp**2) * sum(dr**2))`` with ``dp = pred -
    mean(pred)`` and ``dr = real - mean(real)``, i.e. exactly the off-diagonal entry of
    ``np.corrcoef(pred, real)`` (the normalisation of covariance and variances cancels, so
    there is no ddof choice), clipped to [-1, 1] as ``np.corrcoef`` does. Computed in
    float64 and vectorised: inputs shaped ``(neurons, images)`` give ``(neurons,)``.

    Where either input is constant along ``axis`` the correlation is undefined: that entry
    is NaN and one ``UndefinedCorrelationWarning`` reports how many entries were affected.

    Raises:
        ValueError: shapes differ, input empty, fewer than 2 samples along ``axis``, or
            any NaN/infinite value.
    """
    p = _as_float64(pred, "pred")
    r = _as_float64(real, "real")
    _check_same_shape(p, r, ("pred", "real"))
    p = np.moveaxis(p, axis, -1)
    r = np.moveaxis(r, axis, -1)
    if p.shape[-1] < 2:
        raise ValueError(f"correlation needs at least 2 samples along axis, got {p.shape[-1]}")
    out, undefined = _pearson_last_axis(p, r)
    _warn_undefined(
        undefined, "Pearson correlation", "an input is constant", UndefinedCorrelationWarning
    )
    return _out(out)


# ----------------------------------------------------------------------- peak tuning


def n_top(n_images: int, top_fraction: float = 0.01) -> int:
    """Number of images ``k`` in the top ``top_fraction`` of ``n_images``.

    ``k = max(1, round(top_fraction * n_images))`` with Python's ``round`` (halves to even),
    as the released notebook computes ``round(N / 100)``: k = 10 for N = 1000, and 2 for
    N = 250 (2.5 rounds to 2). The product is formed exactly from the fraction's decimal
    form, so 0.009 x 1500 is the half 13.5 (-> 14), not binary 13.4999... At least one
    image, so that PT stays defined for small image sets (N < 50 at the 1 % default; the
    released code would take k = 0 there).

    Raises:
        ValueError: ``n_images < 1`` or ``top_fraction`` not in (0, 1].
        TypeError: ``top_fraction`` is not a real number (or is a bool).
    """
    if isinstance(top_fraction, bool) or not isinstance(top_fraction, numbers.Real):
        raise TypeError(f"top_fraction must be a real number, got {top_fraction!r}")
    fraction = float(top_fraction)
    if not 0.0 < fraction <= 1.0:  # also rejects NaN
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction!r}")
    if int(n_images) < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    k = round(Fraction(repr(fraction)) * int(n_images))  # exact; halves to even
    return min(max(1, k), int(n_images))


def _peak_tuning_inputs(
    pred: ArrayLike, real: ArrayLike, top_fraction: float, axis: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.intp], int]:
    p = _as_float64(pred, "pred")
    r = _as_float64(real, "real")
    _check_same_shape(p, r, ("pred", "real"))
    p = np.moveaxis(p, axis, -1)
    r = np.moveaxis(r, axis, -1)
    k = n_top(p.shape[-1], top_fraction)
    # Stable sort on -real: descending by real response, ties broken by lower image index.
    order = np.argsort(-r, axis=-1, kind="stable")[..., :k]
    threshold = np.take_along_axis(r, order[..., k - 1 : k], axis=-1)
    return p, r, threshold, order, k


def peak_tuning_joint(
    pred: ArrayLike, real: ArrayLike, top_fraction: float = 0.01, axis: int = -1
) -> FloatOrArray:
    """Joint peak-tuning index PT_J, as a fraction in [0, 1], along ``axis`` (images).

    With ``k = n_top(N, top_fraction)`` (k = 10 for N = 1000 images):

    1. rank the images by their REAL response, highest first, and take the top ``k``;
    2. ``threshold`` = the k-th highest real response;
    3. PT_J = (number of those k images whose PREDICTED response >= threshold) / k.

    This is the released code's definition. It compares raw predicted magnitudes with a
    real-response threshold, so it is NOT scale invariant: a prediction that correlates
    perfectly but is scaled down (or offset) scores lower. The paper's tables report PT in
    percent averaged over neurons; multiply this per-neuron fraction by 100 to match.

    Ties: images with equal real responses are ranked by image index (lower index first,
    a stable sort), so when ties straddle the k-th place the lower-indexed images are the
    "top k". Ties in predictions cannot change the result (predictions are only compared
    by value), and a prediction equal to the threshold counts as a hit (``>=``).

    Raises:
        ValueError: shapes differ, input empty, NaN/infinite values, or ``top_fraction``
            outside (0, 1].
    """
    p, _, threshold, order, _ = _peak_tuning_inputs(pred, real, top_fraction, axis)
    hits = np.take_along_axis(p, order, axis=-1) >= threshold
    return _out(hits.mean(axis=-1))


def peak_tuning_separate(
    pred: ArrayLike, real: ArrayLike, top_fraction: float = 0.01, axis: int = -1
) -> FloatOrArray:
    """Separate peak-tuning index PT_S, as a fraction in [0, 1], along ``axis`` (images).

    With ``k = n_top(N, top_fraction)`` and ``threshold`` = the k-th highest REAL response
    (as in :func:`peak_tuning_joint`), PT_S = (number of the k highest PREDICTED values that
    are >= threshold) / k. The predictions are ranked on their own, independently of which
    images carry the real peaks; hence PT_S >= PT_J always.

    Like PT_J this is the released code's definition: scale dependent (raw predicted values
    are compared with a real-response threshold), a fraction per neuron, and reported in
    percent in the paper's tables. Ties cannot change the result: the multiset of the k
    largest predicted values is unique whatever order tied values are taken in, and the
    threshold is a value, not an image.

    Raises:
        ValueError: shapes differ, input empty, NaN/infinite values, or ``top_fraction``
            outside (0, 1].
    """
    p, _, threshold, _, k = _peak_tuning_inputs(pred, real, top_fraction, axis)
    n = p.shape[-1]
    top_pred = np.partition(p, n - k, axis=-1)[..., n - k :]
    return _out((top_pred >= threshold).mean(axis=-1))


def peak_overlap(
    pred: ArrayLike, real: ArrayLike, top_fraction: float = 0.01, axis: int = -1
) -> FloatOrArray:
    """Scale-free peak measure: the share of the recorded top images that are also the
    prediction's top images, a fraction in [0, 1], along ``axis`` (images).

    With ``k = n_top(N, top_fraction)`` (k = 10 for N = 1000 images):

    1. the recorded top k: the images ranked by their REAL response, highest first, ties to
       the lower image index (a stable sort), exactly the images PT_J counts;
    2. the predicted top k: the images ranked by their PREDICTED response the same way
       (highest first, ties to the lower image index);
    3. peak_overlap = (number of images in both) / k.

    Unlike PT_J and PT_S no predicted value is compared with a recorded one, only the two
    rankings: the measure is unchanged by any strictly increasing transform of the
    prediction (a stretch ``a * pred`` with a > 0, a shift ``pred + b``, a monotone output
    nonlinearity), up to float rounding that would make two distinct predictions equal. So a
    prediction whose scale is off by a factor, which moves PT either way, scores what its
    ranking of the images deserves. A perfect ranking scores 1; a prediction unrelated to the
    response scores k / N on average.

    Ties: with several predictions equal at the k-th place the lower-indexed images enter the
    predicted top k (the same rule as the recorded ranking), so the result is fixed for any
    input; a constant prediction picks images 0 .. k-1.

    Raises:
        ValueError: shapes differ, input empty, NaN/infinite values, or ``top_fraction``
            outside (0, 1].
    """
    p, _, _, order, k = _peak_tuning_inputs(pred, real, top_fraction, axis)
    in_real_top = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(in_real_top, order, True, axis=-1)
    pred_top = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    hits = np.take_along_axis(in_real_top, pred_top, axis=-1).sum(axis=-1)
    return _out(np.asarray(hits / k, dtype=np.float64))


# ------------------------------------------------------------------ population summary


def sem(values: ArrayLike, axis: int = 0) -> FloatOrArray:
    """Standard error of the mean along ``axis``: ``std(values, ddof=1) / sqrt(n)``.

    Raises:
        ValueError: input empty, fewer than 2 values along ``axis``, or NaN/infinite
            values (use :func:`summarize` to skip and count undefined neurons).
    """
    v = _as_float64(values, "values")
    n = v.shape[axis]
    if n < 2:
        raise ValueError(f"sem needs at least 2 values along axis, got {n}")
    return _out(np.asarray(v.std(axis=axis, ddof=1) / np.sqrt(n)))


@dataclass(frozen=True)
class Summary:
    """Population summary of a per-neuron measure.

    ``mean`` and ``sem`` are over the ``n`` defined (non-NaN) values; ``n_undefined``
    counts the NaN entries that were left out. ``mean`` is NaN when ``n == 0`` and ``sem``
    is NaN when ``n < 2``.
    """

    mean: float
    sem: float
    n: int
    n_undefined: int

    def format(self, precision: int = 3, scale: float = 1.0) -> str:
        """``"mean ± sem (n=…)"``, values multiplied by ``scale`` (100 for percent)."""
        text = f"{self.mean * scale:.{precision}f} ± {self.sem * scale:.{precision}f} (n={self.n}"
        if self.n_undefined:
            text += f", {self.n_undefined} undefined"
        return text + ")"


def summarize(values: ArrayLike) -> Summary:
    """Mean, SEM (ddof=1), count of defined values and count of NaN (undefined) values.

    All entries of ``values`` (any shape) are pooled. NaN entries, e.g. neurons with an
    undefined correlation, are excluded from mean and SEM but counted in ``n_undefined``
    so a table can report them instead of printing NaN.

    Raises:
        ValueError: input empty or containing infinite values.
    """
    v = _as_float64(values, "values", allow_nan=True).ravel()
    defined = v[~np.isnan(v)]
    n = int(defined.size)
    mean = float(defined.mean()) if n else math.nan
    spread = float(defined.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    return Summary(mean=mean, sem=spread, n=n, n_undefined=int(v.size - n))


@dataclass(frozen=True)
class PeakReach:
    """How many top images a population of neurons' predictions reached, and out of how many.

    A population mean PT is ``hits / chances``; its smallest non-zero value is
    ``1 / chances``. With few neurons or few images (k = 3 of 300 images, 10 neurons: 30
    chances, 3.3 %) a mean PT of the size the paper reports (well below 1 %) shows as 0: a
    table or figure should then say so rather than present 0 as a finding. The same holds for
    :func:`peak_overlap` (a share of k images per neuron too): its hits are the recorded top
    images found among the prediction's top k.
    """

    k: int          # top images per neuron (the largest k among the neurons)
    hits: int       # top images predicted at or above their neuron's threshold (PT), or
    #                 found among the prediction's top k (peak_overlap), all neurons
    chances: int    # the sum of k over neurons with a defined PT

    @property
    def resolution(self) -> float:
        """The smallest non-zero population mean PT (a fraction); NaN without chances."""
        return 1.0 / self.chances if self.chances else math.nan


def peak_reach(pt: ArrayLike, k: ArrayLike) -> PeakReach:
    """:class:`PeakReach` of per-neuron PT (or peak_overlap) values (fractions; NaN =
    undefined, left out) and each neuron's k (:func:`n_top` of its image count)."""
    v = _as_float64(pt, "pt", allow_nan=True).ravel()
    kk = np.broadcast_to(np.asarray(k, dtype=np.int64).ravel(), v.shape)
    defined = ~np.isnan(v)
    return PeakReach(k=int(kk.max()), hits=int(np.rint(v[defined] * kk[defined]).sum()),
                     chances=int(kk[defined].sum()))
