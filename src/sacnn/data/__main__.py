"""CLI: ``python -m sacnn.data ingest <site_dir> <site> --out results/<site>/dataset.nc``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sacnn.data.ingest import ingest, open_dataset
from sacnn.data.options import IngestOptions
from sacnn.data.validate import DataValidationError


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _options_json(text: str | None) -> dict:
    if not text:
        return {}
    try:
        opts = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--options-json: not valid JSON ({exc})") from None
    if not isinstance(opts, dict):  # a user error, reported like every ValueError here
        kind = type(opts).__name__
        raise ValueError(f"--options-json: expected a JSON object of ingest options, got {kind}")  # noqa: TRY004
    return opts


def build_parser(prog: str = "python -m sacnn.data") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Ingest a site's raw files into the canonical NetCDF, or check one.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="raw site folder -> canonical NetCDF (atomic write)")
    ing.add_argument("site_dir", type=Path, help="folder with the raw files (resources/<site>)")
    ing.add_argument("site", help="site name used in the file names (e.g. m1s1)")
    ing.add_argument("--out", type=Path, default=None,
                     help="output NetCDF (default results/<site>/dataset.nc)")
    ing.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                     help="ingest option overriding site.yaml, e.g. -o repeats=10 "
                          f"(keys: {', '.join(IngestOptions.__dataclass_fields__)})")
    ing.add_argument("--options-json", default=None,
                     help="ingest options as a JSON object (applied before --option)")
    chk = sub.add_parser("check", help="validate a canonical NetCDF and print a summary")
    chk.add_argument("path", type=Path)
    return p


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.data") -> int:
    args = build_parser(prog).parse_args(argv)
    notes = logging.StreamHandler(sys.stderr)  # what ingest assumed (sacnn.data.ingest)
    notes.setFormatter(logging.Formatter("note: %(message)s"))
    logging.getLogger("sacnn.data").addHandler(notes)
    try:
        if args.command == "ingest":
            opts = _options_json(args.options_json)
            for item in args.option:
                if "=" not in item:
                    raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
                key, value = item.split("=", 1)
                opts[key] = _parse_value(value)
            out = ingest(args.site_dir, args.site, opts, out=args.out)
            print(f"wrote {out}")
        else:
            ds = open_dataset(args.path)
            print(f"{args.path}: ok; " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
    except (DataValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        logging.getLogger("sacnn.data").removeHandler(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
