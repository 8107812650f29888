"""The ``sacnn`` command: one entry point for every step the workflow runs.

``sacnn <command> [options]`` runs the same code, with the same options, as the module the
workflow calls (``sacnn train ...`` is ``python -m sacnn.training ...``): each command hands
its arguments to that module's own ``main(argv, prog=...)``, so the options are defined once,
in the module, and ``sacnn <command> --help`` lists them. A module is imported only when its
command runs, so ``sacnn --help`` stays fast (no torch, no xarray).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: the module whose ``main(argv, prog=...)`` runs it, and its summary."""

    #: the module with ``main`` (a package's ``__main__`` for ``python -m <package>``)
    entry: str
    summary: str
    #: arguments put in front of the user's (``ingest`` is ``python -m sacnn.data ingest``)
    lead: tuple[str, ...] = ()

    @property
    def equivalent(self) -> str:
        """The workflow's command line for the same step."""
        return " ".join(("python -m", self.entry.removesuffix(".__main__"), *self.lead))


COMMANDS: dict[str, Command] = {
    "simulate": Command("sacnn.simulate.__main__",
                        "write a simulated V1 site (raw layout + ground truth)"),
    "ingest": Command("sacnn.data.__main__",
                      "raw site folder -> canonical dataset.nc (validated)", ("ingest",)),
    "check": Command("sacnn.data.__main__",
                     "validate a canonical dataset.nc and print its sizes", ("check",)),
    "train": Command("sacnn.training.__main__",
                     "train one chunk of neurons of one model at one site"),
    "evaluate": Command("sacnn.evaluation", "gather a model's chunks and score every neuron"),
    "tables": Command("sacnn.tables", "the paper's tables and the parameter table"),
    "models": Command("sacnn.models.__main__", "parameter counts of the named architectures"),
    "groundtruth": Command("sacnn.groundtruth",
                           "set trained models against a simulated site's truth"),
    "claims": Command("sacnn.claims", "the paper's claims as paired tests on every site"),
    "groundtruth-figure": Command("sacnn.plots.groundtruth",
                                  "draw the ground-truth and claims figure"),
    "cost": Command("sacnn.cost", "project the GPU-hours and jobs of a workflow config"),
}

PROG = "sacnn"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: {PROG} <command> [options]   ({PROG} <command> --help: its options)",
        "",
        "Incremental learning and self-attention models of V1 neurons (the sacnn workflow's",
        "steps as commands; the workflow itself runs with snakemake).",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this message and exit",
              "  --version   print the version and exit", "",
              "Each command takes the options of the module the workflow runs,",
              f"e.g. '{PROG} train' = '{COMMANDS['train'].equivalent}'."]
    return "\n".join(lines) + "\n"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sacnn")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from sacnn import __version__

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sacnn <command> ...``; returns the exit status (2: a usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write(usage() + f"{PROG}: error: a command is required\n")
        return 2
    if args[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0
    if args[0] == "--version":
        print(f"{PROG} {_version()}")
        return 0
    name, rest = args[0], args[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        what = "unknown option" if name.startswith("-") else "unknown command"
        sys.stderr.write(f"{PROG}: error: {what} {name!r}; expected one of: "
                         f"{', '.join(COMMANDS)} (see '{PROG} --help')\n")
        return 2
    module = importlib.import_module(cmd.entry)
    # a command with a lead (ingest, check) is a subcommand of the module's own parser,
    # which argparse names "<prog> <lead>": give it "sacnn" so it reads "sacnn ingest"
    prog = PROG if cmd.lead else f"{PROG} {name}"
    status = module.main([*cmd.lead, *rest], prog=prog)
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
