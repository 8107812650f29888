"""CLI: ``python -m sacnn.simulate resources/sim1 --site sim1 [--config sim.yaml] [--set k=v]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sacnn.simulate.site import SiteConfig, write_site


def build_parser(prog: str = "python -m sacnn.simulate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Write a simulated V1 site (reference raw layout + ground truth) to OUT_DIR.",
    )
    p.add_argument("out_dir", type=Path, help="site folder to write (e.g. resources/sim1)")
    p.add_argument("--site", default=None, help="site name used in file names (default sim1)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default 0)")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML or JSON file with simulation settings (keys of SiteConfig)")
    p.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, value as JSON, e.g. -s n_neurons=300 "
                        f"(keys: {', '.join(SiteConfig.__dataclass_fields__)})")
    p.add_argument("--quiet", action="store_true", help="do not print progress and statistics")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.simulate") -> int:
    args = build_parser(prog).parse_args(argv)
    data: dict = {}
    if args.config is not None:
        import yaml

        from sacnn.yamlfile import DuplicateKeyError, load_yaml

        try:
            loaded = load_yaml(args.config) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            print(f"error: --config {args.config}: not a readable YAML/JSON file ({exc})",
                  file=sys.stderr)
            return 2
        except DuplicateKeyError as exc:
            print(f"error: --config {exc}", file=sys.stderr)
            return 2
        if not isinstance(loaded, dict):
            print(f"error: --config {args.config}: expected a mapping of settings, got "
                  f"{type(loaded).__name__}", file=sys.stderr)
            return 2
        data.update(loaded)
    for item in args.set:
        if "=" not in item:
            print(f"error: --set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        key, value = item.split("=", 1)
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    if args.site is not None:
        data["site"] = args.site
    if args.seed is not None:
        data["seed"] = args.seed
    try:
        cfg = SiteConfig.from_dict(data, where=str(args.config) if args.config else
                                   "simulation settings")
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_site(args.out_dir, cfg, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
