"""Where a claim's per-neuron values come from: a metrics.csv column, or the centre share
of the trained networks on a site's validation images (``sacnn.claims`` reads them through
:class:`Values`; the tests hand it :class:`MemoryValues`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from sacnn.evaluation import read_metrics


class ClaimError(ValueError):
    """A claims spec that cannot be evaluated; the message names the key or file."""


class Values(Protocol):
    """Per-neuron values of one (site, model, fraction, measure), indexed by neuron id."""

    def get(self, site: str, model: str, fraction: str, measure: str) -> pd.Series: ...


class MemoryValues:
    """Per-neuron values held in memory, ``{(site, model, fraction, measure): Series}`` (the
    index: neuron ids as text): the statistics without any file."""

    def __init__(self, values: Mapping[tuple[str, str, str, str], pd.Series]) -> None:
        self.values = values

    def get(self, site: str, model: str, fraction: str, measure: str) -> pd.Series:
        try:
            return self.values[(site, model, fraction, measure)]
        except KeyError:
            raise ClaimError(f"claims: no {measure} values for site {site}, model {model}, "
                             f"fraction {fraction}") from None


def metric_values(path: str | Path, measure: str) -> pd.Series:
    """One measure per neuron (index: neuron id as text) from a metrics.csv."""
    df = read_metrics(path)
    if measure not in df.columns:
        raise ClaimError(f"{path}: no column {measure!r}; written by an older sacnn: delete "
                         "it and run snakemake again")
    values = df.set_index("neuron")[measure].astype(float)
    values.index = values.index.astype(str)
    return values


def validation_images(dataset: str | Path) -> np.ndarray:
    """The model inputs a dataset validates on."""
    from sacnn.data.ingest import open_dataset

    return open_dataset(dataset)["val_images"].values


def centre_share_values(weights: Sequence[str | Path], images: np.ndarray) -> pd.Series:
    """``centre_share`` per neuron on ``images`` (a dataset's validation images), computed on
    one thread so that it does not depend on the machine's cores."""
    import torch

    from sacnn.analysis import centre_share, one_thread
    from sacnn.training.weights import load_networks

    ids, nets = load_networks(weights, dtype=torch.float32)
    with one_thread():
        shares = [centre_share(net, images) for net in nets]
    return pd.Series(shares, index=ids, dtype=float)


class SpecValues:
    """The workflow's values: read from the spec's files, each (site, model, fraction,
    measure) once; a site's validation images once for all its models."""

    def __init__(self, sites: Mapping[str, Any]) -> None:
        self.sites = sites
        self._cache: dict[tuple[str, str, str, str], pd.Series] = {}
        self._images: dict[str, np.ndarray] = {}

    def get(self, site: str, model: str, fraction: str, measure: str) -> pd.Series:
        key = (site, model, fraction, measure)
        if key not in self._cache:
            s = self.sites[site]
            try:
                if measure == "centre_share":
                    if site not in self._images:
                        self._images[site] = validation_images(s["dataset"])
                    self._cache[key] = centre_share_values(s["weights"][model][fraction],
                                                           self._images[site])
                else:
                    self._cache[key] = metric_values(s["metrics"][model][fraction], measure)
            except KeyError as exc:
                raise ClaimError(f"claims spec: no {measure} input for site {site}, model "
                                 f"{model}, fraction {fraction} ({exc})") from None
        return self._cache[key]
