"""Every job a config plans, as text that two runs can be diffed by.

    python scripts/dry_run_jobs.py [--configfile FILE ...] [--config KEY=VALUE ...] > jobs.txt

runs ``snakemake -n -p`` in an empty results folder (none of the checkout's results count)
and prints each job once: its rule, wildcards, inputs, outputs, log, threads, resources and
shell command (every param a job is handed is in its shell line, but the `code` digest,
which changes with the code on purpose), sorted, without what changes from run to run (job
ids, dates, the reasons, the temporary folder). Two configs, or one config before and after
a refactor, plan the same work exactly when the outputs are equal: the experiment matrix
(config/matrix.yaml, issue #20) was introduced with every shipped config's output unchanged
(config/README.md, "The matrix and the scale configs"). Nothing is run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = ("rule ", "localrule ", "    input:", "    output:", "    log:", "    wildcards:",
        "    threads:", "    resources:", "    benchmark:", "Shell command:")


def jobs(text: str) -> list[str]:
    """The dry run's job blocks, normalised and sorted."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]") and current:
            blocks.append(current)
            current = []
        if line.startswith(KEEP):
            current.append(re.sub(r"tmpdir=[^,\s]+", "tmpdir=<tmp>", line.rstrip()))
    if current:
        blocks.append(current)
    return sorted("\n".join(b) for b in blocks if b and b[0].startswith(("rule", "localrule")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", nargs="*", default=[], type=Path)
    p.add_argument("--config", nargs="*", default=[])
    p.add_argument("--touch", nargs="*", default=[],
                   help="empty files to create in the run's folder first (a raw site's files, "
                        "with its n_neurons given, so that a dry run needs no data)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "workflow", work / "workflow")
        shutil.copytree(ROOT / "config", work / "config")
        for name in args.touch:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).touch()
        cmd = [str(Path(sys.executable).parent / "snakemake"), "-n", "-p", "--cores", "2"]
        if args.configfile:
            cmd += ["--configfile", *(str(c.resolve()) for c in args.configfile)]
        if args.config:
            cmd += ["--config", *args.config]
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env,
                              check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        return proc.returncode
    text = (proc.stdout + proc.stderr).replace(str(work), "<work>")
    # a notebook's path goes through Snakemake's source cache, under a temporary name
    found = jobs(re.sub(r"\S*/source-cache/\S*?/file<work>", "<work>", text))
    print(f"# {len(found)} jobs")
    print("\n\n".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
