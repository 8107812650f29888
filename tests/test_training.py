"""Trainer: exact per-neuron independence, seeding, freezing, selection, resume, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import xarray as xr

from sacnn.models import build_network, spec_from_dict
from sacnn.models.dropout import dropout_masks
from sacnn.models.stacked import StackedNetwork
from sacnn.training import (
    CheckpointError,
    ModelSpec,
    TrainConfig,
    TrainingConfigError,
    initial_state,
    load_weights,
    predictions_dataset,
    save_weights,
    train_chunk,
    write_netcdf,
)
from sacnn.training.runners import DTYPES, ModelSetup, StackedRunner, train_one_epoch
from sacnn.training.state import ChunkState

TINY = {
    "ff": spec_from_dict("tiny ff+sa", {"base": "ff+sa-CNN", "channels": 4, "attention_dim": 2}),
    "rf": spec_from_dict("tiny rf", {"base": "rf-CNN (c=30)", "channels": 4}),
    "rfsa": spec_from_dict("tiny rf+sa*", {"base": "rf+sa-CNN*", "channels": 4,
                                           "attention_dim": 2}),
    "ffsa": spec_from_dict("tiny ff+sa*", {"base": "ff+sa-CNN*", "channels": 4,
                                           "attention_dim": 2}),
    "fc1": spec_from_dict("tiny ff+sa* FC1", {"base": "ff+sa-CNN* (FC1)", "channels": 4,
                                              "attention_dim": 2}),
}


@dataclass(frozen=True)
class Arrays:
    fit_images: np.ndarray
    fit_responses: np.ndarray
    holdout_images: np.ndarray
    holdout_responses: np.ndarray
    val_images: np.ndarray
    val_responses: np.ndarray
    neuron_ids: np.ndarray

    def subset(self, rows: list[int]) -> Arrays:
        return Arrays(self.fit_images, self.fit_responses[rows], self.holdout_images,
                      self.holdout_responses[rows], self.val_images, self.val_responses[rows],
                      self.neuron_ids[rows])


def make_arrays(n_neurons: int = 3, n_fit: int = 36, n_hold: int = 12, n_val: int = 16,
                seed: int = 0) -> Arrays:
    """Responses of random linear-nonlinear 'neurons' to random images."""
    rng = np.random.default_rng(seed)
    n = n_fit + n_hold + n_val
    x = rng.random((n, 50, 50), dtype=np.float32)
    w = rng.standard_normal((n_neurons, 2500)).astype(np.float32)
    y = np.maximum(x.reshape(n, -1) @ w.T, 0).T.astype(np.float32) / 50
    return Arrays(x[:n_fit], y[:, :n_fit], x[n_fit:n_fit + n_hold], y[:, n_fit:n_fit + n_hold],
                  x[n_fit + n_hold:], y[:, n_fit + n_hold:],
                  np.array([11, 12, 13, 14, 15][:n_neurons]))


def cfg(**kw) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 12, "strategy": "per_model", "workers": 1,
            "eval_batch_size": 50}
    base.update(kw)
    return TrainConfig(**base)


def same_states(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# -- exact independence -------------------------------------------------------------------

@pytest.mark.parametrize("spec_key", ["ff", "rf", "rfsa", "ffsa", "fc1"])
@pytest.mark.parametrize("chunk", [[0], [0, 1, 2]])
def test_stacked_outputs_gradients_and_first_step_match_the_reference_loop(chunk, spec_key):
    """float64: N stacked models == one nn.Module per neuron, to 1e-9, for every readout."""
    spec = TINY[spec_key]
    c = cfg(dtype="float64", strategy="reference")
    stage = ModelSpec("m", spec.name)
    states = [initial_state(spec, stage, c, "s", n, None) for n in chunk]
    setup = ModelSetup(spec, (), "eval", 1e-3, 8, 50, "float64", False)
    data = make_arrays()
    x = torch.from_numpy(data.fit_images[:8]).double().unsqueeze(1)
    y = torch.from_numpy(data.fit_responses[chunk, :8]).double()

    runner = StackedRunner(setup, x, y, {}, torch.device("cpu"))
    params, rest = runner.split(ChunkState.from_neurons(states))
    with torch.no_grad():  # a non-zero attention gain, so attention is exercised
        for k in params:
            if k.endswith("residual_gain"):
                params[k].fill_(0.5)
    keys = [100 + n for n in chunk]
    masks = list(runner.masks(torch.tensor(keys), [3], 8)[0])
    losses = runner.stacked_loss(params, rest, x, y, masks)
    losses.sum().backward()
    opt = torch.optim.Adam(list(params.values()), lr=1e-3)
    opt.step()

    for i, n in enumerate(chunk):
        net = build_network(spec).double()
        state = dict(states[i].model)
        state.update({k: torch.full_like(v, 0.5) for k, v in state.items()
                      if k.endswith("residual_gain")})
        net.load_state_dict(state)
        net.train()
        ref_masks = net.draw_masks(8, 100 + n, 3, torch.float64)
        for m_ref, m_stacked in zip(ref_masks, masks):
            assert torch.equal(m_ref.flatten(1), m_stacked[i])
        out = net(x, ref_masks)
        loss = torch.mean((out - y[i]) ** 2)
        assert abs(loss.item() - losses[i].item()) < 1e-9
        loss.backward()
        ref_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for name, p in net.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), params[name].grad[i].numpy(), atol=1e-9,
                                       rtol=0, err_msg=name)
        ref_opt.step()
        for name, p in net.named_parameters():
            np.testing.assert_allclose(p.detach().numpy(), params[name][i].detach().numpy(),
                                       atol=1e-9, rtol=0)
        for name, b in net.named_buffers():  # batch-norm running statistics
            np.testing.assert_allclose(b.numpy(), rest[name][i].numpy(), atol=1e-9, rtol=0)
        net.eval()
        with torch.no_grad():
            stacked_eval = runner.net({**params, **rest}, x, training=False)[i]
            np.testing.assert_allclose(stacked_eval.numpy(), net(x).numpy(), atol=1e-9, rtol=0)


@pytest.mark.parametrize("conv", ["gemm", "grouped"])
@pytest.mark.parametrize("first_layer", ["gemm", "cudnn"])
@pytest.mark.parametrize("training", [False, True])
def test_every_form_of_the_stacked_network_agrees_with_the_reference(conv, first_layer,
                                                                    training):
    spec = TINY["ff"]
    c = cfg(dtype="float64")
    states = [initial_state(spec, ModelSpec("m", spec.name), c, "s", n, None) for n in range(3)]
    model = {k: v.clone() for k, v in ChunkState.from_neurons(states).model.items()}
    params = {k: v.requires_grad_(True) for k, v in model.items() if v.is_floating_point()
              and "running" not in k}
    x = torch.from_numpy(make_arrays().fit_images[:5]).double().unsqueeze(1)
    net_stacked = StackedNetwork(spec, conv=conv, first_layer=first_layer)
    channels = net_stacked.dropout_channels()
    masks = list(dropout_masks([7, 8, 9], [0], 5, channels, spec.dropout, torch.float64)[0])
    out = net_stacked(model, x, masks, training=training)
    out.sum().backward()
    for i in range(3):
        net = build_network(spec).double()
        net.load_state_dict(states[i].model)
        net.train(training)
        ref = net(x, [m[i].reshape(5, -1, 1, 1) for m in masks])
        ref.sum().backward()
        np.testing.assert_allclose(out[i].detach().numpy(), ref.detach().numpy(), atol=1e-10)
        for name, p in net.named_parameters():
            np.testing.assert_allclose(params[name].grad[i].numpy(), p.grad.numpy(), atol=1e-10,
                                       err_msg=name)


@pytest.mark.parametrize("strategy", ["per_model", "stacked"])
def test_every_strategy_matches_the_reference_after_two_epochs(strategy):
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    ref = train_chunk(spec, stage, data, cfg(dtype="float64", strategy="reference"), site="s")
    got = train_chunk(spec, stage, data, cfg(dtype="float64", strategy=strategy), site="s")
    np.testing.assert_allclose(got.val_predictions, ref.val_predictions, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(got.best_epoch, ref.best_epoch)
    for a, b in zip(got.best_states, ref.best_states):
        for k in a:
            np.testing.assert_allclose(a[k].double().numpy(), b[k].double().numpy(), atol=1e-9)


def test_a_neurons_result_does_not_depend_on_its_chunk_bitwise():
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    whole = train_chunk(spec, stage, data, cfg(), site="s")
    alone = train_chunk(spec, stage, data.subset([1]), cfg(), site="s")
    pair = train_chunk(spec, stage, data.subset([2, 1]), cfg(), site="s")
    assert same_states(whole.best_states[1], alone.best_states[0])
    assert same_states(whole.best_states[1], pair.best_states[1])
    assert np.array_equal(whole.val_predictions[1], alone.val_predictions[0])


def test_worker_processes_give_the_same_bits_as_one_process():
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    one = train_chunk(spec, stage, data, cfg(workers=1), site="s")
    two = train_chunk(spec, stage, data, cfg(workers=2), site="s")
    assert np.array_equal(one.val_predictions, two.val_predictions)
    assert all(same_states(a, b) for a, b in zip(one.best_states, two.best_states))


# -- seeding ------------------------------------------------------------------------------

def test_same_config_same_numbers_and_the_seed_matters():
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    a = train_chunk(spec, stage, data, cfg(seed=1), site="s")
    b = train_chunk(spec, stage, data, cfg(seed=1), site="s")
    c = train_chunk(spec, stage, data, cfg(seed=2), site="s")
    assert np.array_equal(a.val_predictions, b.val_predictions)
    assert not np.array_equal(a.val_predictions, c.val_predictions)
    assert np.array_equal(a.init_seeds, b.init_seeds) and not np.array_equal(a.init_seeds,
                                                                             c.init_seeds)
    # Neurons get different seeds; the site and model enter the seed as well.
    assert len(set(a.init_seeds.tolist())) == len(a.init_seeds)
    d = train_chunk(spec, ModelSpec("other", spec.name), data, cfg(seed=1), site="s")
    assert not np.array_equal(a.init_seeds, d.init_seeds)


# -- selection ----------------------------------------------------------------------------

def test_best_epoch_is_the_one_with_the_highest_selection_correlation():
    spec, data = TINY["ff"], make_arrays()
    res = train_chunk(spec, ModelSpec("m", spec.name), data, cfg(epochs=4), site="s")
    hist = res.history["selection_corr"]
    np.testing.assert_array_equal(res.best_epoch, np.nanargmax(hist, axis=1))
    np.testing.assert_allclose(res.best_score, np.nanmax(hist, axis=1))


def test_selection_on_the_validation_set_uses_validation_correlations():
    spec, data = TINY["ff"], make_arrays()
    res = train_chunk(spec, ModelSpec("m", spec.name), data,
                      cfg(epochs=3, selection="validation"), site="s")
    np.testing.assert_array_equal(res.history["selection_corr"], res.history["val_corr"])
    np.testing.assert_array_equal(res.best_epoch, np.nanargmax(res.history["val_corr"], axis=1))


def test_selection_on_the_validation_set_fits_on_every_training_image():
    """Nothing is held out when the epoch is picked on the validation set (released code):
    the hold-out images join the fit, exactly as if the data had no hold-out at all."""
    spec, data = TINY["ff"], make_arrays()
    merged = Arrays(np.concatenate([data.fit_images, data.holdout_images]),
                    np.concatenate([data.fit_responses, data.holdout_responses], axis=1),
                    data.holdout_images[:0], data.holdout_responses[:, :0], data.val_images,
                    data.val_responses, data.neuron_ids)
    c = cfg(epochs=2, selection="validation")
    a = train_chunk(spec, ModelSpec("m", spec.name), data, c, site="s")
    b = train_chunk(spec, ModelSpec("m", spec.name), merged, c, site="s")
    np.testing.assert_array_equal(a.val_predictions, b.val_predictions)
    h = train_chunk(spec, ModelSpec("m", spec.name), data, cfg(epochs=2), site="s")
    assert not np.array_equal(a.history["train_loss"], h.history["train_loss"])


def test_holdout_selection_without_holdout_images_is_refused():
    spec, data = TINY["ff"], make_arrays(n_hold=0)
    with pytest.raises(TrainingConfigError, match="held-out"):
        train_chunk(spec, ModelSpec("m", spec.name), data, cfg(), site="s")


# -- incremental learning -----------------------------------------------------------------

def test_fc1_combination_starts_at_identity_or_at_random_as_released():
    spec = TINY["fc1"]
    c = cfg()
    ident = initial_state(spec, ModelSpec("m", spec.name), c, "s", 1, None)
    w = ident.model["readout.combine.weight"]
    assert w.tolist() == [[1.0, 0.0]] and float(ident.model["readout.combine.bias"]) == 0.0
    rnd = ModelSpec("m", spec.name, combine_init="random")
    a = initial_state(spec, rnd, c, "s", 1, None).model["readout.combine.weight"]
    b = initial_state(spec, rnd, c, "s", 2, None).model["readout.combine.weight"]
    assert a.tolist() != [[1.0, 0.0]] and not torch.equal(a, b)  # per neuron
    assert torch.equal(a, initial_state(spec, rnd, c, "s", 1, None).model[
        "readout.combine.weight"])  # seeded
    with pytest.raises(TrainingConfigError, match="needs a decomposed"):
        initial_state(TINY["ff"], ModelSpec("m", "x", combine_init="random"), c, "s", 1, None)
    with pytest.raises(TrainingConfigError, match="models.m.combine_init: 'zeros', expected one of"):
        ModelSpec.from_dict("m", {"architecture": "x", "combine_init": "zeros"})


def _train_and_save(tmp_path, spec_key, stage, data, init=None, **kw):
    spec = TINY[spec_key]
    c = cfg(**kw)
    res = train_chunk(spec, stage, data, c, site="s", init_weights=init)
    path = tmp_path / f"{stage.model}.pt"
    save_weights(res, spec, stage, c, "s", path)
    return res, path


def test_incremental_chain_freezes_what_the_paper_freezes(tmp_path):
    data = make_arrays()
    rf, rf_path = _train_and_save(tmp_path, "rf", ModelSpec("rf", "tiny rf"), data)
    incr = ModelSpec("rfsa_incr", "tiny rf+sa*", init_from="rf", load=(("alpha", "alpha"),),
                     freeze=("alpha",))
    rfsa, rfsa_path = _train_and_save(tmp_path, "rfsa", incr, data, rf_path)
    fc2 = ModelSpec("fc2", "tiny ff+sa*", init_from="rfsa_incr",
                    load=(("alpha", "alpha"), ("attention", "attention"), ("beta", "beta")),
                    freeze=("alpha", "attention", "beta"))
    ffsa2, _ = _train_and_save(tmp_path, "ffsa", fc2, data, rfsa_path)
    fc1 = ModelSpec("fc1", "tiny ff+sa* FC1", init_from="rfsa_incr",
                    load=(("alpha", "alpha"), ("attention", "attention"), ("beta", "beta"),
                          ("readout.linear", "readout.centre")),
                    freeze=("alpha", "attention", "beta", "readout.centre"))
    ffsa1, _ = _train_and_save(tmp_path, "fc1", fc1, data, rfsa_path)

    for i in range(3):
        for k, v in rf.best_states[i].items():
            if k.startswith("alpha."):  # parameters AND batch-norm statistics stay fixed
                assert torch.equal(rfsa.best_states[i][k], v), k
        for k, v in rfsa.best_states[i].items():
            if k.split(".")[0] in ("alpha", "attention", "beta"):
                assert torch.equal(ffsa2.best_states[i][k], v), k
                assert torch.equal(ffsa1.best_states[i][k], v), k
        assert torch.equal(ffsa1.best_states[i]["readout.centre.weight"],
                           rfsa.best_states[i]["readout.linear.weight"])
        # what is not frozen did learn
        assert not torch.equal(rfsa.best_states[i]["beta.0.conv.weight"],
                               rf.best_states[i]["beta.0.conv.weight"])
        assert not torch.equal(ffsa1.best_states[i]["readout.combine.weight"],
                               torch.tensor([[1.0, 0.0]]))


def test_frozen_blocks_in_train_mode_update_batch_norm_statistics(tmp_path):
    data = make_arrays()
    rf, rf_path = _train_and_save(tmp_path, "rf", ModelSpec("rf", "tiny rf"), data)
    incr = ModelSpec("rfsa_incr", "tiny rf+sa*", init_from="rf", load=(("alpha", "alpha"),),
                     freeze=("alpha",))
    faithful, _ = _train_and_save(tmp_path, "rfsa", incr, data, rf_path, frozen_mode="train")
    state, ref = faithful.best_states[0], rf.best_states[0]
    assert torch.equal(state["alpha.0.conv.weight"], ref["alpha.0.conv.weight"])
    assert not torch.equal(state["alpha.0.bn.running_mean"], ref["alpha.0.bn.running_mean"])


def test_incremental_errors_name_the_problem(tmp_path):
    data = make_arrays()
    _, rf_path = _train_and_save(tmp_path, "rf", ModelSpec("rf", "tiny rf"), data)
    incr = ModelSpec("x", "tiny rf+sa*", init_from="rf", load=(("alpha", "alpha"),),
                     freeze=("alpha",))
    with pytest.raises(TrainingConfigError, match="pass its weights file"):
        train_chunk(TINY["rfsa"], incr, data, cfg(), site="s")
    with pytest.raises(CheckpointError, match="lacks neurons"):
        train_chunk(TINY["rfsa"], incr, make_arrays(n_neurons=5), cfg(), site="s",
                    init_weights=rf_path)
    bad = ModelSpec("x", "tiny rf+sa*", init_from="rf", load=(("attention", "attention"),))
    with pytest.raises(CheckpointError, match="no module 'attention'"):
        train_chunk(TINY["rfsa"], bad, data, cfg(), site="s", init_weights=rf_path)
    wide = spec_from_dict("wide", {"base": "rf+sa-CNN*", "channels": 6, "attention_dim": 2})
    with pytest.raises(CheckpointError, match="has shape"):
        train_chunk(wide, incr, data, cfg(), site="s", init_weights=rf_path)
    with pytest.raises(TrainingConfigError, match="needs 'init_from'"):
        ModelSpec("x", "rf-CNN", load=(("alpha", "alpha"),))


# -- checkpoints and resume ---------------------------------------------------------------

def test_resume_after_a_stop_gives_the_uninterrupted_numbers(tmp_path):
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    full = train_chunk(spec, stage, data, cfg(epochs=3), site="s")
    ckpt = tmp_path / "ck.pt"
    with pytest.raises(InterruptedError):
        train_chunk(spec, stage, data, cfg(epochs=3), site="s", checkpoint=ckpt,
                    stop_after_epoch=1)
    assert ckpt.exists()
    # resume with another execution strategy: checkpoints do not depend on it
    resumed = train_chunk(spec, stage, data, cfg(epochs=3), site="s", checkpoint=ckpt)
    assert np.array_equal(full.val_predictions, resumed.val_predictions)
    assert all(same_states(a, b) for a, b in zip(full.best_states, resumed.best_states))
    np.testing.assert_array_equal(full.history["train_loss"], resumed.history["train_loss"])


def test_resume_after_sigkill(tmp_path):
    """A real kill -9 between epochs, then a restart, ends with the uninterrupted numbers."""
    spec, data = TINY["ff"], make_arrays()
    np.savez(tmp_path / "data.npz", **{k: getattr(data, k) for k in data.__dataclass_fields__})
    ckpt, out = tmp_path / "ck.pt", tmp_path / "out.npz"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, types
        from sacnn.models import spec_from_dict
        from sacnn.training import ModelSpec, TrainConfig, train_chunk
        d = np.load({str(tmp_path / 'data.npz')!r}, allow_pickle=False)
        data = types.SimpleNamespace(**{{k: d[k] for k in d.files}})
        spec = spec_from_dict("tiny ff+sa", {{"base": "ff+sa-CNN", "channels": 4,
                                              "attention_dim": 2}})
        cfg = TrainConfig(epochs=40, batch_size=12, strategy="per_model", workers=1,
                          eval_batch_size=50)
        r = train_chunk(spec, ModelSpec("m", spec.name), data, cfg, site="s",
                        checkpoint={str(ckpt)!r})
        np.save({str(out)!r}, r.val_predictions)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not out.exists(), "the run should have been killed mid-way"
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= killed_at < 40
    c = TrainConfig(epochs=40, batch_size=12, strategy="per_model", workers=1,
                    eval_batch_size=50)
    resumed = train_chunk(spec, ModelSpec("m", spec.name), data, c, site="s", checkpoint=ckpt)
    full = train_chunk(spec, ModelSpec("m", spec.name), data, c, site="s")
    assert np.array_equal(full.val_predictions, resumed.val_predictions)


def test_an_unusable_checkpoint_is_set_aside_and_training_starts_over(tmp_path, caplog):
    """Corrupt, foreign or other-settings checkpoints must not make every retry fail."""
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    ckpt = tmp_path / "ck.pt"
    fresh = train_chunk(spec, stage, data, cfg(epochs=3), site="s")
    other = cfg(epochs=3, learning_rate=0.01)
    fresh_other = train_chunk(spec, stage, data, other, site="s")
    with pytest.raises(InterruptedError):
        train_chunk(spec, stage, data, cfg(epochs=3), site="s", checkpoint=ckpt,
                    stop_after_epoch=1)
    truncated = ckpt.read_bytes()[:200]
    cases = [("fingerprint", other, None, fresh_other),
             ("weights_only", cfg(epochs=3), b"not a checkpoint", fresh),
             ("weights_only", cfg(epochs=3), truncated, fresh),
             ("'format'", cfg(epochs=3), {"format": "something else"}, fresh),
             ("not a complete", cfg(epochs=3), {"format": "sacnn-checkpoint-v2",
                                                "fingerprint": None}, fresh)]
    for match, c, content, expected in cases:
        if isinstance(content, bytes):
            ckpt.write_bytes(content)
        elif isinstance(content, dict):
            if content.get("fingerprint", 1) is None:  # right format and fingerprint, no data
                from sacnn.training.checkpoint import fingerprint

                content["fingerprint"] = fingerprint(spec, stage, c, "s", [11, 12, 13], data)
            torch.save(content, ckpt)
        elif not ckpt.exists():
            continue
        caplog.clear()
        with caplog.at_level("WARNING", logger="sacnn.training"):
            got = train_chunk(spec, stage, data, c, site="s", checkpoint=ckpt)
        assert match in caplog.text and "starts over from epoch 1" in caplog.text, match
        assert (tmp_path / "ck.pt.unusable").exists()
        np.testing.assert_array_equal(got.val_predictions, expected.val_predictions)
        (tmp_path / "ck.pt.unusable").unlink()


def test_checkpoints_are_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "sacnn-weights-v1", "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_weights(path)


# -- outputs ------------------------------------------------------------------------------

def test_outputs_are_labelled_and_record_provenance(tmp_path):
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name, label="ff+sa-CNN")
    c = cfg()
    res = train_chunk(spec, stage, data, c, site="s")
    save_weights(res, spec, stage, c, "s", tmp_path / "w.pt")
    ds = predictions_dataset(res, spec, stage, c, "s", np.arange(16) + 100,
                             data.val_responses, response_units="dF/F")
    write_netcdf(ds, tmp_path / "p.nc")
    back = xr.open_dataset(tmp_path / "p.nc")
    assert back["prediction"].dims == ("neuron", "val_image")
    assert back.attrs["Conventions"] == "CF-1.10"
    assert back["prediction"].attrs["units"] == back["response"].attrs["units"] == "dF/F"
    assert back.attrs["precision"] == res.precision == "exact"
    assert back.attrs["fingerprint"] == res.fingerprint and len(res.fingerprint) == 64
    assert list(back["neuron"].values) == [11, 12, 13]
    assert back.attrs["label"] == "ff+sa-CNN" and "code_version" in back.attrs
    assert '"seed": 0' in back.attrs["training_config"]
    np.testing.assert_array_equal(back["init_seed"].values, res.init_seeds)
    w = load_weights(tmp_path / "w.pt")
    assert w["neuron_ids"] == ["11", "12", "13"]
    net = build_network(spec)
    net.load_state_dict({k: v[0] for k, v in w["state"].items()})
    net.eval()
    x = torch.from_numpy(data.val_images).unsqueeze(1)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).double().numpy(), back["prediction"].values[0],
                                   rtol=1e-5, atol=1e-6)
    back.close()


def test_training_config_errors_name_the_field():
    with pytest.raises(TrainingConfigError, match="unknown keys"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(TrainingConfigError, match="training.batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(TrainingConfigError, match="training.selection"):
        TrainConfig(selection="test")
    with pytest.raises(TrainingConfigError, match="training.strategy"):
        TrainConfig(strategy="gpu")
    with pytest.raises(TrainingConfigError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        train_chunk(TINY["ff"], ModelSpec("m", "x"), make_arrays(),
                    cfg(device="cuda", strategy="auto"), site="s")
    assert TrainConfig.from_dict({"epochs": 3}).epochs == 3
    assert DTYPES["float64"] is torch.float64


def test_train_one_epoch_counts_steps_and_updates_only_trainable_parameters():
    spec = TINY["rfsa"]
    stage = ModelSpec("m", spec.name, freeze=("alpha",))
    c = cfg()
    state = initial_state(spec, stage, c, "s", 1, None)
    setup = ModelSetup(spec, ("alpha",), "eval", 1e-3, 12, 50, "float32", False)
    net = setup.network()
    data = make_arrays()
    x = torch.from_numpy(data.fit_images).unsqueeze(1)
    y = torch.from_numpy(data.fit_responses[0])
    new, loss = train_one_epoch(net, setup, state, x, y, torch.arange(36), 5)
    assert new.step == 3 and np.isfinite(loss)
    assert set(new.adam) == {n for n, p in net.named_parameters() if p.requires_grad}
    assert not any(k.startswith("alpha") for k in new.adam)


# -- devices, precision, stacked chunks -----------------------------------------------------

def test_stacked_float64_result_of_a_neuron_does_not_depend_on_its_chunk():
    spec, data = TINY["rfsa"], make_arrays()
    stage = ModelSpec("m", spec.name)
    c = cfg(dtype="float64", strategy="stacked")
    whole = train_chunk(spec, stage, data, c, site="s")
    alone = train_chunk(spec, stage, data.subset([1]), c, site="s")
    np.testing.assert_allclose(whole.val_predictions[1], alone.val_predictions[0], atol=1e-10,
                               rtol=0)
    for k, v in alone.best_states[0].items():
        np.testing.assert_allclose(whole.best_states[1][k].numpy(), v.numpy(), atol=1e-10)


def test_bf16_convolutions_stay_close_to_exact_on_the_cpu():
    """The bf16 mode only rounds the per-model convolution operands (a CPU check of the
    plumbing; the GPU measurement against float64 is in docs/performance.md)."""
    spec, data = TINY["ff"], make_arrays()
    stage = ModelSpec("m", spec.name)
    exact = train_chunk(spec, stage, data, cfg(strategy="stacked", epochs=1), site="s")
    bf16 = train_chunk(spec, stage, data, cfg(strategy="stacked", epochs=1, precision="bf16"),
                       site="s")
    assert bf16.precision == "bf16" and exact.precision == "exact"
    diff = np.abs(bf16.val_predictions - exact.val_predictions)
    assert 0 < diff.max() < 0.05 * np.abs(exact.val_predictions).max()


def test_auto_device_refuses_a_cpu_fallback_in_a_job_that_was_given_a_gpu(monkeypatch):
    from sacnn.training.hardware import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS",
                "SLURM_GPUS_ON_NODE"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_device(TrainConfig()).type == "cpu"
    with pytest.raises(TrainingConfigError, match=r"asked for 1 GPU.*training.device: cpu"):
        resolve_device(TrainConfig(), gpus=1)
    monkeypatch.setenv("SLURM_JOB_GPUS", "0")  # SLURM's GPU ids: "0" is a GPU
    with pytest.raises(TrainingConfigError, match="SLURM_JOB_GPUS=0"):
        resolve_device(TrainConfig())
    monkeypatch.delenv("SLURM_JOB_GPUS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(TrainingConfigError, match="CUDA_VISIBLE_DEVICES=0.*README"):
        resolve_device(TrainConfig())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # the usual way to hide every GPU
    assert resolve_device(TrainConfig()).type == "cpu"
    # An explicit CPU device is a choice, not a fallback.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert resolve_device(TrainConfig(device="cpu"), gpus=1).type == "cpu"


def test_training_cli_reports_a_gpu_job_without_cuda_as_an_error(tmp_path, monkeypatch):
    from sacnn.training.__main__ import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ds = tmp_path / "missing.nc"
    with pytest.raises(SystemExit) as exc:
        main(["--settings", json.dumps({"models": {"m": {"architecture": "rf-CNN"}}}),
              "--dataset", str(ds), "--site", "s", "--model", "m", "--gpus", "1",
              "--weights", str(tmp_path / "w.pt"), "--predictions", str(tmp_path / "p.nc")])
    assert "asked for 1 GPU" in str(exc.value)


def test_precision_settings_are_checked_against_device_and_strategy():
    from sacnn.training.hardware import resolve_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision(TrainConfig(), cpu, "per_model") == "exact"
    assert resolve_precision(TrainConfig(), cuda, "stacked") in ("bf16", "tf32", "exact")
    assert resolve_precision(TrainConfig(dtype="float64"), cuda, "stacked") == "exact"
    assert resolve_precision(TrainConfig(precision="bf16"), cpu, "stacked") == "bf16"
    with pytest.raises(TrainingConfigError, match="stacked strategy"):
        resolve_precision(TrainConfig(precision="bf16"), cpu, "per_model")
    with pytest.raises(TrainingConfigError, match="CUDA devices only"):
        resolve_precision(TrainConfig(precision="tf32"), cpu, "stacked")
    with pytest.raises(TrainingConfigError, match="needs dtype float32"):
        resolve_precision(TrainConfig(precision="bf16", dtype="float64"), cuda, "stacked")
    with pytest.raises(TrainingConfigError, match="training.precision"):
        TrainConfig(precision="fp8")
    # combinations that fail on any device are refused with the settings (so at a dry run)
    for kw, message in [({"precision": "bf16", "strategy": "per_model"}, "stacked strategy"),
                        ({"precision": "tf32", "device": "cpu"}, "CUDA devices only"),
                        ({"strategy": "reference", "device": "cuda:1"}, "CPU only"),
                        ({"precision": "tf32", "dtype": "float64"}, "needs dtype float32")]:
        with pytest.raises(TrainingConfigError, match=message):
            TrainConfig(**kw)


def test_training_settings_are_declared_once_in_trainconfig():
    """The schema leaves `training` to TrainConfig (no key, default or choice of its own);
    --config values become TrainConfig's field types; and the stacked step's choices are
    the ones the network offers, each default listed first."""
    import yaml

    from sacnn.models import stacked
    from sacnn.training import config as C
    from sacnn.workflow_config import coerce_overrides

    root = os.path.dirname(os.path.dirname(__file__))
    with open(os.path.join(root, "workflow", "schemas", "config.schema.yaml")) as fh:
        schema = yaml.safe_load(fh)
    section = schema["properties"]["training"]
    assert "properties" not in section and "additionalProperties" not in section
    types = TrainConfig.field_types()
    assert set(types) == set(TrainConfig.__dataclass_fields__) >= set(C.EXECUTION_KEYS)
    given = {"epochs": "8", "learning_rate": "0.01", "cuda_graph": "false", "device": "cpu",
             "precision": "exact"}
    config = {"training": dict(given)}
    coerce_overrides(config, {"training": given}, schema)
    assert TrainConfig.from_dict(config["training"]) == TrainConfig(
        epochs=8, learning_rate=0.01, cuda_graph=False, device="cpu", precision="exact")
    assert set(DTYPES) == {"float32", "float64"}
    for key, choices, network in [("first_layer", C.FIRST_LAYERS, stacked.FIRST_LAYER_IMPLS),
                                  ("conv", C.CONVS, stacked.CONV_IMPLS),
                                  ("conv_layout", C.CONV_LAYOUTS, stacked.LAYOUTS),
                                  ("max_pool", C.MAX_POOLS, stacked.POOL_IMPLS),
                                  ("attention", C.ATTENTIONS, stacked.ATTENTION_IMPLS),
                                  ("compile", C.COMPILERS, None)]:
        assert network in (None, choices), key
        assert getattr(TrainConfig(), key) == choices[0], key  # the default is listed first


# -- weights: one module writes and reads them ----------------------------------------------

def test_weights_round_trip_through_their_module(tmp_path):
    import sacnn.analysis
    import sacnn.training
    from sacnn.training import weights as W

    for name in ("save_weights", "load_weights", "load_networks", "WEIGHTS_FORMAT"):
        assert getattr(sacnn.training, name) is getattr(W, name)
    assert sacnn.analysis.load_networks is W.load_networks
    spec, data = TINY["rf"], make_arrays()
    stage = ModelSpec("m", spec.name)
    c = cfg()
    res = train_chunk(spec, stage, data, c, site="s")
    W.save_weights(res, spec, stage, c, "s", tmp_path / "w.pt")
    w = W.load_weights(tmp_path / "w.pt")
    assert w["format"] == W.WEIGHTS_FORMAT and w["neuron_ids"] == ["11", "12", "13"]
    assert not [p.name for p in tmp_path.iterdir() if p.name != "w.pt"]  # no temporary left
    ids, nets = W.load_networks([tmp_path / "w.pt"], dtype=torch.float64)
    assert ids == ["11", "12", "13"]
    x = torch.from_numpy(data.val_images).unsqueeze(1).double()
    with torch.no_grad():
        for i, net in enumerate(nets):
            np.testing.assert_allclose(net(x).numpy(), res.val_predictions[i], rtol=1e-5,
                                       atol=1e-6)
    bad = dict(w, architecture="{not json")
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: field 'architecture'"):
        W.load_networks(tmp_path / "bad.pt")


def test_predictions_without_known_units_say_so():
    spec, data = TINY["rf"], make_arrays()
    stage = ModelSpec("m", spec.name)
    res = train_chunk(spec, stage, data, cfg(), site="s")
    ds = predictions_dataset(res, spec, stage, cfg(), "s", np.arange(16), data.val_responses)
    for name in ("prediction", "response"):
        assert "units" not in ds[name].attrs
        assert "units unknown" in ds[name].attrs["comment"]
    assert ds["val_corr_history"].attrs["units"] == "1"


def test_training_cli_writes_predictions_on_the_datasets_image_dimension(tmp_path):
    """predictions.nc and dataset.nc name the validation images alike, declare their
    conventions, and the predictions carry the dataset's response units."""
    from fixtures_data import tiny_site

    from sacnn.data.ingest import ingest
    from sacnn.training.__main__ import main as training_main

    dpath = ingest(tiny_site(tmp_path), "tiny", out=tmp_path / "dataset.nc")
    settings = json.dumps({
        "architectures": {"tiny": {"base": "rf-CNN", "channels": 4}},
        "models": {"m": {"architecture": "tiny"}},
        "training": {"device": "cpu", "epochs": 1, "batch_size": 8, "strategy": "per_model",
                     "workers": 1, "selection": "validation"}})
    assert training_main(["--settings", settings, "--dataset", str(dpath), "--site", "tiny",
                          "--model", "m", "--weights", str(tmp_path / "w.pt"),
                          "--predictions", str(tmp_path / "p.nc")]) == 0
    with xr.open_dataset(dpath) as data, xr.open_dataset(tmp_path / "p.nc") as preds:
        assert data["val_responses"].dims[1] == preds["prediction"].dims[1] == "val_image"
        assert data.attrs["Conventions"] == preds.attrs["Conventions"] == "CF-1.10"
        assert preds["prediction"].attrs["units"] == data["val_responses"].attrs["units"]
        merged = xr.merge([data["val_responses"], preds["prediction"]], join="exact")
        assert merged.sizes["val_image"] == data.sizes["val_image"]


def test_a_set_aside_checkpoint_is_named_and_removed_once_the_job_succeeds(tmp_path, caplog):
    """The training job (as the workflow runs it) sets an unusable checkpoint aside, says
    where, and removes it with its own checkpoint once its outputs are written (until then,
    e.g. after a failure, it stays: train_chunk alone leaves it, test above)."""
    from fixtures_data import tiny_site

    from sacnn.data.ingest import ingest
    from sacnn.training.__main__ import main as training_main

    dpath = ingest(tiny_site(tmp_path), "tiny", out=tmp_path / "dataset.nc")
    settings = json.dumps({
        "architectures": {"tiny": {"base": "rf-CNN", "channels": 4}},
        "models": {"m": {"architecture": "tiny"}},
        "training": {"device": "cpu", "epochs": 1, "batch_size": 8, "strategy": "reference"}})
    ckpt = tmp_path / "chunk0" / "checkpoint.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"not a checkpoint")
    args = ["--settings", settings, "--dataset", str(dpath), "--site", "tiny", "--model", "m",
            "--weights", str(tmp_path / "chunk0" / "w.pt"), "--checkpoint", str(ckpt),
            "--predictions", str(tmp_path / "chunk0" / "p.nc")]
    with caplog.at_level("INFO", logger="sacnn.training"):
        assert training_main(args) == 0
    aside = tmp_path / "chunk0" / "checkpoint.pt.unusable"
    assert f"moved to {aside} (removed when the job succeeds)" in caplog.text
    assert f"removed {aside}, the unusable checkpoint set aside" in caplog.text
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["p.nc", "w.pt"]
