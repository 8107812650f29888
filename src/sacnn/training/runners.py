"""Execution strategies: how one epoch of a chunk's per-neuron models is computed.

All strategies take the same inputs (the chunk's stacked state, the epoch's shared batch order,
a dropout key per neuron) and return the same outputs, so they are interchangeable:

* ``reference``: a plain loop over ``nn.Module`` s in this process (the oracle for tests).
* ``per_model``: the same loop, channels_last, one thread per model, spread over worker
  processes. On a CPU this is the fastest: a c=32 step already saturates a core, so stacking
  models only adds memory traffic (docs/performance.md).
* ``stacked``: every model of the chunk as one network over stacked parameters
  (:class:`sacnn.models.stacked.StackedNetwork`: batched matmuls, shared first convolution).
  On a GPU one tiny model per kernel launch leaves the device idle; stacking fills it.

Per-neuron independence is exact: the loss is the sum over neurons of each neuron's own mean
squared error, Adam is elementwise, and dropout masks are a function of (neuron key, step).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sacnn.models import ArchitectureSpec, Network, build_network
from sacnn.models.dropout import dropout_masks
from sacnn.models.stacked import StackedNetwork
from sacnn.training.stacked_step import (
    StackedOptions,
    StaticStep,
    compiled,
    device_masks,
    step_context,
)
from sacnn.training.state import (
    ChunkState,
    NeuronState,
    adam_state_of,
    make_adam,
    model_state,
    trainable_names,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ModelSetup:
    """What every runner needs to rebuild a neuron's network (picklable, small)."""

    spec: ArchitectureSpec
    freeze: tuple[str, ...]
    frozen_mode: str
    learning_rate: float
    batch_size: int
    eval_batch_size: int
    dtype: str
    channels_last: bool

    def network(self, device: str | torch.device = "cpu") -> Network:
        net = build_network(self.spec).to(device=device, dtype=DTYPES[self.dtype])
        if self.freeze:
            net.freeze(self.freeze, self.frozen_mode)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net


@dataclass
class EpochResult:
    """The chunk's state after the epoch, each neuron's mean training loss, predictions."""

    state: ChunkState
    losses: np.ndarray
    predictions: dict[str, np.ndarray]


# -- one model at a time ----------------------------------------------------------------

def train_one_epoch(net: Network, setup: ModelSetup, state: NeuronState, x: Tensor, y: Tensor,
                    order: Tensor, dropout_key: int) -> tuple[NeuronState, float]:
    """Train one neuron's model for one epoch over ``order``; returns the new state."""
    net.load_state_dict(state.model)
    net.train()
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    opt = make_adam(params, setup.learning_rate, state.adam, state.step)
    dtype = DTYPES[setup.dtype]
    total, steps = 0.0, 0
    for start in range(0, len(order), setup.batch_size):
        idx = order[start:start + setup.batch_size]
        xb = x[idx]
        if setup.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        masks = net.draw_masks(len(idx), dropout_key, state.step + steps, dtype)
        loss = F.mse_loss(net(xb, masks), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
        steps += 1
    new = NeuronState(model=model_state(net), adam=adam_state_of(opt, params),
                      step=state.step + steps)
    return new, total / len(order)


@torch.no_grad()
def predict(net: Network, x: Tensor, batch: int, channels_last: bool = False) -> np.ndarray:
    """Eval-mode predictions (float64 numpy) for images x (n, 1, H, W)."""
    net.eval()
    out = []
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        out.append(net(xb).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def _per_model_epoch(net: Network, setup: ModelSetup, state: NeuronState, x: Tensor, y: Tensor,
                     order: Tensor, seed: int, eval_x: dict[str, Tensor]
                     ) -> tuple[NeuronState, float, dict[str, np.ndarray]]:
    new, loss = train_one_epoch(net, setup, state, x, y, order, seed)
    preds = {k: predict(net, v, setup.eval_batch_size, setup.channels_last)
             for k, v in eval_x.items()}
    return new, loss, preds


class InProcessRunner:
    """Per-model loop in this process (``reference``, or ``per_model`` with one worker)."""

    def __init__(self, setup: ModelSetup, x: Tensor, y: Tensor, eval_x: dict[str, Tensor],
                 single_thread: bool) -> None:
        self.setup, self.x, self.y, self.eval_x = setup, x, y, eval_x
        self.net = setup.network()
        self.single_thread = single_thread

    def run_epoch(self, state: ChunkState, order: Tensor, keys: Sequence[int]) -> EpochResult:
        states = state.neurons()
        threads = torch.get_num_threads()
        if self.single_thread:
            torch.set_num_threads(1)
        try:
            outs = [_per_model_epoch(self.net, self.setup, s, self.x, self.y[i], order, keys[i],
                                     self.eval_x) for i, s in enumerate(states)]
        finally:
            torch.set_num_threads(threads)
        return _collect(outs)

    def close(self) -> None:
        pass


# -- worker processes -------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def tune_glibc_malloc() -> bool:
    """Stop glibc from mmap-ing and trimming large blocks in this process.

    Activations of a c=32 model exceed glibc's mmap threshold, so every step would map,
    page-fault and unmap them again (about a quarter of CPU time in measurements). Returns
    False where glibc's mallopt is not available.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def _init_worker(setup: ModelSetup, x: Tensor, y: Tensor, eval_x: dict[str, Tensor]) -> None:
    torch.set_num_threads(1)
    tune_glibc_malloc()
    _WORKER.update(setup=setup, x=x, y=y, eval_x=eval_x, net=setup.network())


def _to_numpy(state: NeuronState) -> dict[str, Any]:
    return {"model": {k: v.numpy() for k, v in state.model.items()},
            "adam": {n: {k: t.numpy() for k, t in m.items()} for n, m in state.adam.items()},
            "step": state.step}


def _from_numpy(data: dict[str, Any]) -> NeuronState:
    return NeuronState(model={k: torch.from_numpy(v) for k, v in data["model"].items()},
                       adam={n: {k: torch.from_numpy(t) for k, t in m.items()}
                             for n, m in data["adam"].items()},
                       step=int(data["step"]))


def _worker_epoch(task: tuple[int, dict, np.ndarray, int]) -> tuple[dict, float, dict]:
    i, state, order, seed = task
    w = _WORKER
    new, loss, preds = _per_model_epoch(w["net"], w["setup"], _from_numpy(state), w["x"],
                                        w["y"][i], torch.from_numpy(order), seed, w["eval_x"])
    return _to_numpy(new), loss, preds


class PoolRunner:
    """Per-model training spread over worker processes, one thread each.

    Workers are spawned (not forked: a fork after OpenMP has started can deadlock) and see
    the images through shared memory, so the data is not copied per worker.
    """

    def __init__(self, setup: ModelSetup, x: Tensor, y: Tensor, eval_x: dict[str, Tensor],
                 workers: int) -> None:
        ctx = torch.multiprocessing.get_context("spawn")
        shared = [t.share_memory_() for t in (x, y)]
        shared_eval = {k: v.share_memory_() for k, v in eval_x.items()}
        self.pool = ctx.Pool(workers, initializer=_init_worker,
                             initargs=(setup, shared[0], shared[1], shared_eval))

    def run_epoch(self, state: ChunkState, order: Tensor, keys: Sequence[int]) -> EpochResult:
        order_np = order.numpy()
        tasks = [(i, _to_numpy(s), order_np, keys[i]) for i, s in enumerate(state.neurons())]
        outs = [(_from_numpy(s), loss, preds)
                for s, loss, preds in self.pool.imap(_worker_epoch, tasks, chunksize=1)]
        return _collect(outs)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def _collect(outs: list[tuple[NeuronState, float, dict[str, np.ndarray]]]) -> EpochResult:
    keys = outs[0][2].keys() if outs else []
    return EpochResult(state=ChunkState.from_neurons([o[0] for o in outs]),
                       losses=np.array([o[1] for o in outs]),
                       predictions={k: np.stack([o[2][k] for o in outs]) for k in keys})


# -- all models of the chunk at once ----------------------------------------------------

#: Dropout masks are drawn for this many elements (steps x sites x neurons x batch x
#: channels) at a time: few kernel launches per step, bounded memory.
MASK_BLOCK_ELEMENTS = 1 << 24
#: Elements of the largest activation one evaluation forward may hold (N models x images).
EVAL_ELEMENT_BUDGET = 1 << 29


class StackedRunner:
    """All neurons of the chunk in one forward/backward (:class:`StackedNetwork`).

    The chunk's state stays on the device between epochs; dropout masks are computed on the
    device from each neuron's key and the step (:mod:`sacnn.models.dropout`); the loss is
    the sum over neurons of each neuron's mean squared error, so gradients do not mix.
    ``options`` choose how a step is computed (:mod:`sacnn.training.stacked_step`); with
    ``cuda_graph`` every full batch runs as a :class:`StaticStep`, replayed from a CUDA
    graph on CUDA and run eagerly elsewhere (the trainer refuses the setting off CUDA; the
    tests use the eager form).
    """

    def __init__(self, setup: ModelSetup, x: Tensor, y: Tensor, eval_x: dict[str, Tensor],
                 device: torch.device, options: StackedOptions | None = None) -> None:
        self.setup = setup
        self.device = device
        self.options = options or StackedOptions()
        self.precision = self.options.precision
        self.x = x.to(device)
        self.y = y.to(device)
        self.eval_x = {k: v.to(device) for k, v in eval_x.items()}
        self.trainable = trainable_names(setup.network())
        self.net = StackedNetwork(setup.spec, setup.freeze, setup.frozen_mode,
                                  **self.options.network_kwargs())
        self.dropout_channels = self.net.dropout_channels()
        self.loss = compiled(self.stacked_loss, self.options)
        # the largest activation of one image through one model: the first convolution's
        self.eval_largest = setup.spec.channels * max(conv for conv, _ in setup.spec.sizes()) ** 2

    def split(self, state: ChunkState) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Fresh device copies: trainable parameters (leaf tensors) and everything else."""
        model = {k: v.to(self.device).detach().clone() for k, v in state.model.items()}
        params = {n: model[n].requires_grad_(True) for n in self.trainable}
        rest = {k: v for k, v in model.items() if k not in params}
        return params, rest

    def stacked_loss(self, params: dict, rest: dict, x: Tensor, y: Tensor,
                     masks: Sequence[Tensor]) -> Tensor:
        """Each neuron's mean squared error, shape (N,); y is (N, B)."""
        out = self.net({**params, **rest}, x, masks, training=True)
        return torch.mean((out.to(y.dtype) - y) ** 2, dim=1)

    def masks(self, keys: Tensor, steps: Sequence[int], batch: int) -> Tensor:
        """(T, S, N, B, C) masks for a block of steps (see :func:`dropout_masks`)."""
        return dropout_masks(keys, steps, batch, self.dropout_channels,
                             self.setup.spec.dropout, DTYPES[self.setup.dtype], self.device)

    def _mask_blocks(self, keys: Tensor, first_step: int, n_steps: int) -> Iterator[list]:
        """Each step's masks (one (N, B, C) per site), drawn MASK_BLOCK_ELEMENTS at a time."""
        if not self.dropout_channels:  # an architecture without dropout sites
            yield from ([] for _ in range(n_steps))
            return
        per_step = len(self.dropout_channels) * len(keys) * self.setup.batch_size \
            * max(self.dropout_channels)
        block = max(1, MASK_BLOCK_ELEMENTS // per_step)
        for t0 in range(0, n_steps, block):
            steps = range(first_step + t0, first_step + min(t0 + block, n_steps))
            masks = self.masks(keys, steps, self.setup.batch_size)
            for t in range(len(steps)):
                yield [masks[t, s, :, :, :c] for s, c in enumerate(self.dropout_channels)]

    def _static_step(self, params: dict, rest: dict, opt: torch.optim.Optimizer,
                     keys: Tensor, order: Tensor, first_step: int) -> StaticStep:
        bs = self.setup.batch_size

        def draw(step: Tensor) -> Tensor:
            return dropout_masks(keys, step, bs, self.dropout_channels,
                                 self.setup.spec.dropout, DTYPES[self.setup.dtype], self.device)

        return StaticStep(self.loss, device_masks(draw, self.dropout_channels), params, rest,
                          opt, self.x, self.y, order, first_step, bs)

    def run_epoch(self, state: ChunkState, order: Tensor, keys: Sequence[int]) -> EpochResult:
        params, rest = self.split(state)
        cuda = self.device.type == "cuda"
        opt = make_adam(params, self.setup.learning_rate,
                        {n: {k: v.to(self.device) for k, v in m.items()}
                         for n, m in state.adam.items()},
                        state.step, fused=cuda, capturable=cuda and self.options.cuda_graph)
        keys_t = torch.as_tensor(list(keys), dtype=torch.int64, device=self.device)
        totals = torch.zeros(len(keys), dtype=torch.float64, device=self.device)
        order_dev = order.to(self.device)
        bs = self.setup.batch_size
        n_steps = -(-len(order) // bs)
        n_static = len(order) // bs if self.options.cuda_graph else 0
        with step_context(self.options):
            if n_static:
                static = self._static_step(params, rest, opt, keys_t, order_dev, state.step)
                static.run(n_static, capture=cuda)
                totals += static.totals
            step = state.step + n_static
            for start, masks in zip(range(n_static * bs, len(order), bs),
                                    self._mask_blocks(keys_t, step, n_steps - n_static)):
                idx = order_dev[start:start + bs]
                losses = self.loss(params, rest, self.x[idx], self.y[:, idx],
                                   [m[:, :len(idx)] for m in masks])
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()
                opt.step()
                totals += losses.detach().double() * len(idx)
                step += 1
        preds = self.predict(params, rest)
        adam = adam_state_of(opt, params)
        model = {k: params[k].detach() if k in params else rest[k] for k in state.model}
        return EpochResult(state=ChunkState(model=model, adam=adam, step=step),
                           losses=(totals / len(order)).cpu().numpy(), predictions=preds)

    @torch.no_grad()
    def predict(self, params: dict, rest: dict) -> dict[str, np.ndarray]:
        """Eval-mode predictions, (N, n_images) float64, in memory-bounded image batches."""
        merged = {**params, **rest}
        n = next(iter(merged.values())).shape[0]
        batch = max(1, min(self.setup.eval_batch_size,
                           EVAL_ELEMENT_BUDGET // (n * self.eval_largest)))
        out = {}
        with step_context(self.options):
            for key, x in self.eval_x.items():
                parts = [self.net(merged, x[s:s + batch], training=False)
                         for s in range(0, len(x), batch)]
                out[key] = torch.cat(parts, dim=1).double().cpu().numpy() if parts \
                    else np.zeros((n, 0))
        return out

    def close(self) -> None:
        pass


def available_cores() -> int:
    """Cores this process may run on (respects affinity masks set by SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
