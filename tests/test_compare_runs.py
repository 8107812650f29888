"""scripts/compare_runs.py: two results trees that differ only in the code's names compare
equal; a changed number, tensor, attribute or a missing file does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path, code: str, value: float = 0.5, weight: float = 1.0) -> Path:
    (root / "sim1" / "models").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "table1.csv").write_text(f"model,corr\nrf,{value}\n")
    (root / "table1.json").write_text(json.dumps({"code_version": code, "inputs": ["a"]}))
    (root / "logs" / "x.log").write_text(f"run by {code}\n")  # not compared
    ds = xr.Dataset({"prediction": (("neuron", "val_image"), np.full((2, 3), value))},
                    attrs={"code_version": code, "site": "sim1",
                           "training_config": json.dumps({"epochs": 2, "code": code})})
    ds.to_netcdf(root / "sim1" / "models" / "predictions.nc")
    torch.save({"state": {"alpha.0.conv.weight": torch.full((2, 3), weight)},
                "code_version": code, "neuron_ids": ["0", "1"]},
               root / "sim1" / "models" / "weights.pt")
    return root


def _run(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(a),
                           str(b)], check=False, capture_output=True, text=True)


def test_runs_that_differ_only_in_the_code_version_compare_equal(tmp_path):
    out = _run(_tree(tmp_path / "a", "abc123"), _tree(tmp_path / "b", "def456-dirty"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 outputs compared" in out.stdout and "0 differ" in out.stdout


def test_a_changed_number_tensor_or_file_is_reported(tmp_path):
    a = _tree(tmp_path / "a", "abc")
    b = _tree(tmp_path / "b", "abc", value=0.5000001, weight=1.0 + 1e-7)
    (a / "table2.csv").write_text("x\n")
    out = _run(a, b)
    assert out.returncode == 1
    for line in ("DIFFERS table1.csv: bytes",
                 "DIFFERS sim1/models/predictions.nc: variables ['prediction']",
                 "DIFFERS sim1/models/weights.pt: fields ['state']",
                 "DIFFERS table2.csv: only in the first"):
        assert line in out.stdout, out.stdout
