"""``weights.pt``: the one writer and the readers of a chunk's trained networks.

A weights file holds plain tensors and strings (``format`` :data:`WEIGHTS_FORMAT`):
``neuron_ids``, ``state`` (each parameter and buffer stacked over the chunk's neurons),
``architecture`` (JSON of the spec), ``stage``, ``config``, ``code_version``, ``best_epoch``
and ``init_seeds`` (docs/architecture.md). It is untrusted input: it is read with
``torch.load(weights_only=True)``, never unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sacnn.fileio import write_torch
from sacnn.models import ArchitectureSpec, Network, build_network, spec_from_dict
from sacnn.provenance import code_version
from sacnn.training.config import ModelSpec, TrainConfig
from sacnn.training.state import CheckpointError, safe_torch_load, stack_states, unstack_states

if TYPE_CHECKING:
    from sacnn.training.chunk import ChunkResult

WEIGHTS_FORMAT = "sacnn-weights-v1"


def save_weights(result: ChunkResult, spec: ArchitectureSpec, stage: ModelSpec,
                 cfg: TrainConfig, site: str, path: str | Path) -> None:
    """Each neuron's best-epoch parameters and buffers, stacked along the first axis."""
    write_torch({
        "format": WEIGHTS_FORMAT,
        "site": site,
        "model": stage.model,
        "architecture": json.dumps(spec.to_dict()),
        "stage": json.dumps(stage.__dict__, default=list),
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "code_version": code_version(),
        "neuron_ids": [str(n) for n in result.neuron_ids],
        "best_epoch": torch.from_numpy(result.best_epoch),
        "init_seeds": torch.from_numpy(result.init_seeds),
        "state": stack_states(result.best_states),
    }, path)


def load_weights(path: str | Path) -> dict[str, Any]:
    """Read a weights file written by :func:`save_weights` (never unpickles)."""
    return safe_torch_load(path, WEIGHTS_FORMAT)


def weights_spec(w: dict[str, Any], path: str | Path) -> ArchitectureSpec:
    """The architecture a weights file was trained with (its ``architecture`` field)."""
    try:
        arch = json.loads(w["architecture"])
        return spec_from_dict(arch.get("name", "model"), arch)  # to_dict round-trips
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: field 'architecture' is missing or not the JSON of an "
                              f"architecture spec ({exc})") from None


def load_networks(weights_paths: str | Path | Sequence[str | Path],
                  dtype: torch.dtype = torch.float64) -> tuple[list[str], list[Network]]:
    """Per-neuron networks of one model, in eval mode, from its chunk weights files.

    ``weights_paths`` lists the chunks' ``weights.pt`` in chunk order; the result keeps
    that order (so it matches the dataset's neuron order). Returns ``(neuron_ids, nets)``
    with the ids as strings. Networks are cast to ``dtype`` (float64 by default, so that
    decompositions add up to the output to rounding error of float64).
    """
    if isinstance(weights_paths, (str, Path)):
        weights_paths = [weights_paths]
    if not weights_paths:
        raise ValueError("load_networks: no weights files given")
    ids: list[str] = []
    nets: list[Network] = []
    for path in weights_paths:
        w = load_weights(path)
        spec = weights_spec(w, path)
        for nid, state in zip(w["neuron_ids"], unstack_states(w["state"]), strict=True):
            net = build_network(spec)
            net.load_state_dict(state)
            ids.append(str(nid))
            nets.append(net.to(dtype).eval())
    return ids, nets
