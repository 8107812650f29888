"""Neurons needed for a paired claim: checked against simulated experiments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sacnn.power import neurons_for_power, power_of, sparse_pt_sd


def _simulated_power(n: int, effect: float, sd: float, level: float, reps: int = 4000) -> float:
    d = np.random.default_rng(0).normal(effect, sd, (reps, n))
    p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
    return float(np.mean(p < level))


@pytest.mark.parametrize("effect, sd, family", [(0.023, 0.1, 1), (0.012, 0.1, 1),
                                                (0.03, 0.08, 20)])
def test_the_number_of_neurons_gives_the_power(effect, sd, family):
    n = neurons_for_power(effect, sd, family=family)
    level = 0.05 / family
    se = np.sqrt(0.8 * 0.2 / 4000)
    assert _simulated_power(n, effect, sd, level) == pytest.approx(0.8, abs=4 * se + 0.005)
    assert power_of(n - 1, effect, sd, family=family) < 0.8 <= power_of(n, effect, sd,
                                                                       family=family)


def test_known_values_and_bad_inputs():
    # the textbook normal approximation (1.96 + 0.84)^2 (sd / effect)^2, plus ~2 for the t
    assert neurons_for_power(0.5, 1.0) == 34
    assert power_of(10, 0.0, 1.0) == pytest.approx(0.05, abs=1e-9)
    with pytest.raises(ValueError, match="effect 0"):
        neurons_for_power(0.0, 1.0)
    with pytest.raises(ValueError, match="sd must be"):
        neurons_for_power(0.1, 0.0)


def test_sparse_pt_spread_matches_simulated_hits():
    rng = np.random.default_rng(1)
    k, pm, pv = 10, 0.03, 0.01
    d = (rng.binomial(k, pm, 200_000) - rng.binomial(k, pv, 200_000)) / k
    assert sparse_pt_sd(pm, pv, k) == pytest.approx(d.std(), rel=0.01)
    with pytest.raises(ValueError, match="pt_model"):
        sparse_pt_sd(1.5, 0.1, 10)


def test_the_power_script_reads_the_claims_table_the_workflow_builds(capsys):
    """scripts/claims_power.py sizes every row of the simulated design's claims table (effect
    and interaction rows, from the plan's own claims spec) and says where the paper gives no
    effect to size by."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("claims_power",
                                                  root / "scripts" / "claims_power.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--configfile", str(root / "config" / "simulated.yaml")]) == 0
    out = capsys.readouterr().out
    family = int(out.split(": ", 1)[1].split(" rows")[0])
    lines = [ln for ln in out.splitlines()[2:] if ln.strip()]
    assert len(lines) == family
    assert any("-" in ln.split()[1] for ln in lines)  # interaction rows (site-control)
    assert "no effect size in the paper" in out
