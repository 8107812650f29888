"""Cost projection: jobs from the experiment matrix, throughput lookup, FLOP counts, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sacnn import cost, experiment
from sacnn.models import build_network, get_architecture, spec_from_dict
from sacnn.models.cost import forward_macs, training_flops

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "docs" / "measurements" / "h200-2026-11-27.jsonl"


def test_forward_macs_match_a_count_from_the_modules():
    """Conv and linear MACs counted by hooks on a real forward pass equal the formula."""
    import torch

    for name in ["ff-CNN", "rf-CNN", "ff+sa-CNN", "ff+sa-CNN* (FC1)"]:
        spec = get_architecture(name)
        net = build_network(spec, seed=0).eval()
        counted = []

        def hook(module, inp, out, counted=counted):
            if isinstance(module, torch.nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                counted.append(out.shape[1] * out.shape[2] * out.shape[3] * module.in_channels * k)
            elif isinstance(module, torch.nn.Linear):
                counted.append(module.in_features * module.out_features)

        for m in net.modules():
            m.register_forward_hook(hook)
        with torch.no_grad():
            net(torch.zeros(1, 1, 50, 50))
        attention = sum(c.macs for c in forward_macs(spec) if "sa(" in c.name)
        projections = sum(2 * 9 * 9 * spec.attention_dim * spec.channels * (
            2 if layer.v_mapping else 1) for layer in spec.layers if layer.kind == "sa")
        matmuls = attention - projections  # q.k and attention.v: not modules
        assert sum(counted) + matmuls == sum(c.macs for c in forward_macs(spec)), name
    assert training_flops(get_architecture("ff-CNN")) > training_flops(get_architecture("rf-CNN"))


def test_throughput_interpolates_measured_and_estimates_unmeasured_architectures():
    rows = [{"architecture": "A", "neurons": 1, "trainer_ips": 100.0, "train_flops": 1000},
            {"architecture": "A", "neurons": 100, "trainer_ips": 10000.0, "train_flops": 1000},
            {"architecture": "B", "neurons": 10, "trainer_ips": 50.0, "train_flops": 10**6},
            {"architecture": "B", "neurons": 300, "error": "trainer: out of memory"}]
    t = cost.Throughput(rows)
    assert t.ips("A", 1000, 1) == (100.0, "measured")
    assert t.ips("A", 1000, 10)[0] == pytest.approx(1000.0)  # geometric in log(neurons)
    assert t.ips("A", 1000, 500)[0] == 10000.0  # clamped
    ips, source = t.ips("C", 2000, 100)  # FLOPs closest to A: A's TFLOP/s
    assert source == "estimated from A" and ips == pytest.approx(10000.0 * 1000 / 2000)
    # a measured name with other widths (a config override) is costed by FLOPs too
    assert t.ips("A", 4000, 100)[1] == "estimated from A"
    assert t.out_of_memory("B", 400) and not t.out_of_memory("B", 100)


def test_jobs_of_a_simulated_config_and_their_cost(tmp_path):
    config = cost.load_config(ROOT / "config" / "config.yaml")
    jobs = cost.training_jobs(config, {})
    cells = experiment.trained_cells(config)
    assert [(j.site, j.model, j.fraction) for j in jobs] == cells
    sim = config["sites"]["sim1"]["simulate"]
    j = next(j for j in jobs if j.site == "sim1" and j.fraction == "f100")
    assert sum(j.chunks) == sim["n_neurons"]
    assert j.fit_images == sim["n_train"] - round(0.1 * sim["n_train"])
    assert j.eval_images == round(0.1 * sim["n_train"]) + sim["n_val"]
    half = next(j for j in jobs if j.fraction == "f50")
    assert half.fit_images == sim["n_train"] // 2 - round(0.1 * sim["n_train"] // 2)
    rows = cost.project(jobs, config, cost.Throughput.read(MEASURED))
    assert all(r["gpu_hours"] > 0 for r in rows)
    out = tmp_path / "rows.json"
    assert cost.main(["--throughput", str(MEASURED), "--json", str(out)]) == 0
    assert len(json.loads(out.read_text())) == len(jobs)


def test_chain_parents_are_trained_even_when_no_table_reads_them():
    config = cost.load_config(ROOT / "config" / "config.yaml")
    config["experiments"]["table2"]["models"] = ["ff_sa_cnn_star_incr_fc1"]
    config["experiments"]["table2"]["baseline"] = "ff_sa_cnn_star_incr_fc1"
    cells = experiment.trained_cells(config)
    fc1 = cells.index(("sim1", "ff_sa_cnn_star_incr_fc1", "f100"))
    assert cells.index(("sim1", "rf_sa_cnn_star_incr", "f100")) < fc1
    assert cells.index(("sim1", "rf_cnn_c30", "f100")) < fc1


def test_raw_sites_read_their_size_from_npy_headers_or_ask_for_it(tmp_path, monkeypatch):
    paper = ROOT / "config" / "paper.yaml"
    monkeypatch.chdir(tmp_path)
    config = cost.load_config(paper)
    with pytest.raises(cost.CostError, match=r"--site M1S1=NEURONS:TRAIN_IMAGES"):
        cost.training_jobs(config, {})
    folder = tmp_path / "resources" / "M1S1"
    folder.mkdir(parents=True)
    np.save(folder / "trainRsp_m1s1.npy", np.zeros((120, 7), dtype=np.float32))
    sizes = {"M2S1": cost.SiteSize(299, 49000, 1000)}
    jobs = cost.training_jobs(config, sizes)
    m1 = next(j for j in jobs if j.site == "M1S1" and j.fraction == "f100")
    assert m1.chunks == [7] and m1.eval_images == 12 + cost.PAPER_VAL_IMAGES
    m2 = next(j for j in jobs if j.site == "M2S1")
    assert m2.chunks == [50] * 5 + [49]
    (folder / "trainRsp_m1s1.npy").write_text("not an array")
    with pytest.raises(cost.CostError, match="trainRsp_m1s1.npy: not a readable .npy file"):
        cost.training_jobs(config, sizes)


def test_cli_errors_name_what_to_give(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cost.main(["--throughput", str(MEASURED), "--site", "M1S1=302"])
    assert "expected NAME=NEURONS:TRAIN_IMAGES" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(SystemExit, match="bad.jsonl: not a JSON-lines throughput file"):
        cost.main(["--throughput", str(bad)])
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"architecture": "A", "neurons": 1, "error": "oom"}) + "\n")
    with pytest.raises(SystemExit, match="no measured rows"):
        cost.main(["--throughput", str(empty)])
    typo = tmp_path / "typo.yaml"
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["chunk_sise"] = 3
    typo.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit, match="chunk_sise"):
        cost.main(["--configfile", str(typo), "--throughput", str(MEASURED)])


def test_the_committed_measurements_are_what_the_projection_reads():
    rows = [json.loads(line) for line in MEASURED.read_text().splitlines()]
    for r in rows:
        spec = get_architecture(r["architecture"])
        assert r["train_flops"] == training_flops(spec)  # same FLOP convention as the code
        assert {"neurons", "trainer_ips", "device", "precision", "conv"} <= set(r)
    assert spec_from_dict("x", {"base": "ff-CNN", "channels": 8}).channels == 8
