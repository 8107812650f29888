"""The paper's claims as paired tests (sacnn.claims): the machinery, never the outcome."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sacnn import experiment
from sacnn.claims import (
    CLAIM_COLUMNS,
    ClaimError,
    centre_share_values,
    evaluate,
    main,
    paired_test,
    read_claims,
    smallest_p,
    validation_images,
)
from sacnn.evaluation import METRIC_COLUMNS


def _metrics(path, values, measure="corr", neurons=None):
    n = len(values)
    df = pd.DataFrame({c: 0 for c in METRIC_COLUMNS}, index=range(n))
    df["neuron"] = neurons if neurons is not None else range(n)
    for m in ("corr", "pt_j", "pt_s"):
        df[m] = 0.0
    df[measure] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return str(path)


def _spec(tmp_path, model_values, versus_values, *, measure="corr", surround="x1",
          surround_dependent=False, seed=0, extra_fractions=None):
    metrics = {"a": {"f100": _metrics(tmp_path / "a.csv", model_values, measure)},
               "b": {"f100": _metrics(tmp_path / "b.csv", versus_values, measure)}}
    for f, (ma, mb) in (extra_fractions or {}).items():
        metrics["a"][f] = _metrics(tmp_path / f"a_{f}.csv", ma, measure)
        metrics["b"][f] = _metrics(tmp_path / f"b_{f}.csv", mb, measure)
    return {
        "tests": [{"claim": "c", "statement": "a beats b", "measure": measure, "model": "a",
                   "versus": "b", "surround_dependent": surround_dependent}],
        "default_sites": ["s"], "bootstrap": 500, "confidence": 0.95, "alpha": 0.05,
        "seed": seed,
        "sites": {"s": {"surround": surround, "dataset": "", "metrics": metrics,
                        "weights": {}}},
    }


RNG = np.random.default_rng(1)
BASE = RNG.uniform(0.1, 0.5, 30)
NOISE = RNG.normal(0, 0.01, 30)


def test_a_clear_effect_is_supported_and_its_reverse_contradicted(tmp_path):
    row = evaluate(_spec(tmp_path, BASE + 0.05 + NOISE, BASE)).iloc[0]
    assert list(evaluate(_spec(tmp_path, BASE, BASE)).columns) == CLAIM_COLUMNS
    assert row["verdict"] == "supported" and row["n"] == 30
    assert row["ci_low"] > 0 and row["effect"] == pytest.approx(0.05 + NOISE.mean())
    assert row["mean_model"] - row["mean_versus"] == pytest.approx(row["effect"])
    row = evaluate(_spec(tmp_path, BASE, BASE + 0.05 + NOISE)).iloc[0]
    assert row["verdict"] == "contradicted" and row["ci_high"] < 0


def test_no_effect_is_not_shown(tmp_path):
    row = evaluate(_spec(tmp_path, BASE + NOISE, BASE - NOISE[::-1])).iloc[0]
    assert row["verdict"] == "not shown"
    assert row["ci_low"] < 0 < row["ci_high"] or row["p_value"] >= 0.05


def test_too_few_neurons_and_all_zero_pt_are_undetermined_with_the_reason(tmp_path):
    row = evaluate(_spec(tmp_path, [0.5, 0.6, 0.7], [0.1, 0.2, 0.3])).iloc[0]
    assert row["verdict"].startswith("undetermined: 3 neurons cannot reach p < 0.05")
    assert smallest_p(3) == 0.25 and smallest_p(6) == pytest.approx(0.03125)
    row = evaluate(_spec(tmp_path, np.zeros(30), np.zeros(30), measure="pt_j")).iloc[0]
    assert "PT is 0 for both models in every neuron" in row["verdict"]
    out = paired_test(np.array([0.1]), n_boot=10, confidence=0.9, alpha=0.05,
                      rng=np.random.default_rng(0))
    assert out["verdict"].startswith("undetermined: 1 neuron")


def test_a_surround_dependent_claim_on_a_control_site_must_be_null(tmp_path):
    row = evaluate(_spec(tmp_path, BASE + 0.05 + NOISE, BASE, surround="none",
                         surround_dependent=True)).iloc[0]
    assert row["control"].startswith("VIOLATED")
    row = evaluate(_spec(tmp_path, BASE + NOISE, BASE - NOISE[::-1], surround="none",
                         surround_dependent=True)).iloc[0]
    assert row["control"] == "null as expected (site without surround)"
    row = evaluate(_spec(tmp_path, BASE + 0.05 + NOISE, BASE, surround="x1",
                         surround_dependent=True)).iloc[0]
    assert row["control"] == ""  # not a control site


def test_a_data_fraction_claim_tests_the_difference_of_differences(tmp_path):
    spec = _spec(tmp_path, BASE + 0.01, BASE,
                 extra_fractions={"f25": (BASE + 0.06 + NOISE, BASE)})
    spec["tests"][0].update(fraction="f25", reference_fraction="f100")
    row = evaluate(spec).iloc[0]
    assert row["effect"] == pytest.approx(0.05 + NOISE.mean())
    assert row["verdict"] == "supported" and row["reference_fraction"] == "f100"


def test_neurons_are_paired_by_id_and_undefined_values_left_out(tmp_path):
    spec = _spec(tmp_path, BASE + 0.05, BASE)
    # versus lists the neurons in reverse order and one neuron is undefined
    vals = BASE.copy()
    vals[3] = np.nan
    spec["sites"]["s"]["metrics"]["b"]["f100"] = _metrics(
        tmp_path / "b2.csv", vals[::-1], neurons=list(range(30))[::-1])
    row = evaluate(spec).iloc[0]
    assert row["n"] == 29 and row["effect"] == pytest.approx(0.05)


def test_the_bootstrap_is_seeded_from_the_config(tmp_path):
    a = evaluate(_spec(tmp_path, BASE + NOISE, BASE))
    b = evaluate(_spec(tmp_path, BASE + NOISE, BASE))
    c = evaluate(_spec(tmp_path, BASE + NOISE, BASE, seed=7))
    pd.testing.assert_frame_equal(a, b)
    assert a["ci_low"].iloc[0] != c["ci_low"].iloc[0]


def test_bad_specs_name_what_is_wrong(tmp_path):
    spec = _spec(tmp_path, BASE, BASE)
    spec["tests"][0]["measure"] = "feve"
    with pytest.raises(ClaimError, match="measure 'feve'"):
        evaluate(spec)
    spec = _spec(tmp_path, BASE, BASE)
    spec["tests"][0]["sites"] = ["elsewhere"]
    with pytest.raises(ClaimError, match="site 'elsewhere' has no inputs"):
        evaluate(spec)
    spec = _spec(tmp_path, BASE, BASE)
    spec["tests"][0]["fraction"] = "f50"
    with pytest.raises(ClaimError, match="site s, model a, fraction f50"):
        evaluate(spec)
    with pytest.raises(SystemExit, match="sacnn.claims: error"):
        main(["--spec", json.dumps(spec), "--out", str(tmp_path / "x.csv")])


def test_cli_writes_the_table_and_its_sidecar(tmp_path):
    spec = _spec(tmp_path, BASE + 0.05 + NOISE, BASE)
    assert main(["--spec", json.dumps(spec), "--out", str(tmp_path / "claims.csv"),
                 "--meta", str(tmp_path / "claims.json")]) == 0
    df = read_claims(tmp_path / "claims.csv")
    assert df["verdict"].tolist() == ["supported"]
    meta = json.loads((tmp_path / "claims.json").read_text())
    assert meta["spec"]["seed"] == 0 and meta["code_version"]


def test_centre_share_of_trained_networks(tree):
    data = validation_images(tree["inputs"]["datasets"]["S1"])
    rf = centre_share_values(tree["inputs"]["weights"]["S1"]["rf_cnn"], data)
    ff = centre_share_values(tree["inputs"]["weights"]["S1"]["ff_cnn"], data)
    assert list(rf.index) == ["0", "1", "2", "3"]
    np.testing.assert_allclose(rf, 1.0)  # a centre-only readout is all centre
    assert ((ff > 0) & (ff < 1)).all()


def test_the_experiment_matrix_trains_what_the_claims_compare():
    cfg = {
        "sites": {"a": {"simulate": {"seed": 1}},
                  "a_off": {"simulate": {"seed": 1, "surround": False}},
                  "a_x2": {"simulate": {"seed": 1, "surround_strength": 2.0}},
                  "real": {"raw": "resources/real"}},
        "claims": {"sites": ["a"], "tests": [
            {"claim": "x", "measure": "corr", "model": "m", "versus": "v",
             "sites": ["a", "a_off"]},
            {"claim": "y", "measure": "corr", "model": "m", "versus": "v",
             "fraction": "f25", "reference_fraction": "f100"}]},
    }
    assert experiment.claims_cells(cfg) == [
        ("a", "m", "f100"), ("a", "v", "f100"), ("a_off", "m", "f100"),
        ("a_off", "v", "f100"), ("a", "m", "f25"), ("a", "v", "f25")]
    assert experiment.claims_sites(cfg) == ["a", "a_off"]
    assert [experiment.site_surround(cfg, s) for s in cfg["sites"]] == [
        "x1", experiment.NO_SURROUND, "x2", "recorded"]


def test_several_training_seeds_average_per_neuron_and_report_their_spread(tmp_path):
    spec = _spec(tmp_path, BASE + 0.01, BASE)
    metrics = spec["sites"]["s"]["metrics"]
    for k, shift in ((2, 0.03), (3, 0.05)):
        metrics[f"a.seed{k}"] = {"f100": _metrics(tmp_path / f"a{k}.csv", BASE + shift)}
        metrics[f"b.seed{k}"] = {"f100": _metrics(tmp_path / f"b{k}.csv", BASE)}
    spec["tests"][0]["seeds"] = 3
    row = evaluate(spec).iloc[0]
    assert row["n_seeds"] == 3 and row["effect"] == pytest.approx(0.03)
    assert row["effect_seed_sd"] == pytest.approx(np.std([0.01, 0.03, 0.05], ddof=1))
    assert row["effect_sem"] == pytest.approx(0.0, abs=1e-12)  # every neuron moved alike
    assert row["mean_model"] == pytest.approx(BASE.mean() + 0.03)
    spec["tests"][0]["seeds"] = 4  # a seed that was never trained is named
    with pytest.raises(ClaimError, match="model a.seed4"):
        evaluate(spec)
    one = evaluate(_spec(tmp_path, BASE + 0.01, BASE)).iloc[0]
    assert one["n_seeds"] == 1 and np.isnan(one["effect_seed_sd"])


def test_extra_seeds_retrain_the_whole_chain_under_their_own_keys():
    cfg = {
        "sites": {"a": {"simulate": {}}},
        "models": {"base": {"architecture": "rf-CNN (c=30)", "label": "stage 1"},
                   "incr": {"architecture": "rf+sa-CNN*", "label": "Incr.",
                            "init_from": "base", "load": ["alpha"], "freeze": ["alpha"]},
                   "simul": {"architecture": "rf+sa-CNN*"}},
        "claims": {"sites": ["a"], "seeds": 2, "tests": [
            {"claim": "x", "measure": "corr", "model": "incr", "versus": "simul"}]},
    }
    models = experiment.all_models(cfg)
    assert models["incr.seed2"]["init_from"] == "base.seed2"
    assert models["incr.seed2"]["label"] == "Incr. [seed 2]"
    assert models["simul.seed2"]["architecture"] == "rf+sa-CNN*"
    assert experiment.model_chain(models, "incr.seed2") == ["base.seed2", "incr.seed2"]
    cells = experiment.trained_cells({**cfg, "figures": {}, "experiments": {}})
    assert {m for _, m, _ in cells} == {"base", "incr", "simul", "base.seed2", "incr.seed2",
                                        "simul.seed2"}
