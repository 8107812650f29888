#!/usr/bin/env python
"""Where a stacked training step spends its time: torch.profiler over a few steps.

Builds the stacked runner for N models of one architecture on random images, warms it up,
profiles ``--steps`` training steps (one epoch of that many batches, evaluation excluded)
and prints the device time of each block of the network (``record_function`` ranges of
the forward pass, :class:`~sacnn.models.stacked.StackedNetwork`'s ``profile_blocks``), then
the operators and kernels sorted by device time (CPU time on a CPU). ``--count-ops`` also
counts the aten operators one step dispatches, against the naive loop's.

    python scripts/profile_stacked_step.py --architecture ff-CNN --neurons 300 --device cuda \\
        --option max_pool=uint8 --option conv_layout=channels_last
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from sacnn.models import build_network, get_architecture
from sacnn.models.dropout import neuron_key
from sacnn.training import ModelSpec, TrainConfig, initial_state
from sacnn.training.hardware import GPU_PRECISION
from sacnn.training.runners import ModelSetup, StackedRunner
from sacnn.training.stacked_step import StackedOptions
from sacnn.training.state import ChunkState


class OpCounter(TorchDispatchMode):
    """Counts the aten operators dispatched inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def naive_ops_per_step(spec, n: int, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Operators per step of the released code's loop (one module per neuron, one Adam)."""
    nets = torch.nn.ModuleList([build_network(spec, seed=i) for i in range(n)]).to(x.device)
    opt = torch.optim.Adam(nets.parameters(), lr=1e-3)
    batch = len(x) // steps

    def step(i: int) -> None:
        sl = slice(i * batch, (i + 1) * batch)
        out = torch.stack([m(x[sl]) for m in nets], dim=1)
        opt.zero_grad()
        torch.nn.functional.mse_loss(out, y[:, sl].T).backward()
        opt.step()

    step(0)
    with OpCounter() as counter:
        for i in range(steps):
            step(i)
    return counter.count / steps


def block_times(prof, device: torch.device) -> list[tuple[str, float]]:
    """(block label, ms per profiled run) of the record_function ranges of the forward."""
    attr = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    rows = [(e.key, getattr(e, attr) / 1e3) for e in prof.key_averages()
            if e.key.startswith(("alpha.", "beta.", "attention.", "readout"))]
    return sorted(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--architecture", default="ff-CNN")
    p.add_argument("--neurons", type=int, default=300)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default=None, help=f"default: {GPU_PRECISION} on CUDA")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a stacked-step setting of the config's training section, e.g. "
                        "first_layer=gemm, max_pool=uint8, compile=inductor (repeatable)")
    p.add_argument("--count-ops", action="store_true",
                   help="also count aten operators per step, stacked vs the naive loop")
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    device = torch.device(args.device)
    precision = args.precision or (GPU_PRECISION if device.type == "cuda" else "exact")
    options = StackedOptions.parse(precision, args.option)
    spec = get_architecture(args.architecture)
    cfg = TrainConfig(batch_size=args.batch)
    state = ChunkState.from_neurons([initial_state(spec, ModelSpec("p", spec.name), cfg, "p", i,
                                                   None) for i in range(args.neurons)])
    gen = torch.Generator().manual_seed(0)
    images = args.batch * args.steps
    x = torch.rand(images, 1, 50, 50, generator=gen)
    y = torch.rand(args.neurons, images, generator=gen)
    setup = ModelSetup(spec, (), "eval", 1e-3, args.batch, 500, "float32", False)
    runner = StackedRunner(setup, x, y, {}, device, options)
    runner.net.profile_blocks = options.compile == "none"  # ranges would break a full graph
    keys = [neuron_key(i) for i in range(args.neurons)]
    order = torch.arange(images)
    state = runner.run_epoch(state, order, keys).state  # warm-up (and compilation)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with profile(activities=activities) as prof:
        runner.run_epoch(state, order, keys)
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    changed = {k: v for k, v in vars(options).items()
               if v != getattr(StackedOptions(precision=precision), k)}
    print(f"# {args.architecture}, {args.neurons} neurons, {args.steps} steps of {args.batch}, "
          f"precision {precision}, options {changed or 'default'}, device {device}")
    for label, ms in block_times(prof, device):
        print(f"# block {label}: {ms / args.steps:.3f} ms per step (forward)")
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))
    if args.count_ops:
        runner.net.profile_blocks = False
        with OpCounter() as counter:
            runner.run_epoch(state, order, keys)
        naive = naive_ops_per_step(spec, args.neurons, x.to(device), y.to(device), args.steps)
        print(f"# aten operators per step: stacked {counter.count / args.steps:.1f}, "
              f"naive loop {naive:.1f}")


if __name__ == "__main__":
    main()
