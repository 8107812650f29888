#!/usr/bin/env python
"""Training throughput: the released code's naive loop vs the sacnn trainer.

Prints image-models per second (one image through one neuron's model, forward + backward +
Adam step) for a chain of neuron counts and two architectures, and the trainer/naive ratio.

* naive: one ``nn.Module`` per neuron in an ``nn.ModuleList``, default NCHW layout and
  thread settings, looped in Python inside one process, one Adam over all of them and the
  MSE averaged over batch x neurons (what the released code does).
* trainer: ``sacnn.training`` as the workflow runs it: ``per_model`` worker processes (one
  thread each, channels_last) on a CPU, ``stacked`` (vmap over stacked parameters) on a GPU.
  The timed epoch includes the trainer's per-epoch evaluation on a small validation set.

Both see the same images (batch 50, as in the paper). Each configuration is measured in
``--rounds`` interleaved rounds after a warm-up; the median and the per-round ratio are
printed. Usage: ``python scripts/benchmark_training.py [--neurons 1 8 32 128] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from sacnn.models import build_network, get_architecture
from sacnn.training import StageSpec, TrainConfig, initial_state
from sacnn.training.runners import (
    InProcessRunner,
    ModelSetup,
    PoolRunner,
    StackedRunner,
    available_cores,
)


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
    """One warm runner (workers started, data shared) timed over whole epochs."""

    def __init__(self, spec, n: int, x: torch.Tensor, y: torch.Tensor, val: torch.Tensor,
                 batch: int, device, workers: int) -> None:
        cfg = TrainConfig(batch_size=batch)
        stage = StageSpec("bench", spec.name)
        self.states = [initial_state(spec, stage, cfg, "bench", i, None) for i in range(n)]
        setup = ModelSetup(spec, (), "eval", 1e-3, batch, 500, "float32",
                           channels_last=device.type == "cpu")
        eval_x = {"validation": val}
        if device.type == "cuda":
            self.runner = StackedRunner(setup, x, y.T.contiguous(), eval_x, device)
        elif workers > 1 and n > 1:
            self.runner = PoolRunner(setup, x, y.T.contiguous(), eval_x, min(workers, n))
        else:
            self.runner = InProcessRunner(setup, x, y.T.contiguous(), eval_x,
                                          single_thread=True)
        self.order = torch.arange(len(x))
        self.seeds = list(range(n))
        self.epoch()  # warm-up: starts the workers, first allocations

    def epoch(self) -> float:
        t = time.perf_counter()
        res = self.runner.run_epoch(self.states, self.order, self.seeds)
        self.states = res.states
        return time.perf_counter() - t

    def close(self) -> None:
        self.runner.close()


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--neurons", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--architectures", nargs="+", default=["ff-CNN", "ff+sa-CNN"])
    p.add_argument("--images", type=int, default=1000, help="images per timed pass (an epoch)")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=0, help="trainer processes (0: all cores)")
    args = p.parse_args()
    device = torch.device(args.device)
    workers = args.workers or available_cores()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 1, 50, 50, generator=gen).to(device)
    val = torch.rand(50, 1, 50, 50, generator=gen).to(device)

    desc = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {available_cores()} cores"
    print(f"# torch {torch.__version__}, device {device} ({desc}), trainer workers {workers}, "
          f"batch {args.batch}, {args.images} images per pass, {args.rounds} rounds")
    print(f"{'architecture':<12} {'neurons':>7} {'naive ips':>12} {'trainer ips':>12} "
          f"{'ratio':>7}  ratio per round")
    for arch in args.architectures:
        spec = get_architecture(arch)
        for n in args.neurons:
            y = torch.rand(args.images, n, generator=gen).to(device)
            bench = TrainerBench(spec, n, x, y, val, args.batch, device, workers)
            naive_t, trainer_t = [], []
            for _ in range(args.rounds):
                naive_t.append(time_naive(spec, n, x, y, args.batch, device))
                trainer_t.append(bench.epoch())
            bench.close()
            work = n * args.images
            ratios = [a / b for a, b in zip(naive_t, trainer_t)]
            print(f"{arch:<12} {n:>7} {work / statistics.median(naive_t):>12.0f} "
                  f"{work / statistics.median(trainer_t):>12.0f} "
                  f"{statistics.median(ratios):>7.2f}  "
                  + " ".join(f"{r:.2f}" for r in ratios), flush=True)


if __name__ == "__main__":
    main()
