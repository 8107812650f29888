"""sacnn.fileio: every result file is replaced atomically, and hashed one way."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from sacnn import fileio


def _only(folder, name):
    """The folder holds ``name`` and nothing else (no temporary file left behind)."""
    return sorted(p.name for p in folder.iterdir()) == [name]


@pytest.mark.parametrize("kind", ["csv", "json", "netcdf", "torch"])
def test_each_writer_writes_the_same_bytes_as_its_library_and_leaves_no_temporary(tmp_path,
                                                                                     kind):
    ref = tmp_path / "ref"
    ref.mkdir()
    out = tmp_path / "out" / "deeper" / f"file.{kind}"  # missing folders are made
    if kind == "csv":
        df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
        fileio.write_csv(df, out)
        df.to_csv(ref / "f", index=False)
    elif kind == "json":
        fileio.write_json({"b": 1, "a": [1, 2]}, out)
        (ref / "f").write_text(json.dumps({"b": 1, "a": [1, 2]}, indent=1, sort_keys=True) + "\n")
    elif kind == "netcdf":
        ds = xr.Dataset({"v": (("n",), np.arange(3.0))}, attrs={"k": "v"})
        fileio.write_netcdf(ds, out)
        ds.to_netcdf(ref / "f", engine="netcdf4")
    else:
        obj = {"format": "x", "t": torch.arange(5), "s": ["a", "b"]}
        fileio.write_torch(obj, out)
        buf = io.BytesIO()
        torch.save(obj, buf)
        (ref / "f").write_bytes(buf.getvalue())
    assert out.read_bytes() == (ref / "f").read_bytes()
    assert _only(out.parent, out.name)
    # created by the writer, with the user's default permissions (not mkstemp's 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def half_then_fail(tmp):
        tmp.write_text("half a ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        fileio.write_atomic(target, half_then_fail)
    assert target.read_text() == "old\n" and _only(tmp_path, "table.csv")
    # the library writers too: an attribute NetCDF cannot store, an object torch cannot save
    bad_nc = xr.Dataset({"v": (("n",), np.arange(2.0))}, attrs={"nested": {"a": 1}})
    target_nc = tmp_path / "p.nc"
    with pytest.raises((TypeError, ValueError)):
        fileio.write_netcdf(bad_nc, target_nc)
    assert not target_nc.exists() and _only(tmp_path, "table.csv")
    target_pt = tmp_path / "w.pt"
    fileio.write_torch({"t": torch.zeros(2)}, target_pt)
    with pytest.raises(Exception, match="pickle|lambda"):
        fileio.write_torch({"f": lambda: 0}, target_pt)
    assert torch.load(target_pt, weights_only=True)["t"].tolist() == [0.0, 0.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv", "w.pt"]


def test_the_file_is_renamed_into_place_from_a_unique_sibling(tmp_path, monkeypatch):
    renames = []
    real = os.replace

    def spy(src, dst):
        renames.append((os.fspath(src), os.fspath(dst)))
        real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", spy)
    target = tmp_path / "metrics.csv"
    for _ in range(2):
        fileio.write_json({"x": 1}, target)
    (src1, dst1), (src2, dst2) = renames
    assert dst1 == dst2 == str(target)
    assert os.path.dirname(src1) == str(tmp_path)  # same folder: a rename, never a copy
    assert os.path.basename(src1).startswith(".metrics.csv.") and src1.endswith(".tmp")
    assert src1 != src2  # two writers of one target never share a temporary file
    assert json.loads(target.read_text()) == {"x": 1}


def test_sha256_file_is_the_hash_of_the_bytes_whatever_the_block_size(tmp_path):
    data = os.urandom(5000)
    path = tmp_path / "raw.npy"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert fileio.sha256_file(path) == fileio.sha256_file(path, chunk=7) == want


def test_importing_fileio_loads_no_heavy_library():
    code = ("import sys, sacnn.fileio; "
            "print([m for m in ('torch', 'xarray', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_every_atomic_writer_of_the_package_is_fileio():
    """No module writes a result file its own way (tempfile, os.replace) any more."""
    from pathlib import Path

    src = Path(fileio.__file__).parent
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if p.name != "fileio.py" and p.parent.name != "simulate"
                 and any(s in p.read_text() for s in ("tempfile", "os.replace(", "mkstemp"))]
    assert offenders == []
