"""Execution strategies: how one epoch of a chunk's per-neuron models is computed.

All strategies take the same inputs (per-neuron states, the epoch's shared batch order, a
dropout seed per neuron) and return the same outputs, so they are interchangeable:

* ``reference``: a plain loop over ``nn.Module`` s in this process (the oracle for tests).
* ``per_model``: the same loop, channels_last, one thread per model, spread over worker
  processes. On a CPU this is the fastest: a c=32 step already saturates a core, so stacking
  models only adds memory traffic (docs/performance.md).
* ``stacked``: every model of the chunk in one vmapped call over stacked parameters
  (``torch.func.functional_call`` + ``vmap``). On a GPU one tiny model per kernel launch
  leaves the device idle; stacking fills it.

Per-neuron independence is exact: the loss is the sum over neurons of each neuron's own mean
squared error, Adam is elementwise, and dropout masks come from each neuron's own generator.
"""

from __future__ import annotations

import copy
import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from sacnn.models import ArchitectureSpec, Network, build_network
from sacnn.training.state import (
    NeuronState,
    adam_state_of,
    make_adam,
    model_state,
    stack_states,
    unstack_states,
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
    """States after the epoch, each neuron's mean training loss and its predictions."""

    states: list[NeuronState]
    losses: np.ndarray
    predictions: dict[str, np.ndarray]


# -- one model at a time ----------------------------------------------------------------

def train_one_epoch(net: Network, setup: ModelSetup, state: NeuronState, x: Tensor, y: Tensor,
                    order: Tensor, dropout_seed: int) -> tuple[NeuronState, float]:
    """Train one neuron's model for one epoch over ``order``; returns the new state."""
    net.load_state_dict(state.model)
    net.train()
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    opt = make_adam(params, setup.learning_rate, state.adam, state.step)
    gen = torch.Generator().manual_seed(int(dropout_seed))
    dtype = DTYPES[setup.dtype]
    total, steps = 0.0, 0
    for start in range(0, len(order), setup.batch_size):
        idx = order[start:start + setup.batch_size]
        xb = x[idx]
        if setup.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        masks = net.draw_masks(len(idx), gen, dtype)
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

    def run_epoch(self, states: Sequence[NeuronState], order: Tensor,
                  seeds: Sequence[int]) -> EpochResult:
        threads = torch.get_num_threads()
        if self.single_thread:
            torch.set_num_threads(1)
        try:
            outs = [_per_model_epoch(self.net, self.setup, s, self.x, self.y[i], order, seeds[i],
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

    def run_epoch(self, states: Sequence[NeuronState], order: Tensor,
                  seeds: Sequence[int]) -> EpochResult:
        order_np = order.numpy()
        tasks = [(i, _to_numpy(s), order_np, seeds[i]) for i, s in enumerate(states)]
        outs = [(_from_numpy(s), loss, preds)
                for s, loss, preds in self.pool.imap(_worker_epoch, tasks, chunksize=1)]
        return _collect(outs)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def _collect(outs: list[tuple[NeuronState, float, dict[str, np.ndarray]]]) -> EpochResult:
    keys = outs[0][2].keys() if outs else []
    return EpochResult(states=[o[0] for o in outs], losses=np.array([o[1] for o in outs]),
                       predictions={k: np.stack([o[2][k] for o in outs]) for k in keys})


# -- all models of the chunk at once ----------------------------------------------------

class StackedRunner:
    """All neurons of the chunk in one vmapped forward/backward over stacked parameters."""

    def __init__(self, setup: ModelSetup, x: Tensor, y: Tensor, eval_x: dict[str, Tensor],
                 device: torch.device) -> None:
        self.setup = setup
        self.device = device
        self.x = x.to(device)
        self.y = y.to(device)
        self.eval_x = {k: v.to(device) for k, v in eval_x.items()}
        self.template = setup.network()  # draws masks and names trainable parameters
        self.trainable = [n for n, p in self.template.named_parameters() if p.requires_grad]
        self.base = copy.deepcopy(self.template).to("meta")

    def _loss(self, params: dict, rest: dict, x: Tensor, y: Tensor, masks: list[Tensor]
              ) -> Tensor:
        out = functional_call(self.base, (params, rest), (x,), {"masks": masks})
        return torch.mean((out - y) ** 2)

    def _forward(self, params: dict, rest: dict, x: Tensor) -> Tensor:
        return functional_call(self.base, (params, rest), (x,))

    def stacked_loss(self, params: dict, rest: dict, x: Tensor, y: Tensor,
                     masks: list[Tensor]) -> Tensor:
        """Each neuron's mean squared error, shape (N,); y is (N, B), masks (N, B, C, 1, 1)."""
        return vmap(self._loss, in_dims=(0, 0, None, 0, 0))(params, rest, x, y, masks)

    def split(self, states: Sequence[NeuronState]) -> tuple[dict, dict, dict]:
        """Stacked trainable parameters (leaf tensors), the rest, and stacked Adam moments."""
        stacked = {k: v.to(self.device) for k, v in stack_states([s.model for s in states]).items()}
        params = {n: stacked[n].requires_grad_(True) for n in self.trainable}
        rest = {k: v for k, v in stacked.items() if k not in params}
        adam = {n: {m: torch.stack([s.adam[n][m] for s in states]).to(self.device)
                    for m in ("exp_avg", "exp_avg_sq")} for n in self.trainable} \
            if states[0].step > 0 else {}
        return params, rest, adam

    def masks(self, gens: Sequence[torch.Generator], batch: int) -> list[Tensor]:
        per_neuron = [self.template.draw_masks(batch, g, DTYPES[self.setup.dtype]) for g in gens]
        return [torch.stack(site).to(self.device) for site in zip(*per_neuron)]

    def run_epoch(self, states: Sequence[NeuronState], order: Tensor,
                  seeds: Sequence[int]) -> EpochResult:
        params, rest, adam = self.split(states)
        step0 = states[0].step
        opt = make_adam(params, self.setup.learning_rate, adam, step0)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.base.train()
        totals = torch.zeros(len(states), dtype=torch.float64, device=self.device)
        order_dev = order.to(self.device)
        steps = 0
        for start in range(0, len(order), self.setup.batch_size):
            idx = order_dev[start:start + self.setup.batch_size]
            losses = self.stacked_loss(params, rest, self.x[idx], self.y[:, idx],
                                       self.masks(gens, len(idx)))
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            totals += losses.detach().double() * len(idx)
            steps += 1
        preds = self.predict(params, rest)
        adam_new = adam_state_of(opt, params)
        merged = {**{k: v.detach() for k, v in params.items()}, **rest}
        models = unstack_states({k: v.cpu() for k, v in merged.items()})
        moments = {n: {m: adam_new[n][m].cpu() for m in adam_new[n]} for n in adam_new}
        new_states = [
            NeuronState(model={k: m[k].contiguous() for k in states[0].model},
                        adam={n: {k: moments[n][k][i].clone() for k in moments[n]}
                              for n in moments},
                        step=step0 + steps)
            for i, m in enumerate(models)
        ]
        return EpochResult(states=new_states, losses=(totals / len(order)).cpu().numpy(),
                           predictions=preds)

    @torch.no_grad()
    def predict(self, params: dict, rest: dict) -> dict[str, np.ndarray]:
        self.base.eval()
        forward = vmap(self._forward, in_dims=(0, 0, None))
        out = {}
        for key, x in self.eval_x.items():
            parts = [forward(params, rest, x[s:s + self.setup.eval_batch_size])
                     for s in range(0, len(x), self.setup.eval_batch_size)]
            out[key] = torch.cat(parts, dim=1).double().cpu().numpy()
        self.base.train()
        return out

    def close(self) -> None:
        pass


def available_cores() -> int:
    """Cores this process may run on (respects affinity masks set by SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
