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
from sacnn.workflow_config import load_config

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
    config = load_config([ROOT / "config" / "config.yaml"])
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
    config = load_config([ROOT / "config" / "config.yaml"])
    config["experiments"]["table2"]["models"] = ["ff_sa_cnn_star_incr_fc1"]
    config["experiments"]["table2"]["baseline"] = "ff_sa_cnn_star_incr_fc1"
    cells = experiment.trained_cells(config)
    fc1 = cells.index(("sim1", "ff_sa_cnn_star_incr_fc1", "f100"))
    assert cells.index(("sim1", "rf_sa_cnn_star_incr", "f100")) < fc1
    assert cells.index(("sim1", "rf_cnn_c30", "f100")) < fc1


def test_raw_sites_read_their_size_from_npy_headers_or_ask_for_it(tmp_path, monkeypatch):
    paper = ROOT / "config" / "paper.yaml"
    monkeypatch.chdir(tmp_path)
    config = load_config([paper])
    with pytest.raises(cost.CostError, match=r"--site M1S1=NEURONS:TRAIN_IMAGES"):
        cost.training_jobs(config, {})
    folder = tmp_path / "resources" / "M1S1"
    folder.mkdir(parents=True)
    np.save(folder / "trainRsp_m1s1.npy", np.zeros((120, 7), dtype=np.float32))
    sizes = {"M2S1": cost.SiteShape(299, 49000, 1000)}
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


def test_memory_estimate_is_the_parameter_count_and_brackets_the_measured_peaks():
    """The estimate's parameter count is the modules'; against the H200's measured peak
    memory (the committed rows) it errs on the safe side by less than half."""
    from sacnn.models import NAMED_ARCHITECTURES
    from sacnn.models.cost import parameter_count, training_memory_bytes

    for name, spec in NAMED_ARCHITECTURES.items():
        assert parameter_count(spec) == sum(p.numel() for p in build_network(spec).parameters()), \
            name
    rows = [json.loads(line) for line in MEASURED.read_text().splitlines()]
    checked = 0
    for r in rows:
        if r["neurons"] >= 32 and r.get("peak_mem_gib"):
            spec = get_architecture(r["architecture"])
            ratio = training_memory_bytes(spec, r["neurons"], 50) / 2**30 / r["peak_mem_gib"]
            assert 0.9 <= ratio <= 1.4, (r["architecture"], r["neurons"], ratio)
            checked += 1
    assert checked == 9  # four architectures at 32 and 300 neurons, c=375 at 32


def test_a_chunk_that_would_not_fit_the_card_is_flagged(tmp_path, capsys):
    config = load_config([ROOT / "config" / "config.yaml"])
    jobs = cost.training_jobs(config, {})
    throughput = cost.Throughput.read(MEASURED)
    assert throughput.card_memory_gib() == pytest.approx(140.4, abs=0.1)  # the H200 measured
    roomy = cost.project(jobs, config, throughput, card_gib=140.0)
    assert not any(r["memory_risk"] for r in roomy)
    tiny = cost.project(jobs, config, throughput, card_gib=0.01)  # a 10 MiB card
    assert all(r["memory_risk"] for r in tiny)
    lines = cost.summary(tiny, config, jobs, 0.01)
    assert any(line.startswith("# warning: sim1/ff_cnn/f100: a chunk of 10 neurons of ff-CNN "
                               "needs ~") and "chunk_sizes" in line for line in lines)
    assert cost.main(["--throughput", str(MEASURED), "--gpu-memory-gib", "0.01"]) == 0
    assert "# warning: sim1/rf_sa_cnn_c375/f100" in capsys.readouterr().out


def test_totals_are_given_with_and_without_the_a2_model():
    config = load_config([ROOT / "config" / "config.yaml"])
    rows = cost.project(cost.training_jobs(config, {}), config, cost.Throughput.read(MEASURED))
    reduced, models = cost.without_section(config, "A.2")
    assert models == ["rf_sa_cnn_c375"]  # found through tableA's section, not by name
    assert all(r["section"] != "A.2" for r in reduced["experiments"]["tableA"]["rows"])
    without = cost.training_jobs(reduced, {})
    assert {j.model for j in without} == {r["model"] for r in rows} - {"rf_sa_cnn_c375"}
    lines = cost.summary(rows, config, without, 140.0)
    total = sum(r["gpu_hours"] for r in rows)
    rest = sum(r["gpu_hours"] for r in rows if r["model"] != "rf_sa_cnn_c375")
    rest_jobs = sum(r["jobs"] for r in rows if r["model"] != "rf_sa_cnn_c375")
    assert lines[0].startswith(f"# total: {sum(r['jobs'] for r in rows)} training jobs, "
                               f"{total:.2f} GPU-hours")
    assert lines[1].startswith("# total without A.2 (tableA rows of section A.2: "
                               f"rf_sa_cnn_c375): {rest_jobs} training jobs, "
                               f"{rest:.2f} GPU-hours")
    no_appendix = {**config, "experiments": {k: v for k, v in config["experiments"].items()
                                             if k != "tableA"}}
    assert cost.without_section(no_appendix, "A.2")[1] == []
    assert len(cost.summary(rows, no_appendix, without, 140.0)) == 1


def test_one_variant_of_a_throughput_file_is_costed():
    rows = [{"architecture": "A", "neurons": 1, "trainer_ips": 100.0, "train_flops": 1000},
            {"architecture": "A", "neurons": 1, "trainer_ips": 300.0, "train_flops": 1000,
             "variant": "lean", "device_memory_gib": 79.6}]
    assert cost.Throughput(rows).ips("A", 1000, 1)[0] == 100.0
    lean = cost.Throughput(rows, "lean")
    assert lean.ips("A", 1000, 1)[0] == 300.0 and lean.card_memory_gib() == 79.6
    with pytest.raises(cost.CostError, match="variant 'graph'"):
        cost.Throughput(rows, "graph")
