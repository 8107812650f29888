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
the device's dense peak at that precision (where the device is known), the time per
optimiser step, the peak GPU memory (of the trainer) and, with ``--top-kernels K``, the K
kernels (operators on a CPU) that took the most time in a profiled epoch of a few steps.
Per architecture and number of neurons the naive loop is timed once and every ``--variant``
of the stacked step (settings of the config's ``training`` section, e.g.
``lean:first_layer=gemm,conv_layout=channels_last,max_pool=uint8``) is timed against it:
``--rounds`` epochs each, after a warm-up (which includes any compilation), interleaved with
the naive passes; medians and the ratios of the i-th rounds are printed. A row that runs out
of memory says so.

Usage: ``python scripts/benchmark_training.py [--neurons 1 32 300] [--architectures ...]
[--variant NAME:KEY=VALUE,...]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from sacnn.models import build_network, get_architecture
from sacnn.models.cost import training_flops
from sacnn.models.dropout import neuron_key
from sacnn.training import ModelSpec, TrainConfig, initial_state
from sacnn.training.hardware import GPU_PRECISION
from sacnn.training.runners import (
    InProcessRunner,
    ModelSetup,
    PoolRunner,
    StackedRunner,
    available_cores,
)
from sacnn.training.stacked_step import StackedOptions
from sacnn.training.state import ChunkState

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
                 batch: int, device, workers: int, options: StackedOptions | None) -> None:
        cfg = TrainConfig(batch_size=batch)
        stage = ModelSpec("bench", spec.name)
        self.state = ChunkState.from_neurons(
            [initial_state(spec, stage, cfg, "bench", i, None) for i in range(n)])
        setup = ModelSetup(spec, (), "eval", 1e-3, batch, 500, "float32",
                           channels_last=device.type == "cpu")
        eval_x = {"validation": val}
        if options is not None:
            self.runner = StackedRunner(setup, x, y.T.contiguous(), eval_x, device, options)
        elif workers > 1 and n > 1:
            self.runner = PoolRunner(setup, x, y.T.contiguous(), eval_x, min(workers, n))
        else:
            self.runner = InProcessRunner(setup, x, y.T.contiguous(), eval_x,
                                          single_thread=True)
        self.device = device
        self.order = torch.arange(len(x))
        self.keys = [neuron_key(i) for i in range(n)]
        self.epoch()  # warm-up: starts the workers, first allocations, compilation

    def epoch(self, order: torch.Tensor | None = None) -> float:
        _sync(self.device)
        t = time.perf_counter()
        res = self.runner.run_epoch(self.state, self.order if order is None else order,
                                    self.keys)
        self.state = res.state
        _sync(self.device)
        return time.perf_counter() - t

    def top_kernels(self, k: int, steps: int, batch: int) -> tuple[list, dict]:
        """The k kernels (CPU: operators) with the most self time in an epoch of ``steps``
        batches, and the forward time of each block (record_function ranges), ms per step."""
        net = getattr(self.runner, "net", None)
        label = net is not None and self.runner.options.compile == "none"
        if label:
            net.profile_blocks = True
        cuda = self.device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            self.epoch(torch.arange(min(len(self.order), steps * batch)))
        if label:
            net.profile_blocks = False
        events = prof.key_averages()
        if cuda:
            kernels = [(e.key, e.self_device_time_total) for e in events
                       if e.device_type == torch.autograd.DeviceType.CUDA]
        else:
            kernels = [(e.key, e.self_cpu_time_total) for e in events
                       if e.key.startswith("aten::")]
        kernels.sort(key=lambda kv: -kv[1])
        total = "device_time_total" if cuda else "cpu_time_total"
        blocks = {e.key: getattr(e, total) / 1e3 / steps for e in events
                  if e.key.startswith(("alpha.", "beta.", "attention.", "readout"))}
        return [[name[:70], us / 1e3 / steps] for name, us in kernels[:k]], blocks

    def close(self) -> None:
        self.runner.close()


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def parse_variant(text: str, precision: str) -> tuple[str, StackedOptions]:
    """``NAME:KEY=VALUE,KEY=VALUE`` (``precision=...`` among them sets the arithmetic)."""
    name, _, settings = text.partition(":")
    pairs = [s for s in settings.split(",") if s]
    for pair in [q for q in pairs if q.startswith("precision=")]:
        precision = pair.split("=", 1)[1]
        pairs.remove(pair)
    return name or "default", StackedOptions.parse(precision, pairs)


def changed_options(options: StackedOptions) -> dict:
    """The settings of a variant that differ from the default path (precision aside)."""
    default = StackedOptions(precision=options.precision)
    return {k: v for k, v in vars(options).items() if v != getattr(default, k)}


def naive_rounds(spec, n: int, args, device, x, y) -> tuple[list[float], str | None]:
    """Seconds of each timed naive pass (one warm-up step each), or the error."""
    if args.skip_naive:
        return [], None
    naive_x, naive_y = x[:args.naive_images], y[:args.naive_images]
    try:
        return [time_naive(spec, n, naive_x, naive_y, args.batch, device)
                for _ in range(args.rounds)], None
    except torch.OutOfMemoryError:
        return [], "out of memory"
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def measure_variant(spec, n: int, name: str, options: StackedOptions | None, args, device,
                    workers: int, x, y, val) -> dict:
    """One row: the trainer with ``options`` (None: the CPU's per-model strategy)."""
    row: dict = {"architecture": args.label, "channels": spec.channels, "neurons": n,
                 "variant": name, "options": changed_options(options) if options else {},
                 "precision": options.precision if options else "exact",
                 "conv": options.conv if options else "n/a",
                 "first_layer": options.first_layer if options else "n/a",
                 "train_flops": training_flops(spec),
                 "strategy": "stacked" if options else "per_model"}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    bench = None
    try:
        bench = TrainerBench(spec, n, x, y, val, args.batch, device, workers, options)
        times = [bench.epoch() for _ in range(args.rounds)]
        if args.top_kernels:
            row["top_kernels"], row["blocks"] = bench.top_kernels(
                args.top_kernels, args.profile_steps, args.batch)
    except torch.OutOfMemoryError:
        row["error"] = "trainer: out of memory"
        return row
    finally:
        if bench is not None:
            bench.close()
        bench = None
        if device.type == "cuda":
            row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            torch.cuda.empty_cache()
    ips = [n * len(x) / t for t in times]
    row["trainer_ips_rounds"] = ips
    row["trainer_ips"] = statistics.median(ips)
    row["ms_per_step"] = 1e3 * statistics.median(times) / -(-len(x) // args.batch)
    row["tflops"] = row["trainer_ips"] * training_flops(spec) / 1e12
    peak = device_peak(device, row["precision"])
    row["peak_pct"] = 100 * row["tflops"] / peak if peak else None
    return row


def with_naive(row: dict, n: int, naive_t: list[float], naive_images: int,
               error: str | None) -> dict:
    if error:
        row["naive_error"] = error
    if naive_t and "trainer_ips" in row:
        naive_ips = [n * naive_images / t for t in naive_t]
        row["naive_ips"] = statistics.median(naive_ips)
        row["ratios"] = [a / b for a, b in zip(row["trainer_ips_rounds"], naive_ips)]
        row["ratio"] = statistics.median(row["ratios"])
    return row


def fmt(row: dict) -> str:
    def num(key: str, spec: str) -> str:
        v = row.get(key)
        return format(v, spec) if v is not None else "n/a"

    head = f"{row['architecture']:<18} {row['neurons']:>7} {row['variant']:<12}"
    if "error" in row:
        return f"{head} {row['error']}"
    return (f"{head} {num('naive_ips', ',.0f'):>12} {num('trainer_ips', ',.0f'):>12} "
            f"{num('ratio', '.2f'):>7} {num('ms_per_step', '.2f'):>8} "
            f"{num('tflops', '.1f'):>8} {num('peak_pct', '.1f'):>7} "
            f"{num('peak_mem_gib', '.1f'):>8}  "
            + " ".join(f"{r:.2f}" for r in row.get("ratios", []))
            + (f"naive: {row['naive_error']}" if "naive_error" in row else ""))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--neurons", type=int, nargs="+", default=None,
                   help="chunk sizes (default: 1 50 300 on a GPU, 1 8 32 on a CPU)")
    p.add_argument("--architectures", nargs="+", default=None,
                   help="default: ff-CNN ff+sa-CNN rf-CNN rf+sa-CNN 'rf+sa-CNN (c=375)' on a "
                        "GPU, ff-CNN ff+sa-CNN on a CPU")
    p.add_argument("--channels", type=int, help="override the architectures' widths")
    p.add_argument("--images", type=int, default=1000, help="images per timed trainer epoch")
    p.add_argument("--naive-images", type=int, default=None,
                   help="images per timed naive pass (default: --images); ips is per image, "
                        "so a shorter naive pass only saves time")
    p.add_argument("--skip-naive", action="store_true", help="time the trainer only")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "exact", "tf32", "bf16"],
                   help=f"stacked (GPU) arithmetic of every variant; auto = {GPU_PRECISION}")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="a stacked-step variant: settings of the config's training section "
                        "(first_layer, conv, conv_layout, cudnn_benchmark, max_pool, "
                        "attention, compile, compile_cache, cuda_graph, precision); "
                        "repeatable; default: one variant 'default' with none")
    p.add_argument("--top-kernels", type=int, default=0,
                   help="record the K kernels with the most time in a profiled epoch")
    p.add_argument("--profile-steps", type=int, default=3, help="steps of that epoch")
    p.add_argument("--workers", type=int, default=0, help="CPU trainer processes (0: all cores)")
    p.add_argument("--strategy", default="auto", choices=["auto", "stacked", "per_model"],
                   help="trainer strategy (auto: stacked on a GPU, per_model on a CPU)")
    p.add_argument("--json", help="append one JSON line per row to this file")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    stacked = args.strategy == "stacked" or (args.strategy == "auto" and gpu)
    args.neurons = args.neurons or ([1, 50, 300] if gpu else [1, 8, 32])
    args.architectures = args.architectures or (
        ["ff-CNN", "ff+sa-CNN", "rf-CNN", "rf+sa-CNN", "rf+sa-CNN (c=375)"] if gpu
        else ["ff-CNN", "ff+sa-CNN"])
    args.naive_images = min(args.naive_images or args.images, args.images)
    precision = (GPU_PRECISION if gpu else "exact") if args.precision == "auto" \
        else args.precision
    if not stacked and args.variant:
        raise SystemExit("--variant sets the stacked step: use --strategy stacked")
    variants = [parse_variant(v, precision) for v in args.variant or ["default:"]] if stacked \
        else [("per_model", None)]
    workers = args.workers or available_cores()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 1, 50, 50, generator=gen).to(device)
    val = torch.rand(50, 1, 50, 50, generator=gen).to(device)

    desc = torch.cuda.get_device_name(device) if gpu else \
        f"{platform.processor() or platform.machine()}, {available_cores()} cores"
    memory = torch.cuda.get_device_properties(device).total_memory / 2**30 if gpu else None
    print(f"# torch {torch.__version__}, device {device} ({desc}), "
          + ("stacked, variants " + "; ".join(f"{n} {changed_options(o) or 'default'} "
                                              f"{o.precision}" for n, o in variants)
             if stacked else f"per_model x{workers}")
          + f", batch {args.batch}, {args.images} images per trainer epoch, "
          f"{args.naive_images} per naive pass, {args.rounds} rounds", flush=True)
    print(f"{'architecture':<18} {'neurons':>7} {'variant':<12} {'naive ips':>12} "
          f"{'trainer ips':>12} {'ratio':>7} {'ms/step':>8} {'TFLOP/s':>8} {'% peak':>7} "
          f"{'GPU GiB':>8}  ratio per round", flush=True)
    for arch in args.architectures:
        spec = get_architecture(arch)
        if args.channels:
            spec = replace(spec, channels=args.channels)
        args.label = arch if not args.channels else f"{arch} [c={args.channels}]"
        for n in args.neurons:
            y = torch.rand(args.images, n, generator=gen).to(device)
            naive_t, error = naive_rounds(spec, n, args, device, x, y)
            for name, options in variants:
                row = measure_variant(spec, n, name, options, args, device, workers, x, y,
                                      val)
                row = with_naive(row, n, naive_t, args.naive_images, error)
                row.update(device=desc, device_memory_gib=memory, torch=torch.__version__)
                print(fmt(row), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
