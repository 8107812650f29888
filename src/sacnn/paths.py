"""Where the workflow's files are: a site's raw files and its size, each result's path.

Pure path logic (no torch, no xarray; a raw site's size is read from its files' headers,
nothing loaded), shared by the plan (``sacnn.plan``), its start checks
(``sacnn.config_checks``) and the cost projection (``sacnn.cost``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sacnn.data.raw import SiteShape, site_shape
from sacnn.settings import WorkflowConfigError
from sacnn.simulate.config import SiteConfig

RAW_REFERENCE = ("train_img_{}.npy", "trainRsp_{}.npy", "val_img_{}.npy", "valRsp_{}.npy")
RAW_OPTIONAL = ("train_ids_{}.npy", "val_ids_{}.npy", "neuron_ids_{}.npy", "site.yaml")


def wildcard_alternatives(names: Iterable[str]) -> str:
    """A wildcard regex matching exactly one of ``names`` (and nothing when empty)."""
    names = sorted(names, key=len, reverse=True)
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def model_dir(site: str, model: str, fraction: str) -> str:
    return f"results/{site}/models/{model}/{fraction}"


def metrics_file(site: str, model: str, fraction: str) -> str:
    return f"{model_dir(site, model, fraction)}/metrics.csv"


def site_file_stem(site_config: Mapping[str, Any], site: str) -> str:
    """A site's name inside its raw file names: ``file_stem``, else the site key in lower
    case; a simulated site's files carry the key itself."""
    if "simulate" in site_config:
        return site
    return site_config.get("file_stem", site.lower())


def site_raw_dir(site_config: Mapping[str, Any], site: str) -> str:
    """The folder of a site's raw files: ``resources/<site>`` for a simulated site."""
    return f"resources/{site}" if "simulate" in site_config else site_config["raw"]


def site_size(site_config: Mapping[str, Any], site: str) -> SiteShape:
    """A site's neurons and images before ingest, the one count the plan's chunks and the
    cost projection share: a simulated site's settings, else the raw files' headers
    (``sacnn.data.raw.site_shape``, nothing loaded), with ``n_neurons`` of the config
    replacing the neuron count. Raises ``WorkflowConfigError`` (no raw files; the plan and the cost projection each
    add what to do), or ``DataValidationError`` for
    a file the headers cannot be read from."""
    if "simulate" in site_config:
        sim = SiteConfig.from_dict(site_config["simulate"], where=f"sites.{site}.simulate")
        return SiteShape(sim.n_neurons, sim.n_train, sim.n_val)
    folder = Path(site_raw_dir(site_config, site))
    files = site_file_stem(site_config, site)
    if not (folder / f"trainRsp_{files}.npy").exists() and not (folder / f"{files}.nc").exists():
        raise WorkflowConfigError(f"sites.{site}: no raw data found in {folder}: expected "
                        f"trainRsp_{files}.npy ... (reference layout) or {files}.nc")
    shape = site_shape(folder, files)
    return SiteShape(int(site_config.get("n_neurons", shape.neurons)), shape.train_images,
                     shape.val_images)


def flatten_paths(obj: Any) -> list[str]:
    """Every string in a nest of dicts and lists (the files a JSON hand-off names)."""
    if isinstance(obj, Mapping):
        return [p for v in obj.values() for p in flatten_paths(v)]
    if isinstance(obj, list | tuple):
        return [p for v in obj for p in flatten_paths(v)]
    return [obj]
