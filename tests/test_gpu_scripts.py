"""The GPU measurement scripts run end to end (at toy sizes, on the CPU: CI has no GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_site(path: Path, n_neurons: int = 4, n_fit: int = 120, n_hold: int = 20,
               n_val: int = 30) -> None:
    """A site in the .npz form precision_check.py --export writes (float16 images)."""
    rng = np.random.default_rng(0)
    n = n_fit + n_hold + n_val
    x = rng.random((n, 50, 50), dtype=np.float32)
    w = rng.standard_normal((n_neurons, 2500)).astype(np.float32)
    y = (np.maximum(x.reshape(n, -1) @ w.T, 0).T / 50).astype(np.float32)
    np.savez_compressed(
        path, fit_images=x[:n_fit].astype(np.float16), fit_responses=y[:, :n_fit],
        holdout_images=x[n_fit:n_fit + n_hold].astype(np.float16),
        holdout_responses=y[:, n_fit:n_fit + n_hold],
        val_images=x[n_fit + n_hold:].astype(np.float16), val_responses=y[:, n_fit + n_hold:],
        neuron_ids=np.arange(n_neurons))


def test_gpu_check_runs_every_step_and_writes_its_results(tmp_path):
    site = tmp_path / "site.npz"
    write_site(site)
    out = tmp_path / "out"
    env = {**os.environ, "SMOKE": "1", "DEVICE": "cpu", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out), str(site)],
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    log = (out / "log.txt").read_text()
    steps = [line for line in log.splitlines() if ": exit " in line]
    assert len(steps) == 10 and all(": exit 0 " in line for line in steps), log
    rows = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    assert {r["architecture"] for r in rows} >= {"ff-CNN", "rf+sa-CNN", "rf+sa-CNN (c=375)"}
    assert all(r["trainer_ips"] > 0 and r["train_flops"] > 0 for r in rows)
    assert {r["conv"] for r in rows} == {"grouped", "gemm"}
    assert {r["first_layer"] for r in rows} == {"cudnn", "gemm"}
    checks = [json.loads(line) for line in (out / "precision.jsonl").read_text().splitlines()]
    assert [c["precision"] for c in checks] == ["bf16", "exact", "bf16 chunks of 2 vs whole"]
    exact = checks[1]  # float32 vs float64 after one epoch of a tiny model: close
    assert 0 <= exact["max_abs_diff"] < 0.05
    assert "Self CPU time total" in (out / "profile.txt").read_text()
