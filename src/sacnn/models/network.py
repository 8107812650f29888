"""The per-neuron network (its blocks: ``sacnn.models.layers``; readouts:
``sacnn.models.readouts``).

Dropout masks can be passed in explicitly. The trainer draws them with the counter-based hash
of :mod:`sacnn.models.dropout`, so a neuron's masks do not depend on which other neurons share
its chunk or on the execution strategy (per-model loop or stacked models on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sacnn.models.dropout import dropout_masks
from sacnn.models.kinds import LAYER_KINDS, SpecError
from sacnn.models.layers import LAYER_MODULES
from sacnn.models.readouts import READOUT_MODULES, Readout
from sacnn.models.specs import ArchitectureSpec


class Network(nn.Module):
    """One neuron's model, built from an :class:`ArchitectureSpec`.

    Blocks live in one list per layer kind's group (``alpha``, ``attention``, ``beta``:
    ``LayerSpec.group``) plus a ``readout``, so parameter names (``alpha.1.conv.weight``)
    are stable across the architectures of an incremental chain and stages can load each
    other's blocks. Each block is its kind's module (``sacnn.models.layers.LAYER_MODULES``).
    """

    def __init__(self, spec: ArchitectureSpec) -> None:
        super().__init__()
        self.spec = spec
        for name in dict.fromkeys(kind.group for kind in LAYER_KINDS.values()):
            setattr(self, name, nn.ModuleList())  # every group, in the registry's order
        self.order: list[tuple[str, int]] = []
        channels_in, c, n = 1, spec.channels, len(spec.layers)
        for i, layer in enumerate(spec.layers):
            p = 0.0 if i == n - 1 else spec.dropout  # no dropout right before the readout
            block = LAYER_MODULES[layer.kind].build(layer, spec, channels_in, p)
            group = getattr(self, layer.group)
            group.append(block)
            self.order.append((layer.group, len(group) - 1))
            channels_in = c
        self.readout: Readout = READOUT_MODULES[spec.readout](c, spec.output_size)
        self.frozen: tuple[str, ...] = ()
        self.frozen_mode = "eval"

    # -- dropout ------------------------------------------------------------------------
    def dropout_channels(self) -> list[int]:
        """Channels of each dropout site, in forward order (one mask per site)."""
        return [self.spec.channels for g, i in self.order if getattr(self, g)[i].p > 0]

    def draw_masks(self, batch: int, key: int, step: int,
                   dtype: torch.dtype = torch.float32) -> list[Tensor]:
        """Dropout2d masks (B, C, 1, 1) for every site at optimiser step ``step``.

        ``key`` is the neuron's :func:`~sacnn.models.dropout.neuron_key`. Masks are drawn
        for all sites, frozen ones included, and depend on (key, step) alone: the stacked
        GPU path draws the same masks for this neuron whatever its chunk.
        """
        channels = self.dropout_channels()
        if not channels:
            return []
        masks = dropout_masks([key], [step], batch, channels, self.spec.dropout, dtype)
        return [masks[0, s, 0, :, :c].reshape(batch, c, 1, 1) for s, c in enumerate(channels)]

    # -- forward ------------------------------------------------------------------------
    def features(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        """The final feature map (B, C, H, W) that the readout sees."""
        site = 0
        for group, i in self.order:
            block = getattr(self, group)[i]
            mask = None
            if block.p > 0:
                mask = masks[site] if masks is not None else None
                site += 1
            x = block(x, mask)
        return x

    def forward(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        """Predicted response, shape (B,), for images x of shape (B, 1, H, W)."""
        return self.readout(self.features(x, masks))

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Attention (B, HW, HW) of every self-attention layer, in eval mode semantics."""
        maps = []
        for (group, i), layer in zip(self.order, self.spec.layers, strict=True):
            block = getattr(self, group)[i]
            if LAYER_KINDS[layer.kind].attention:
                x, att = block.attend(x)
                maps.append(att)
            else:
                x = block(x, None)
        return maps

    # -- incremental learning -----------------------------------------------------------
    def freeze(self, modules: Sequence[str], mode: str = "eval") -> None:
        """Fix the parameters of the named submodules (``alpha``, ``readout.centre`` ...).

        ``mode="eval"`` also keeps the frozen blocks in evaluation mode while training, so
        their batch-norm statistics and dropout are frozen too; ``"train"`` keeps them in
        training mode as the released code does (statistics drift, dropout stays on).
        """
        if mode not in ("eval", "train"):
            raise ValueError(f"frozen_mode must be 'eval' or 'train', got {mode!r}")
        for name in modules:
            try:
                module = self.get_submodule(name)
            except AttributeError as err:
                raise SpecError(f"architecture {self.spec.name!r}: cannot freeze {name!r}: "
                                "no such module") from err
            for p in module.parameters():
                p.requires_grad_(False)
        self.frozen = tuple(modules)
        self.frozen_mode = mode
        self.train(self.training)

    def train(self, mode: bool = True) -> Network:
        super().train(mode)
        if self.frozen_mode == "eval":
            for name in self.frozen:
                self.get_submodule(name).train(False)
        return self


def build_network(spec: ArchitectureSpec, seed: int | None = None) -> Network:
    """Build a network; with ``seed`` its initial weights depend on that seed alone.

    PyTorch's default initialisation draws from the global generator, so the build runs in
    a forked RNG state: the caller's random stream is left untouched.
    """
    if seed is None:
        return Network(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return Network(spec)
