"""GPU cost of a workflow config, projected from measured training throughput.

``python -m sacnn.cost --configfile config/paper.yaml --throughput docs/measurements/<file>``
lists every training job the config implies (the cells of its tables and figures and the
incremental stages they start from, ``sacnn.experiment``), and from measured image-models
per second (``scripts/benchmark_training.py --json``) the runtime of each job, the number of
SLURM jobs and the GPU-hours in all. Throughput at a chunk size between two measured ones is
interpolated in log(neurons); an architecture that was not measured is costed at the
TFLOP/s of the measured architecture closest in FLOPs per image (and says so). Each epoch's
evaluation (selection and validation images, forward only) is costed at a third of a
training image. Start-up and data loading are not included.
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

from sacnn import experiment
from sacnn.data.options import IngestOptions
from sacnn.data.preprocess import fraction_count, holdout_from_rank
from sacnn.data.raw import site_shape
from sacnn.data.validate import DataValidationError
from sacnn.models import get_architecture
from sacnn.models.cost import training_flops
from sacnn.plan import site_file_stem
from sacnn.simulate.config import SiteConfig
from sacnn.yamlfile import DuplicateKeyError, load_yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
PAPER_VAL_IMAGES = 1000


class CostError(ValueError):
    """Missing or unusable input of a projection; the message says what to give."""


@dataclass(frozen=True)
class SiteSize:
    neurons: int
    train_images: int
    val_images: int


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


def load_config(path: Path, schema: Path = SCHEMA) -> dict[str, Any]:
    """A workflow config with the schema's defaults filled in, as the workflow sees it."""
    from snakemake.utils import validate  # the workflow's own validation and defaults

    try:
        config = load_yaml(path) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CostError(f"{path}: not a readable YAML file ({exc})") from None
    except DuplicateKeyError as exc:
        raise CostError(str(exc)) from None
    validate(config, str(schema), set_default=True)
    return config


def site_size(config: Mapping[str, Any], site: str,
              overrides: Mapping[str, SiteSize]) -> SiteSize:
    if site in overrides:
        return overrides[site]
    cfg = config["sites"][site]
    if "simulate" in cfg:
        sim = SiteConfig.from_dict(cfg["simulate"], where=f"sites.{site}.simulate")
        return SiteSize(sim.n_neurons, sim.n_train, sim.n_val)
    folder, files = Path(cfg["raw"]), site_file_stem(cfg, site)
    hint = f"give the site's size with --site {site}=NEURONS:TRAIN_IMAGES[:VAL_IMAGES]"
    if not (folder / f"trainRsp_{files}.npy").exists() and not (folder / f"{files}.nc").exists():
        raise CostError(f"sites.{site}: {folder / f'trainRsp_{files}.npy'} not found; {hint}")
    try:
        shape = site_shape(folder, files)
    except DataValidationError as exc:
        kind = ".npy" if exc.file.endswith(".npy") else "NetCDF"
        raise CostError(f"{exc.file}: not a readable {kind} file (field '{exc.field}': "
                        f"expected {exc.expected}; found {exc.found}); {hint}") from None
    return SiteSize(int(cfg.get("n_neurons", shape.neurons)), shape.train_images,
                    shape.val_images or PAPER_VAL_IMAGES)


def training_jobs(config: Mapping[str, Any], overrides: Mapping[str, SiteSize],
                  chunk_size: int | None = None) -> list[Job]:
    """Every training job of the config, grouped by (site, model, fraction)."""
    chunk_size = chunk_size or config["chunk_size"]
    epochs = config["training"]["epochs"]
    jobs = []
    models = experiment.all_models(config)
    for site, model, fraction in experiment.trained_cells(config):
        size = site_size(config, site, overrides)
        taken = fraction_count(size.train_images, experiment.fraction_value(fraction))
        n_hold = 0
        if config["training"]["selection"] == "holdout":  # ingest's own hold-out rule
            h = IngestOptions.from_dict(config["sites"][site].get("ingest")).holdout_fraction
            n_hold = int(holdout_from_rank(np.arange(taken), h).sum())
        n = size.neurons
        chunks = [min(chunk_size, n - k * chunk_size)
                  for k in range(experiment.n_chunks(n, chunk_size))]
        jobs.append(Job(site, model, fraction, models[model]["architecture"], chunks,
                        fit_images=taken - n_hold, eval_images=n_hold + size.val_images,
                        epochs=epochs))
    return jobs


class Throughput:
    """Measured trainer throughput (rows of ``benchmark_training.py --json``)."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = [r for r in rows if r.get("trainer_ips")]
        self.failed = [r for r in rows if "error" in r]
        if not self.rows:
            raise CostError("the throughput file has no measured rows (trainer_ips)")
        self.devices = sorted({str(r.get("device", "?")) for r in self.rows})

    @classmethod
    def read(cls, path: Path) -> Throughput:
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as err:
            raise CostError(f"{path}: not a JSON-lines throughput file ({err})") from err
        return cls(rows)

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


def project(jobs: Sequence[Job], config: Mapping[str, Any], throughput: Throughput
            ) -> list[dict[str, Any]]:
    rows = []
    for job in jobs:
        spec = get_architecture(job.architecture, config.get("architectures"))
        flops = training_flops(spec)
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
                     "memory_risk": throughput.out_of_memory(job.architecture, max(job.chunks))})
    return rows


def _parse_site(text: str) -> tuple[str, SiteSize]:
    try:
        name, sizes = text.split("=", 1)
        parts = [int(p) for p in sizes.split(":")]
        if len(parts) not in (2, 3) or min(parts) < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--site {text!r}: expected NAME=NEURONS:TRAIN_IMAGES[:VAL_IMAGES], e.g. "
            "M1S1=302:34000") from None
    return name, SiteSize(parts[0], parts[1], parts[2] if len(parts) == 3 else PAPER_VAL_IMAGES)


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.cost") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", type=Path, default=Path("config/config.yaml"))
    p.add_argument("--throughput", type=Path, required=True,
                   help="JSON lines from scripts/benchmark_training.py --json")
    p.add_argument("--site", type=_parse_site, action="append", default=[],
                   help="size of a site whose data is not here: NAME=NEURONS:TRAIN[:VAL]")
    p.add_argument("--chunk-size", type=int, help="project another chunk_size")
    p.add_argument("--json", type=Path, help="write the per-cell rows here")
    args = p.parse_args(argv)
    try:
        config = load_config(args.configfile)
        throughput = Throughput.read(args.throughput)
        rows = project(training_jobs(config, dict(args.site), args.chunk_size), config,
                       throughput)
    except (CostError, experiment.ExperimentConfigError, OSError) as err:
        raise SystemExit(f"{p.prog}: error: {err}") from err
    except Exception as err:  # snakemake's validation error names the config key
        if type(err).__name__ == "WorkflowError":
            raise SystemExit(f"{p.prog}: error: {args.configfile}: {err}") from err
        raise
    print(f"# {args.configfile}, throughput of {', '.join(throughput.devices)} "
          f"({args.throughput})")
    print(f"{'site':<8} {'model':<28} {'frac':<5} {'jobs':>4} {'n/job':>5} {'fit img':>8} "
          f"{'min/job':>8} {'GPU-h':>7}  throughput")
    for r in rows:
        print(f"{r['site']:<8} {r['model']:<28} {r['fraction']:<5} {r['jobs']:>4} "
              f"{r['neurons_per_job']:>5} {r['fit_images']:>8} {60 * r['hours_per_job']:>8.1f} "
              f"{r['gpu_hours']:>7.2f}  {r['throughput']}"
              + ("  (measured out of memory at this chunk size)" if r["memory_risk"] else ""))
    total = sum(r["gpu_hours"] for r in rows)
    print(f"# total: {sum(r['jobs'] for r in rows)} training jobs, {total:.2f} GPU-hours, "
          f"longest job {60 * max(r['hours_per_job'] for r in rows):.1f} min")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
