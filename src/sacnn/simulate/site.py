"""Write a simulated site in the reference raw layout, with its ground truth beside it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sacnn.data.preprocess import area_downsample
from sacnn.provenance import code_version, config_json
from sacnn.simulate import noise as noise_mod
from sacnn.simulate.neurons import Population, aperture_mask
from sacnn.simulate.realism import format_summary, realism_stats, summarise
from sacnn.simulate.stimuli import PHOTOS, make_stimuli

DEFAULT_VAL_PHOTOS = ("coffee", "gravel", "china")


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
        for name in ("n_neurons", "n_train", "n_val", "repeats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"simulation config '{name}': expected >= 1")
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
    def from_dict(cls, data: Mapping[str, Any] | None) -> SiteConfig:
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"simulation config: unknown key(s) {unknown}; "
                             f"allowed keys are {sorted(known)}")
        for k in ("val_photos", "half_peak_range"):
            if k in data:
                data[k] = tuple(data[k])
        return cls(**data)

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



def _log(msg: str, t0: float, verbose: bool) -> None:
    if verbose:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def simulate_site(config: SiteConfig, verbose: bool = False) -> dict[str, Any]:
    """Generate everything in memory: stimuli, truth, noisy responses, statistics."""
    t0 = time.perf_counter()
    cfg = config
    train_photos = tuple(p for p in PHOTOS if p not in cfg.val_photos)
    train_img, train_src = make_stimuli(cfg.n_train, train_photos, cfg.dead_leaves_fraction,
                                        cfg.seed, "train")
    val_img, val_src = make_stimuli(cfg.n_val, tuple(cfg.val_photos), cfg.dead_leaves_fraction,
                                    cfg.seed, "val")
    _log(f"stimuli: {cfg.n_train} train, {cfg.n_val} val", t0, verbose)
    pop = Population.sample(
        cfg.n_neurons, cfg.seed, complex_fraction=cfg.complex_fraction,
        rf_scatter=cfg.rf_scatter, half_peak_range=cfg.half_peak_range,
        aperture_radius=cfg.aperture_radius,
        surround_strength=cfg.surround_strength if cfg.surround else 0.0,
    )
    # the neurons see what the models see: 2x2 area average to 50x50, grey levels in [0, 1]
    train50 = area_downsample(train_img, 50) / np.float32(255.0)
    val50 = area_downsample(val_img, 50) / np.float32(255.0)
    raw_train = pop.raw(train50, chunk=cfg.chunk)
    pop.calibrate(raw_train)
    truth_train = pop.truth(raw_train)
    del raw_train
    truth_val = pop(val50)
    _log("neuron model and truth", t0, verbose)
    npar = cfg.noise_params()
    nn = noise_mod.neuron_noise_params(cfg.n_neurons, npar, cfg.seed)
    train_trials = noise_mod.trials(truth_train["r_true"], 1, npar, nn, cfg.seed, "train")
    val_trials = noise_mod.trials(truth_val["r_true"], cfg.repeats, npar, nn, cfg.seed, "val")
    stats = realism_stats(val_trials, truth_val["r_true"])
    _log("noise", t0, verbose)
    return {
        "train_images": train_img, "val_images": val_img,
        "train_sources": train_src, "val_sources": val_src,
        "population": pop, "noise_neuron": nn,
        "truth_train": truth_train, "truth_val": truth_val,
        "train_responses": train_trials[:, :, 0], "val_trials": val_trials,
        "stats": stats, "summary": summarise(stats),
    }


def _truth_dataset(cfg: SiteConfig, sim: dict[str, Any]):
    import xarray as xr

    pop: Population = sim["population"]
    dv: dict[str, Any] = {}
    for split in ("train", "val"):
        for k, v in sim[f"truth_{split}"].items():
            dv[f"{split}_{k}"] = (("neuron", f"{split}_image"), v.astype(np.float32))
        dv[f"{split}_source"] = ((f"{split}_image",), np.array(sim[f"{split}_sources"], dtype=str))
    for k, v in pop.params.items():
        dv[f"param_{k}"] = (("neuron",), np.asarray(v, np.float64))
    for k, v in pop.calib.items():
        dv[f"calib_{k}"] = (("neuron",), np.asarray(v, np.float64))
    for k, v in sim["noise_neuron"].items():
        dv[f"noise_{k}"] = (("neuron",), np.asarray(v, np.float64))
    dv["aperture"] = (("y", "x"), aperture_mask(cfg.aperture_radius))
    ds = xr.Dataset(dv, coords={
        "neuron": np.arange(cfg.n_neurons), "train_image": np.arange(cfg.n_train),
        "val_image": np.arange(cfg.n_val),
    })
    ds.attrs.update({
        "title": f"ground truth of simulated site {cfg.site}",
        "site": cfg.site,
        "description": "r_true: noiseless response; r_centre: surround term removed; "
                       "r_aperture: full model on the image with grey outside 'aperture'; "
                       "gate: MGSM surround gate. Coordinates match the canonical dataset.",
        "code_version": code_version(),
        "config": config_json(cfg.to_dict()),
        "photo_sha256": json.dumps({k: PHOTOS[k][2] for k in sorted(PHOTOS)}),
    })
    return ds


def write_site(out_dir: str | Path, config: SiteConfig | Mapping[str, Any] | None = None,
               verbose: bool = True) -> dict[str, Any]:
    """Simulate a site and write it to ``out_dir`` in the reference layout plus ground truth.

    Files: train_img_<site>.npy (N, 100, 100) uint8, trainRsp_<site>.npy (N, neurons) float32,
    val_img_<site>.npy, valRsp_<site>.npy (N_val, neurons, repeats) float32, site.yaml (declares
    the repeats), truth_<site>.nc, neurons_<site>.json (parameters and calibration: the oracle),
    realism_<site>.json. Files are written to a temporary folder and moved in at the end.
    Returns the realism summary.
    """
    cfg = config if isinstance(config, SiteConfig) else SiteConfig.from_dict(config)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    sim = simulate_site(cfg, verbose=verbose)
    s = cfg.site
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        np.save(tmp / f"train_img_{s}.npy", sim["train_images"])
        np.save(tmp / f"trainRsp_{s}.npy", np.ascontiguousarray(sim["train_responses"].T))
        np.save(tmp / f"val_img_{s}.npy", sim["val_images"])
        np.save(tmp / f"valRsp_{s}.npy",
                np.ascontiguousarray(np.transpose(sim["val_trials"], (1, 0, 2))))
        (tmp / "site.yaml").write_text(
            "# written by sacnn.simulate: declares the layout of valRsp\n"
            f"val_layout: image_neuron_repeat\nrepeats: {cfg.repeats}\n"
        )
        _truth_dataset(cfg, sim).to_netcdf(tmp / f"truth_{s}.nc", engine="netcdf4")
        meta = {
            "site": s, "config": cfg.to_dict(), "code_version": code_version(),
            "noise": dataclasses.asdict(cfg.noise_params()),
            **sim["population"].to_json_dict(),
            "noise_neuron": {k: v.tolist() for k, v in sim["noise_neuron"].items()},
            "photos": {k: {"package": v[0], "path": v[1], "sha256": v[2], "licence": v[3]}
                       for k, v in PHOTOS.items()},
        }
        (tmp / f"neurons_{s}.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        (tmp / f"realism_{s}.json").write_text(json.dumps(sim["summary"], indent=1,
                                                          sort_keys=True))
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(format_summary(sim["summary"]))
        print(f"wrote {out_dir} in {time.perf_counter() - t0:.1f}s")
    return sim["summary"]


def load_oracle(site_dir: str | Path, site: str) -> Population:
    """The true model of a written site, callable on new (N, 50, 50) images in [0, 1]."""
    return Population.from_json(Path(site_dir) / f"neurons_{site}.json")
