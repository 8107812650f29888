"""Checks on raw and canonical data, each failing with a message that names file, field and expectation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class DataValidationError(ValueError):
    """Raw or canonical data that breaks the contract in docs/data-format.md.

    The message always names the file, the field and what was expected.
    """

    def __init__(self, file: str | Path, field: str, expected: str, found: str = "") -> None:
        self.file = str(file)
        self.field = field
        self.expected = expected
        self.found = found
        msg = f"{self.file}: field '{field}': expected {expected}"
        if found:
            msg += f"; found {found}"
        super().__init__(msg)


def check_dtype(arr: np.ndarray, file: str | Path, field: str) -> None:
    """Refuse anything that is not a real number array (bool, object, complex, strings)."""
    kind = arr.dtype.kind
    if kind not in "uif":
        raise DataValidationError(
            file, field, "a real numeric dtype (uint, int or float)", f"dtype {arr.dtype}"
        )


def check_rank(
    arr: np.ndarray, ranks: Sequence[int], file: str | Path, field: str, what: str
) -> None:
    if arr.ndim not in ranks:
        raise DataValidationError(
            file, field, f"{what} (rank {' or '.join(map(str, ranks))})",
            f"shape {arr.shape} (rank {arr.ndim})",
        )


def check_count(n: int, expected: int, file: str | Path, field: str, what: str) -> None:
    if n != expected:
        raise DataValidationError(file, field, f"{expected} {what}", f"{n}")


def check_images(images: np.ndarray, file: str | Path, field: str) -> None:
    """Images must be finite and not constant (a blank frame is a broken stimulus file)."""
    flat = images.reshape(images.shape[0], -1)
    bad = ~np.isfinite(flat).all(axis=1) if flat.dtype.kind == "f" else np.zeros(len(flat), bool)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise DataValidationError(
            file, field, "finite pixel values in every image",
            f"NaN or inf in {idx.size} image(s), first at index {int(idx[0])}",
        )
    const = flat.min(axis=1) == flat.max(axis=1)
    if const.any():
        idx = np.flatnonzero(const)
        raise DataValidationError(
            file, field, "non-constant images (pixel values must vary)",
            f"{idx.size} constant image(s), first at index {int(idx[0])}",
        )


def nonfinite_neurons(responses: np.ndarray, neuron_axis: int) -> np.ndarray:
    """Boolean mask over neurons that have any NaN or inf."""
    other = tuple(a for a in range(responses.ndim) if a != neuron_axis)
    return ~np.isfinite(responses).all(axis=other)


def check_finite_responses(
    responses: np.ndarray, neuron_axis: int, file: str | Path, field: str
) -> None:
    bad = nonfinite_neurons(responses, neuron_axis)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise DataValidationError(
            file, field,
            "finite responses (or set nan_policy: mask_neuron to drop such neurons)",
            f"NaN or inf for {idx.size} neuron(s), first at neuron index {int(idx[0])}",
        )


def check_neuron_variance(
    responses: np.ndarray, file: str | Path, field: str, neuron_ids: Sequence | None = None
) -> None:
    """``responses`` is (neuron, image); a neuron whose responses never change cannot be fitted."""
    with np.errstate(invalid="ignore"):
        var = np.nanvar(responses.astype(np.float64), axis=1)
    bad = ~(var > 0)
    if bad.any():
        idx = np.flatnonzero(bad)
        name = neuron_ids[int(idx[0])] if neuron_ids is not None else int(idx[0])
        raise DataValidationError(
            file, field, "every neuron to vary across images (non-zero variance)",
            f"{idx.size} neuron(s) with zero variance, first: neuron {name}",
        )


def check_unique_ids(ids: np.ndarray, file: str | Path, field: str) -> None:
    values, counts = np.unique(np.asarray(ids), return_counts=True)
    if (counts > 1).any():
        dup = values[counts > 1]
        raise DataValidationError(
            file, field, "unique ids", f"{dup.size} duplicated id(s), e.g. {dup[0]!r}"
        )


#: Largest magnitude accepted for a pixel or a response. Real stimuli (8/16-bit grey levels,
#: [0, 1] floats) and responses (dF/F, rates, counts, raw fluorescence) are far below it;
#: beyond it a value is a unit or file mistake, and float32 sums over 50k images would
#: overflow during normalisation.
VALUE_LIMIT = 1e6


def check_value_range(arr: np.ndarray, file: str | Path, field: str,
                      limit: float = VALUE_LIMIT) -> None:
    """Refuse magnitudes beyond ``limit`` (finite ones; NaN/inf are other checks' business)."""
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        return
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(arr) if arr.dtype.kind == "f" else np.ones(arr.shape, bool)
        peak = float(np.abs(arr[finite]).max()) if finite.any() else 0.0
    if peak > limit:
        raise DataValidationError(
            file, field, f"values within +-{limit:g} (rescale the data if this is intended)",
            f"a value of magnitude {peak:g}")


def check_finite_after(arr: np.ndarray, step: str, file: str | Path, field: str) -> None:
    """After a cast or a normalisation every value must still be finite (no overflow)."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataValidationError(
            file, field, f"finite values after {step}",
            "NaN or inf (a value overflowed: check the file's units and range)")
