#!/usr/bin/env python
"""Training throughput: the released code's naive loop vs the sacnn trainer.

Prints, per architecture and number of neurons (models trained at once), image-models per
second (one image through one neuron's model, forward + backward + Adam step) of

* naive: one ``nn.Module`` per neuron in an ``nn.ModuleList``, default layout and settings,
  looped in Python inside one process, one Adam over all of them and the MSE averaged over
  batch x neurons (what the released code does);
* trainer: ``sacnn.training`` as the workflow runs it: ``per_model`` worker processes (one
  thread each, channels_last) on a CPU; ``stacked`` (all models as one network,
  :mod:`sacnn.models.stacked`) on a GPU, at the configured precision. The timed epoch
  includes the trainer's per-epoch evaluation on 50 images and its state hand-over;

and the ratio, the trainer's TFLOP/s (``sacnn.models.cost.training_flops``), its share of
the device's dense peak at that precision (where the device is known) and the peak GPU
memory (of the trainer). The trainer's epochs are timed first, then the naive passes
(``--rounds`` each, after a warm-up); medians and the ratios of the i-th rounds are
printed. A row that runs out of memory says so.

Usage: ``python scripts/benchmark_training.py [--neurons 1 32 300] [--architectures ...]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

from sacnn.models import build_network, get_architecture
from sacnn.models.cost import training_flops
from sacnn.models.dropout import neuron_key
from sacnn.training import ModelSpec, TrainConfig, initial_state
from sacnn.training.runners import (
    InProcessRunner,
    ModelSetup,
    PoolRunner,
    StackedRunner,
    available_cores,
)
from sacnn.training.state import ChunkState
from sacnn.training.trainer import GPU_PRECISION

#: Dense peak TFLOP/s by device family and precision (vendor datasheets, SXM parts).
PEAK_TFLOPS = {
    "H100": {"bf16": 989.0, "tf32": 494.0, "exact": 67.0},
    "H200": {"bf16": 989.0, "tf32": 494.0, "exact": 67.0},
    "A100": {"bf16": 312.0, "tf32": 156.0, "exact": 19.5},
}


def device_peak(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for family, peaks in PEAK_TFLOPS.items():
        if family in name:
            return peaks[precision]
    return None


class NaiveChunk(nn.Module):
    """The released code's multi-neuron wrapper: independent nets looped in Python."""

    def __init__(self, spec, n: int) -> None:
        super().__init__()
        self.models = nn.ModuleList([build_network(spec, seed=i) for i in range(n)])

    def forward(self, x):
        return torch.stack([m(x) for m in self.models], dim=1)


def time_naive(spec, n: int, x: torch.Tensor, y: torch.Tensor, batch: int, device) -> float:
    """Seconds for one pass over x with the naive loop (after one warm-up step)."""
    net = NaiveChunk(spec, n).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()

    def step(i0: int) -> None:
        xb, yb = x[i0:i0 + batch], y[i0:i0 + batch]
        opt.zero_grad()
        loss_fn(net(xb), yb).backward()
        opt.step()

    step(0)
    _sync(device)
    t = time.perf_counter()
    for i0 in range(0, len(x), batch):
        step(i0)
    _sync(device)
    return time.perf_counter() - t


class TrainerBench:
    """One warm runner (workers started, data on the device) timed over whole epochs."""

    def __init__(self, spec, n: int, x: torch.Tensor, y: torch.Tensor, val: torch.Tensor,
                 batch: int, device, workers: int, precision: str, conv: str,
                 stacked: bool, first_layer: str = "cudnn") -> None:
        cfg = TrainConfig(batch_size=batch)
        stage = ModelSpec("bench", spec.name)
        self.state = ChunkState.from_neurons(
            [initial_state(spec, stage, cfg, "bench", i, None) for i in range(n)])
        setup = ModelSetup(spec, (), "eval", 1e-3, batch, 500, "float32",
                           channels_last=device.type == "cpu")
        eval_x = {"validation": val}
        if stacked:
            self.runner = StackedRunner(setup, x, y.T.contiguous(), eval_x, device,
                                        precision=precision, conv=conv,
                                        first_layer=first_layer)
        elif workers > 1 and n > 1:
            self.runner = PoolRunner(setup, x, y.T.contiguous(), eval_x, min(workers, n))
        else:
            self.runner = InProcessRunner(setup, x, y.T.contiguous(), eval_x,
                                          single_thread=True)
        self.device = device
        self.order = torch.arange(len(x))
        self.keys = [neuron_key(i) for i in range(n)]
        self.epoch()  # warm-up: starts the workers, first allocations

    def epoch(self) -> float:
        _sync(self.device)
        t = time.perf_counter()
        res = self.runner.run_epoch(self.state, self.order, self.keys)
        self.state = res.state
        _sync(self.device)
        return time.perf_counter() - t

    def close(self) -> None:
        self.runner.close()


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(arch: str, n: int, args, device, workers: int, x, val, gen) -> dict:
    spec = get_architecture(arch)
    images = len(x)
    y = torch.rand(images, n, generator=gen).to(device)
    row: dict = {"architecture": arch, "neurons": n, "precision": args.precision_resolved,
                 "conv": args.conv, "first_layer": args.first_layer,
                 "train_flops": training_flops(spec),
                 "strategy": "stacked" if args.stacked else "per_model"}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        bench = TrainerBench(spec, n, x, y, val, args.batch, device, workers,
                             args.precision_resolved, args.conv, args.stacked,
                             args.first_layer)
        trainer_t = [bench.epoch() for _ in range(args.rounds)]
        bench.close()
    except torch.OutOfMemoryError:
        row["error"] = "trainer: out of memory"
        return row
    finally:
        bench = None
        if device.type == "cuda":
            row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            torch.cuda.empty_cache()
    naive_x, naive_y = x[:args.naive_images], y[:args.naive_images]
    naive_t = []
    if not args.skip_naive:
        try:
            naive_t = [time_naive(spec, n, naive_x, naive_y, args.batch, device)
                       for _ in range(args.rounds)]
        except torch.OutOfMemoryError:
            row["naive_error"] = "out of memory"
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    trainer_ips = [n * images / t for t in trainer_t]
    row["trainer_ips"] = statistics.median(trainer_ips)
    if naive_t:
        naive_ips = [n * len(naive_x) / t for t in naive_t]
        row["naive_ips"] = statistics.median(naive_ips)
        row["ratios"] = [a / b for a, b in zip(trainer_ips, naive_ips)]
        row["ratio"] = statistics.median(row["ratios"])
    row["tflops"] = row["trainer_ips"] * training_flops(spec) / 1e12
    peak = device_peak(device, args.precision_resolved)
    row["peak_pct"] = 100 * row["tflops"] / peak if peak else None
    return row


def fmt(row: dict) -> str:
    def num(key: str, spec: str) -> str:
        v = row.get(key)
        return format(v, spec) if v is not None else "n/a"

    if "error" in row:
        return f"{row['architecture']:<18} {row['neurons']:>7}  {row['error']}"
    return (f"{row['architecture']:<18} {row['neurons']:>7} {num('naive_ips', ',.0f'):>12} "
            f"{num('trainer_ips', ',.0f'):>12} {num('ratio', '.2f'):>7} "
            f"{num('tflops', '.1f'):>8} {num('peak_pct', '.1f'):>7} "
            f"{num('peak_mem_gib', '.1f'):>8}  "
            + " ".join(f"{r:.2f}" for r in row.get("ratios", []))
            + (f"naive: {row['naive_error']}" if "naive_error" in row else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--neurons", type=int, nargs="+", default=None,
                   help="chunk sizes (default: 1 32 300 on a GPU, 1 8 32 on a CPU)")
    p.add_argument("--architectures", nargs="+", default=None,
                   help="default: ff-CNN ff+sa-CNN rf-CNN rf+sa-CNN 'rf+sa-CNN (c=375)' on a "
                        "GPU, ff-CNN ff+sa-CNN on a CPU")
    p.add_argument("--images", type=int, default=1000, help="images per timed trainer epoch")
    p.add_argument("--naive-images", type=int, default=None,
                   help="images per timed naive pass (default: --images); ips is per image, "
                        "so a shorter naive pass only saves time")
    p.add_argument("--skip-naive", action="store_true", help="time the trainer only")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "exact", "tf32", "bf16"],
                   help=f"stacked (GPU) arithmetic; auto = {GPU_PRECISION}")
    p.add_argument("--conv", default="grouped", choices=["grouped", "gemm"],
                   help="stacked kxk convolutions: grouped convolution or unfold + matmul")
    p.add_argument("--first-layer", default="cudnn", choices=["cudnn", "gemm"],
                   help="stacked first convolution: cuDNN, or one GEMM of the image patches "
                        "writing channels-last")
    p.add_argument("--workers", type=int, default=0, help="CPU trainer processes (0: all cores)")
    p.add_argument("--strategy", default="auto", choices=["auto", "stacked", "per_model"],
                   help="trainer strategy (auto: stacked on a GPU, per_model on a CPU)")
    p.add_argument("--json", help="append one JSON line per row to this file")
    args = p.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.stacked = args.strategy == "stacked" or (args.strategy == "auto" and gpu)
    args.neurons = args.neurons or ([1, 32, 300] if gpu else [1, 8, 32])
    args.architectures = args.architectures or (
        ["ff-CNN", "ff+sa-CNN", "rf-CNN", "rf+sa-CNN", "rf+sa-CNN (c=375)"] if gpu
        else ["ff-CNN", "ff+sa-CNN"])
    args.naive_images = min(args.naive_images or args.images, args.images)
    args.precision_resolved = (GPU_PRECISION if gpu else "exact") if args.precision == "auto" \
        else args.precision
    workers = args.workers or available_cores()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 1, 50, 50, generator=gen).to(device)
    val = torch.rand(50, 1, 50, 50, generator=gen).to(device)

    desc = torch.cuda.get_device_name(device) if gpu else \
        f"{platform.processor() or platform.machine()}, {available_cores()} cores"
    print(f"# torch {torch.__version__}, device {device} ({desc}), "
          + (f"stacked, precision {args.precision_resolved}, conv {args.conv}, first layer "
             f"{args.first_layer}" if args.stacked
             else f"per_model x{workers}")
          + f", batch {args.batch}, {args.images} images per trainer epoch, "
          f"{args.naive_images} per naive pass, {args.rounds} rounds", flush=True)
    print(f"{'architecture':<18} {'neurons':>7} {'naive ips':>12} {'trainer ips':>12} "
          f"{'ratio':>7} {'TFLOP/s':>8} {'% peak':>7} {'GPU GiB':>8}  ratio per round",
          flush=True)
    for arch in args.architectures:
        for n in args.neurons:
            row = measure(arch, n, args, device, workers, x, val, gen)
            row["device"] = desc
            row["torch"] = torch.__version__
            print(fmt(row), flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
