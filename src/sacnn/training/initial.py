"""A chunk's state before its first epoch: seeded per neuron, with inherited blocks.

A neuron's initial weights (and its dropout stream) are seeded from (seed, site, model,
neuron), never from its chunk; an incremental stage loads the blocks it names from the
weights of the stage it starts from and freezes what it names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sacnn.models import ArchitectureSpec, DecomposedReadout, build_network
from sacnn.seeding import derive_seed
from sacnn.training.config import ModelSpec, TrainConfig, TrainingConfigError
from sacnn.training.runners import DTYPES
from sacnn.training.state import (
    CheckpointError,
    ChunkState,
    NeuronState,
    model_state,
    trainable_names,
    unstack_states,
)
from sacnn.training.weights import load_weights


def neuron_seed(cfg: TrainConfig, site: str, model: str, neuron: Any, purpose: str,
                *more: Any) -> int:
    """Seed of one neuron's random stream (init or dropout): never depends on chunking."""
    return derive_seed(cfg.seed, site, model, neuron, purpose, *more)


def initial_state(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, site: str,
                  neuron: Any, inherited: dict[str, torch.Tensor] | None) -> NeuronState:
    """A neuron's state before its first epoch: seeded init, inherited blocks, no Adam moments."""
    net = build_network(spec, seed=neuron_seed(cfg, site, stage.model, neuron, "init"))
    if stage.combine_init == "random":
        if not isinstance(net.readout, DecomposedReadout):
            raise TrainingConfigError(
                f"model {stage.model!r}: combine_init 'random' needs a decomposed (FC1) "
                f"readout, {spec.name!r} has {spec.readout!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(neuron_seed(cfg, site, stage.model, neuron, "combine_init"))
            net.readout.combine.reset_parameters()
    net = net.to(DTYPES[cfg.dtype])
    if stage.init_from:
        assert inherited is not None
        own = net.state_dict()
        for src, dst in stage.load:
            keys = [k for k in inherited if k == src or k.startswith(src + ".")]
            if not keys:
                raise CheckpointError(f"model {stage.model!r}: the weights of {stage.init_from!r} "
                                      f"have no module {src!r} to load")
            for k in keys:
                target = dst + k[len(src):]
                if target not in own:
                    raise CheckpointError(f"model {stage.model!r}: {stage.init_from!r} field {k!r} "
                                          f"has no counterpart {target!r} in {spec.name!r}")
                if own[target].shape != inherited[k].shape:
                    raise CheckpointError(
                        f"model {stage.model!r}: field {k!r} of {stage.init_from!r} has shape "
                        f"{tuple(inherited[k].shape)}, expected {tuple(own[target].shape)} "
                        f"for {target!r} of {spec.name!r}")
                own[target] = inherited[k].to(own[target].dtype)
        net.load_state_dict(own)
    if stage.freeze:
        net.freeze(stage.freeze, cfg.frozen_mode)
    return NeuronState(model=model_state(net),
                       adam={n: {} for n in trainable_names(net)}, step=0)


def initial_chunk_state(spec: ArchitectureSpec, stage: ModelSpec, cfg: TrainConfig, site: str,
                         neuron_ids: list, init_weights: str | Path | None) -> ChunkState:
    """Seeded initial weights, with the blocks an incremental stage inherits loaded."""
    inherited: dict[str, dict[str, torch.Tensor]] = {}
    if stage.init_from:
        if init_weights is None:
            raise TrainingConfigError(f"model {stage.model!r} starts from "
                                      f"{stage.init_from!r}: pass its weights file")
        w = load_weights(init_weights)
        ids = [str(i) for i in w["neuron_ids"]]
        missing = [n for n in neuron_ids if str(n) not in ids]
        if missing:
            raise CheckpointError(f"{init_weights}: field 'neuron_ids' lacks neurons "
                                  f"{missing[:5]} of this chunk")
        inherited = {str(n): s for n, s in zip(ids, unstack_states(w["state"]))}
    return ChunkState.from_neurons([initial_state(spec, stage, cfg, site, n,
                                                  inherited.get(str(n)))
                                    for n in neuron_ids])
