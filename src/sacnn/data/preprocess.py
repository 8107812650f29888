"""Preprocessing (downsampling, image normalisation, response scaling) and nested splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sacnn.seeding import numpy_rng

_CHUNK = 4096


def area_downsample(images: np.ndarray, size: int, chunk: int = _CHUNK) -> np.ndarray:
    """(N, H, W) -> (N, size, size) float32 by averaging k x k blocks (H = W = k * size).

    Accumulates in float64 chunk by chunk, so 50k 100x100 images never exist as float64.
    """
    n, h, w = images.shape
    if h != w or h % size:
        raise ValueError(f"image side {h}x{w} is not a multiple of {size}")
    k = h // size
    out = np.empty((n, size, size), dtype=np.float32)
    for s in range(0, n, chunk):
        block = images[s:s + chunk].astype(np.float64)
        if k > 1:
            block = block.reshape(-1, size, k, size, k).mean(axis=(2, 4))
        out[s:s + chunk] = block
    return out


def image_stats(images: np.ndarray, chunk: int = _CHUNK) -> tuple[float, float]:
    """Global mean and standard deviation of all pixels (float64 accumulation)."""
    total = 0.0
    total_sq = 0.0
    count = 0
    for s in range(0, images.shape[0], chunk):
        block = images[s:s + chunk].astype(np.float64)
        total += float(block.sum())
        total_sq += float((block * block).sum())
        count += block.size
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    return mean, float(np.sqrt(var))


def normalise_images(
    train: np.ndarray, val: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray, dict[str, float | str]]:
    """Apply one image normalisation to both sets; statistics come from training images only."""
    info: dict[str, float | str] = {"image_norm": method}
    if method == "zscore":
        mean, std = image_stats(train)
        info.update(image_mean=mean, image_std=std)
    return apply_image_norm(train, info), apply_image_norm(val, info), info


def apply_image_norm(images: np.ndarray, info: Mapping[str, Any]) -> np.ndarray:
    """Map raw grey levels through a recorded normalisation (the ``preprocessing`` attribute
    of a dataset: ``image_norm`` and, for ``zscore``, ``image_mean`` and ``image_std``).

    The one home of the mapping: ingest applies it, and anything that builds new model inputs
    from raw grey levels (the ground truth's aperture images) applies the same one.
    """
    method = info.get("image_norm")
    if method == "none":
        return images
    if method == "unit":
        return images / np.float32(255.0)
    if method == "zscore":
        std = float(info["image_std"])
        scale = np.float32(1.0 / std) if std > 0 else np.float32(1.0)
        return (images - np.float32(info["image_mean"])) * scale
    raise ValueError(f"unknown image normalisation {method!r}")


def scale_responses(
    train: np.ndarray, val: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``train`` (neuron, image), ``val`` (neuron, image, repeat). Returns the per-neuron scale."""
    if method == "none":
        return train, val, None
    if method == "neuron_std":
        std = np.nanstd(train, axis=1)
        std = np.where(std > 0, std, 1.0)
        return train / std[:, None], val / std[:, None, None], std
    raise ValueError(f"unknown response scaling {method!r}")


def permutation_rank(n: int, seed: int, site: str) -> np.ndarray:
    """Each training image's rank in one seeded permutation (0 .. n-1)."""
    order = numpy_rng(seed, "train_rank", site).permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def holdout_from_rank(rank: np.ndarray, holdout_fraction: float) -> np.ndarray:
    """Hold-out mask: an image is held out when its rank crosses a multiple of 1/h.

    Among the images of rank < n exactly floor(n * h) are held out, for every n: each data
    fraction gets its own share h of hold-out images, and the hold-out of 25 % lies inside the
    hold-out of 50 % (both nested in the same permutation).
    """
    r = rank.astype(np.float64)
    h = float(holdout_fraction)
    return np.floor((r + 1.0) * h + 1e-9) > np.floor(r * h + 1e-9)


def fraction_count(n: int, fraction: float) -> int:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return round(fraction * n)


@dataclass(frozen=True)
class TrainingArrays:
    """numpy float32 arrays ready for training (images already preprocessed)."""

    fit_images: np.ndarray  # (n_fit, 50, 50)
    fit_responses: np.ndarray  # (n_neurons, n_fit)
    holdout_images: np.ndarray  # (n_hold, 50, 50)
    holdout_responses: np.ndarray  # (n_neurons, n_hold)
    val_images: np.ndarray  # (n_val, 50, 50)
    val_responses: np.ndarray  # (n_neurons, n_val), mean over repeats (NaN-aware)
    val_responses_trials: np.ndarray  # (n_neurons, n_val, n_rep)
    neuron_ids: np.ndarray
    val_image_ids: np.ndarray
    fit_image_ids: np.ndarray

    def select_neurons(self, rows: slice | Sequence[int]) -> TrainingArrays:
        """The same images with the responses of some neurons (positions) only."""
        return dataclasses.replace(
            self, fit_responses=self.fit_responses[rows],
            holdout_responses=self.holdout_responses[rows],
            val_responses=self.val_responses[rows],
            val_responses_trials=self.val_responses_trials[rows],
            neuron_ids=self.neuron_ids[rows])


def training_arrays(ds, fraction: float, neurons: Sequence | slice | None = None) -> TrainingArrays:
    """Arrays for one data fraction of a canonical dataset.

    The fraction's images are those with ``train_rank < round(fraction * N)``; inside them,
    ``train_holdout`` marks the early-stopping hold-out. ``neurons`` is a slice (positions) or a
    sequence of neuron ids (labels); None takes all neurons. Images keep dataset order.
    """
    if isinstance(neurons, slice):
        ds = ds.isel(neuron=neurons)
    elif neurons is not None:
        ds = ds.sel(neuron=list(neurons))
    rank = ds["train_rank"].values
    n_take = fraction_count(rank.size, fraction)
    chosen = rank < n_take
    hold = ds["train_holdout"].values.astype(bool)
    fit_idx = np.flatnonzero(chosen & ~hold)
    hold_idx = np.flatnonzero(chosen & hold)
    timg = ds["train_images"].values
    tresp = ds["train_responses"].values
    trials = ds["val_responses"].values.astype(np.float32)
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        val_mean = np.nanmean(trials, axis=2).astype(np.float32)

    def f32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    return TrainingArrays(
        fit_images=f32(timg[fit_idx]),
        fit_responses=f32(tresp[:, fit_idx]),
        holdout_images=f32(timg[hold_idx]),
        holdout_responses=f32(tresp[:, hold_idx]),
        val_images=f32(ds["val_images"].values),
        val_responses=val_mean,
        val_responses_trials=f32(trials),
        neuron_ids=ds["neuron"].values,
        val_image_ids=ds["val_image"].values,
        fit_image_ids=ds["train_image"].values[fit_idx],
    )


class _quiet_nanmean:
    """Silence numpy's 'Mean of empty slice' warning (an all-NaN image stays NaN)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
