"""Settings of a simulated site (light: the workflow validates them when it starts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacnn.seeding import numpy_rng
from sacnn.settings import check_settings, settings_from_dict
from sacnn.simulate import noise as noise_mod
from sacnn.simulate.stimuli import PHOTOS, PhotoSource, bundled_photos, folder_photos

DEFAULT_VAL_PHOTOS = ("coffee", "gravel", "china")
#: What a site's surround does (sacnn.simulate.neurons): MGSM-gated divisive suppression, or
#: facilitation by collinear iso-oriented energy (an association field).
SURROUND_KINDS = ("divisive", "collinear")

#: The type of every setting (sacnn.settings kinds), checked before any value is used.
SITE_KINDS = {
    "site": "str", "seed": "int", "n_neurons": "int", "n_train": "int", "n_val": "int",
    "repeats": "int", "dead_leaves_fraction": "float", "val_photos": "strs?", "surround": "bool",
    "image_dir": "str?", "max_photos": "int", "val_photo_fraction": "float",
    "surround_strength": "float", "surround_kind": "str", "aperture_corr_range": "floats2",
    "complex_fraction": "float", "rf_scatter": "float", "aperture_radius": "float",
    "half_peak_range": "floats2", "noise": "mapping?", "chunk": "int",
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
    val_photos: tuple[str, ...] | None = None
    """Photos used only for validation crops; all other photos feed training. Default: the
    bundled coffee, gravel and china, or with ``image_dir`` a seeded ``val_photo_fraction`` of
    the folder's photos (names are then paths relative to the folder)."""
    image_dir: str | None = None
    """A folder of JPEG/PNG photos (e.g. ImageNet, the paper's source) cropped instead of the
    bundled ones; subfolders are searched; each file's SHA-256 is recorded."""
    max_photos: int = 200
    """With ``image_dir``: a seeded sample of at most this many of its photos is used."""
    val_photo_fraction: float = 0.2
    """With ``image_dir`` and no ``val_photos``: the share of photos held out for validation."""
    surround: bool = True
    """False: control site without any surround term."""
    surround_strength: float = 1.0
    """Multiplies every neuron's solved surround weight (0 is the same as ``surround: false``)."""
    surround_kind: str = "divisive"
    """``divisive``: MGSM-gated divisive suppression by an orientation-tuned surround pool;
    ``collinear``: facilitation of the centre drive by iso-oriented energy in the two
    collinear end zones of the neuron's preferred edge (an association field). Both kinds
    share the seed's centres, so the ``surround: false`` site of a seed controls both."""
    aperture_corr_range: tuple[float, float] = (0.88, 0.92)
    """Per neuron (uniform), the correlation of its aperture response with its full response
    on the training images: each neuron's surround weight is solved for it. The real-data
    bound on how much the surround may explain (docs/reproduction-notes.md, Simulated site)."""
    complex_fraction: float = 0.6
    rf_scatter: float = 1.0
    aperture_radius: float = 7.0
    """Analysis aperture (px on the 50x50 grid) for the centre-aperture truth: 7 px is the
    largest disc around the image centre inside the 16-px window of rf-CNN's centre
    hypercolumn, so that the aperture truth is what a centre-only model can see."""
    half_peak_range: tuple[float, float] = (0.004, 0.01)
    """Noiseless share of images above half the peak, log-uniform per neuron. Below ~0.003
    the calibrated power hits its cap (MAX_POWER) and single validation images dominate."""
    noise: dict[str, Any] | None = None
    """Overrides of noise parameters (see sacnn.simulate.noise.NoiseParams)."""
    chunk: int = 4096

    def __post_init__(self) -> None:
        check_settings(dataclasses.asdict(self), SITE_KINDS)
        for name in ("n_neurons", "n_train", "n_val", "repeats", "chunk", "max_photos"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"setting '{name}': expected >= 1, got {getattr(self, name)}")
        if not 0 < self.val_photo_fraction < 1:
            raise ValueError("setting 'val_photo_fraction': expected in (0, 1), got "
                             f"{self.val_photo_fraction}")
        if self.image_dir is None:
            self._check_val_photos(PHOTOS)
        elif not Path(self.image_dir).is_dir():
            raise ValueError(f"setting 'image_dir': {self.image_dir} is not a folder (relative "
                             "paths start at the working directory)")
        if self.surround_kind not in SURROUND_KINDS:
            raise ValueError(f"setting 'surround_kind': expected one of "
                             f"{', '.join(SURROUND_KINDS)}, got {self.surround_kind!r}")
        lo, hi = self.aperture_corr_range
        if not 0 < lo <= hi < 1:
            raise ValueError("setting 'aperture_corr_range': expected 0 < low <= high < 1, got "
                             f"{list(self.aperture_corr_range)}")
        if self.surround_strength < 0:
            raise ValueError("setting 'surround_strength': expected >= 0, got "
                             f"{self.surround_strength}")
        if not 0 <= self.dead_leaves_fraction <= 1:
            raise ValueError("simulation config 'dead_leaves_fraction': expected in [0, 1]")
        self.noise_params()  # validate keys early

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None,
                  where: str = "simulation config") -> SiteConfig:
        """Settings from a mapping; every error names ``where`` they came from."""
        def tuples(values: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if k in ("val_photos", "half_peak_range", "aperture_corr_range")
                    and v is not None
                    else v
                    for k, v in values.items()}

        return settings_from_dict(cls, data, SITE_KINDS, where, tuples)

    def _check_val_photos(self, names) -> None:
        if self.val_photos is None:
            return
        unknown = sorted(set(self.val_photos) - set(names))
        if unknown:
            raise ValueError(f"simulation config 'val_photos': unknown photos {unknown[:5]}; "
                             f"available {sorted(names)[:20]}")
        if len(set(names) - set(self.val_photos)) == 0:
            raise ValueError("simulation config 'val_photos': no photos left for training")

    def photo_split(self) -> tuple[dict[str, PhotoSource], tuple[str, ...], tuple[str, ...]]:
        """The photos to crop from, and which of them feed training and validation.

        Validation photos never feed training, so a model cannot memorise them.
        """
        if self.image_dir is None:
            catalogue = bundled_photos()
            val = tuple(self.val_photos or DEFAULT_VAL_PHOTOS)
        else:
            catalogue = folder_photos(self.image_dir, self.max_photos, self.seed)
            self._check_val_photos(catalogue)
            names = sorted(catalogue)
            if self.val_photos is not None:
                val = tuple(self.val_photos)
            else:
                n_val = min(max(1, round(self.val_photo_fraction * len(names))), len(names) - 1)
                pick = numpy_rng(self.seed, "val_photos").choice(len(names), n_val,
                                                                  replace=False)
                val = tuple(names[i] for i in sorted(pick))
        train = tuple(n for n in catalogue if n not in val)
        return catalogue, train, val

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
