"""Tiny raw sites written in the reference layout, for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SITE = "tiny"


def tiny_arrays(n_train=40, n_val=12, n_neurons=5, repeats=4, side=100, seed=0):
    """Random but valid raw arrays: uint8 images, (N, neurons) train, (N_val, neurons, R) val."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_responses": rng.gamma(1.0, 0.1, (n_train, n_neurons)).astype(np.float32),
        "val_images": rng.integers(0, 256, (n_val, side, side), dtype=np.uint8),
        "val_responses": rng.gamma(1.0, 0.1, (n_val, n_neurons, repeats)).astype(np.float32),
    }


def write_reference(site_dir: Path, arrays: dict, site: str = SITE, sidecar: str | None = None):
    """Write arrays under the reference file names; returns the folder."""
    site_dir = Path(site_dir)
    site_dir.mkdir(parents=True, exist_ok=True)
    names = {
        "train_images": f"train_img_{site}.npy",
        "train_responses": f"trainRsp_{site}.npy",
        "val_images": f"val_img_{site}.npy",
        "val_responses": f"valRsp_{site}.npy",
    }
    for key, name in names.items():
        if key in arrays and arrays[key] is not None:
            np.save(site_dir / name, arrays[key], allow_pickle=True)
    for key in ("train_ids", "val_ids", "neuron_ids"):
        if key in arrays:
            np.save(site_dir / f"{key}_{site}.npy", arrays[key])
    if sidecar is not None:
        (site_dir / "site.yaml").write_text(sidecar)
    return site_dir


def tiny_site(tmp_path: Path, **overrides) -> Path:
    arrays = tiny_arrays()
    arrays.update(overrides)
    return write_reference(tmp_path / SITE, arrays)
