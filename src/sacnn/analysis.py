"""Computations behind the figures: trained networks, tuning curves, readout decompositions,
attention maps and the choice of an example neuron. No plotting here (see ``sacnn.plots``).

Conventions: responses and predictions are arrays shaped ``(neurons, images)``; a tuning
curve is rank-ordered from the strongest image (rank 0) to the weakest; neuron ids are
compared as strings (NetCDF and CSV files may store them as integers or text).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from sacnn.metrics import (
    peak_reach,
    peak_tuning_joint,
    peak_tuning_separate,
    pearson,
    summarize,
)
from sacnn.models import ArchitectureSpec, DecomposedReadout, Network, SelfAttention
from sacnn.models.kinds import LAYER_KINDS, READOUT_KINDS
from sacnn.training.weights import load_networks  # the figures' way to the trained networks

__all__ = [
    "EXAMPLE_RULES",
    "architecture_layers",
    "attention_surround_effect",
    "centre_attention",
    "centre_share",
    "choose_example_neuron",
    "fcl_contributions",
    "fcl_decomposition",
    "feature_grid",
    "load_networks",
    "metrics_from_predictions",
    "one_thread",
    "population_tuning",
    "pt_summary",
    "rank_ordered_tuning",
    "readout_bias",
    "surround_attention",
]


# ------------------------------------------------------------------------------- networks


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside: a convolution's sum order depends on the thread
    count, so a number a job computes by a forward pass (centre_share, the ground truth's
    probes) would otherwise depend on the machine's cores (1e-10 apart between 1 and 2
    threads on the demo's ff+sa-CNN), and the same config would not give the same numbers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _images_tensor(images: Any, net: Network) -> torch.Tensor:
    """(B, H, W) or (B, 1, H, W) array-like -> (B, 1, H, W) tensor of the net's dtype."""
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images must be shaped (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")
    return x.to(next(net.parameters()).dtype)


def readout_bias(net: Network) -> float:
    """The constant term of the readout: the prediction for an all-zero final feature map
    (``Readout.bias_term``; for Incr.FC1 every bias pushed through the combination)."""
    return float(net.readout.bias_term().detach())


@torch.no_grad()
def fcl_contributions(net: Network, images: Any, batch: int = 500) -> np.ndarray:
    """Contribution of every hypercolumn of the final feature map to the prediction.

    ``contribution[b, h, w] = sum_c W[c, h, w] * x_b[c, h, w]`` with ``x_b`` the final
    feature map of image b in eval mode and ``W`` the readout's effective weight of that
    position: the FCL weight, the CTL weight at the centre (zero elsewhere), or for the
    decomposed readout the centre/surround weights times their combination weights. The
    prediction is ``contribution[b].sum() + readout_bias(net)``. Returns (B, H, W) float64.
    """
    net.eval()
    x = _images_tensor(images, net)
    w = net.readout.weight_map().detach().to(x.dtype)
    out = [torch.einsum("bchw,chw->bhw", net.features(x[s:s + batch]), w)
           for s in range(0, len(x), batch)]
    return torch.cat(out).double().numpy()


@torch.no_grad()
def fcl_decomposition(net: Network, images: Any, batch: int = 500
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Split each prediction into ``centre + surround + bias``.

    ``centre[b]``: the contribution of the centre hypercolumn; ``surround[b]``: the summed
    contribution of all other hypercolumns; ``bias``: :func:`readout_bias`, attributed to
    neither. For a DecomposedReadout the terms are its ``parts()`` times the combination
    weights (the centre and surround branches as trained); otherwise they come from
    :func:`fcl_contributions`. Returns ``(centre (B,), surround (B,), bias)``.
    """
    net.eval()
    r = net.readout
    if isinstance(r, DecomposedReadout):
        x = _images_tensor(images, net)
        a_c, a_s = r.combine.weight.detach()[0]
        cs, ss = [], []
        for s in range(0, len(x), batch):
            c_part, s_part = r.parts(net.features(x[s:s + batch]))
            cs.append(a_c * (c_part - r.centre.bias[0]))
            ss.append(a_s * (s_part - r.surround.bias[0]))
        return (torch.cat(cs).double().numpy(), torch.cat(ss).double().numpy(),
                readout_bias(net))
    contrib = fcl_contributions(net, images, batch)
    size = contrib.shape[-1]
    centre = contrib[:, size // 2, size // 2].copy()
    surround = contrib.sum(axis=(1, 2)) - centre
    return centre, surround, readout_bias(net)


def centre_share(net: Network, images: Any) -> float:
    """How much of the readout the centre hypercolumn carries, in [0, 1] (Fig. 7's claim).

    ``mean |centre| / (mean |centre| + mean |surround|)`` over ``images`` with the terms of
    :func:`fcl_decomposition` (the bias belongs to neither): 1 for a centre-only readout,
    1 / (H W) when the H x W hypercolumns contribute evenly (1/81 on the 9 x 9 map of the
    starred models of Fig. 7, 1/25 on ff-CNN's 5 x 5: docs/models.md). NaN if both terms
    vanish.
    The mean of magnitudes, not of signed terms, so that surround terms of opposite sign
    do not cancel into an apparent centre dominance.
    """
    centre, surround, _ = fcl_decomposition(net, images)
    c, s = float(np.abs(centre).mean()), float(np.abs(surround).mean())
    return c / (c + s) if c + s > 0 else float("nan")


@torch.no_grad()
def centre_attention(net: Network, images: Any, layer: int = 0) -> np.ndarray:
    """Attention weights of the centre hypercolumn's query over all keys, (B, H, W).

    Row ``(H // 2) * W + W // 2`` of the ``layer``-th self-attention map (B, HW, HW) in
    eval mode, reshaped to the feature map that layer sees; each map sums to 1 (softmax
    over keys).
    """
    net.eval()
    maps = net.attention_maps(_images_tensor(images, net))
    if not maps:
        raise ValueError(f"architecture {net.spec.name!r} has no self-attention layer")
    att = maps[layer]
    hw = att.shape[-1]
    side = round(hw ** 0.5)
    if side * side != hw:
        raise ValueError(f"attention over {hw} positions is not a square feature map")
    row = (side // 2) * side + side // 2
    return att[:, row, :].reshape(-1, side, side).double().numpy()


@torch.no_grad()
def surround_attention(sa: SelfAttention, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """What the attention outside the centre hypercolumn adds to the layer's output there.

    The layer's output at position i is ``x_i + g * sum_j a_ij u_j`` (``SelfAttention.attend``)
    with ``g`` the residual gain, ``a`` the attention (softmax over the keys j) and ``u_j``
    position j's value in the output's channels: ``project(value(x_j))`` for a V-mapped layer
    (the paper's gamma = True; the projection is affine and every attention row sums to 1, so
    its bias is part of each ``u_j``), ``x_j`` itself for an unmapped layer. For the centre
    hypercolumn c (row ``(H // 2) * W + W // 2``) returns, per image of ``x`` (B, C, H, W),
    ``s = || g * sum_{j != c} a_cj u_j ||_2`` (the surround attention's contribution) and
    ``|| output_c ||_2``, each (B,) float64. A gain of 0, or attention on the centre alone,
    gives s = 0: attention that changes nothing reads as nothing.
    """
    b, _, h, w = x.shape
    out, attention = sa.attend(x)
    u = sa.project(sa.value(x)) if sa.v_mapping else x
    c = (h // 2) * w + w // 2
    weights = attention[:, c, :].clone()
    weights[:, c] = 0.0
    effect = sa.residual_gain * torch.einsum("bcn,bn->bc", u.reshape(b, u.shape[1], h * w),
                                             weights)
    total = out[:, :, h // 2, w // 2]
    return (torch.linalg.vector_norm(effect, dim=1).double().numpy(),
            torch.linalg.vector_norm(total, dim=1).double().numpy())


def _attention_input(net: Network, x: torch.Tensor, layer: int
                     ) -> tuple[SelfAttention, torch.Tensor]:
    """The ``layer``-th self-attention layer of ``net`` and its input for images ``x``
    (eval mode: the blocks before it run as ``attention_maps`` runs them)."""
    seen = 0
    for group, i in net.order:
        block = getattr(net, group)[i]
        if group == "attention":
            if seen == layer:
                return block.sa, x
            seen += 1
        x = block(x, None)
    raise ValueError(f"architecture {net.spec.name!r} has no self-attention layer {layer}")


@torch.no_grad()
def attention_surround_effect(net: Network, images: Any, layer: int = 0, batch: int = 500
                              ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`surround_attention` of the ``layer``-th self-attention layer of ``net`` (eval
    mode) on ``images``: per image the surround attention's contribution to the centre
    hypercolumn's output and that output's norm, each (B,) float64."""
    net.eval()
    x = _images_tensor(images, net)
    parts = [surround_attention(*_attention_input(net, x[s:s + batch], layer))
             for s in range(0, len(x), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ------------------------------------------------------------------------- architecture


def architecture_layers(spec: ArchitectureSpec) -> list[dict[str, Any]]:
    """The blocks of a spec in forward order with their feature-map shapes.

    One dict per block (input first, readout last): ``kind`` (input, alpha, beta, sa,
    readout), ``group`` (module name as used by stages: ``alpha.0``, ``attention.0``,
    ``beta.1``, ``readout``), ``channels`` and ``size`` of the block's output, a layer's
    kind's ``details`` (alpha, beta: ``kernel``, ``pool``; sa: ``v_mapping``,
    ``attention_dim``), and ``readout`` / ``inputs`` (features read) for the readout.
    """
    maps = spec.feature_maps()
    rows: list[dict[str, Any]] = [{"kind": "input", "group": "input", "channels": 1,
                                   "size": maps[0].size}]
    counts: dict[str, int] = {}
    for layer, m in zip(spec.layers, maps[1:], strict=True):
        i = counts[layer.group] = counts.get(layer.group, -1) + 1
        row: dict[str, Any] = {"kind": layer.kind, "group": f"{layer.group}.{i}",
                               "channels": spec.channels}
        row.update(LAYER_KINDS[layer.kind].details(layer, spec))
        row["size"] = m.size
        rows.append(row)
    size = spec.output_size
    n_in = READOUT_KINDS[spec.readout].inputs(spec.channels, size * size)
    rows.append({"kind": "readout", "group": "readout", "readout": spec.readout,
                 "inputs": n_in, "channels": 1, "size": 1})
    return rows


def feature_grid(spec: ArchitectureSpec, n_layers: int) -> tuple[float, float, int]:
    """Where the hypercolumns after the first ``n_layers`` layers sit on the input image.

    Returns ``(offset, stride, rf)``: hypercolumn ``i`` is centred on input pixel
    ``offset + stride * i`` (pixel-centre coordinates, 0 = first pixel) and sees a
    ``rf`` x ``rf`` pixel window (``ArchitectureSpec.feature_maps``: valid convolutions,
    2x2 max-pools; attention layers do not move the grid).
    """
    m = spec.feature_maps()[len(spec.layers[:n_layers])]
    return m.offset, float(m.stride), m.rf


# ------------------------------------------------------------------------ tuning curves


def rank_ordered_tuning(pred: Any, real: Any) -> tuple[np.ndarray, np.ndarray]:
    """Tuning curves rank-ordered by the REAL response, strongest image first.

    Along the last axis (images) of ``(…, images)`` arrays: returns ``(real_sorted,
    pred_sorted)`` where ``real_sorted`` is non-increasing and ``pred_sorted[…, k]`` is the
    prediction for the image with the k-th strongest real response. Ties keep image order.
    """
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(real, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"pred shape {p.shape} != real shape {r.shape}")
    order = np.argsort(-r, axis=-1, kind="stable")
    return np.take_along_axis(r, order, -1), np.take_along_axis(p, order, -1)


def population_tuning(pred: Any, real: Any) -> tuple[np.ndarray, np.ndarray]:
    """Population-average tuning curve (paper A.4): per neuron, rank-order the images by
    the neuron's real response (:func:`rank_ordered_tuning`), then average over neurons at
    each rank. ``pred``, ``real``: (neurons, images). Returns ``(real_mean, pred_mean)``,
    each (images,); NaN entries are ignored in the mean.
    """
    r, p = rank_ordered_tuning(pred, real)
    if r.ndim != 2:
        raise ValueError(f"expected (neurons, images) arrays, got shape {r.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(r, axis=0), np.nanmean(p, axis=0)


def pt_summary(frame: pd.DataFrame, columns: Sequence[str] = ("pt_j", "pt_s"),
               scale: float = 100.0) -> pd.DataFrame:
    """Population mean and SEM of per-neuron measures, per (site, model), times ``scale``.

    ``frame``: metrics rows (site, model, ``pt_k`` and the ``columns``; PT as fractions in
    [0, 1], so the default scale gives percent as in the paper). SEM is
    ``std(ddof=1) / sqrt(n)`` over the neurons with a defined value
    (:func:`sacnn.metrics.summarize`); undefined (NaN) values are counted in
    ``n_undefined``. ``k``, ``hits`` and ``chances`` say how many top images the mean is
    made of (:func:`sacnn.metrics.peak_reach`). One row per (site, model, measure).
    """
    rows = []
    for (site, model), group in frame.groupby(["site", "model"], sort=False):
        for col in columns:
            values = group[col].to_numpy(dtype=np.float64)
            s = summarize(values)
            reach = peak_reach(values, group["pt_k"].to_numpy())
            rows.append({"site": site, "model": model, "measure": col, "mean": s.mean * scale,
                         "sem": s.sem * scale, "n": s.n, "n_undefined": s.n_undefined,
                         "k": reach.k, "hits": reach.hits, "chances": reach.chances})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- example neuron

#: Rules for the example neuron of Figs. 1b, 4 and 10 (``params["example_neuron"]``).
EXAMPLE_RULES = ("highest_mean_corr", "max_pt_difference", "explicit")


def metrics_from_predictions(predictions: Mapping[str, xr.Dataset]) -> pd.DataFrame:
    """Per-neuron corr, pt_j, pt_s (fractions) from merged predictions, one row per
    (model, neuron), in the columns of ``metrics.csv`` (model, neuron, corr, pt_j, pt_s)."""
    rows = []
    for model, ds in predictions.items():
        pred = ds["prediction"].values
        real = ds["response"].values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            corr = np.atleast_1d(pearson(pred, real))
            ptj = np.atleast_1d(peak_tuning_joint(pred, real))
            pts = np.atleast_1d(peak_tuning_separate(pred, real))
        for i, nid in enumerate(ds["neuron"].values):
            rows.append({"model": model, "neuron": str(nid), "corr": corr[i],
                         "pt_j": ptj[i], "pt_s": pts[i]})
    return pd.DataFrame(rows)


def choose_example_neuron(source: pd.DataFrame | Mapping[str, xr.Dataset],
                          rule: Mapping[str, Any] | None,
                          models: Sequence[str] | None = None) -> str:
    """The example neuron's id (as a string) under a documented rule.

    ``source``: a metrics frame (columns model, neuron, corr, pt_j, pt_s; other columns
    ignored) or ``{model: merged predictions}`` (metrics are then computed). ``models``
    restricts the rows used (default: all models in ``source``; ``rule["models"]`` wins).
    Rules (``rule["rule"]``):

    * ``explicit`` (or any rule holding ``neuron``): ``rule["neuron"]``, checked to exist.
    * ``highest_mean_corr`` (default): the neuron with the highest mean Pearson r over
      the models; neurons with an undefined r in any model are skipped.
    * ``max_pt_difference``: the neuron maximising ``metric[better] - metric[worse]``
      (``metric`` = ``pt_j`` by default, ``better`` / ``worse`` are model slugs, defaulting
      to the first and last model); ties go to the higher mean r of the two models.

    Remaining ties go to the first neuron in source order.
    """
    rule = dict(rule or {})
    name = rule.get("rule", "explicit" if "neuron" in rule else "highest_mean_corr")
    frame = source if isinstance(source, pd.DataFrame) else metrics_from_predictions(source)
    frame = frame.assign(neuron=frame["neuron"].astype(str))
    models = list(rule.get("models") or models or pd.unique(frame["model"]))
    missing = [m for m in models if m not in set(frame["model"])]
    if missing:
        raise KeyError(f"example neuron rule {name!r}: no metrics for models {missing}")
    frame = frame[frame["model"].isin(models)]
    order = list(pd.unique(frame["neuron"]))
    if name == "explicit":
        if "neuron" not in rule:
            raise KeyError("example neuron rule 'explicit' needs a 'neuron' id")
        nid = str(rule["neuron"])
        if nid not in order:
            raise KeyError(f"example neuron {nid!r} is not among the neurons of {models}")
        return nid
    wide = frame.pivot_table(index="neuron", columns="model", values=["corr", "pt_j", "pt_s"],
                             aggfunc="first", dropna=False).reindex(order)
    mean_corr = wide["corr"][models].mean(axis=1, skipna=False)
    if name == "highest_mean_corr":
        score = mean_corr
    elif name == "max_pt_difference":
        metric = rule.get("metric", "pt_j")
        better, worse = rule.get("better", models[0]), rule.get("worse", models[-1])
        for m in (better, worse):
            if m not in models:
                raise KeyError(f"example neuron rule 'max_pt_difference': model {m!r} has no "
                               "metrics")
        diff = wide[metric][better] - wide[metric][worse]
        tie = wide["corr"][[better, worse]].mean(axis=1)
        score = diff + 1e-6 * tie.clip(-1, 1)  # PT differences are multiples of 1/k >> 1e-6
    else:
        raise ValueError(f"unknown example neuron rule {name!r}; known: {EXAMPLE_RULES}")
    score = score.dropna()
    if score.empty:
        raise ValueError(f"example neuron rule {name!r}: no neuron has defined metrics")
    return str(score.idxmax())
