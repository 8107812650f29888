"""What made a result: the code version and the config, recorded in every output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sacnn import __version__


def code_version() -> str:
    """Package version plus the git commit (with ``-dirty`` when the tree has local edits).

    Falls back to the package version alone outside a git checkout (an installed wheel).
    """
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'-dirty' if dirty else ''}"


def config_json(config: Any) -> str:
    """Canonical JSON of a config (sorted keys), suitable for a NetCDF/checkpoint attribute."""
    return json.dumps(config, sort_keys=True, default=str)
