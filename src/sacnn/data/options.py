"""Ingest options: how to read a site's raw files and which preprocessing to apply."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacnn.settings import SettingError, check_settings, settings_from_dict

LAYOUTS = ("auto", "reference", "netcdf")
VAL_LAYOUTS = ("auto", "mean", "image_neuron_repeat", "repeat_image_neuron")
NAN_POLICIES = ("refuse", "mask_neuron")
IMAGE_NORMS = ("zscore", "none", "unit")
RESPONSE_SCALES = ("none", "neuron_std")

SIDECAR = "site.yaml"

#: The type of every option (sacnn.settings kinds), checked before any value is used.
OPTION_KINDS = {
    "layout": "str", "val_layout": "str", "repeats": "int?", "nan_policy": "str",
    "image_norm": "str", "response_scale": "str", "holdout_fraction": "float", "seed": "int",
    "image_size": "int", "response_units": "str", "image_units": "str",
}


@dataclass(frozen=True)
class IngestOptions:
    """Everything ingest needs besides the files; documented in docs/data-format.md."""

    layout: str = "auto"
    """``reference`` (.npy files), ``netcdf`` (``<site>.nc``) or ``auto`` (whichever exists)."""
    val_layout: str = "auto"
    """Axis order of ``valRsp``: ``mean`` (N_val, neurons), ``image_neuron_repeat``,
    ``repeat_image_neuron``; ``auto`` decides from the shape and refuses ambiguity."""
    repeats: int | None = None
    """Declared number of validation repeats; a file without them is then an error."""
    nan_policy: str = "refuse"
    """``refuse`` any NaN/inf in responses, or ``mask_neuron``: drop neurons that have them
    (NaN trials in validation repeats are kept as missing repeats)."""
    image_norm: str = "zscore"
    """``zscore`` (training-set mean and std, applied to all images), ``none`` (as in the
    released code), or ``unit`` (pixel / 255)."""
    response_scale: str = "none"
    """``none`` keeps dF/F (as in the released code); ``neuron_std`` divides each neuron by its
    training-set standard deviation."""
    holdout_fraction: float = 0.1
    """Share of each training fraction held out for early stopping."""
    seed: int = 0
    """Base seed for the training-image permutation (fractions and hold-out)."""
    image_size: int = 50
    """Side of the canonical images; larger square stimuli are area-averaged down to it."""
    response_units: str = "dF/F"
    image_units: str = "grey level"

    def __post_init__(self) -> None:
        check_settings(dataclasses.asdict(self), OPTION_KINDS)
        for name, allowed in (
            ("layout", LAYOUTS), ("val_layout", VAL_LAYOUTS), ("nan_policy", NAN_POLICIES),
            ("image_norm", IMAGE_NORMS), ("response_scale", RESPONSE_SCALES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"ingest option '{name}': expected one of {allowed}, got {getattr(self, name)!r}"
                )
        if self.repeats is not None and int(self.repeats) < 1:
            raise ValueError(f"ingest option 'repeats': expected >= 1, got {self.repeats}")
        if not 0.0 <= float(self.holdout_fraction) < 1.0:
            raise ValueError(
                f"ingest option 'holdout_fraction': expected in [0, 1), got {self.holdout_fraction}"
            )
        if int(self.image_size) < 1:
            raise ValueError(f"ingest option 'image_size': expected >= 1, got {self.image_size}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "ingest options") -> IngestOptions:
        """Options from a mapping; every error names ``where`` they came from."""
        return settings_from_dict(cls, data, OPTION_KINDS, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_sidecar(site_dir: Path) -> dict[str, Any]:
    """Options declared in ``<site_dir>/site.yaml`` (empty when there is none)."""
    path = Path(site_dir) / SIDECAR
    if not path.exists():
        return {}
    import yaml

    from sacnn.yamlfile import load_yaml

    try:
        data = load_yaml(path) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingError(f"{path}: not a readable YAML file of ingest options ({exc})") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SettingError(f"{path}: expected a mapping of ingest options, got {kind}")
    IngestOptions.from_dict(data, where=str(path))  # types and values, naming the file
    return data


def resolve_options(
    site_dir: Path, options: IngestOptions | Mapping[str, Any] | None
) -> IngestOptions:
    """Explicit ``IngestOptions`` win; a mapping is laid over the site's ``site.yaml``."""
    if isinstance(options, IngestOptions):
        return options
    merged = load_sidecar(site_dir)
    IngestOptions.from_dict(options, where="ingest options (config or --option)")
    merged.update(dict(options or {}))
    return IngestOptions.from_dict(merged)
