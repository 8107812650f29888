#!/usr/bin/env python
"""Where a stacked training step spends its time: torch.profiler over a few steps.

Builds the stacked runner for N models of one architecture on random images, warms it up,
profiles ``--steps`` training steps (one epoch of that many batches, evaluation excluded)
and prints the operators and kernels sorted by device time (CPU time on a CPU).

    python scripts/profile_stacked_step.py --architecture ff-CNN --neurons 300 --device cuda
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from sacnn.models import get_architecture
from sacnn.models.dropout import neuron_key
from sacnn.training import ModelSpec, TrainConfig, initial_state
from sacnn.training.runners import ModelSetup, StackedRunner
from sacnn.training.state import ChunkState
from sacnn.training.trainer import GPU_PRECISION


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--architecture", default="ff-CNN")
    p.add_argument("--neurons", type=int, default=300)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default=None, help=f"default: {GPU_PRECISION} on CUDA")
    p.add_argument("--conv", default="grouped", choices=["grouped", "gemm"])
    p.add_argument("--first-layer", default="cudnn", choices=["cudnn", "gemm"])
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    device = torch.device(args.device)
    precision = args.precision or (GPU_PRECISION if device.type == "cuda" else "exact")
    spec = get_architecture(args.architecture)
    cfg = TrainConfig(batch_size=args.batch)
    state = ChunkState.from_neurons([initial_state(spec, ModelSpec("p", spec.name), cfg, "p", i,
                                                   None) for i in range(args.neurons)])
    gen = torch.Generator().manual_seed(0)
    images = args.batch * args.steps
    x = torch.rand(images, 1, 50, 50, generator=gen)
    y = torch.rand(args.neurons, images, generator=gen)
    setup = ModelSetup(spec, (), "eval", 1e-3, args.batch, 500, "float32", False)
    runner = StackedRunner(setup, x, y, {}, device, precision=precision, conv=args.conv,
                           first_layer=args.first_layer)
    keys = [neuron_key(i) for i in range(args.neurons)]
    order = torch.arange(images)
    state = runner.run_epoch(state, order, keys).state  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with profile(activities=activities) as prof:
        runner.run_epoch(state, order, keys)
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"# {args.architecture}, {args.neurons} neurons, {args.steps} steps of {args.batch}, "
          f"precision {precision}, conv {args.conv}, first layer {args.first_layer}, "
          f"device {device}")
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
