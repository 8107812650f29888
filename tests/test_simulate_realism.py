"""The default simulated site stays within the realism targets (from real M1S1 neurons)."""

from __future__ import annotations

from sacnn.simulate import SiteConfig, simulate_site
from sacnn.simulate.realism import ORACLE_CORR_TARGET, TARGETS


def test_default_site_realism():
    sim = simulate_site(SiteConfig())
    summary = sim["summary"]
    for key, (lo, hi) in dict(TARGETS, oracle_corr=ORACLE_CORR_TARGET).items():
        med = summary[key]["median"]
        assert lo <= med <= hi, f"{key}: median {med:.4g} outside {lo}-{hi}"
    # sparse: the median neuron has fewer than 2 % of images above half its peak
    assert summary["frac_half_peak"]["median"] < 0.02
