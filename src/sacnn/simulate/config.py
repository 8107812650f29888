"""Settings of a simulated site (light: the workflow validates them when it starts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sacnn.settings import check_settings, settings_from_dict
from sacnn.simulate import noise as noise_mod
from sacnn.simulate.stimuli import PHOTOS

DEFAULT_VAL_PHOTOS = ("coffee", "gravel", "china")

#: The type of every setting (sacnn.settings kinds), checked before any value is used.
SITE_KINDS = {
    "site": "str", "seed": "int", "n_neurons": "int", "n_train": "int", "n_val": "int",
    "repeats": "int", "dead_leaves_fraction": "float", "val_photos": "strs", "surround": "bool",
    "surround_strength": "float", "complex_fraction": "float", "rf_scatter": "float",
    "aperture_radius": "float", "half_peak_range": "floats2", "noise": "mapping?", "chunk": "int",
}


@dataclass(frozen=True)
class SiteConfig:
    """A simulated site. Defaults are the laptop-scale demo site."""

    site: str = "sim1"
    seed: int = 0
    n_neurons: int = 40
    n_train: int = 3000
    n_val: int = 300
    repeats: int = 10
    dead_leaves_fraction: float = 0.25
    val_photos: tuple[str, ...] = DEFAULT_VAL_PHOTOS
    """Photos used only for validation crops; all other bundled photos feed training."""
    surround: bool = True
    """False: control site without any surround term."""
    surround_strength: float = 1.0
    """Multiplies every neuron's surround weight w_s."""
    complex_fraction: float = 0.6
    rf_scatter: float = 1.0
    aperture_radius: float = 6.0
    """Analysis aperture (px on the 50x50 grid) for the centre-aperture truth."""
    half_peak_range: tuple[float, float] = (0.001, 0.008)
    """Noiseless share of images above half the peak, log-uniform per neuron."""
    noise: dict[str, Any] | None = None
    """Overrides of noise parameters (see sacnn.simulate.noise.NoiseParams)."""
    chunk: int = 4096

    def __post_init__(self) -> None:
        check_settings(dataclasses.asdict(self), SITE_KINDS)
        for name in ("n_neurons", "n_train", "n_val", "repeats", "chunk"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"setting '{name}': expected >= 1, got {getattr(self, name)}")
        unknown = sorted(set(self.val_photos) - set(PHOTOS))
        if unknown:
            raise ValueError(f"simulation config 'val_photos': unknown photos {unknown}; "
                             f"available {sorted(PHOTOS)}")
        if len(set(PHOTOS) - set(self.val_photos)) == 0:
            raise ValueError("simulation config 'val_photos': no photos left for training")
        if not 0 <= self.dead_leaves_fraction <= 1:
            raise ValueError("simulation config 'dead_leaves_fraction': expected in [0, 1]")
        self.noise_params()  # validate keys early

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None,
                  where: str = "simulation config") -> SiteConfig:
        """Settings from a mapping; every error names ``where`` they came from."""
        def tuples(values: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if k in ("val_photos", "half_peak_range") else v
                    for k, v in values.items()}

        return settings_from_dict(cls, data, SITE_KINDS, where, tuples)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def noise_params(self) -> noise_mod.NoiseParams:
        over = dict(self.noise or {})
        known = {f.name for f in dataclasses.fields(noise_mod.NoiseParams)}
        unknown = sorted(set(over) - known)
        if unknown:
            raise ValueError(f"simulation config 'noise': unknown key(s) {unknown}; "
                             f"allowed keys are {sorted(known)}")
        for k in ("r_max_range", "spont_range"):
            if k in over:
                over[k] = tuple(over[k])
        return noise_mod.NoiseParams(**over)
