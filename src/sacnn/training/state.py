"""Per-neuron training state, its stacking across a chunk, and safe checkpoint files.

Between epochs the trainer keeps a :class:`ChunkState` (every neuron's state stacked on a
leading dimension), whatever strategy runs the epochs; that makes checkpoints independent of
the strategy and lets a run resume with another one. Checkpoints hold tensors and plain
Python values only and are read with ``torch.load(weights_only=True)``: they are untrusted
input and are never unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


class CheckpointError(RuntimeError):
    """A checkpoint or weights file that cannot be used; the message names the file."""


@dataclass
class NeuronState:
    """Everything that changes while one neuron's model trains."""

    model: dict[str, Tensor]
    adam: dict[str, dict[str, Tensor]]
    step: int


def model_state(net: nn.Module) -> dict[str, Tensor]:
    """A detached copy of parameters and buffers, contiguous (independent of memory format)."""
    return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}


def trainable_names(net: nn.Module) -> list[str]:
    """Names of parameters the optimiser updates, in a fixed order."""
    return [n for n, p in net.named_parameters() if p.requires_grad]


def make_adam(params: Mapping[str, Tensor], lr: float, adam_state: Mapping[str, Any],
              step: int, fused: bool = False, capturable: bool = False) -> torch.optim.Adam:
    """An Adam optimiser over ``params`` restored to ``adam_state`` after ``step`` steps.

    Adam is elementwise, so one optimiser over stacked parameters equals one per neuron.
    ``fused`` (CUDA) runs the whole update in one kernel; ``capturable`` (CUDA) keeps its
    step count on the device, so that a CUDA graph can replay the update.
    """
    opt = torch.optim.Adam(list(params.values()), lr=lr, fused=fused or None,
                           capturable=capturable)
    if step > 0:
        scalar_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 \
            else torch.float32
        on_device = fused or capturable
        for name, p in params.items():
            s = adam_state[name]
            opt.state[p] = {
                "step": torch.tensor(float(step),
                                     dtype=torch.float32 if on_device else scalar_dtype,
                                     device=p.device if on_device else "cpu"),
                "exp_avg": s["exp_avg"].to(device=p.device, dtype=p.dtype).clone()
                .contiguous(memory_format=_format_of(p)),
                "exp_avg_sq": s["exp_avg_sq"].to(device=p.device, dtype=p.dtype).clone()
                .contiguous(memory_format=_format_of(p)),
            }
    return opt


def _format_of(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
            and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def adam_state_of(opt: torch.optim.Adam, params: Mapping[str, Tensor]) -> dict[str, dict]:
    """Adam moments keyed by parameter name (detached, contiguous copies)."""
    out: dict[str, dict[str, Tensor]] = {}
    for name, p in params.items():
        s = opt.state.get(p)
        if not s:
            out[name] = {"exp_avg": torch.zeros_like(p).contiguous(),
                         "exp_avg_sq": torch.zeros_like(p).contiguous()}
        else:
            out[name] = {"exp_avg": s["exp_avg"].detach().clone().contiguous(),
                         "exp_avg_sq": s["exp_avg_sq"].detach().clone().contiguous()}
    return out


def stack_states(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Stack per-neuron tensors under the same names into (N, ...) tensors."""
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}


def unstack_states(stacked: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
    """Split (N, ...) tensors back into N per-neuron dicts."""
    n = next(iter(stacked.values())).shape[0]
    return [{k: v[i].clone() for k, v in stacked.items()} for i in range(n)]


@dataclass
class ChunkState:
    """The states of a chunk's neurons stacked on a leading neuron dimension.

    This is what the trainer carries between epochs and what a checkpoint holds, whatever
    strategy runs the epochs (so a run may resume with another one). The tensors may live
    on a GPU between epochs; :meth:`to` moves them.
    """

    model: dict[str, Tensor]                 # parameters and buffers, (N, ...)
    adam: dict[str, dict[str, Tensor]]       # trainable name -> exp_avg / exp_avg_sq, (N, ...)
    step: int                                # optimiser steps taken (all neurons alike)

    @property
    def n_neurons(self) -> int:
        return next(iter(self.model.values())).shape[0]

    @classmethod
    def from_neurons(cls, states: Sequence[NeuronState]) -> ChunkState:
        names = [n for n in states[0].adam if states[0].adam[n]]
        return cls(model=stack_states([s.model for s in states]),
                   adam={n: {m: torch.stack([s.adam[n][m] for s in states])
                             for m in ("exp_avg", "exp_avg_sq")} for n in names},
                   step=int(states[0].step))

    def neurons(self) -> list[NeuronState]:
        """Per-neuron states (CPU copies), as the per-model runners use them."""
        cpu = self.to("cpu")
        models = unstack_states(cpu.model)
        return [NeuronState(model=m,
                            adam={n: {k: v[i].clone() for k, v in mom.items()}
                                  for n, mom in cpu.adam.items()},
                            step=self.step)
                for i, m in enumerate(models)]

    def to(self, device: str | torch.device) -> ChunkState:
        return ChunkState(model={k: v.to(device) for k, v in self.model.items()},
                          adam={n: {k: v.to(device) for k, v in m.items()}
                                for n, m in self.adam.items()},
                          step=self.step)

    def to_checkpoint(self) -> dict[str, Any]:
        """Plain tensors on the CPU (never pickled objects)."""
        cpu = self.to("cpu")
        return {"model": cpu.model,
                "exp_avg": {n: m["exp_avg"] for n, m in cpu.adam.items()},
                "exp_avg_sq": {n: m["exp_avg_sq"] for n, m in cpu.adam.items()},
                "step": int(self.step)}

    @classmethod
    def from_checkpoint(cls, data: Mapping[str, Any]) -> ChunkState:
        return cls(model=dict(data["model"]),
                   adam={n: {"exp_avg": data["exp_avg"][n], "exp_avg_sq": data["exp_avg_sq"][n]}
                         for n in data["exp_avg"]},
                   step=int(data["step"]))


def safe_torch_load(path: str | Path, expected_format: str) -> dict[str, Any]:
    """Load a checkpoint or weights file without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable {expected_format} file "
                              f"(torch.load with weights_only=True failed: {err})") from err
    if not isinstance(data, dict) or data.get("format") != expected_format:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path}: field 'format' is {found!r}, expected {expected_format!r}")
    return data
