"""What each kind of layer and readout is, as data: the registries a spec names its kinds from.

A kind is torch-free data (syntax, parameter group, geometry, cost, drawing); its network
module is in ``sacnn.models.layers.LAYER_MODULES`` or ``sacnn.models.readouts.READOUT_MODULES``
under the same name. ``details(layer, spec)`` of a layer kind receives the layer's
:class:`sacnn.models.specs.ArchitectureSpec` (typed ``Any`` here: the spec imports this module).

Layer tokens (the registry :data:`LAYER_KINDS`: what the spec, the cost model, the analysis
and the drawings know of a kind; its network module of the same name is in
``sacnn.models.layers.LAYER_MODULES``):
  ``alpha``            5x5 conv, 2x2 max-pool, batch norm, sigmoid (alpha-CPB)
  ``beta(k=K)``        KxK conv, batch norm, sigmoid (beta-CPB, no pooling)
  ``sa(gamma=true)``   single-head self-attention over hypercolumns, V mapped (gamma = True)
  ``sa(gamma=false)``  the same with V = the input (no value/output projection)
Readouts: ``fcl`` (fully connected over all hypercolumns), ``ctl`` (centre hypercolumn only),
``fcl_decomposed`` (centre part + surround part + 2->1 combination; used by Incr.FC1): the
registry :data:`READOUT_KINDS` (what the spec, the cost model and the drawings know of a
kind) and its network module of the same name in ``sacnn.models.readouts``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReadoutKind:
    """A kind of readout as data: what a spec, the cost model and the drawings know of it
    (its network module, torch, is ``sacnn.models.readouts.READOUT_MODULES[name]``).

    ``parts``: its ``readout.<part>`` modules, the names incremental stages load and
    freeze; ``centred``: it reads the centre hypercolumn, so the final map must be odd;
    ``inputs``, ``macs`` and ``parameters``: features read, multiply-accumulates per image
    and trainable parameters, of ``channels`` and ``hw`` (the final map's positions).
    """

    name: str
    title: str                                   # its name in the architecture drawings
    parts: tuple[str, ...]
    centred: bool
    inputs: Callable[[int, int], int]
    macs: Callable[[int, int], int]
    parameters: Callable[[int, int], int]


#: The readout kinds, by the name an architecture's ``readout`` gives.
READOUT_KINDS = {kind.name: kind for kind in (
    ReadoutKind("fcl", "FCL", ("linear",), centred=False, inputs=lambda c, hw: c * hw,
                macs=lambda c, hw: c * hw, parameters=lambda c, hw: c * hw + 1),
    ReadoutKind("ctl", "CTL", ("linear",), centred=True, inputs=lambda c, hw: c,
                macs=lambda c, hw: c, parameters=lambda c, hw: c + 1),
    ReadoutKind("fcl_decomposed", "FCL (decomposed)", ("centre", "surround", "combine"),
                centred=True, inputs=lambda c, hw: c * hw, macs=lambda c, hw: c * hw + 2,
                parameters=lambda c, hw: c + 1 + c * (hw - 1) + 1 + 3),
)}

_TOKEN = re.compile(r"^\s*(?P<kind>\w+)\s*(?:\((?P<args>[^)]*)\))?\s*$")


class SpecError(ValueError):
    """An architecture spec that cannot be built; the message names the field."""


@dataclass(frozen=True)
class LayerSpec:
    """One processing block: ``kind`` names its entry in :data:`LAYER_KINDS` (alpha, beta,
    sa); ``kernel`` is the side of the window it convolves over (1: each hypercolumn alone,
    as attention does), ``v_mapping`` the attention's gamma."""

    kind: str
    kernel: int = 5
    v_mapping: bool = True

    @property
    def token(self) -> str:
        """The token that :func:`parse_layer` reads back to this layer."""
        return LAYER_KINDS[self.kind].token(self)

    @property
    def group(self) -> str:
        """The network's module list that holds this block (its parameter-name prefix), as
        incremental stages load and freeze it: ``alpha``, ``attention`` or ``beta``."""
        return LAYER_KINDS[self.kind].group


@dataclass(frozen=True)
class LayerKind:
    """A kind of layer as data: what a spec, the cost model, the analysis and the drawings
    know of it (its network module, torch, is ``sacnn.models.layers.LAYER_MODULES[name]``).

    Syntax: ``syntax`` is its token as an error shows it; ``parse(args, token)`` the
    :class:`LayerSpec` of a token's ``key=value`` arguments (lower case), raising
    :class:`SpecError` naming the token; ``token(layer)`` the token back.
    ``group``: the network's module list holding its blocks, so their parameter names
    (``<group>.<i>``), the names incremental stages load and freeze.
    Geometry: a valid ``layer.kernel`` x ``layer.kernel`` window (1 keeps the map's side),
    then ``pool`` x ``pool`` pooling of stride ``pool`` (1: none); every block outputs the
    spec's ``channels``. ``not_first``: why it cannot be the first layer (None: it can).
    ``attention``: its module's ``attend(x)`` returns (output, attention (B, HW, HW)) in
    evaluation mode (``Network.attention_maps``, Fig. 10).
    Cost, with ``conv`` the side of its window's output, ``size`` of its output, ``c_in`` and
    ``c`` channels in and out and ``d`` the spec's ``attention_dim``: ``macs(layer, conv,
    c_in, c, d)`` multiply-accumulates per image; ``parameters(layer, c_in, c, d)`` trainable
    parameters (its batch norm's included); ``activation_bytes(layer, conv, size, c, d)``
    the bytes a stacked bf16 training step keeps for its backward; ``released_extra(layer,
    c, d)`` the parameters the released code has on top of ours (none for a new kind).
    Drawings: ``details(layer, spec)`` its fields in a row of
    ``sacnn.analysis.architecture_layers``; its box is ``colour`` and reads ``title``, then
    ``label(row, compact)`` when given, then the output's shape.
    """

    name: str
    syntax: str
    parse: Callable[[Mapping[str, str], str], LayerSpec]
    token: Callable[[LayerSpec], str]
    group: str
    title: str
    colour: str
    macs: Callable[[LayerSpec, int, int, int, int], int]
    parameters: Callable[[LayerSpec, int, int, int], int]
    activation_bytes: Callable[[LayerSpec, int, int, int, int], int]
    pool: int = 1
    not_first: str | None = None
    attention: bool = False
    details: Callable[[LayerSpec, Any], dict[str, Any]] = lambda layer, spec: {}
    label: Callable[[Mapping[str, Any], bool], str] | None = None
    released_extra: Callable[[LayerSpec, int, int], int] = lambda layer, c, d: 0


def _alpha(kv: Mapping[str, str], token: str) -> LayerSpec:
    if kv:
        raise SpecError(f"layer {token!r}: alpha takes no arguments (5x5 conv, 2x2 pool)")
    return LayerSpec("alpha", kernel=5)


def _beta(kv: Mapping[str, str], token: str) -> LayerSpec:
    if set(kv) != {"k"} or not kv["k"].isdigit() or int(kv["k"]) % 2 == 0:
        raise SpecError(f"layer {token!r}: beta needs one odd kernel size, e.g. beta(k=3)")
    return LayerSpec("beta", kernel=int(kv["k"]))


def _sa(kv: Mapping[str, str], token: str) -> LayerSpec:
    if set(kv) - {"gamma"} or kv.get("gamma", "true") not in ("true", "false"):
        raise SpecError(f"layer {token!r}: sa takes gamma=true or gamma=false")
    return LayerSpec("sa", kernel=1, v_mapping=kv.get("gamma", "true") == "true")


def _conv_macs(layer: LayerSpec, conv: int, c_in: int, c: int, d: int) -> int:
    return conv * conv * c * c_in * layer.kernel ** 2


def _conv_parameters(layer: LayerSpec, c_in: int, c: int, d: int) -> int:
    return c_in * c * layer.kernel ** 2 + 2 * c  # convolution (no bias), batch norm


def _sa_macs(layer: LayerSpec, conv: int, c_in: int, c: int, d: int) -> int:
    """Query and key projections, q.k and attention.v (values: d or all c channels)."""
    hw = conv * conv
    macs = 2 * hw * d * c + hw * hw * d + hw * hw * (d if layer.v_mapping else c)
    if layer.v_mapping:
        macs += 2 * hw * d * c  # value and output projections
    return macs


def _sa_parameters(layer: LayerSpec, c_in: int, c: int, d: int) -> int:
    v = 2 * c * d + d + c if layer.v_mapping else 0
    return c * d + d + c * d + v + 1 + 2 * c  # query, key, value + project, gain, batch norm


def _sa_activation_bytes(layer: LayerSpec, conv: int, size: int, c: int, d: int) -> int:
    """Input, projections, attention map, output, batch norm, sigmoid (float32)."""
    hw, dv = size * size, d if layer.v_mapping else c
    return 4 * (hw * c * 4 + hw * (2 * d + dv) + hw * hw)


def _sa_released_extra(layer: LayerSpec, c: int, d: int) -> int:
    """The key bias; for gamma = False the value and output projections, built, unused."""
    return d + (0 if layer.v_mapping else (c * d + d) + (d * c + c))


#: Bytes a training step keeps per activation element of the stacked bf16 step (the
#: measured default path, sacnn.models.stacked): a pooled block keeps its convolution's
#: float32 output for the max-pool's backward, and per pooled element int64 indices (8),
#: the batch norm's float32 input (4), the sigmoid's output (4) and the bfloat16 copy the
#: next convolution reads (2); a block without pooling the last three.
_POOL_INPUT_BYTES, _POOLED_BYTES, _PLAIN_BYTES = 4, 18, 10


def _conv_details(layer: LayerSpec, spec: Any) -> dict[str, Any]:
    return {"kernel": layer.kernel, "pool": layer.kind == "alpha"}


def _conv_label(pool: str) -> Callable[[Mapping[str, Any], bool], str]:
    def label(row: Mapping[str, Any], compact: bool) -> str:
        return f"{'' if compact else 'conv '}{row['kernel']}×{row['kernel']}{pool}"
    return label


def _sa_label(row: Mapping[str, Any], compact: bool) -> str:
    width = "" if compact else f", d={row['attention_dim']}"
    return f"γ={'True' if row['v_mapping'] else 'False'}{width}"


#: The layer kinds, by the name a token starts with, in the order the network holds their
#: module lists (so its ``state_dict``'s order: alpha, attention, beta, then a new kind's).
LAYER_KINDS: dict[str, LayerKind] = {kind.name: kind for kind in (
    LayerKind("alpha", "alpha", _alpha, lambda layer: "alpha", group="alpha", title="αCPB",
              colour="#9ecae1", macs=_conv_macs, parameters=_conv_parameters, pool=2,
              activation_bytes=lambda layer, conv, size, c, d: (
                  _POOL_INPUT_BYTES * conv * conv * c + _POOLED_BYTES * size * size * c),
              details=_conv_details, label=_conv_label(", pool 2"),
              released_extra=lambda layer, c, d: c),
    LayerKind("sa", "sa(gamma=true|false)", _sa,
              lambda layer: f"sa(gamma={'true' if layer.v_mapping else 'false'})",
              group="attention", title="SA", colour="#fdae6b", macs=_sa_macs,
              parameters=_sa_parameters, activation_bytes=_sa_activation_bytes,
              not_first="self-attention cannot be the first layer (it needs a feature map)",
              attention=True,
              details=lambda layer, spec: {"v_mapping": layer.v_mapping,
                                           "attention_dim": spec.attention_dim},
              label=_sa_label, released_extra=_sa_released_extra),
    LayerKind("beta", "beta(k=<odd int>)", _beta, lambda layer: f"beta(k={layer.kernel})",
              group="beta", title="βCPB", colour="#a1d99b", macs=_conv_macs,
              parameters=_conv_parameters,
              activation_bytes=lambda layer, conv, size, c, d: _PLAIN_BYTES * conv * conv * c,
              details=_conv_details, label=_conv_label(""),
              released_extra=lambda layer, c, d: c),
)}


def parse_layer(token: str) -> LayerSpec:
    """Parse one layer token such as ``beta(k=3)`` or ``sa(gamma=false)``."""
    m = _TOKEN.match(str(token))
    if not m or m.group("kind") not in LAYER_KINDS:
        known = [f"'{kind.syntax}'" for _, kind in sorted(LAYER_KINDS.items())]
        raise SpecError(f"layer {token!r}: expected {', '.join(known[:-1])} or {known[-1]}")
    kind, args = m.group("kind"), m.group("args") or ""
    kv: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in args.split(","))):
        if "=" not in part:
            raise SpecError(f"layer {token!r}: argument {part!r} is not of the form key=value")
        k, v = (s.strip().lower() for s in part.split("=", 1))
        kv[k] = v
    return LAYER_KINDS[kind].parse(kv, str(token))
