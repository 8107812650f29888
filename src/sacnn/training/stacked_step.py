"""How the stacked strategy runs one training step on the device.

The settings (:class:`StackedOptions`, from :class:`~sacnn.training.config.TrainConfig`)
choose the form of the network's layers (:class:`~sacnn.models.stacked.StackedNetwork`),
the arithmetic, cuDNN's algorithm choice, compilation of the loss and its gradients by
``torch.compile(fullgraph=True)``, and whether each epoch's full batches are replayed from a
captured CUDA graph (:class:`StaticStep`). None of them changes what is computed: every
form equals the reference per-model network in float64 (tests); they differ in speed
(docs/performance.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import torch
import yaml
from torch import Tensor

from sacnn.training.config import PRECISIONS, TrainConfig

#: The stacked strategy's arithmetic: TrainConfig's ``precision`` once ``auto`` is resolved
#: for the device (sacnn.training.hardware.resolve_precision).
RESOLVED_PRECISIONS = tuple(p for p in PRECISIONS if p != "auto")
#: Eager steps before a CUDA graph is captured (cuDNN/cuBLAS set-up, Adam's lazy state).
WARMUP_STEPS = 3


#: The defaults of every stacked-step key live in TrainConfig (one home); the options repeat
#: only their names.
_TRAIN_DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class StackedOptions:
    """The stacked step's settings (TrainConfig's keys of the same names, precision
    resolved); the defaults are TrainConfig's, the measured default path."""

    precision: str = "exact"
    first_layer: str = _TRAIN_DEFAULTS.first_layer
    conv: str = _TRAIN_DEFAULTS.conv
    conv_layout: str = _TRAIN_DEFAULTS.conv_layout
    cudnn_benchmark: bool = _TRAIN_DEFAULTS.cudnn_benchmark
    max_pool: str = _TRAIN_DEFAULTS.max_pool
    attention: str = _TRAIN_DEFAULTS.attention
    compile: str = _TRAIN_DEFAULTS.compile
    compile_cache: str = _TRAIN_DEFAULTS.compile_cache
    cuda_graph: bool = _TRAIN_DEFAULTS.cuda_graph

    def __post_init__(self) -> None:
        if self.precision not in RESOLVED_PRECISIONS:
            raise ValueError(f"precision must be one of {RESOLVED_PRECISIONS}, got "
                             f"{self.precision!r}")

    @classmethod
    def of(cls, cfg: TrainConfig, precision: str) -> StackedOptions:
        """The options of ``cfg`` with ``precision`` as resolved for the device."""
        return cls(precision=precision, **{f.name: getattr(cfg, f.name) for f in fields(cls)
                                           if f.name != "precision"})

    @classmethod
    def parse(cls, precision: str, settings: Sequence[str]) -> StackedOptions:
        """Options from ``KEY=VALUE`` strings (YAML values, checked as TrainConfig checks
        the config's ``training`` keys); the measurement scripts' ``--option``."""
        data = {}
        for text in settings:
            key, sep, value = text.partition("=")
            if not sep or key not in {f.name for f in fields(cls)} - {"precision"}:
                names = sorted(f.name for f in fields(cls) if f.name != "precision")
                raise ValueError(f"option {text!r}: expected KEY=VALUE with KEY one of {names}")
            data[key] = yaml.safe_load(value) if value else ""
        return cls.of(TrainConfig.from_dict(data), precision)

    def network_kwargs(self) -> dict[str, Any]:
        """StackedNetwork's keyword arguments for these options."""
        return {"conv": self.conv, "first_layer": self.first_layer, "layout": self.conv_layout,
                "max_pool": self.max_pool, "attention": self.attention,
                "conv_dtype": torch.bfloat16 if self.precision == "bf16" else None}


@contextmanager
def step_context(options: StackedOptions) -> Iterator[None]:
    """Global switches of a stacked step: tensor-core arithmetic (``exact``: none, every
    product in the parameters' dtype; ``tf32``: TF32 products in matmuls and cuDNN;
    ``bf16``: TF32 as well, the per-model kxk convolutions on bfloat16 operands with float32
    accumulation) and cuDNN's algorithm search (``cudnn_benchmark``)."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark)
    tf32 = options.precision != "exact"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = options.cudnn_benchmark
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = flags


def use_compile_cache(directory: str) -> None:
    """Point torch.compile's on-disk caches at ``directory`` (shared by every training job,
    so only the first job of a shape compiles). '' leaves torch's default (a per-user
    folder in the machine's temporary directory)."""
    if directory:
        os.makedirs(directory, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.abspath(directory)
    # The AOTAutograd cache skips graphs with custom autograd functions (the uint8 max-pool)
    # unless allowed; the function is pure (its output depends on its inputs alone).
    import torch._functorch.config as functorch_config

    functorch_config.autograd_cache_allow_custom_autograd_functions = True


def compiled(fn: Callable, options: StackedOptions) -> Callable:
    """``fn`` itself, or compiled with ``fullgraph=True`` and static shapes: one graph per
    batch size (a partial last batch gets its own, as batch norm forbids padding it)."""
    if options.compile == "none":
        return fn
    use_compile_cache(options.compile_cache)
    # Dynamo keeps compiled code per function and guards on the runner it is bound to: a
    # process that builds runner after runner (benchmarks, tests; a training job builds one)
    # would reach its recompile limit. A new runner starts from a clean slate.
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, dynamic=False, backend=options.compile)


class StaticStep:
    """One training step that reads and writes device tensors only, so a CUDA graph can
    capture it once and replay it for every full batch of the epoch.

    The position in the epoch's order, the dropout step counter and the loss totals live
    on the device and are advanced by the step itself; images and responses are gathered
    on the device from the epoch's order; Adam must be ``capturable`` on CUDA. Run eagerly
    (on any device) it is an ordinary training step, which is what the CPU tests check.
    """

    def __init__(self, loss_fn: Callable, masks_fn: Callable[[Tensor], list[Tensor]],
                 params: dict[str, Tensor], rest: dict[str, Tensor],
                 opt: torch.optim.Optimizer, x: Tensor, y: Tensor, order: Tensor,
                 first_step: int, batch: int) -> None:
        device = x.device
        self.loss_fn, self.masks_fn = loss_fn, masks_fn
        self.params, self.rest, self.opt = params, rest, opt
        self.x, self.y, self.order, self.batch = x, y, order, batch
        self.position = torch.zeros((), dtype=torch.int64, device=device)
        self.step = torch.full((1,), first_step, dtype=torch.int64, device=device)
        self.offsets = torch.arange(batch, dtype=torch.int64, device=device)
        self.totals = torch.zeros(y.shape[0], dtype=torch.float64, device=device)

    def __call__(self) -> None:
        idx = self.order.index_select(0, self.position + self.offsets)
        losses = self.loss_fn(self.params, self.rest, self.x.index_select(0, idx),
                              self.y.index_select(1, idx), self.masks_fn(self.step))
        losses.sum().backward()
        self.opt.step()
        with torch.no_grad():
            self.totals.add_(losses.detach().double() * self.batch)
            self.position.add_(self.batch)
            self.step.add_(1)

    def run(self, n_steps: int, capture: bool) -> None:
        """``n_steps`` steps: eagerly, or (``capture``, CUDA) the first
        :data:`WARMUP_STEPS` eagerly on a side stream and the rest from one CUDA graph."""
        warm = min(n_steps, WARMUP_STEPS) if capture else n_steps
        stream = torch.cuda.Stream() if capture else None
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream) if stream is not None else _nothing():
            for _ in range(warm):
                self.opt.zero_grad(set_to_none=True)
                self()
        if stream is None:
            return
        torch.cuda.current_stream().wait_stream(stream)
        if warm == n_steps:
            return
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self()
        for _ in range(n_steps - warm):
            graph.replay()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def device_masks(draw: Callable[[Tensor], Tensor], channels: Sequence[int]
                 ) -> Callable[[Tensor], list[Tensor]]:
    """A step's masks (one (N, B, C) per site) from a device step counter: ``draw`` maps
    the counter to (1, S, N, B, C) masks (:func:`sacnn.models.dropout.dropout_masks`)."""
    if not channels:
        return lambda step: []

    def masks(step: Tensor) -> list[Tensor]:
        m = draw(step)
        return [m[0, s, :, :, :c] for s, c in enumerate(channels)]
    return masks
