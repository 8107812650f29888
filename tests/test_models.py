"""Shapes, parameter counts, the gamma switch, readouts and freezing of the model zoo."""

import json

import pytest
import torch

from sacnn.models import (
    NAMED_ARCHITECTURES,
    SpecError,
    build_network,
    count_parameters,
    get_architecture,
    parameter_table,
    parse_layer,
    spec_from_dict,
)

PAPER_NAMES = ["ff-CNN", "ff+sa-CNN", "rf-CNN", "rf+sa-CNN", "rf+sa-CNN*", "ff+sa-CNN*",
               "ff+sa-CNN* (FC1)", "rf-CNN (c=30)", "rf+sa-CNN (c=375)", "ff+sa-CNN (no beta)",
               "rf+sa-CNN (no beta)", "alpha-alpha-SA-beta3-beta3-CTL"]


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_every_named_model_builds_and_predicts_one_value_per_image(name):
    net = build_network(get_architecture(name), seed=0)
    x = torch.rand(4, 1, 50, 50)
    net.train()
    assert net(x).shape == (4,)
    net.eval()
    assert net(x).shape == (4,)


def test_feature_map_sizes_match_the_paper():
    # 50 -> 46 -> 23 -> 19 -> 9 after two alpha blocks; 3x3 betas take 9 -> 5.
    assert get_architecture("ff-CNN").output_size == 5
    assert get_architecture("rf-CNN").output_size == 9
    net = build_network(get_architecture("ff+sa-CNN*"), seed=0).eval()
    assert net.features(torch.rand(2, 1, 50, 50)).shape == (2, 30, 9, 9)


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_feature_maps_are_the_shapes_of_a_forward_pass(name):
    spec = get_architecture(name)
    net = build_network(spec, seed=0).eval()
    maps = spec.feature_maps()
    assert len(maps) == len(spec.layers) + 1 and maps[-1].size == spec.output_size
    x = torch.rand(1, 1, spec.input_size, spec.input_size)
    assert x.shape[-2:] == (maps[0].size, maps[0].size)
    with torch.no_grad():
        for (group, i), m in zip(net.order, maps[1:], strict=True):
            block = getattr(net, group)[i]
            conv = block.conv(x) if group != "attention" else block.sa(x)
            assert conv.shape[-2:] == (m.conv, m.conv), (group, i)
            x = block(x)
            assert x.shape[-2:] == (m.size, m.size), (group, i)
        assert net.features(torch.rand(1, 1, 50, 50)).shape[-2:] == (maps[-1].size,) * 2
    assert spec.sizes() == [(m.conv, m.size) for m in maps[1:]]


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_feature_maps_place_each_hypercolumn_on_the_pixels_it_sees(name):
    """A bump on one pixel moves the centre hypercolumn after n layers iff the pixel lies in
    its ``rf`` window centred on ``offset + stride * centre``. All convolutions are set to
    positive means, so every block is monotone and a bump anywhere in the window gets through
    max-pooling (the rest of the map is uniform); attention starts as the identity."""
    spec = spec_from_dict(name, {"base": name, "channels": 2, "attention_dim": 1})
    net = build_network(spec, seed=0).double().eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):  # attention ones too: its gain is 0
                module.weight.fill_(1.0 / module.weight[0].numel())
    side = spec.input_size
    for n, m in enumerate(spec.feature_maps()):
        centre = m.size // 2
        lo = m.offset + m.stride * centre - (m.rf - 1) / 2
        assert lo == int(lo) and 0 <= lo and lo + m.rf <= side
        x = torch.zeros(side + 1, 1, side, side, dtype=torch.float64)
        for col in range(side):                           # image 0 is the blank reference
            x[col + 1, 0, int(lo), col] = 100.0
        with torch.no_grad():
            for group, i in net.order[:n]:
                x = getattr(net, group)[i](x)
        moved = (x[1:, :, centre, centre] - x[0, :, centre, centre]).abs().amax(1) > 1e-12
        assert moved.nonzero().flatten().tolist() == list(range(int(lo), int(lo) + m.rf)), n


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_to_dict_round_trips_through_spec_from_dict(name):
    spec = get_architecture(name)
    data = json.loads(json.dumps(spec.to_dict()))          # as weights files hold it
    # the JSON is a rerun trigger of figures and tables: its keys stay these
    assert list(data) == ["name", "channels", "layers", "readout", "attention_dim", "dropout",
                          "input_size"]
    back = spec_from_dict(data["name"], data)
    assert back == spec and back.to_dict() == spec.to_dict()
    with pytest.raises(SpecError, match="names it"):
        spec_from_dict("other", data)


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_readout_is_its_weight_map_and_bias(name):
    """Every readout is affine: its output is sum(weight_map * features) + bias_term."""
    spec = get_architecture(name)
    net = build_network(spec, seed=0).double().eval()
    r = net.readout
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in r.parameters():    # random, so FC1's combination mixes both branches
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    size = spec.output_size
    feats = torch.rand(4, spec.channels, size, size, generator=gen, dtype=torch.float64)
    w, b = r.weight_map(), r.bias_term()
    assert w.shape == (spec.channels, size, size) and b.shape == ()
    with torch.no_grad():
        torch.testing.assert_close(r(feats), (feats * w).sum((1, 2, 3)) + b,
                                   rtol=0, atol=1e-12)
        assert float(r(torch.zeros_like(feats))[0]) == pytest.approx(float(b), abs=1e-12)
    if spec.readout == "ctl":                     # a centre readout weighs nothing else
        w = w.detach().clone()
        w[:, size // 2, size // 2] = 0
        assert not w.any()


def test_parameter_counts_reproduce_the_released_code():
    # Counts of the released code (conv biases before BN kept), derived by hand:
    # ff-CNN: 832+64+25632+64+9248+64+9248+64+801 = 46017.
    table = parameter_table().set_index("architecture")
    assert table.loc["ff-CNN", "parameters_released_code"] == 46017
    assert table.loc["rf-CNN", "parameters_released_code"] == 28865
    assert table.loc["ff+sa-CNN", "parameters_released_code"] == 41267
    assert table.loc["rf+sa-CNN", "parameters_released_code"] == 26147
    # Ours drop only parameters without effect: 4 conv biases of 32 for ff-CNN.
    assert table.loc["ff-CNN", "parameters"] == 46017 - 4 * 32
    assert table.loc["ff-CNN", "parameters"] == count_parameters(
        build_network(NAMED_ARCHITECTURES["ff-CNN"]))


def test_gamma_switch_changes_the_value_path():
    mapped = build_network(get_architecture("rf+sa-CNN*"), seed=0)
    identity = build_network(get_architecture("rf+sa-CNN"), seed=0)
    assert hasattr(mapped.attention[0].sa, "value") and hasattr(mapped.attention[0].sa, "project")
    assert not hasattr(identity.attention[0].sa, "value")
    # With gamma = False the attention output is a convex mix of input hypercolumns.
    sa = identity.attention[0].sa
    x = torch.rand(3, 30, 9, 9)
    with torch.no_grad():
        sa.residual_gain.fill_(1.0)
        out, att = sa.attend(x)
    mixed = torch.einsum("bcj,bij->bci", x.reshape(3, 30, 81), att).reshape(3, 30, 9, 9)
    torch.testing.assert_close(out, x + mixed)
    torch.testing.assert_close(att.sum(-1), torch.ones(3, 81))


def test_attention_starts_as_identity():
    net = build_network(get_architecture("ff+sa-CNN"), seed=1).eval()
    sa = net.attention[0].sa
    x = torch.rand(2, 30, 9, 9)
    torch.testing.assert_close(sa(x), x)


def test_centre_readout_sees_only_the_centre_hypercolumn():
    net = build_network(get_architecture("rf-CNN"), seed=0).eval()
    feats = torch.rand(2, 32, 9, 9)
    changed = feats.clone()
    changed[:, :, 0, :] = 5.0
    changed[:, :, :, 8] = -5.0
    torch.testing.assert_close(net.readout(feats), net.readout(changed))
    changed[:, :, 4, 4] += 1.0
    assert not torch.allclose(net.readout(feats), net.readout(changed))


def test_decomposed_readout_starts_equal_to_its_centre_part():
    net = build_network(get_architecture("ff+sa-CNN* (FC1)"), seed=0).eval()
    feats = torch.rand(5, 30, 9, 9)
    centre, _surround = net.readout.parts(feats)
    torch.testing.assert_close(net.readout(feats), centre)
    # The centre part is exactly a CTL on hypercolumn (4, 4).
    torch.testing.assert_close(centre, net.readout.centre(feats[:, :, 4, 4]).squeeze(-1))


def test_same_seed_same_weights_and_global_rng_untouched():
    spec = get_architecture("ff+sa-CNN")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_network(spec, seed=7)
    after = torch.rand(1)
    b = build_network(spec, seed=7)
    c = build_network(spec, seed=8)
    assert before == after
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(),
                               c.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not all(torch.equal(va, vc) for va, vc in zip(a.state_dict().values(),
                                                         c.state_dict().values()))


def test_explicit_masks_equal_manual_channel_dropout():
    net = build_network(get_architecture("rf-CNN"), seed=0).train()
    masks = net.draw_masks(6, key=12345, step=0)
    assert len(masks) == 3  # two alpha blocks and the first beta; none before the readout
    x = torch.rand(6, 1, 50, 50)
    out = net(x, masks)
    h = x
    for (group, i), m in zip(net.order, masks + [None]):
        block = getattr(net, group)[i]
        h = block.conv(h)
        if block.pool:
            h = torch.nn.functional.max_pool2d(h, 2)
        h = torch.sigmoid(block.bn(h))
        if m is not None:
            h = h * m
    # BN running stats were updated twice; compare outputs only.
    torch.testing.assert_close(out, net.readout(h))
    assert torch.allclose(torch.unique(masks[0]), torch.tensor([0.0, 1 / 0.7]))


def test_freeze_eval_mode_keeps_frozen_blocks_in_eval():
    net = build_network(get_architecture("ff+sa-CNN*"), seed=0)
    net.freeze(["alpha", "attention", "beta"], mode="eval")
    net.train()
    assert not net.alpha.training and not net.beta.training and net.readout.training
    assert all(not p.requires_grad for p in net.alpha.parameters())
    assert all(p.requires_grad for p in net.readout.parameters())
    net.freeze(["alpha"], mode="train")
    net.train()
    assert net.alpha.training


def test_layer_tokens_and_spec_errors():
    assert parse_layer("beta(k=3)").kernel == 3
    assert parse_layer("sa(gamma=false)").v_mapping is False
    for bad in ["gamma", "beta", "beta(k=2)", "sa(gamma=maybe)", "alpha(k=3)", "beta(3)"]:
        with pytest.raises(SpecError):
            parse_layer(bad)
    with pytest.raises(SpecError, match="unknown keys"):
        spec_from_dict("x", {"channels": 8, "layers": ["alpha"], "readout": "fcl", "chanels": 3})
    with pytest.raises(SpecError, match="missing keys"):
        spec_from_dict("x", {"layers": ["alpha"]})
    with pytest.raises(SpecError, match="readout"):
        spec_from_dict("x", {"channels": 8, "layers": ["alpha"], "readout": "gap"})
    with pytest.raises(SpecError, match="shrink"):
        spec_from_dict("x", {"channels": 8, "layers": ["alpha"] * 4, "readout": "fcl"})
    with pytest.raises(SpecError, match="unknown architecture"):
        get_architecture("resnet")
    with pytest.raises(SpecError, match="first layer"):
        build_network(spec_from_dict("x", {"channels": 8, "layers": ["sa"], "readout": "fcl"}))
    small = spec_from_dict("small", {"base": "ff+sa-CNN", "channels": 8})
    assert small.channels == 8 and small.layers == get_architecture("ff+sa-CNN").layers
    with pytest.raises(SpecError, match="cannot freeze"):
        build_network(small).freeze(["gamma"])


def test_parameter_table_cli_writes_csv_and_markdown(tmp_path):
    from sacnn.models.__main__ import main

    main(["--out", str(tmp_path / "p.csv")])
    main(["--out", str(tmp_path / "p.md")])
    assert "ff+sa-CNN" in (tmp_path / "p.csv").read_text()
    md = (tmp_path / "p.md").read_text().splitlines()
    assert md[0].startswith("| architecture |") and len(md) == 2 + len(NAMED_ARCHITECTURES)


def test_the_modules_a_spec_names_are_the_networks():
    """What a stage's load/freeze is checked against when Snakemake starts
    (ArchitectureSpec.modules, no torch) is what the built network has: its non-empty
    blocks and readout parts."""
    for name, spec in NAMED_ARCHITECTURES.items():
        net = build_network(spec)
        built = {n for n, m in net.named_modules() if n and n.count(".") <= 1
                 and not (isinstance(m, torch.nn.ModuleList) and len(m) == 0)}
        assert set(spec.modules()) == built, name
