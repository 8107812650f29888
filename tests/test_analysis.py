"""Figure computations (sacnn.analysis) checked against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from fixtures_figures import CHUNKS, MODELS

from sacnn import analysis as A
from sacnn.data import open_dataset
from sacnn.metrics import sem
from sacnn.models import CentreReadout, DecomposedReadout, FullReadout, spec_from_dict


@pytest.fixture(scope="module")
def images(tree):
    return open_dataset(tree["inputs"]["datasets"]["S1"])["val_images"].values


def nets_of(tree, model, site="S1"):
    return A.load_networks(tree["inputs"]["weights"][site][model])


# -- networks -----------------------------------------------------------------------------

def test_load_networks_keeps_chunk_order_and_reproduces_the_saved_predictions(tree, images):
    ids, nets = nets_of(tree, "ff_sa_cnn")
    pred = xr.open_dataset(tree["inputs"]["predictions"]["S1"]["ff_sa_cnn"]).load()
    assert ids == [str(n) for n in pred["neuron"].values]
    assert len(ids) == sum(len(c) for c in CHUNKS)
    assert all(not net.training for net in nets)
    x = torch.from_numpy(images).double().unsqueeze(1)
    with torch.no_grad():
        ours = np.stack([net(x).numpy() for net in nets])
    # saved predictions were computed in float32 during training
    np.testing.assert_allclose(ours, pred["prediction"].values, rtol=1e-4, atol=1e-5)


# -- FCL contributions and decomposition -----------------------------------------------------

@pytest.mark.parametrize("model", ["ff_cnn", "ff_sa_cnn_star_simul", "rf_cnn",
                                   "ff_sa_cnn_star_incr_fc1"])
def test_contributions_plus_bias_equal_the_network_output(tree, images, model):
    _, nets = nets_of(tree, model)
    x = torch.from_numpy(images).double().unsqueeze(1)
    for net in nets[:2]:
        with torch.no_grad():
            out = net(x).numpy()
        contrib = A.fcl_contributions(net, images)
        size = net.spec.output_size
        assert contrib.shape == (len(images), size, size)
        np.testing.assert_allclose(contrib.sum(axis=(1, 2)) + A.readout_bias(net), out,
                                   rtol=0, atol=1e-12)
        centre, surround, bias = A.fcl_decomposition(net, images)
        np.testing.assert_allclose(centre + surround + bias, out, rtol=0, atol=1e-12)
        # the two routes agree on the centre term (DecomposedReadout: parts() vs weights)
        np.testing.assert_allclose(centre, contrib[:, size // 2, size // 2], atol=1e-12)


def test_contributions_by_an_explicit_loop_over_hypercolumns(tree, images):
    """FullReadout: contribution (h, w) = sum_c W[c, h, w] x[c, h, w], done by hand."""
    _, nets = nets_of(tree, "ff_sa_cnn_star_simul")
    net = nets[0]
    assert isinstance(net.readout, FullReadout)
    with torch.no_grad():
        feats = net.features(torch.from_numpy(images[:3]).double().unsqueeze(1)).numpy()
    w = net.readout.linear.weight.detach().numpy()[0]
    c, h, wd = feats.shape[1:]
    expected = np.zeros((3, h, wd))
    for i in range(h):
        for j in range(wd):
            for ch in range(c):
                expected[:, i, j] += w[ch * h * wd + i * wd + j] * feats[:, ch, i, j]
    np.testing.assert_allclose(A.fcl_contributions(net, images[:3]), expected, atol=1e-12)


def test_centre_readout_has_no_surround(tree, images):
    _, nets = nets_of(tree, "rf_cnn")
    assert isinstance(nets[0].readout, CentreReadout)
    _, surround, _ = A.fcl_decomposition(nets[0], images)
    assert np.all(surround == 0)


def test_decomposed_readout_terms_are_the_combined_parts(tree, images):
    _, nets = nets_of(tree, "ff_sa_cnn_star_incr_fc1")
    net = nets[1]
    r = net.readout
    assert isinstance(r, DecomposedReadout)
    with torch.no_grad():
        c_part, s_part = r.parts(net.features(torch.from_numpy(images).double().unsqueeze(1)))
    (a_c, a_s), b = r.combine.weight[0].tolist(), r.combine.bias.item()
    centre, surround, bias = A.fcl_decomposition(net, images)
    np.testing.assert_allclose(centre + surround + bias, a_c * c_part + a_s * s_part + b,
                               atol=1e-12)
    np.testing.assert_allclose(centre, a_c * (c_part.numpy() - r.centre.bias.item()),
                               atol=1e-12)


# -- attention ------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["rf_sa_cnn", "ff_sa_cnn_star_incr_fc2"])
def test_centre_attention_is_the_centre_row_of_a_hand_computed_softmax(tree, images, model):
    _, nets = nets_of(tree, model)
    net = nets[0]
    att = A.centre_attention(net, images)
    assert att.shape == (len(images), 9, 9)
    np.testing.assert_allclose(att.sum(axis=(1, 2)), 1.0, atol=1e-12)
    assert (att >= 0).all()
    sa = net.attention[0].sa
    with torch.no_grad():
        x = torch.from_numpy(images).double().unsqueeze(1)
        for block in net.alpha:
            x = block(x)
        q = sa.query(x).flatten(2)[:, :, 4 * 9 + 4]            # (B, d) centre query
        k = sa.key(x).flatten(2)                                # (B, d, 81)
        expected = torch.softmax(torch.einsum("bd,bdn->bn", q, k), dim=-1)
    np.testing.assert_allclose(att.reshape(len(images), -1), expected.numpy(), atol=1e-12)


def test_centre_attention_refuses_a_model_without_attention(tree, images):
    _, nets = nets_of(tree, "rf_cnn")
    with pytest.raises(ValueError, match="no self-attention"):
        A.centre_attention(nets[0], images)


def _hand_sa(v_mapping: bool, gain: float, seed: int = 0):
    """A small self-attention layer (3 channels, d = 2) with random weights and biases."""
    from sacnn.models import SelfAttention

    torch.manual_seed(seed)
    sa = SelfAttention(3, 2, v_mapping).double()
    with torch.no_grad():
        for p in sa.parameters():
            p.normal_()
        sa.residual_gain.fill_(gain)
    return sa


@pytest.mark.parametrize("v_mapping", [True, False])
def test_surround_attention_by_hand(v_mapping):
    """s = || g sum_{j != c} a_cj u_j || with u_j = W_p (W_v x_j + b_v) + b_p (gamma = True) or
    x_j, computed position by position in numpy from the layer's weights; the SA output at
    the centre is x_c plus the centre's and the surround's terms."""
    sa = _hand_sa(v_mapping, gain=0.7)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s, norm = A.surround_attention(sa, x)
    w = {n: p.detach().numpy() for n, p in sa.named_parameters()}
    xs = x.numpy().reshape(4, 3, 25)
    c = 2 * 5 + 2
    for b in range(4):
        q = w["query.weight"][:, :, 0, 0] @ xs[b, :, c] + w["query.bias"]
        k = w["key.weight"][:, :, 0, 0] @ xs[b]
        e = q @ k
        a = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        if v_mapping:
            u = (w["project.weight"][:, :, 0, 0] @ (w["value.weight"][:, :, 0, 0] @ xs[b]
                                                     + w["value.bias"][:, None])
                 + w["project.bias"][:, None])
        else:
            u = xs[b]
        surround = 0.7 * (u @ np.where(np.arange(25) == c, 0.0, a))
        output = xs[b, :, c] + 0.7 * (u @ a)
        np.testing.assert_allclose(sa.attend(x)[0][b, :, 2, 2].detach().numpy(), output,
                                   atol=1e-12)
        assert s[b] == pytest.approx(np.linalg.norm(surround), rel=1e-12)
        assert norm[b] == pytest.approx(np.linalg.norm(output), rel=1e-12)
    assert (s > 0).all()


def test_surround_attention_reads_zero_when_attention_changes_nothing():
    x = torch.randn(3, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    # a gain of 0: the layer is the identity, the surround adds nothing
    s0, norm0 = A.surround_attention(_hand_sa(True, gain=0.0), x)
    np.testing.assert_array_equal(s0, 0.0)
    np.testing.assert_allclose(norm0, np.linalg.norm(x[:, :, 2, 2].numpy(), axis=1))
    # doubling the gain doubles the surround's contribution (the attention does not change)
    s1, _ = A.surround_attention(_hand_sa(True, gain=0.5), x)
    s2, _ = A.surround_attention(_hand_sa(True, gain=1.0), x)
    np.testing.assert_allclose(s2, 2 * s1, rtol=1e-12)
    assert (s1 > 0).all()
    # attention concentrated on the centre: energy 900 at the centre, 0 elsewhere
    sa = _hand_sa(False, gain=1.0)
    with torch.no_grad():
        sa.query.weight.zero_()
        sa.query.weight[0, 0] = 1.0
        sa.query.bias.zero_()
        sa.key.weight.zero_()
        sa.key.weight[0, 0] = 1.0
    focused = torch.zeros(2, 3, 5, 5, dtype=torch.float64)
    focused[:, 1] = 1.0
    focused[:, 0, 2, 2] = 30.0
    s, norm = A.surround_attention(sa, focused)
    assert (norm > 0).all() and s.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("model", ["rf_sa_cnn", "ff_sa_cnn_star_incr_fc2"])
def test_attention_surround_effect_runs_the_layer_the_attention_maps_show(tree, images, model):
    """The network-level probe feeds the first SA layer the input attention_maps uses: the
    attention it implies is centre_attention's, and its s is that of surround_attention."""
    _, nets = nets_of(tree, model)
    net = nets[0]
    s, norm = A.attention_surround_effect(net, images, batch=7)  # batches joined in order
    sa, x = A._attention_input(net, torch.from_numpy(images).double().unsqueeze(1), 0)
    with torch.no_grad():
        att = sa.attend(x)[1][:, 4 * 9 + 4, :].numpy()
    np.testing.assert_allclose(att, A.centre_attention(net, images).reshape(len(images), -1),
                               atol=1e-12)
    s_all, norm_all = A.surround_attention(sa, x)
    np.testing.assert_allclose(s, s_all, rtol=1e-12)
    np.testing.assert_allclose(norm, norm_all, rtol=1e-12)
    assert sa.residual_gain.detach().item() != 0 and (s > 0).all() and (norm > 0).all()
    with pytest.raises(ValueError, match="no self-attention layer"):
        A.attention_surround_effect(nets_of(tree, "rf_cnn")[1][0], images)


# -- architecture geometry -------------------------------------------------------------------

def test_the_geometry_table_of_the_docs_is_the_specs():
    """docs/models.md's feature-map table (final map, field, readout inputs) is what
    ArchitectureSpec.feature_maps() gives for every named architecture."""
    from pathlib import Path

    from sacnn.models import NAMED_ARCHITECTURES

    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    table = text[text.index("## Feature-map geometry"):]
    rows = {cells[0]: cells[1:] for line in table.splitlines() if line.startswith("| ")
            and not line.startswith("| architecture")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert set(rows) == set(NAMED_ARCHITECTURES)
    for name, spec in NAMED_ARCHITECTURES.items():
        maps = spec.feature_maps()
        side, n_in = maps[-1].size, spec.channels
        if spec.readout != "ctl":
            n_in = spec.channels * side * side
        sides, final, rf, readout, inputs = rows[name]
        assert sides == " -> ".join(str(m.size) for m in maps), name
        assert final == f"{side} x {side}" and rf == str(maps[-1].rf), name
        assert readout == spec.readout and inputs.split("= ")[-1] == str(n_in), name
    assert rows["ff-CNN"][-1] == "5 x 5 x 32 = 800"


@pytest.mark.parametrize("model", list(MODELS))
def test_architecture_layers_match_the_feature_maps(tree, model):
    data = tree["params"]["architectures"][model]
    spec = spec_from_dict(data["name"], data)
    rows = A.architecture_layers(spec)
    assert rows[0]["size"] == spec.input_size and rows[-1]["kind"] == "readout"
    assert [r["kind"] for r in rows[1:-1]] == [layer.kind for layer in spec.layers]
    _, nets = nets_of(tree, model)
    assert [r["group"] for r in rows[1:-1]] == [f"{g}.{i}" for g, i in nets[0].order]
    x = torch.zeros(2, 1, 50, 50, dtype=torch.float64)
    with torch.no_grad():
        for (g, i), row in zip(nets[0].order, rows[1:-1], strict=True):
            x = getattr(nets[0], g)[i](x)
            assert x.shape[1:] == (spec.channels, row["size"], row["size"]), row["group"]
        feats = nets[0].features(torch.zeros(2, 1, 50, 50, dtype=torch.float64))
    assert feats.shape[1:] == (spec.channels, rows[-2]["size"], rows[-2]["size"])


def test_feature_grid_of_two_alpha_blocks():
    """50 px -> conv5 -> 46 -> pool -> 23 -> conv5 -> 19 -> pool -> 9: hypercolumn i is centred
    on pixel 7.5 + 4 i and sees 16 px (5 + 1 + 2*4 + 2)."""
    spec = spec_from_dict("x", {"base": "rf-CNN"})
    offset, stride, rf = A.feature_grid(spec, 2)
    assert (offset, stride, rf) == (7.5, 4.0, 16)
    # the grid's last hypercolumn sees the last pixels a valid conv/pool chain can reach
    assert offset + stride * 8 + (rf - 1) / 2 <= 49


# -- tuning curves ----------------------------------------------------------------------------

def test_rank_ordered_tuning_sorts_by_real_response():
    real = np.array([0.1, 0.5, 0.3, 0.5])
    pred = np.array([1.0, 2.0, 3.0, 4.0])
    r, p = A.rank_ordered_tuning(pred, real)
    np.testing.assert_array_equal(r, [0.5, 0.5, 0.3, 0.1])
    np.testing.assert_array_equal(p, [2.0, 4.0, 3.0, 1.0])  # ties keep image order
    rng = np.random.default_rng(0)
    real2, pred2 = rng.random((5, 30)), rng.random((5, 30))
    r2, p2 = A.rank_ordered_tuning(pred2, real2)
    assert (np.diff(r2, axis=1) <= 0).all()
    np.testing.assert_array_equal(np.sort(p2, axis=1), np.sort(pred2, axis=1))


def test_population_tuning_is_the_mean_of_per_neuron_curves():
    rng = np.random.default_rng(1)
    real, pred = rng.random((4, 25)), rng.random((4, 25))
    curves_r, curves_p = [], []
    for n in range(4):
        order = sorted(range(25), key=lambda i: -real[n, i])
        curves_r.append(real[n, order])
        curves_p.append(pred[n, order])
    mr, mp = A.population_tuning(pred, real)
    np.testing.assert_allclose(mr, np.mean(curves_r, axis=0))
    np.testing.assert_allclose(mp, np.mean(curves_p, axis=0))


def test_pt_summary_in_percent_with_sem():
    frame = pd.DataFrame({"site": "s", "model": "m", "pt_j": [0.0, 0.1, 0.3, np.nan],
                          "pt_s": [0.2, 0.2, 0.5, 0.1], "pt_k": 10})
    out = A.pt_summary(frame).set_index("measure")
    assert out.loc["pt_j", "mean"] == pytest.approx(100 * np.mean([0.0, 0.1, 0.3]))
    assert out.loc["pt_j", "sem"] == pytest.approx(100 * sem([0.0, 0.1, 0.3]))
    assert out.loc["pt_j", "n_undefined"] == 1
    assert out.loc["pt_s", "mean"] == pytest.approx(25.0)


# -- example neuron ---------------------------------------------------------------------------

FRAME = pd.DataFrame({
    "model": ["a"] * 3 + ["b"] * 3,
    "neuron": [7, 8, 9] * 2,
    "corr": [0.5, 0.2, 0.6, 0.5, 0.9, 0.3],
    "pt_j": [0.1, 0.3, 0.0, 0.1, 0.0, 0.0],
    "pt_s": [0.2, 0.3, 0.1, 0.1, 0.0, 0.0],
})


def test_example_neuron_rules():
    # mean corr: 7 -> 0.5, 8 -> 0.55, 9 -> 0.45
    assert A.choose_example_neuron(FRAME, {"rule": "highest_mean_corr"}) == "8"
    assert A.choose_example_neuron(FRAME, {"rule": "highest_mean_corr", "models": ["a"]}) == "9"
    # pt_j(a) - pt_j(b): 7 -> 0, 8 -> 0.3, 9 -> 0
    assert A.choose_example_neuron(FRAME, {"rule": "max_pt_difference", "better": "a",
                                           "worse": "b"}) == "8"
    # pt_j(b) - pt_j(a): 7 -> 0, 8 -> -0.3, 9 -> 0: tie broken by mean r (7: 0.5 > 9: 0.45)
    assert A.choose_example_neuron(FRAME, {"rule": "max_pt_difference", "better": "b",
                                           "worse": "a"}) == "7"
    assert A.choose_example_neuron(FRAME, {"neuron": 9}) == "9"
    assert A.choose_example_neuron(FRAME, None) == "8"
    with pytest.raises(KeyError, match="not among"):
        A.choose_example_neuron(FRAME, {"rule": "explicit", "neuron": 3})
    with pytest.raises(ValueError, match="unknown example neuron rule"):
        A.choose_example_neuron(FRAME, {"rule": "prettiest"})
    with pytest.raises(KeyError, match="no metrics for models"):
        A.choose_example_neuron(FRAME, {"rule": "highest_mean_corr", "models": ["c"]})


def test_example_neuron_from_predictions_matches_metrics(tree):
    models = ["ff_cnn", "rf_cnn"]
    preds = {m: xr.open_dataset(tree["inputs"]["predictions"]["S1"][m]).load() for m in models}
    frame = pd.concat([pd.read_csv(tree["inputs"]["metrics"]["S1"][m]) for m in models])
    rule = {"rule": "highest_mean_corr"}
    assert A.choose_example_neuron(preds, rule) == A.choose_example_neuron(frame, rule)
