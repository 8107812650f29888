"""Training settings and training stages (which weights a stage inherits and freezes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from sacnn.settings import SettingError, check_settings

if TYPE_CHECKING:
    from sacnn.models.specs import ArchitectureSpec


class TrainingConfigError(ValueError):
    """A training or stage setting that cannot be used; the message names the field."""


STRATEGIES = ("auto", "per_model", "stacked", "reference")
SELECTIONS = ("holdout", "validation")
COMBINE_INITS = ("identity", "random")
#: A model entry's keys and their types (:func:`sacnn.settings.check_setting`), and ``load``:
#: a list of names or a mapping of names to names, checked by :meth:`ModelSpec.from_dict`.
MODEL_KINDS = {"architecture": "str", "label": "str", "init_from": "str?", "freeze": "strs",
               "combine_init": "str"}
MODEL_KEYS = (*MODEL_KINDS, "load")
PRECISIONS = ("auto", "exact", "tf32", "bf16")
# How the stacked (GPU) strategy computes a step (sacnn.models.stacked, docs/performance.md);
# each choice equals the reference per-model network in float64 (tests).
FIRST_LAYERS = ("cudnn", "gemm")
CONVS = ("grouped", "gemm")
CONV_LAYOUTS = ("nchw", "channels_last")
MAX_POOLS = ("torch", "uint8")
ATTENTIONS = ("matmul", "sdpa")
COMPILERS = ("none", "inductor", "aot_eager")
#: Settings that choose how a step is computed, not what: a checkpoint resumes across them
#: (as across strategies) and they do not enter a chunk's fingerprint.
EXECUTION_KEYS = ("strategy", "workers", "device", "eval_batch_size", "first_layer", "conv",
                  "conv_layout", "cudnn_benchmark", "max_pool", "attention", "compile",
                  "compile_cache", "cuda_graph")


@dataclass(frozen=True)
class TrainConfig:
    """How one chunk of per-neuron models is fitted (paper: Adam, lr 1e-3, batch 50, 50 epochs).

    ``selection`` picks each neuron's best epoch by correlation on a held-out part of the
    training set (default) or on the validation set, as the released code does (optimistic:
    the same images are then used for reporting); with ``validation`` nothing is held out
    and the models fit on every training image of their data fraction. ``strategy`` chooses the execution:
    ``per_model`` (one model at a time per worker process; the fast path on a CPU),
    ``stacked`` (all models of the chunk as one network, sacnn.models.stacked; the fast path
    on a GPU), ``reference`` (a plain in-process loop, kept for tests), ``auto`` (stacked on
    CUDA, per_model otherwise). ``precision`` is the arithmetic of the stacked strategy:
    ``exact`` (``dtype`` throughout), ``tf32`` (TF32 tensor-core products, CUDA), ``bf16``
    (TF32, and the per-model kxk convolutions, nearly all the arithmetic, on bfloat16
    operands with float32 accumulation; everything else float32), ``auto`` (the measured
    GPU default, ``sacnn.training.hardware.GPU_PRECISION``, on CUDA; ``exact`` elsewhere).

    How the stacked strategy computes a step (each the same numbers in float64; measured in
    docs/performance.md): ``first_layer`` ``cudnn`` (one dense convolution) or ``gemm`` (one
    matrix product of the image patches, written channels-last); ``conv`` ``grouped`` (one
    grouped convolution per layer) or ``gemm`` (unfold + batched matmul); ``conv_layout``
    ``nchw`` or ``channels_last`` (the grouped convolutions' memory format, where cuDNN has
    implicit-GEMM kernels); ``cudnn_benchmark`` (let cuDNN time its algorithms for each shape
    instead of its heuristic's pick); ``max_pool`` ``torch`` (F.max_pool2d, int64 indices)
    or ``uint8`` (the window position of each maximum as one byte); ``attention``
    ``matmul`` or ``sdpa`` (F.scaled_dot_product_attention, head dimensions padded to a
    multiple of 8); ``compile`` ``none``, ``inductor`` (torch.compile(fullgraph=True) of the
    step's loss and gradients) or ``aot_eager`` (the same graph capture without code
    generation, for checks on a CPU); ``compile_cache`` a directory shared by every job
    (TORCHINDUCTOR_CACHE_DIR; '' leaves torch's per-machine default) so that only the first
    job compiles; ``cuda_graph`` replays each epoch's full batches from one captured CUDA
    graph (device-side batch indices, dropout counter and Adam step; CUDA only).
    """

    epochs: int = 50
    batch_size: int = 50
    learning_rate: float = 1e-3
    selection: str = "holdout"
    seed: int = 0
    frozen_mode: str = "eval"
    strategy: str = "auto"
    workers: int = 0
    dtype: str = "float32"
    device: str = "auto"
    eval_batch_size: int = 500
    channels_last: bool = True
    precision: str = "auto"
    first_layer: str = "cudnn"
    conv: str = "grouped"
    conv_layout: str = "nchw"
    cudnn_benchmark: bool = False
    max_pool: str = "torch"
    attention: str = "matmul"
    compile: str = "none"
    compile_cache: str = ""
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs", "an integer >= 1"),
            (self.batch_size >= 2, "batch_size", "an integer >= 2 (batch norm needs 2 images)"),
            (self.learning_rate > 0, "learning_rate", "a positive number"),
            (self.selection in SELECTIONS, "selection", f"one of {SELECTIONS}"),
            (self.frozen_mode in ("eval", "train"), "frozen_mode", "'eval' or 'train'"),
            (self.strategy in STRATEGIES, "strategy", f"one of {STRATEGIES}"),
            (self.workers >= 0, "workers", "an integer >= 0 (0: one per available core)"),
            (self.dtype in ("float32", "float64"), "dtype", "'float32' or 'float64'"),
            (self.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1"),
            (self.precision in PRECISIONS, "precision", f"one of {PRECISIONS}"),
            (self.first_layer in FIRST_LAYERS, "first_layer", f"one of {FIRST_LAYERS}"),
            (self.conv in CONVS, "conv", f"one of {CONVS}"),
            (self.conv_layout in CONV_LAYOUTS, "conv_layout", f"one of {CONV_LAYOUTS}"),
            (isinstance(self.cudnn_benchmark, bool), "cudnn_benchmark", "true or false"),
            (self.max_pool in MAX_POOLS, "max_pool", f"one of {MAX_POOLS}"),
            (self.attention in ATTENTIONS, "attention", f"one of {ATTENTIONS}"),
            (self.compile in COMPILERS, "compile", f"one of {COMPILERS}"),
            (isinstance(self.compile_cache, str), "compile_cache", "a directory path or ''"),
            (isinstance(self.cuda_graph, bool), "cuda_graph", "true or false"),
            (re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", str(self.device)) is not None, "device",
             "'auto', 'cpu' or 'cuda[:N]'"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise TrainingConfigError(
                    f"training.{name}: got {getattr(self, name)!r}, expected {expected}")
        self._check_combination()

    def _check_combination(self) -> None:
        """Settings that contradict each other whatever the device turns out to be (the
        hardware's resolve_strategy/resolve_precision check the rest once it is known)."""
        cpu_only = self.strategy in ("per_model", "reference")
        fast = self.precision in ("tf32", "bf16")
        conflicts = [
            (fast and self.dtype != "float32",
             f"training.precision: {self.precision!r} needs dtype float32"),
            (fast and cpu_only, (f"training.precision: {self.precision!r} needs the stacked "
                                "strategy (a GPU); use 'exact' or 'auto'")),
            (self.precision == "tf32" and self.device == "cpu",
             "training.precision: 'tf32' exists on CUDA devices only"),
            (cpu_only and self.device.startswith("cuda"),
             (f"training.strategy: {self.strategy!r} runs on the CPU only; use 'stacked' (or "
             "'auto') on a GPU")),
        ]
        for conflict, message in conflicts:
            if conflict:
                raise TrainingConfigError(message)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a config mapping; unknown keys are refused (typos fail at once)."""
        data = dict(data or {})
        kinds = {f.name: str(f.type) for f in fields(cls)}  # int, float, str, bool
        unknown = set(data) - set(kinds)
        if unknown:
            raise TrainingConfigError(
                f"training: unknown keys {sorted(unknown)}; allowed: {sorted(kinds)}")
        try:
            check_settings(data, kinds, where="training")
        except SettingError as exc:
            raise TrainingConfigError(str(exc)) from None
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_types(cls) -> dict[str, str]:
        """Each field's JSON type (``integer``, ``number``, ``string``, ``boolean``): what a
        ``--config training={...}`` value, read as text, is converted to
        (``sacnn.workflow_config.coerce_overrides``). The schema leaves ``training`` to this
        class: its keys, defaults and allowed values are declared here only."""
        json_types = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}
        return {f.name: json_types[str(f.type)] for f in fields(cls)}


@dataclass(frozen=True)
class ModelSpec:
    """One trained model of the experiment: an architecture plus what it inherits.

    ``init_from`` names the earlier stage whose per-neuron weights initialise this one;
    ``load`` maps module prefixes of that stage to prefixes of this one (``alpha -> alpha``,
    ``readout.linear -> readout.centre``); ``freeze`` lists modules whose parameters stay
    fixed. A stage without ``init_from`` is trained from scratch (Simul.).
    """

    model: str
    architecture: str
    label: str = ""
    init_from: str | None = None
    load: tuple[tuple[str, str], ...] = ()
    freeze: tuple[str, ...] = ()
    combine_init: str = "identity"
    """Start of a decomposed (Incr.FC1) readout's combination layer: ``identity`` (weights
    (1, 0), bias 0: the stage starts as the model it inherits its centre from) or ``random``
    (PyTorch's default, seeded per neuron, as the released code does)."""

    def __post_init__(self) -> None:
        if self.combine_init not in COMBINE_INITS:
            raise TrainingConfigError(f"models.{self.model}.combine_init: "
                                      f"{self.combine_init!r}, expected one of {COMBINE_INITS}")
        if self.load and not self.init_from:
            raise TrainingConfigError(f"models.{self.model}.load: 'load' needs 'init_from'")
        if self.init_from == self.model:
            raise TrainingConfigError(f"models.{self.model}.init_from: a model cannot "
                                      "initialise from itself")

    @classmethod
    def from_dict(cls, model: str, data: Mapping[str, Any]) -> ModelSpec:
        """Parse ``{architecture, label, init_from, load: {src: dst} | [src], freeze: [...],
        combine_init}``: the keys, their types and values are declared here only (the schema
        leaves a model's entry to this class). Errors name the key, ``models.<model>``."""
        where = f"models.{model}"
        if not isinstance(data, Mapping):
            raise TrainingConfigError(f"{where}: expected a mapping of settings, got "
                                      f"{type(data).__name__}")
        unknown = set(data) - set(MODEL_KEYS)
        if unknown:
            raise TrainingConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: "
                                      f"{sorted(MODEL_KEYS)}")
        if "architecture" not in data:
            raise TrainingConfigError(f"{where}: missing key 'architecture'")
        try:
            check_settings(data, MODEL_KINDS, where=where)
        except SettingError as exc:
            raise TrainingConfigError(str(exc)) from None
        load = data.get("load") or {}
        if isinstance(load, Mapping):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in load.items()):
                raise TrainingConfigError(f"{where}: setting 'load': expected a list of module "
                                          f"names or a mapping of names to names, got {load!r}")
            pairs = tuple(load.items())
        else:
            try:
                check_settings({"load": load}, {"load": "strs"}, where=where)
            except SettingError as exc:
                raise TrainingConfigError(f"{exc} (or a mapping of names to names)") from None
            pairs = tuple((k, k) for k in load)
        return cls(model=model, architecture=data["architecture"],
                   label=data.get("label", ""), init_from=data.get("init_from"),
                   load=pairs, freeze=tuple(data.get("freeze") or ()),
                   combine_init=data.get("combine_init", "identity"))


def check_stage(stage: ModelSpec, spec: ArchitectureSpec,
                parent: ArchitectureSpec | None = None) -> None:
    """What a stage's ``combine_init``, ``load`` and ``freeze`` name, against the blocks of
    its architecture ``spec`` and of its parent stage's ``parent`` (:meth:`ArchitectureSpec.
    modules`), before any network is built; names inside a block (``alpha.0.conv``) are left
    to the job, which builds the network. Errors name ``models.<model>.<key>``."""
    where = f"models.{stage.model}"
    if stage.combine_init == "random" and spec.readout != "fcl_decomposed":
        raise TrainingConfigError(
            f"{where}.combine_init: 'random' needs a decomposed (FC1) readout, architecture "
            f"{spec.name!r} has {spec.readout!r}")

    def check(key: str, name: str, arch: ArchitectureSpec) -> None:
        known = arch.modules()
        blocks = [m for m in known if m.count(".") == 1]
        if name not in known and not any(name.startswith(b + ".") for b in blocks):
            raise TrainingConfigError(
                f"{where}.{key}: {name!r} is not a module of architecture {arch.name!r} "
                f"(it has {', '.join(known)})")

    for i, name in enumerate(stage.freeze):
        check(f"freeze[{i}]", name, spec)
    for src, dst in stage.load:
        if parent is not None:
            check(f"load.{src}", src, parent)
        check(f"load.{src}", dst, spec)
