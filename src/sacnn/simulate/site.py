"""Write a simulated site in the reference raw layout, with its ground truth beside it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sacnn.data.preprocess import area_downsample
from sacnn.provenance import code_version, config_json
from sacnn.simulate import noise as noise_mod
from sacnn.simulate.config import DEFAULT_VAL_PHOTOS, SITE_KINDS, SiteConfig  # noqa: F401
from sacnn.simulate.filters import aperture_mask
from sacnn.simulate.neurons import Population
from sacnn.simulate.realism import format_summary, realism_stats, summarise
from sacnn.simulate.stimuli import make_stimuli


def _log(msg: str, t0: float, verbose: bool) -> None:
    if verbose:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def simulate_site(config: SiteConfig, verbose: bool = False) -> dict[str, Any]:
    """Generate everything in memory: stimuli, truth, noisy responses, statistics."""
    t0 = time.perf_counter()
    cfg = config
    catalogue, train_photos, val_photos = cfg.photo_split()
    train_img, train_src = make_stimuli(cfg.n_train, train_photos, cfg.dead_leaves_fraction,
                                        cfg.seed, "train", catalogue)
    val_img, val_src = make_stimuli(cfg.n_val, val_photos, cfg.dead_leaves_fraction,
                                    cfg.seed, "val", catalogue)
    photos = {name: {"path": str(src.path), "sha256": src.sha256,
                     "licence": src.licence, "split": "val" if name in val_photos else "train"}
              for name, src in catalogue.items()}
    _log(f"stimuli: {cfg.n_train} train, {cfg.n_val} val", t0, verbose)
    pop = Population.sample(
        cfg.n_neurons, cfg.seed, complex_fraction=cfg.complex_fraction,
        rf_scatter=cfg.rf_scatter, half_peak_range=cfg.half_peak_range,
        aperture_corr_range=cfg.aperture_corr_range, aperture_radius=cfg.aperture_radius,
        surround_strength=cfg.surround_strength if cfg.surround else 0.0,
        surround_kind=cfg.surround_kind,
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
    # the truth in the recording's units: what a perfect model of the recording predicts
    expected_val = {f"expected_{k[2:]}": noise_mod.expected_trials(truth_val[k], npar, nn)
                    for k in ("r_true", "r_centre", "r_aperture")}
    stats = realism_stats(val_trials, expected_val["expected_true"],
                          expected_val["expected_aperture"])
    _log("noise", t0, verbose)
    return {
        "train_images": train_img, "val_images": val_img,
        "train_sources": train_src, "val_sources": val_src,
        "population": pop, "noise_neuron": nn,
        "truth_train": truth_train, "truth_val": truth_val, "expected_val": expected_val,
        "train_responses": train_trials[:, :, 0], "val_trials": val_trials,
        "stats": stats, "summary": summarise(stats), "photos": photos,
    }


def image_means(images: np.ndarray) -> np.ndarray:
    """Mean grey level in [0, 1] of each image after the 2x2 area average to 50x50 (float64)."""
    return area_downsample(images, 50).mean(axis=(1, 2), dtype=np.float64) / 255.0


def _truth_dataset(cfg: SiteConfig, sim: dict[str, Any]):
    import xarray as xr

    pop: Population = sim["population"]
    dv: dict[str, Any] = {}
    for split in ("train", "val"):
        for k, v in sim[f"truth_{split}"].items():
            dv[f"{split}_{k}"] = (("neuron", f"{split}_image"), v.astype(np.float32))
        dv[f"{split}_source"] = ((f"{split}_image",), np.array(sim[f"{split}_sources"], dtype=str))
        # mean grey level of each 50x50 image in [0, 1]: ties the truth's rows to the images
        # a dataset holds (sacnn.groundtruth checks it before comparing anything)
        dv[f"{split}_image_mean"] = ((f"{split}_image",), image_means(sim[f"{split}_images"]))
    for k, v in sim["expected_val"].items():
        dv[f"val_{k}"] = (("neuron", "val_image"), v.astype(np.float32),
                          {"units": "dF/F", "long_name": f"mean over the noise of the recorded "
                           f"response to r_{k[9:]}"})
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
        "description": "r_true: noiseless response (units of the peak rate); r_centre: "
                       "surround term removed; r_aperture: full model on the image with grey "
                       "outside 'aperture'; val_expected_<r>: the recorded response (dF/F) "
                       "expected from <r>, the mean over the trial noise (what a perfect "
                       "model of the recording predicts); gate: how much the surround is "
                       "engaged, in [0, 1] (surround_kind divisive: the MGSM surround gate; "
                       "collinear: the share of the drive the facilitation adds); "
                       "<split>_image_mean: mean grey level in [0, 1] of "
                       "each 50x50 image. Coordinates match the canonical dataset.",
        "surround_kind": cfg.surround_kind,
        "surround_strength": float(pop.surround_strength),
        "code_version": code_version(),
        "config": config_json(cfg.to_dict()),
        "photo_sha256": json.dumps({k: v["sha256"] for k, v in sorted(sim["photos"].items())}),
        "image_dir": str(cfg.image_dir or "bundled photos (sacnn/simulate/photos)"),
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
            "photos": sim["photos"],
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
