"""Compare two runs' results trees: is every output the same, apart from what names the code?

    python scripts/compare_runs.py BEFORE/results AFTER/results

For a refactor that must not change a number (issue #20): CSV, HTML and text files must
be byte-identical, PNG figures equal in pixels and metadata; NetCDF files equal in every variable, coordinate and attribute; weights
and checkpoints (read with ``weights_only``, never unpickled) equal in every tensor and
field; JSON sidecars equal. What records the code itself is left out of the comparison and
listed: ``code_version`` (the git commit; also ``*code_version(s)`` and a PNG's
``Software``), the rules' ``code`` digests and the ``fingerprint`` that hashes them. Logs, benchmarks, executed notebooks and PDFs (which carry
times) are not compared. Prints one line per file that differs and a summary; exits 1 if any
output differs or exists on one side only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Keys that name the code or the run, not a result (left out, wherever they occur), and
#: any key that ends in ``code_version(s)`` (``gather_code_version``, ``chunk_code_versions``).
PROVENANCE_KEYS = frozenset({"code_version", "code", "fingerprint", "slurm_job_id", "Software"})
SKIPPED_PARTS = frozenset({"logs", "benchmarks", "notebooks", ".snakemake"})
BYTE_SUFFIXES = frozenset({".csv", ".html", ".md", ".txt", ".tsv", ".svg"})


def is_provenance(key: str) -> bool:
    return key in PROVENANCE_KEYS or key.endswith(("code_version", "code_versions"))
SKIPPED_SUFFIXES = frozenset({".pdf", ".ipynb"})


def _without_provenance(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_provenance(v) for k, v in value.items() if not is_provenance(k)}
    if isinstance(value, list | tuple):
        return [_without_provenance(v) for v in value]
    return value


def _json_attr(value: Any) -> Any:
    """An attribute that holds JSON (training_config, architecture) compared as data."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _without_provenance(json.loads(value))
        except json.JSONDecodeError:
            return value
    return value


def _compare_netcdf(a: Path, b: Path) -> str | None:
    import xarray as xr

    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        for ds in (x, y):
            ds.attrs = {k: _json_attr(v) for k, v in ds.attrs.items() if not is_provenance(k)}
        if x.identical(y):
            return None
        names = sorted(set(x.variables) | set(y.variables))
        diff = [n for n in names if n not in x.variables or n not in y.variables
                or not x[n].identical(y[n])]
        keys = sorted(k for k in set(x.attrs) | set(y.attrs) if x.attrs.get(k) != y.attrs.get(k))
        return f"variables {diff}, attributes {keys}"


def _equal_torch(x: Any, y: Any) -> bool:
    import torch

    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
                and x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        keys = {k for k in set(x) | set(y) if not is_provenance(k)}
        return all(k in x and k in y and _equal_torch(x[k], y[k]) for k in keys)
    if isinstance(x, list | tuple) and isinstance(y, list | tuple):
        return len(x) == len(y) and all(_equal_torch(u, v) for u, v in zip(x, y, strict=True))
    return _json_attr(x) == _json_attr(y)


def _compare_torch(a: Path, b: Path) -> str | None:
    import torch

    x = torch.load(a, map_location="cpu", weights_only=True)
    y = torch.load(b, map_location="cpu", weights_only=True)
    if _equal_torch(x, y):
        return None
    keys = sorted(k for k in set(x) | set(y) if not is_provenance(k)
                  and (k not in x or k not in y or not _equal_torch(x[k], y[k])))
    return f"fields {keys}"


def _compare_png(a: Path, b: Path) -> str | None:
    """Pixels and text chunks (a figure's params, its sources); ``Software`` names the code."""
    import numpy as np
    from PIL import Image

    with Image.open(a) as x, Image.open(b) as y:
        if x.size != y.size or not np.array_equal(np.asarray(x), np.asarray(y)):
            return "pixels"
        info = [{k: _json_attr(v) for k, v in im.info.items() if not is_provenance(k)}
                for im in (x, y)]
    return None if info[0] == info[1] else "metadata"


def compare_file(a: Path, b: Path) -> str | None:
    """None if ``a`` and ``b`` hold the same result, else what differs."""
    suffix = a.suffix
    if suffix in BYTE_SUFFIXES:
        return None if a.read_bytes() == b.read_bytes() else "bytes"
    if suffix == ".png":
        return _compare_png(a, b)
    if suffix == ".nc":
        return _compare_netcdf(a, b)
    if suffix == ".pt":
        return _compare_torch(a, b)
    if suffix == ".json":
        same = (_without_provenance(json.loads(a.read_text()))
                == _without_provenance(json.loads(b.read_text())))
        return None if same else "JSON content"
    return None if a.read_bytes() == b.read_bytes() else "bytes"


def outputs(root: Path) -> set[Path]:
    """The files of a results tree that are compared (relative to ``root``)."""
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()
            and not SKIPPED_PARTS & set(p.relative_to(root).parts)
            and p.suffix not in SKIPPED_SUFFIXES}


def compare(before: Path, after: Path) -> tuple[dict[str, str], int]:
    """What differs between two results trees ({file: what}) and how many files compared."""
    a, b = outputs(before), outputs(after)
    diff = {str(p): "only in the first" for p in a - b}
    diff |= {str(p): "only in the second" for p in b - a}
    for p in sorted(a & b):
        what = compare_file(before / p, after / p)
        if what is not None:
            diff[str(p)] = what
    return diff, len(a & b)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = p.parse_args(argv)
    for root in (args.before, args.after):
        if not root.is_dir():
            p.error(f"{root}: not a folder")
    diff, n = compare(args.before, args.after)
    for name, what in sorted(diff.items()):
        print(f"DIFFERS {name}: {what}")
    print(f"{n} outputs compared ({', '.join(sorted(PROVENANCE_KEYS))}, *code_version(s) "
          "left out); "
          f"{len(diff)} differ")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
