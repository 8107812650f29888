"""The stacked step's forms (issue #19): each equals the per-model reference in float64.

uint8 max-pool, SDPA attention, channels-last grouped convolutions, the GEMM first layer,
torch.compile (aot_eager on the CPU), the static step a CUDA graph replays (run eagerly
here), and the config keys that choose them reaching the runner the trainer builds.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training import TINY, cfg, make_arrays

from sacnn.models import build_network, spec_from_dict
from sacnn.models.dropout import dropout_masks
from sacnn.models.stacked import StackedNetwork
from sacnn.models.stacked_ops import attention_sdpa, max_pool2x2
from sacnn.training import ModelSpec, TrainConfig, TrainingConfigError, initial_state, train_chunk
from sacnn.training.runners import InProcessRunner, ModelSetup, StackedRunner
from sacnn.training.stacked_step import StackedOptions, step_context
from sacnn.training.state import ChunkState

TINY["rf+sa"] = spec_from_dict("tiny rf+sa", {"base": "rf+sa-CNN", "channels": 4,
                                              "attention_dim": 2})
LEAN = {"first_layer": "gemm", "layout": "channels_last", "max_pool": "uint8",
        "attention": "sdpa"}


# -- the operations ------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 7, 9)])
def test_uint8_max_pool_is_f_max_pool2d_with_ties_and_odd_sizes(shape, channels_last):
    gen = torch.Generator().manual_seed(0)
    # values from {0, 1, 2}: most windows hold a tie for the maximum
    x = torch.randint(0, 3, shape, generator=gen).double()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = max_pool2x2(a), F.max_pool2d(b, 2)
    assert torch.equal(out, ref)
    saved = out.grad_fn.saved_tensors
    assert [t.dtype for t in saved] == [torch.uint8]  # no int64 indices, not the input
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    out.backward(g)
    ref.backward(g)
    assert torch.equal(a.grad, b.grad)  # the same (first, row-major) maximum gets the gradient
    assert a.grad.is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("d, dv", [(2, 2), (5, 30), (8, 3)])
def test_sdpa_attention_with_padded_heads_is_the_matmul_attention(d, dv):
    gen = torch.Generator().manual_seed(1)
    q, k = (torch.randn(2, 3, d, 25, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 3, dv, 25, generator=gen, dtype=torch.float64)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    ref_leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = attention_sdpa(*leaves)
    qr, kr, vr = ref_leaves
    ref = torch.matmul(vr, torch.softmax(torch.matmul(qr.transpose(-1, -2), kr), -1)
                       .transpose(-1, -2))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    out.backward(g)
    ref.backward(g)
    for a, b in zip(leaves, ref_leaves):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=0)


# -- the stacked network in every form -----------------------------------------------------

FORMS = [{"layout": "channels_last"}, {"max_pool": "uint8"}, {"attention": "sdpa"}, LEAN,
         {**LEAN, "conv": "gemm"}]


@pytest.mark.parametrize("spec_key", ["ff", "rf+sa"])
@pytest.mark.parametrize("form", FORMS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
@pytest.mark.parametrize("training, frozen", [(True, ()), (False, ()), (True, ("alpha",))])
@pytest.mark.parametrize("chunk", [1, 3])
def test_every_form_equals_the_per_model_network(spec_key, form, training, frozen, chunk):
    """Outputs, every gradient and batch-norm running statistics to 1e-9 in float64."""
    spec = TINY[spec_key]
    c = cfg(dtype="float64")
    states = [initial_state(spec, ModelSpec("m", spec.name), c, "s", n, None)
              for n in range(chunk)]
    model = {k: v.clone() for k, v in ChunkState.from_neurons(states).model.items()}
    for k, v in model.items():  # a non-zero attention gain, so attention is exercised
        if k.endswith("residual_gain"):
            v.fill_(0.5)
    before = {k: v.clone() for k, v in model.items()}  # the forward updates running stats
    trainable = {k for k in model if model[k].is_floating_point() and "running" not in k
                 and not any(k.startswith(f + ".") for f in frozen)}
    params = {k: model[k].requires_grad_(True) for k in trainable}
    x = torch.from_numpy(make_arrays().fit_images[:5]).double().unsqueeze(1)
    net = StackedNetwork(spec, frozen=frozen, **form)
    masks = list(dropout_masks(range(7, 7 + chunk), [0], 5, net.dropout_channels(),
                               spec.dropout, torch.float64)[0])
    out = net(model, x, masks, training=training)
    out.sum().backward()
    for i in range(chunk):
        ref_net = build_network(spec).double()
        ref_net.load_state_dict({k: v[i] for k, v in before.items()}, strict=True)
        if frozen:
            ref_net.freeze(frozen, "eval")
        ref_net.train(training)
        ref = ref_net(x, [m[i].reshape(5, -1, 1, 1) for m in masks])
        ref.sum().backward()
        np.testing.assert_allclose(out[i].detach().numpy(), ref.detach().numpy(), atol=1e-9,
                                   rtol=0)
        for name, p in ref_net.named_parameters():
            if p.requires_grad:
                np.testing.assert_allclose(params[name].grad[i].numpy(), p.grad.numpy(),
                                           atol=1e-9, rtol=0, err_msg=name)
            else:
                assert name not in params
        for name, b in ref_net.named_buffers():
            np.testing.assert_allclose(model[name][i].numpy(), b.numpy(), atol=1e-9, rtol=0,
                                       err_msg=name)


# -- whole epochs through the runner -------------------------------------------------------

def _two_epochs(runner, state: ChunkState, keys: list[int]):
    for epoch in range(2):
        order = torch.randperm(36, generator=torch.Generator().manual_seed(epoch))
        result = runner.run_epoch(state, order, keys)
        state = result.state
    return result


def _assert_same(got, ref) -> None:
    np.testing.assert_allclose(got.losses, ref.losses, atol=1e-9, rtol=0)
    for k in ref.predictions:
        np.testing.assert_allclose(got.predictions[k], ref.predictions[k], atol=1e-9, rtol=0)
    for k in ref.state.model:
        np.testing.assert_allclose(got.state.model[k].numpy(), ref.state.model[k].numpy(),
                                   atol=1e-9, rtol=0, err_msg=k)
    for k in ref.state.adam:
        for m in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(got.state.adam[k][m].numpy(),
                                       ref.state.adam[k][m].numpy(), atol=1e-9, rtol=0)
    assert got.state.step == ref.state.step


@pytest.fixture(scope="module")
def reference_epochs():
    """Two epochs of the per-model reference loop, batches of 10 (a partial last batch of 6),
    by (frozen blocks, neurons in the chunk); computed on first use."""
    data = make_arrays()
    x = torch.from_numpy(data.fit_images).double().unsqueeze(1)
    y = torch.from_numpy(data.fit_responses).double()
    eval_x = {"validation": torch.from_numpy(data.val_images).double().unsqueeze(1)}
    cache = {}

    def get(freeze: tuple, chunk: int):
        if (freeze, chunk) not in cache:
            setup = ModelSetup(TINY["ff"], freeze, "eval", 1e-3, 10, 50, "float64", False)
            stage = ModelSpec("m", "tiny", freeze=freeze)
            state = ChunkState.from_neurons([initial_state(TINY["ff"], stage, cfg(), "s", n,
                                                           None) for n in range(chunk)])
            state = replace(state, model={k: v.double() for k, v in state.model.items()})
            args = (setup, x, y[:chunk], eval_x)
            ref = _two_epochs(InProcessRunner(*args, single_thread=False), state,
                              list(range(chunk)))
            cache[freeze, chunk] = (args, state, ref)
        return cache[freeze, chunk]
    return get


STATIC = StackedOptions(cuda_graph=True)
COMPILED_LEAN = StackedOptions(compile="aot_eager", first_layer="gemm",
                               conv_layout="channels_last", max_pool="uint8", attention="sdpa")
COMPILED_STATIC = StackedOptions(compile="aot_eager", cuda_graph=True, max_pool="uint8")


@pytest.mark.parametrize("options, freeze, chunk", [
    (STATIC, (), 1), (STATIC, (), 3), (STATIC, ("alpha",), 3),
    (COMPILED_LEAN, (), 1), (COMPILED_LEAN, ("alpha",), 3), (COMPILED_STATIC, (), 3)],
    ids=["static step-1", "static step-3", "static step-3-frozen", "compiled lean-1",
         "compiled lean-3-frozen", "compiled static step-3"])
def test_runner_forms_train_like_the_reference_loop(reference_epochs, options, freeze, chunk):
    """The static step (what a CUDA graph replays, here eagerly: device-side batch
    positions, dropout counter and loss totals) and the compiled step (aot_eager; one graph
    per batch size: the last batch is partial) give the reference loop's two epochs
    (losses, predictions, parameters, batch-norm statistics, Adam moments) to 1e-9."""
    args, state, ref = reference_epochs(freeze, chunk)
    got = _two_epochs(StackedRunner(*args, torch.device("cpu"), options), state,
                      list(range(chunk)))
    _assert_same(got, ref)


# -- the config keys reach the runner ------------------------------------------------------

def _runner(**settings):
    from sacnn.training.chunk import ChunkArrays
    from sacnn.training.hardware import Hardware, make_runner

    spec, data = TINY["ff"], make_arrays()
    c = cfg(strategy="stacked", device="cpu", dtype="float64", **settings)
    runner, how = make_runner(spec, ModelSpec("m", spec.name), c,
                              ChunkArrays.of(data, c, 3), Hardware.choose(c, 0), 3)
    return runner, how


def test_every_stacked_key_of_the_config_reaches_the_runner(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache = tmp_path / "compile-cache"
    reached = {
        "first_layer": ("gemm", lambda r: r.net.first_layer == "gemm"),
        "conv": ("gemm", lambda r: r.net.conv == "gemm"),
        "conv_layout": ("channels_last", lambda r: r.net.layout == "channels_last"),
        "cudnn_benchmark": (True, lambda r: _benchmark_flag_inside_a_step(r)),
        "max_pool": ("uint8", lambda r: r.net.max_pool == "uint8"),
        "attention": ("sdpa", lambda r: r.net.attention == "sdpa"),
        "compile": ("aot_eager", lambda r: r.loss != r.stacked_loss),
        "compile_cache": (str(cache), lambda r: os.environ["TORCHINDUCTOR_CACHE_DIR"]
                          == str(cache.resolve()) and cache.is_dir()),
    }
    keys = {f.name for f in fields(StackedOptions)} - {"precision"}
    assert set(reached) | {"cuda_graph"} == keys  # a new key must be added here
    default, _ = _runner()
    for key, (value, check) in reached.items():
        settings = {key: value, **({"compile": "aot_eager"} if key == "compile_cache" else {})}
        runner, how = _runner(**settings)
        assert getattr(runner.options, key) == value and check(runner), key
        assert f"{key}={value}" in how  # the log names it
        assert not (key != "compile_cache" and check(default)), key
    with pytest.raises(TrainingConfigError, match="training.cuda_graph: true needs the stacked "
                                                  "strategy on a CUDA device.*cpu"):
        _runner(cuda_graph=True)


def _benchmark_flag_inside_a_step(runner) -> bool:
    before = torch.backends.cudnn.benchmark
    with step_context(runner.options):
        inside = torch.backends.cudnn.benchmark
    return inside and torch.backends.cudnn.benchmark == before


def test_a_cuda_graph_on_the_cpu_is_refused_before_any_training():
    spec, data = TINY["ff"], make_arrays()
    with pytest.raises(TrainingConfigError, match="set training.cuda_graph: false"):
        train_chunk(spec, ModelSpec("m", spec.name), data, cfg(cuda_graph=True), site="s")


def test_stacked_keys_are_checked_and_do_not_change_thefingerprint():
    from sacnn.training.checkpoint import fingerprint

    for key, bad in [("first_layer", "fft"), ("conv", "winograd"), ("conv_layout", "nhwc"),
                     ("max_pool", "int8"), ("attention", "flash"), ("compile", "yes"),
                     ("cuda_graph", "yes"), ("cudnn_benchmark", 1)]:
        with pytest.raises(TrainingConfigError, match=f"training.{key}"):
            TrainConfig(**{key: bad})
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    base = fingerprint(spec, stage, cfg(), "s", [1], data)
    lean = cfg(first_layer="gemm", conv_layout="channels_last", max_pool="uint8",
               attention="sdpa", compile="inductor", compile_cache="/x", cuda_graph=True,
               cudnn_benchmark=True, conv="gemm")
    assert fingerprint(spec, stage, lean, "s", [1], data) == base  # a run may resume
    assert fingerprint(spec, stage, cfg(epochs=3), "s", [1], data) != base


def test_options_parse_from_the_scripts_key_value_strings():
    o = StackedOptions.parse("bf16", ["max_pool=uint8", "cuda_graph=true", "compile_cache="])
    assert (o.precision, o.max_pool, o.cuda_graph, o.compile_cache) == ("bf16", "uint8", True, "")
    with pytest.raises(ValueError, match="KEY one of"):
        StackedOptions.parse("bf16", ["precision=exact"])
    with pytest.raises(TrainingConfigError, match="training.max_pool"):
        StackedOptions.parse("bf16", ["max_pool=int8"])
