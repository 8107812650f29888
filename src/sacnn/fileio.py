"""Writing result files so that a killed job never leaves a half-written one behind.

Every writer goes through a temporary file in the target's folder and an atomic rename, so
Snakemake (which trusts a present output) never sees a truncated CSV or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
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
