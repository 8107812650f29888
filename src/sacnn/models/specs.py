"""Architectures as data: a frozen spec per model, parsed from config, buildable by name.

A spec is a list of layer tokens plus a readout and a channel count. Every model the paper
names (and the appendix variants) is an entry of ``NAMED_ARCHITECTURES``; a new architecture
is a config entry, not new code.

The layer and readout kinds a spec names are the registries of :mod:`sacnn.models.kinds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sacnn.models.kinds import LAYER_KINDS, READOUT_KINDS, LayerSpec, SpecError, parse_layer
from sacnn.settings import SettingError, check_settings


@dataclass(frozen=True)
class FeatureMap:
    """One feature map of a network (the input image or a layer's output) and where its
    hypercolumns sit on the input image.

    ``conv``: side after the layer's convolution, before any pooling; ``size``: side of the
    map. Hypercolumn ``i`` is centred on input pixel ``offset + stride * i`` (pixel-centre
    coordinates, 0 = first pixel) and sees an ``rf`` x ``rf`` pixel window.
    """

    conv: int
    size: int
    offset: float
    stride: int
    rf: int


@dataclass(frozen=True)
class ArchitectureSpec:
    """A per-neuron network: layers, readout and widths. Frozen so it can key caches."""

    name: str
    channels: int
    layers: tuple[LayerSpec, ...]
    readout: str
    attention_dim: int = 5
    dropout: float = 0.3
    input_size: int = 50
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"architecture {self.name!r}"
        if self.readout not in READOUT_KINDS:
            raise SpecError(f"{where}: readout {self.readout!r}, expected one of "
                            f"{tuple(READOUT_KINDS)}")
        if not isinstance(self.channels, int) or isinstance(self.channels, bool) \
                or self.channels < 1:
            raise SpecError(f"{where}: channels must be a positive integer, got {self.channels!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"{where}: dropout must be in [0, 1), got {self.dropout!r}")
        if self.attention_dim < 1:
            raise SpecError(f"{where}: attention_dim must be >= 1, got {self.attention_dim!r}")
        if self.input_size < 1:
            raise SpecError(f"{where}: input_size must be >= 1, got {self.input_size!r}")
        if not self.layers:
            raise SpecError(f"{where}: layers is empty")
        unknown = [layer.kind for layer in self.layers if layer.kind not in LAYER_KINDS]
        if unknown:
            raise SpecError(f"{where}: layer kind {unknown[0]!r}, expected one of "
                            f"{tuple(LAYER_KINDS)}")
        not_first = LAYER_KINDS[self.layers[0].kind].not_first
        if not_first:
            raise SpecError(f"{where}: {not_first}")
        if min(min(m.conv, m.size) for m in self.feature_maps()) < 1:
            raise SpecError(f"{where}: the layers shrink a {self.input_size}px input to nothing")
        size = self.output_size
        if READOUT_KINDS[self.readout].centred and size % 2 == 0:
            raise SpecError(f"{where}: a {self.readout} readout needs an odd final map, got {size}")

    def feature_maps(self) -> list[FeatureMap]:
        """The input image, then the output of every layer: the one walk of the geometry.

        Per layer a valid ``kernel`` x ``kernel`` window, then its kind's pooling (a 2x2
        max-pool after each alpha; attention keeps the map). The network, the cost model,
        the architecture drawings and the attention maps' placement on the image all read
        this list, so they cannot disagree.
        """
        size, offset, stride, rf = self.input_size, 0.0, 1, 1
        maps = [FeatureMap(size, size, offset, stride, rf)]
        for layer in self.layers:
            if layer.kernel > 1:
                size -= layer.kernel - 1
                offset += stride * (layer.kernel - 1) / 2
                rf += stride * (layer.kernel - 1)
            conv = size
            pool = LAYER_KINDS[layer.kind].pool
            if pool > 1:
                size //= pool
                offset += stride * (pool - 1) / 2
                rf += stride * (pool - 1)
                stride *= pool
            maps.append(FeatureMap(conv, size, offset, stride, rf))
        return maps

    def sizes(self) -> list[tuple[int, int]]:
        """Per layer, the side of its convolution's output and of its output
        (:meth:`feature_maps` without the input)."""
        return [(m.conv, m.size) for m in self.feature_maps()[1:]]

    @property
    def output_size(self) -> int:
        """Side of the final feature map, the one the readout sees."""
        return self.feature_maps()[-1].size

    def modules(self) -> list[str]:
        """The network's blocks and readout parts by the names stages load and freeze
        (``alpha``, ``alpha.0``, ..., ``readout``, ``readout.linear``): what a config's
        ``load`` and ``freeze`` can be checked against before a network is built."""
        names = []
        for group in dict.fromkeys(layer.group for layer in self.layers):
            count = sum(layer.group == group for layer in self.layers)
            names += [group, *(f"{group}.{i}" for i in range(count))]
        parts = READOUT_KINDS[self.readout].parts
        return [*names, "readout", *(f"readout.{p}" for p in parts)]

    @property
    def has_attention(self) -> bool:
        return any(LAYER_KINDS[layer.kind].attention for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """The spec as config data (weights files and figure parameters hold it as JSON);
        :func:`spec_from_dict` reads it back. ``description`` is left out: it is prose."""
        return {
            "name": self.name,
            "channels": self.channels,
            "layers": [layer.token for layer in self.layers],
            "readout": self.readout,
            "attention_dim": self.attention_dim,
            "dropout": self.dropout,
            "input_size": self.input_size,
        }


#: The keys of an architecture's config entry and their kinds (``sacnn.settings``): the
#: one declaration of them (the config schema leaves ``architectures`` to
#: :func:`spec_from_dict`; ``--config`` values get their types from :func:`spec_field_types`).
_SPEC_KINDS = {"name": "str", "channels": "int", "layers": "strs", "readout": "str",
               "attention_dim": "int", "dropout": "float", "input_size": "int",
               "description": "str", "base": "str"}
_SPEC_KEYS = set(_SPEC_KINDS)


def spec_field_types() -> dict[str, str]:
    """Each key's JSON type (``integer``, ``number``, ``string``, ``array``): what a
    ``--config architectures={...}`` value, read as text, is converted to
    (``sacnn.workflow_config.coerce_overrides``), as ``TrainConfig.field_types`` does for
    ``training``."""
    json_types = {"int": "integer", "float": "number", "str": "string", "strs": "array"}
    return {key: json_types[kind] for key, kind in _SPEC_KINDS.items()}


def _layers(name: str, tokens: Any) -> tuple[LayerSpec, ...]:
    layers = []
    for i, token in enumerate(tokens):
        try:
            layers.append(parse_layer(token))
        except SpecError as exc:
            raise SpecError(f"architecture {name!r}: layers[{i}]: {exc}") from None
    return tuple(layers)


def spec_from_dict(name: str, data: Mapping[str, Any],
                   known: Mapping[str, ArchitectureSpec] | None = None) -> ArchitectureSpec:
    """Build a spec from a config mapping; ``base: <name>`` starts from a named spec.

    Every key is checked here (the config schema leaves ``architectures`` to this function):
    unknown keys are refused so that a typo in config fails at once, every value's type
    (``channels``, ``attention_dim`` and ``input_size`` integers, not booleans; ``dropout``
    a number; ``layers`` a list of layer tokens; ``readout``, ``description`` and ``base``
    strings), then their values (the spec's own checks: ranges, a known readout and layer
    kinds, a known ``base``), each message naming the architecture and the key. ``name`` may
    be given (``ArchitectureSpec.to_dict()`` holds it, so the two round-trip) but must agree
    with ``name``.
    """
    if not isinstance(data, Mapping):
        raise SpecError(f"architecture {name!r}: expected a mapping of its keys "
                        f"({sorted(_SPEC_KEYS)}), got {data!r}")
    unknown = set(data) - _SPEC_KEYS
    if unknown:
        raise SpecError(f"architecture {name!r}: unknown keys {sorted(unknown)}; "
                        f"allowed: {sorted(_SPEC_KEYS)}")
    try:
        check_settings(data, _SPEC_KINDS, where=f"architecture {name!r}")
    except SettingError as exc:
        raise SpecError(str(exc)) from None
    if "name" in data and data["name"] != name:
        raise SpecError(f"architecture {name!r}: its data names it {data['name']!r}")
    known = NAMED_ARCHITECTURES if known is None else known
    if "base" in data:
        if data["base"] not in known:
            raise SpecError(f"architecture {name!r}: base {data['base']!r} is not a known "
                            f"architecture ({sorted(known)})")
        base = known[data["base"]]
        changes: dict[str, Any] = {k: v for k, v in data.items()
                                   if k not in ("name", "base", "layers")}
        if "layers" in data:
            changes["layers"] = _layers(name, data["layers"])
        return replace(base, name=name, **changes)
    missing = {"channels", "layers", "readout"} - set(data)
    if missing:
        raise SpecError(f"architecture {name!r}: missing keys {sorted(missing)}")
    return ArchitectureSpec(
        name=name,
        channels=int(data["channels"]),
        layers=_layers(name, data["layers"]),
        readout=str(data["readout"]),
        attention_dim=int(data.get("attention_dim", 5)),
        dropout=float(data.get("dropout", 0.3)),
        input_size=int(data.get("input_size", 50)),
        description=str(data.get("description", "")),
    )


def _spec(name: str, channels: int, layers: list[str], readout: str, description: str
          ) -> ArchitectureSpec:
    return ArchitectureSpec(name=name, channels=channels,
                            layers=tuple(parse_layer(t) for t in layers),
                            readout=readout, description=description)


_A, _B3, _B1 = "alpha", "beta(k=3)", "beta(k=1)"
_SA_V, _SA_ID = "sa(gamma=true)", "sa(gamma=false)"

#: Every architecture the paper names, by the paper's label (Fig. 2, Fig. 3, appendix).
NAMED_ARCHITECTURES: dict[str, ArchitectureSpec] = {
    s.name: s
    for s in [
        _spec("ff-CNN", 32, [_A, _A, _B3, _B3], "fcl", "Fig. 2a: baseline feedforward CNN"),
        _spec("ff+sa-CNN", 30, [_A, _A, _SA_V, _B3, _B3], "fcl",
              "Fig. 2b: ff-CNN with self-attention after the alpha blocks"),
        _spec("rf-CNN", 32, [_A, _A, _B1, _B1], "ctl",
              "Fig. 2c: receptive-field CNN (1x1 beta, centre readout)"),
        _spec("rf+sa-CNN", 30, [_A, _A, _SA_ID, _B1, _B1], "ctl",
              "Fig. 2d: rf-CNN with self-attention, V not mapped (gamma = False)"),
        _spec("rf-CNN (c=30)", 30, [_A, _A, _B1, _B1], "ctl",
              "Fig. 3a: stage 1 of the incremental chain (c=30 so its alpha blocks fit rf+sa-CNN*)"),
        _spec("rf+sa-CNN*", 30, [_A, _A, _SA_V, _B1, _B1], "ctl",
              "Fig. 3b: rf+sa-CNN with gamma = True"),
        _spec("ff+sa-CNN*", 30, [_A, _A, _SA_V, _B1, _B1], "fcl",
              "Fig. 3c-d: ff+sa-CNN with 1x1 beta blocks"),
        _spec("ff+sa-CNN* (FC1)", 30, [_A, _A, _SA_V, _B1, _B1], "fcl_decomposed",
              "Fig. 3c: ff+sa-CNN* whose FCL is split into centre, surround and combination"),
        _spec("rf+sa-CNN (c=375)", 375, [_A, _A, _SA_ID, _B1, _B1], "ctl",
              "A.2: rf+sa-CNN with a 375->1 centre readout"),
        _spec("ff+sa-CNN (no beta)", 30, [_A, _A, _SA_V], "fcl",
              "A.3: self-attention without post-SA beta blocks, FCL readout"),
        _spec("rf+sa-CNN (no beta)", 30, [_A, _A, _SA_ID], "ctl",
              "A.3: self-attention without post-SA beta blocks, CTL readout"),
        _spec("alpha-alpha-SA-beta3-beta3-CTL", 30, [_A, _A, _SA_V, _B3, _B3], "ctl",
              "A.3: 3x3 beta blocks convolve the surround into a centre readout"),
    ]
}


def get_architecture(name: str,
                     extra: Mapping[str, Mapping[str, Any]] | None = None) -> ArchitectureSpec:
    """Look up an architecture by name, in config-defined ``extra`` specs first."""
    if extra and name in extra:
        return spec_from_dict(name, extra[name])
    if name not in NAMED_ARCHITECTURES:
        raise SpecError(f"unknown architecture {name!r}; known: {sorted(NAMED_ARCHITECTURES)}"
                        + (f" and {sorted(extra)}" if extra else ""))
    return NAMED_ARCHITECTURES[name]
