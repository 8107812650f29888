"""``python -m sacnn.models [--out FILE]``: print or write the parameter-count table."""

from __future__ import annotations

import argparse
from pathlib import Path

from sacnn.models.parameters import markdown_table, parameter_table


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.models") -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--out", type=Path, help="write CSV (.csv) or Markdown (.md) here")
    args = parser.parse_args(argv)
    table = parameter_table()
    if args.out is None:
        print(table.to_string(index=False))
    elif args.out.suffix == ".md":
        args.out.write_text(markdown_table(table))
    else:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
