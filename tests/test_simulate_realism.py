"""The simulator's defaults are realistic: every real-data target (sacnn.simulate.realism) on
most neurons of a realistic site, a perfect model's peak tuning in the paper's units, and a
surround that moves as built with its strength."""

from __future__ import annotations

import numpy as np
import pytest

from sacnn.metrics import peak_tuning_joint
from sacnn.simulate import SiteConfig, simulate_site
from sacnn.simulate.realism import ALL_TARGETS, realism_stats

#: a realistic site: the simulator's defaults for neurons, sparsity and noise, 300 neurons,
#: the paper's 1000 validation images x 10 repeats, and as few training images as keep the
#: calibration realistic (3000 left 76-80 % of the neurons inside every target on seeds
#: 11-13, 5000 82-83 %, 10000 82-88 %: scripts/simulator_realism.py); ~15 s on 2 cores
REALISTIC = {"site": "r", "seed": 11, "n_neurons": 300, "n_train": 5000, "n_val": 1000,
             "repeats": 10}


@pytest.fixture(scope="module")
def realistic():
    return simulate_site(SiteConfig.from_dict(REALISTIC))


def test_most_neurons_of_a_realistic_site_are_inside_every_target(realistic):
    """>= 80 % of the neurons inside all five real-data targets at once, the share of the
    response the centre explains (truth_aperture_corr) included, and every median inside."""
    summary = realistic["summary"]
    assert summary["all_targets"]["statistics"] == len(ALL_TARGETS) == 5
    assert summary["all_targets"]["share"] >= 0.8, summary["all_targets"]
    for key in ALL_TARGETS:
        assert summary[key]["median_in_target"] == 1.0, (key, summary[key])
    # sparse: the median neuron has fewer than 2 % of the images above half its peak
    assert summary["frac_half_peak"]["median"] < 0.02


def test_a_perfect_model_has_a_realistic_peak_tuning(realistic):
    """PT_J of the expected recorded response against the recorded trial mean (what a
    perfect model of the recording scores), mean over neurons: within 0.55-0.70."""
    trial_mean = realistic["val_trials"].astype(np.float64).mean(axis=2)
    pt = peak_tuning_joint(realistic["expected_val"]["expected_true"], trial_mean)
    assert 0.55 <= float(np.mean(pt)) <= 0.70, float(np.mean(pt))


def test_the_realism_statistics_read_the_truth_in_the_recordings_units(realistic):
    """oracle_corr and truth_aperture_corr are correlations of the expected recorded
    responses, recomputed here from the site's arrays."""
    expected = realistic["expected_val"]
    stats = realism_stats(realistic["val_trials"], expected["expected_true"],
                          expected["expected_aperture"])
    for key in ALL_TARGETS:
        np.testing.assert_array_equal(stats[key], realistic["stats"][key])
    a, b = expected["expected_aperture"][0], expected["expected_true"][0]
    assert stats["truth_aperture_corr"][0] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-6)
    assert "truth_aperture_corr" not in realism_stats(realistic["val_trials"],
                                                      expected["expected_true"])


@pytest.mark.parametrize("kind", ["divisive", "collinear"])
def test_the_surround_moves_as_built_with_its_strength(kind):
    """Sites of one seed at strength 0 (surround: false), 1 and 2: the share of the response
    the aperture explains falls (none > x1 > x2) and the surround's effect on the summed
    response grows (suppression for the divisive kind, facilitation for the collinear)."""
    base = {"seed": 3, "n_neurons": 60, "n_train": 3000, "n_val": 1000, "repeats": 2,
            "surround_kind": kind}
    aperture, effect = [], []
    for extra in ({"surround": False}, {}, {"surround_strength": 2.0}):
        sim = simulate_site(SiteConfig.from_dict(dict(base, **extra)))
        aperture.append(np.nanmedian(sim["stats"]["truth_aperture_corr"]))
        t = sim["truth_val"]
        effect.append(float(np.mean(1 - t["r_true"].sum(1) / t["r_centre"].sum(1))))
    assert aperture[0] > aperture[1] > aperture[2], aperture
    assert aperture[0] > 0.97, aperture
    sign = 1 if kind == "divisive" else -1
    assert effect[0] == pytest.approx(0, abs=1e-6)
    assert 0 < sign * effect[1] < sign * effect[2], effect


def test_the_small_default_site_has_every_median_inside():
    """SiteConfig()'s small default site (40 neurons, 300 validation images: the peak of
    300 images is lower, so more of them pass half of it, median 2.3 %)."""
    summary = simulate_site(SiteConfig())["summary"]
    for key, (lo, hi) in ALL_TARGETS.items():
        med = summary[key]["median"]
        assert lo <= med <= hi, f"{key}: median {med:.4g} outside {lo}-{hi}"


def test_the_printed_summary_flags_a_median_outside_its_target():
    from sacnn.simulate.realism import format_summary, summarise

    rng = np.random.default_rng(0)
    dense = rng.gamma(1.0, 1.0, (5, 200, 4))  # far more images above half the peak than real
    text = format_summary(summarise(realism_stats(dense)))
    assert "frac_half_peak" in text and "MEDIAN OUTSIDE THE REAL-DATA TARGET" in text
    assert "neurons inside all 3 targets: 0 %" in text
    expected = dense.mean(axis=2)
    text = format_summary(summarise(realism_stats(dense, expected, expected)))
    assert "truth_aperture_corr" in text and "target 0.87-0.98" in text
    assert "neurons inside all 5 targets: 0 %" in text
