"""Writing and hashing result files: the one place that knows how a file is replaced.

Every writer goes through a temporary file in the target's folder and an atomic rename, so
Snakemake (which trusts a present output) and a resuming job never see a truncated file: a
writer that fails or is killed leaves the previous file (or none) and no temporary file
(except after a hard kill, when a ``.<name>.<pid>.<random>.tmp`` may stay behind; it is never
read). The temporary name is unique per call, so two writers of the same target cannot mix
their bytes, and it is created by the writer itself with the user's default permissions.

This module stays light to import (the workflow imports it while parsing): pandas, torch and
xarray are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: importing them here would load them at parse time
    import pandas as pd
    import xarray as xr


#: The CF conventions version the NetCDF files (dataset.nc, predictions.nc) declare in their
#: global attribute ``Conventions``.
CONVENTIONS = "CF-1.10"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _sync(path: Path) -> None:
    """Flush a written file to the disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place.

    ``write`` must create ``tmp`` itself. On any error (or KeyboardInterrupt) the temporary
    file is removed, the error propagates and an existing ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        write(tmp)
        _sync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """A table as CSV without the index."""
    return write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_json(obj: Any, path: str | Path) -> Path:
    """A JSON sidecar (sorted keys, indented, non-JSON values as text)."""
    text = json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """An xarray dataset as NetCDF4 (engine netcdf4)."""
    return write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4"))


def write_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)``; keep ``obj`` to tensors and plain values, so that it can be read
    back with ``torch.load(weights_only=True)`` (files are never unpickled)."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)

    return write_atomic(path, write)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex), read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
