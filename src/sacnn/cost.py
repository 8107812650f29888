"""GPU cost of a workflow config, projected from measured training throughput.

``python -m sacnn.cost --configfile config/paper.yaml --throughput docs/measurements/<file>``
lists every training job the config implies (the cells of its tables and figures and the
incremental stages they start from, ``sacnn.experiment``), and from measured image-models
per second (``scripts/benchmark_training.py --json``) the runtime of each job, the number of
SLURM jobs and the GPU-hours in all. Throughput at a chunk size between two measured ones is
interpolated in log(neurons); an architecture that was not measured is costed at the
TFLOP/s of the measured architecture closest in FLOPs per image (and says so). Each epoch's
evaluation (selection and validation images, forward only) is costed at a third of a
training image. Start-up and data loading are not included. A throughput file with several
variants of the stacked step (``gpu_check.sh``) is read for one (``--variant``, default the
default step).

Every chunk's device memory is estimated from its architecture's feature maps
(``sacnn.models.cost.training_memory_bytes``) and a chunk that would not fit in the card's
memory (``--gpu-memory-gib``, else the measured device's) is flagged: give its architecture
smaller chunks (the config's ``chunk_sizes``). The totals are printed with and without the
appendix's A.2 model (the models of the ``tableA`` rows whose section is A.2), which alone
costs about as much as the rest.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sacnn import experiment, paths
from sacnn.config_checks import WorkflowConfigError
from sacnn.data.options import IngestOptions
from sacnn.data.preprocess import fraction_count, holdout_from_rank
from sacnn.data.raw import SiteShape
from sacnn.data.validate import DataValidationError
from sacnn.models import get_architecture
from sacnn.models.cost import training_flops, training_memory_bytes
from sacnn.training.config import TrainConfig
from sacnn.workflow_config import load_config
from sacnn.yamlfile import DuplicateKeyError

PAPER_VAL_IMAGES = 1000
#: Total memory (GiB, nvidia-smi) of the cards measured so far, for files without the field.
CARD_MEMORY_GIB = {"H200": 143771 / 1024, "H100": 81559 / 1024}
#: The appendix section whose model the totals are also given without.
SECTION_A2 = "A.2"


class CostError(ValueError):
    """Missing or unusable input of a projection; the message says what to give."""


@dataclass(frozen=True)
class Job:
    """One group of identical training jobs: a (site, model, fraction) cell."""

    site: str
    model: str
    fraction: str
    architecture: str
    chunks: list[int]             # neurons of each job
    fit_images: int
    eval_images: int
    epochs: int


def site_size(config: Mapping[str, Any], site: str,
              overrides: Mapping[str, SiteShape]) -> SiteShape:
    """A site's size: given on the command line, else as the plan counts it
    (``sacnn.paths.site_size``); validation images the files do not show are the paper's."""
    if site in overrides:
        return overrides[site]
    hint = f"give the site's size with --site {site}=NEURONS:TRAIN_IMAGES[:VAL_IMAGES]"
    try:
        size = paths.site_size(config["sites"][site], site)
    except WorkflowConfigError as exc:  # no raw files
        raise CostError(f"{exc}; {hint}") from None
    except DataValidationError as exc:
        kind = ".npy" if exc.file.endswith(".npy") else "NetCDF"
        raise CostError(f"{exc.file}: not a readable {kind} file (field '{exc.field}': "
                        f"expected {exc.expected}; found {exc.found}); {hint}") from None
    return SiteShape(size.neurons, size.train_images, size.val_images or PAPER_VAL_IMAGES)


def training_jobs(config: Mapping[str, Any], overrides: Mapping[str, SiteShape],
                  chunk_size: int | None = None) -> list[Job]:
    """Every training job of the config, grouped by (site, model, fraction); ``chunk_size``
    replaces the config's chunk sizes (``chunk_size`` and ``chunk_sizes``)."""
    training = TrainConfig.from_dict(config.get("training"))
    epochs = training.epochs
    jobs = []
    models = experiment.all_models(config)
    for site, model, fraction in experiment.trained_cells(config):
        size = site_size(config, site, overrides)
        taken = fraction_count(size.train_images, experiment.fraction_value(fraction))
        n_hold = 0
        if training.selection == "holdout":  # ingest's own hold-out rule
            h = IngestOptions.from_dict(config["sites"][site].get("ingest")).holdout_fraction
            n_hold = int(holdout_from_rank(np.arange(taken), h).sum())
        size_of_chunks = chunk_size or experiment.model_chunk_size(config, model)
        chunks = [stop - start for start, stop in experiment.chunk_bounds(size.neurons,
                                                                          size_of_chunks)]
        jobs.append(Job(site, model, fraction, models[model]["architecture"], chunks,
                        fit_images=taken - n_hold, eval_images=n_hold + size.val_images,
                        epochs=epochs))
    return jobs


class Throughput:
    """Measured trainer throughput (rows of ``benchmark_training.py --json``) of one
    ``variant`` of the stacked step (rows without the field are the default step)."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], variant: str = "default") -> None:
        rows = [r for r in rows if r.get("variant", "default") == variant]
        self.variant = variant
        self.rows = [r for r in rows if r.get("trainer_ips")]
        self.failed = [r for r in rows if "error" in r]
        if not self.rows:
            raise CostError(f"the throughput file has no measured rows (trainer_ips) of "
                            f"variant {variant!r}")
        self.devices = sorted({str(r.get("device", "?")) for r in self.rows})

    @classmethod
    def read(cls, path: Path, variant: str = "default") -> Throughput:
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as err:
            raise CostError(f"{path}: not a JSON-lines throughput file ({err})") from err
        return cls(rows, variant)

    def card_memory_gib(self) -> float | None:
        """The measured card's memory: the rows' ``device_memory_gib``, else by its name."""
        recorded = [float(r["device_memory_gib"]) for r in self.rows
                    if r.get("device_memory_gib")]
        if recorded:
            return min(recorded)
        known = [gib for name, gib in CARD_MEMORY_GIB.items()
                 if any(name in d for d in self.devices)]
        return min(known) if known else None

    @staticmethod
    def _interpolate(points: dict[int, float], n: int) -> float:
        ns = sorted(points)
        if n <= ns[0]:
            return points[ns[0]]
        if n >= ns[-1]:
            return points[ns[-1]]
        hi = next(k for k in ns if k >= n)
        lo = max(k for k in ns if k <= n)
        if hi == lo:
            return points[lo]
        w = (math.log(n) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return points[lo] ** (1 - w) * points[hi] ** w  # geometric: ips grows ~log-linearly

    def ips(self, name: str, flops: int, n: int) -> tuple[float, str]:
        """Image-models per second for ``n`` models of an architecture, and its source."""
        same = [r for r in self.rows if r["architecture"] == name
                and int(r.get("train_flops", flops)) == flops]
        if same:
            return self._interpolate({int(r["neurons"]): float(r["trainer_ips"])
                                      for r in same}, n), "measured"
        by_arch: dict[str, list] = {}
        for r in self.rows:
            by_arch.setdefault(r["architecture"], []).append(r)
        closest = min(by_arch, key=lambda a: abs(math.log(by_arch[a][0]["train_flops"] / flops)))
        tflops = self._interpolate({int(r["neurons"]): float(r["trainer_ips"])
                                    * r["train_flops"] for r in by_arch[closest]}, n)
        return tflops / flops, f"estimated from {closest}"

    def out_of_memory(self, name: str, n: int) -> bool:
        return any(r["architecture"] == name and int(r["neurons"]) <= n for r in self.failed)


def project(jobs: Sequence[Job], config: Mapping[str, Any], throughput: Throughput,
            card_gib: float | None = None) -> list[dict[str, Any]]:
    """Per cell: jobs, hours, the estimated memory of its largest chunk and whether that
    chunk risks the card's memory (measured out of memory, or estimated above ``card_gib``)."""
    rows = []
    batch = TrainConfig.from_dict(config.get("training")).batch_size
    for job in jobs:
        spec = get_architecture(job.architecture, config.get("architectures"))
        flops = training_flops(spec)
        memory = training_memory_bytes(spec, max(job.chunks), batch) / 2**30
        seconds = []
        source = ""
        for n in job.chunks:
            ips, source = throughput.ips(job.architecture, flops, n)
            per_epoch = n * (job.fit_images + job.eval_images / 3) / ips
            seconds.append(job.epochs * per_epoch)
        rows.append({"site": job.site, "model": job.model, "fraction": job.fraction,
                     "architecture": job.architecture, "jobs": len(job.chunks),
                     "neurons_per_job": max(job.chunks), "fit_images": job.fit_images,
                     "epochs": job.epochs, "throughput": source,
                     "hours_per_job": max(seconds) / 3600, "gpu_hours": sum(seconds) / 3600,
                     "memory_gib": memory,
                     "memory_risk": throughput.out_of_memory(job.architecture, max(job.chunks))
                     or (card_gib is not None and memory > card_gib)})
    return rows


def without_section(config: Mapping[str, Any], section: str) -> tuple[dict[str, Any], list]:
    """The config without the ``tableA`` rows of ``section``, and those rows' models."""
    experiments = dict(config.get("experiments") or {})
    table = experiments.get("tableA")
    if not table or not experiment.is_pairs_table(table):
        return dict(config), []
    kept = [r for r in table["rows"] if r.get("section") != section]
    models = [r["model"] for r in table["rows"] if r.get("section") == section]
    if kept:
        experiments["tableA"] = {**table, "rows": kept}
    else:
        experiments.pop("tableA")
    return {**config, "experiments": experiments}, models


def _total(rows: Sequence[Mapping[str, Any]]) -> str:
    jobs, hours = sum(r["jobs"] for r in rows), sum(r["gpu_hours"] for r in rows)
    longest = 60 * max((r["hours_per_job"] for r in rows), default=0.0)
    return f"{jobs} training jobs, {hours:.2f} GPU-hours, longest job {longest:.1f} min"


def summary(rows: Sequence[Mapping[str, Any]], config: Mapping[str, Any],
            without: Sequence[Job], card_gib: float | None) -> list[str]:
    """The total, the total without the A.2 model's cells, and the memory warnings."""
    lines = [f"# total: {_total(rows)}"]
    _, a2_models = without_section(config, SECTION_A2)
    if a2_models:
        kept = {(j.site, j.model, j.fraction) for j in without}
        rest = [r for r in rows if (r["site"], r["model"], r["fraction"]) in kept]
        lines.append(f"# total without {SECTION_A2} (tableA rows of section {SECTION_A2}: "
                     f"{', '.join(dict.fromkeys(a2_models))}): {_total(rest)}")
    card = f"{card_gib:.0f} GiB" if card_gib else "an unknown size (give --gpu-memory-gib)"
    for r in rows:
        if r["memory_risk"]:
            lines.append(f"# warning: {r['site']}/{r['model']}/{r['fraction']}: a chunk of "
                         f"{r['neurons_per_job']} neurons of {r['architecture']} needs "
                         f"~{r['memory_gib']:.0f} GiB (estimated) on a card of {card}: give "
                         f"it smaller chunks (chunk_sizes: {{{r['architecture']!r}: N}})")
    return lines


def _parse_site(text: str) -> tuple[str, SiteShape]:
    try:
        name, sizes = text.split("=", 1)
        parts = [int(p) for p in sizes.split(":")]
        if len(parts) not in (2, 3) or min(parts) < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--site {text!r}: expected NAME=NEURONS:TRAIN_IMAGES[:VAL_IMAGES], e.g. "
            "M1S1=302:34000") from None
    return name, SiteShape(parts[0], parts[1], parts[2] if len(parts) == 3 else PAPER_VAL_IMAGES)


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.cost") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", type=Path, default=Path("config/config.yaml"))
    p.add_argument("--throughput", type=Path, required=True,
                   help="JSON lines from scripts/benchmark_training.py --json")
    p.add_argument("--site", type=_parse_site, action="append", default=[],
                   help="size of a site whose data is not here: NAME=NEURONS:TRAIN[:VAL]")
    p.add_argument("--chunk-size", type=int, help="project another chunk_size (every model)")
    p.add_argument("--variant", default="default",
                   help="the stacked-step variant of the throughput file to cost")
    p.add_argument("--gpu-memory-gib", type=float,
                   help="the card's memory (default: the measured card's)")
    p.add_argument("--json", type=Path, help="write the per-cell rows here")
    args = p.parse_args(argv)
    try:
        config = load_config([args.configfile])
        throughput = Throughput.read(args.throughput, args.variant)
        card = args.gpu_memory_gib or throughput.card_memory_gib()
        sites = dict(args.site)
        rows = project(training_jobs(config, sites, args.chunk_size), config, throughput, card)
        without = training_jobs(without_section(config, SECTION_A2)[0], sites, args.chunk_size)
    except (CostError, WorkflowConfigError, DuplicateKeyError,
            OSError) as err:
        raise SystemExit(f"{p.prog}: error: {err}") from err
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise SystemExit(f"{p.prog}: error: {args.configfile}: not a readable YAML file "
                         f"({err})") from err
    except Exception as err:  # snakemake's validation error names the config key
        if type(err).__name__ == "WorkflowError":
            raise SystemExit(f"{p.prog}: error: {args.configfile}: {err}") from err
        raise
    print(f"# {args.configfile}, throughput of {', '.join(throughput.devices)} "
          f"({args.throughput}, variant {throughput.variant})")
    print(f"{'site':<8} {'model':<28} {'frac':<5} {'jobs':>4} {'n/job':>5} {'fit img':>8} "
          f"{'min/job':>8} {'GPU-h':>7} {'GiB':>5}  throughput")
    for r in rows:
        print(f"{r['site']:<8} {r['model']:<28} {r['fraction']:<5} {r['jobs']:>4} "
              f"{r['neurons_per_job']:>5} {r['fit_images']:>8} {60 * r['hours_per_job']:>8.1f} "
              f"{r['gpu_hours']:>7.2f} {r['memory_gib']:>5.1f}  {r['throughput']}"
              + ("  (may not fit: see the warning below)" if r["memory_risk"] else ""))
    print("\n".join(summary(rows, config, without, card)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
