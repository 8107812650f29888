"""Tests of sacnn.metrics and sacnn.noise_ceiling against independent computations on hand-made inputs."""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import numpy as np
import pytest
from scipy import stats

from sacnn import metrics
from sacnn.metrics import (
    Summary,
    UndefinedCorrelationWarning,
    UndefinedMetricWarning,
    n_top,
    peak_overlap,
    peak_tuning_joint,
    peak_tuning_separate,
    pearson,
    sem,
    summarize,
)
from sacnn.noise_ceiling import (
    cc_max,
    explainable_variance,
    feve,
    normalized_correlation,
    signal_power,
    split_half_reliability,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture(autouse=True)
def _undefined_warnings_are_errors():
    # Any warning a test does not expect explicitly fails it.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------ pearson


def test_pearson_matches_corrcoef_and_scipy_1d(rng):
    x = rng.normal(size=50)
    y = 0.4 * x + rng.normal(size=50)
    r = pearson(x, y)
    assert isinstance(r, float)
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-14)
    assert r == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-14)


def test_pearson_vectorised_over_neurons(rng):
    pred = rng.normal(size=(7, 200))
    real = pred * rng.uniform(0.1, 2.0, size=(7, 1)) + rng.normal(size=(7, 200))
    r = pearson(pred, real)
    assert r.shape == (7,)
    expected = [np.corrcoef(p, q)[0, 1] for p, q in zip(pred, real, strict=True)]
    np.testing.assert_allclose(r, expected, atol=1e-14)
    # Images along axis 0 give the same values.
    np.testing.assert_allclose(pearson(pred.T, real.T, axis=0), expected, atol=1e-14)


def test_pearson_float32_and_int_inputs_computed_in_float64(rng):
    x = rng.normal(size=300).astype(np.float32)
    y = (x + rng.normal(size=300)).astype(np.float32)
    expected = np.corrcoef(x.astype(np.float64), y.astype(np.float64))[0, 1]
    assert pearson(x, y) == pytest.approx(expected, abs=1e-14)
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)


def test_pearson_is_invariant_to_affine_rescaling(rng):
    x, y = rng.normal(size=(2, 100))
    assert pearson(3.0 * x + 7.0, y) == pytest.approx(pearson(x, y), abs=1e-13)


def test_pearson_constant_prediction_warns_and_returns_nan(rng):
    real = rng.normal(size=(4, 30))
    pred = rng.normal(size=(4, 30))
    pred[1] = 0.1  # mean of 30 copies of 0.1 is not exactly 0.1 in float
    real[3] = 5.0
    with pytest.warns(UndefinedCorrelationWarning, match="2 of 4 entries"):
        r = pearson(pred, real)
    assert np.isnan(r[[1, 3]]).all()
    assert np.isfinite(r[[0, 2]]).all()


def test_pearson_constant_1d_warns(rng):
    with pytest.warns(UndefinedCorrelationWarning, match="1 of 1"):
        r = pearson(np.ones(10), rng.normal(size=10))
    assert np.isnan(r)


def test_undefined_correlation_warning_is_runtime_warning():
    assert issubclass(UndefinedCorrelationWarning, UndefinedMetricWarning)
    assert issubclass(UndefinedMetricWarning, RuntimeWarning)


@pytest.mark.parametrize(
    ("pred", "real", "match"),
    [
        (np.zeros(5), np.zeros(6), "shape"),
        (np.zeros((2, 5)), np.zeros(5), "shape"),
        (np.zeros(0), np.zeros(0), "empty"),
        (np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 3.0]), "NaN"),
        (np.array([1.0, 2.0, 3.0]), np.array([1.0, np.inf, 3.0]), "infinite"),
        (np.array([[1.0], [2.0]]), np.array([[1.0], [2.0]]), "at least 2 samples"),
    ],
)
def test_pearson_value_errors(pred, real, match):
    with pytest.raises(ValueError, match=match):
        pearson(pred, real)


# -------------------------------------------------------------------- peak tuning


def test_n_top():
    assert n_top(1000) == 10
    assert n_top(100) == 1
    assert n_top(10) == 1  # 0.1 image rounds to 0; at least one image
    assert n_top(1) == 1
    assert n_top(150) == 2  # 1.5 rounds to the even 2
    assert n_top(149) == 1
    assert n_top(1500, 0.009) == 14  # 13.5 despite 0.009 * 1500 == 13.499999999999998
    # the released notebook's k = round(N / 100), halves to even (issue: N = 250, 450, ...)
    for n in [50, 250, 450, 650, 850, 1250, 1000, 350, 999, 1001]:
        assert n_top(n) == max(1, round(n / 100)), n
    assert n_top(250) == 2 and n_top(350) == 4
    assert n_top(7, 1.0) == 7
    assert n_top(1000, 0.05) == 50


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_n_top_rejects_fraction_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="top_fraction"):
        n_top(100, bad)


@pytest.mark.parametrize("bad", [True, "0.01", None])
def test_n_top_rejects_non_number_fraction(bad):
    with pytest.raises(TypeError, match="top_fraction"):
        n_top(100, bad)


def test_n_top_rejects_zero_images():
    with pytest.raises(ValueError, match="n_images"):
        n_top(0)


def test_peak_tuning_hand_example():
    # 10 images, top_fraction 0.3 -> k = 3. Real top 3: images 7 (9), 2 (8), 5 (7);
    # threshold = 7.
    real = np.array([1, 2, 8, 3, 4, 7, 0, 9, 5, 6], dtype=float)
    pred = np.array([7.5, 0, 6.9, 0, 0, 7.0, 0, 3, 8, 0], dtype=float)
    # PT_J: preds of images 7, 2, 5 = 3, 6.9, 7.0 -> only 7.0 >= 7 (equality is a hit).
    assert peak_tuning_joint(pred, real, 0.3) == pytest.approx(1 / 3)
    # PT_S: top-3 preds are 8, 7.5, 7.0 -> all >= 7.
    assert peak_tuning_separate(pred, real, 0.3) == pytest.approx(1.0)


def test_peak_tuning_perfect_prediction_is_one(rng):
    real = rng.gamma(2.0, size=(5, 1000))
    np.testing.assert_array_equal(peak_tuning_joint(real, real), np.ones(5))
    np.testing.assert_array_equal(peak_tuning_separate(real, real), np.ones(5))


def test_peak_tuning_falls_when_prediction_scaled_down(rng):
    # Positive responses: a perfectly correlated prediction at half scale misses the peaks,
    # because PT compares raw magnitudes with the real threshold.
    real = rng.gamma(2.0, size=1000) + 0.1
    assert pearson(0.5 * real, real) == pytest.approx(1.0)
    assert peak_tuning_joint(0.5 * real, real) == 0.0
    assert peak_tuning_separate(0.5 * real, real) == 0.0
    # Just below the threshold for the k-th image only: one miss out of k = 10.
    order = np.argsort(-real, kind="stable")
    pred = real.copy()
    pred[order[9]] = np.nextafter(real[order[9]], -np.inf)
    assert peak_tuning_joint(pred, real) == pytest.approx(0.9)
    assert peak_tuning_separate(pred, real) == pytest.approx(0.9)


def test_peak_tuning_ties_in_real_use_lowest_index_first():
    # k = 2 (top_fraction 0.4 of 5). Real ties at the threshold 5 for images 1, 2, 4;
    # image 0 (6) is first, then the tie is broken by index -> image 1.
    real = np.array([6.0, 5.0, 5.0, 1.0, 5.0])
    pred_hit_on_1 = np.array([9.0, 5.0, 0.0, 0.0, 0.0])
    pred_hit_on_2 = np.array([9.0, 0.0, 5.0, 0.0, 5.0])
    assert n_top(5, 0.4) == 2
    assert peak_tuning_joint(pred_hit_on_1, real, 0.4) == pytest.approx(1.0)
    assert peak_tuning_joint(pred_hit_on_2, real, 0.4) == pytest.approx(0.5)
    # PT_S only looks at prediction values: top-2 preds are (9, 5) in both cases.
    assert peak_tuning_separate(pred_hit_on_1, real, 0.4) == pytest.approx(1.0)
    assert peak_tuning_separate(pred_hit_on_2, real, 0.4) == pytest.approx(1.0)


def test_peak_tuning_ties_in_predictions():
    # k = 3; threshold = 3rd highest real = 7.
    real = np.array([9.0, 8.0, 7.0, 1.0, 2.0, 3.0])
    pred = np.array([7.0, 7.0, 6.0, 7.0, 7.0, 0.0])
    # PT_J: preds of images 0, 1, 2 = 7, 7, 6 -> 2 hits.
    assert peak_tuning_joint(pred, real, 0.5) == pytest.approx(2 / 3)
    # PT_S: top-3 pred values are 7, 7, 7 whichever tied images supply them -> 3 hits.
    assert peak_tuning_separate(pred, real, 0.5) == pytest.approx(1.0)
    # Permuting the tied predictions among themselves changes nothing.
    perm = np.array([0, 1, 2, 4, 3, 5])
    assert peak_tuning_separate(pred[perm], real[perm], 0.5) == pytest.approx(1.0)


def test_peak_tuning_constant_predictions():
    real = np.arange(200, dtype=float)  # k = 2, threshold = 198
    assert peak_tuning_joint(np.full(200, 198.0), real) == 1.0
    assert peak_tuning_separate(np.full(200, 198.0), real) == 1.0
    assert peak_tuning_joint(np.full(200, 197.0), real) == 0.0
    assert peak_tuning_separate(np.full(200, 197.0), real) == 0.0


def test_peak_tuning_fewer_than_100_images():
    real = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])  # k = 1, threshold 9
    assert peak_tuning_joint(np.array([0, 0, 0, 0, 0, 9.5, 0, 0.0]), real) == 1.0
    assert peak_tuning_joint(np.array([0, 0, 0, 0, 0, 8.0, 0, 10.0]), real) == 0.0
    assert peak_tuning_separate(np.array([0, 0, 0, 0, 0, 8.0, 0, 10.0]), real) == 1.0


def _pt_reference(pred, real, k):
    """Brute force, one neuron at a time, with Python sorting."""
    images = sorted(range(len(real)), key=lambda i: (-real[i], i))[:k]
    threshold = real[images[-1]]
    joint = sum(pred[i] >= threshold for i in images) / k
    separate = sum(v >= threshold for v in sorted(pred, reverse=True)[:k]) / k
    return joint, separate


def test_peak_tuning_vectorised_matches_reference(rng):
    # Rounded values make ties frequent.
    real = np.round(rng.normal(size=(20, 300)), 1)
    pred = np.round(real + rng.normal(scale=0.5, size=(20, 300)), 1)
    for fraction in (0.01, 0.05, 0.2):
        k = n_top(300, fraction)
        ref = np.array([_pt_reference(p, r, k) for p, r in zip(pred, real, strict=True)])
        pt_j = peak_tuning_joint(pred, real, fraction)
        pt_s = peak_tuning_separate(pred, real, fraction)
        np.testing.assert_allclose(pt_j, ref[:, 0])
        np.testing.assert_allclose(pt_s, ref[:, 1])
        assert (pt_s >= pt_j).all()
        np.testing.assert_allclose(peak_tuning_joint(pred.T, real.T, fraction, axis=0), pt_j)


# ------------------------------------------------------------------- peak overlap


def test_peak_overlap_hand_examples():
    # 10 images, top 30 % -> k = 3; recorded top 3: images 0, 1, 2
    real = np.array([10.0, 9.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0])
    assert peak_overlap(real, real, 0.3) == 1.0
    # predicted top 3: images 3, 0, 4 -> one of the recorded top 3 (image 0)
    pred = np.array([6, 1, 1, 7, 5, 0, 0, 0, 0, 0.0])
    assert peak_overlap(pred, real, 0.3) == pytest.approx(1 / 3)
    # the reverse ranking shares none of them
    assert peak_overlap(-real, real, 0.3) == 0.0
    # ties in the prediction: images 1-4 tie at the top -> 1, 2, 3 enter (lower index first;
    # higher index first would take 4, 3, 2 and score 1/3)
    pred = np.array([0, 5, 5, 5, 5, 0, 0, 0, 0, 0.0])
    assert peak_overlap(pred, real, 0.3) == pytest.approx(2 / 3)
    # ties in the recording straddling the k-th place: images 2 and 3 tie, 2 is top (as PT)
    real_tied = np.array([10.0, 9.0, 8.0, 8.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    pred = np.array([3, 2, 0, 1, 0, 0, 0, 0, 0, 0.0])
    assert peak_overlap(pred, real_tied, 0.3) == pytest.approx(2 / 3)
    # a constant prediction picks images 0 .. k-1
    assert peak_overlap(np.zeros(10), real, 0.3) == 1.0
    assert peak_overlap(np.zeros(10), real[::-1], 0.3) == 0.0


def test_peak_overlap_ignores_the_predictions_scale_and_offset(rng):
    real = rng.gamma(1.0, 1.0, (30, 500))
    pred = real + rng.normal(0.0, 0.8, real.shape)
    base = peak_overlap(pred, real)
    assert 0 < base.mean() < 1  # neither trivial case
    for transformed in (1.5 * pred, 0.2 * pred, pred + 3.0, pred - 100.0, np.exp(pred),
                        2.0 * pred ** 3 + 1.0):
        np.testing.assert_array_equal(peak_overlap(transformed, real), base)
    # PT_J, PT_S move with the same stretch: the measure the issue asks for is needed
    assert not np.array_equal(peak_tuning_separate(1.5 * pred, real),
                              peak_tuning_separate(pred, real))


def test_a_stretched_centre_only_predictor_beats_a_perfect_one_on_pt_s_not_on_overlap():
    """The issue's counter-example, by hand: 10 images, k = 3. The recorded peaks overshoot
    what the neuron does on average (trial noise on the peak images), so even the perfect
    predictor of the mean response falls short of the k-th recorded response on one image.
    A centre-only-like predictor that ranks two surround-suppressed images (3, 4) above the
    true peaks scores PT_S = 0 as it is and PT_S = 1 stretched by 1.5; its peak overlap
    stays 1/3 at any scale, below the perfect predictor's 1."""
    recorded = np.array([10.0, 9.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0])
    perfect = np.array([9.0, 8.5, 7.5, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0])
    centre = np.array([6.0, 5.0, 4.0, 6.5, 5.5, 3.0, 2.0, 1.0, 0.0, 0.0])
    stretched = 1.5 * centre
    assert peak_tuning_separate(perfect, recorded, 0.3) == pytest.approx(2 / 3)
    assert peak_tuning_separate(centre, recorded, 0.3) == 0.0
    assert peak_tuning_separate(stretched, recorded, 0.3) == 1.0  # beats the perfect one
    assert peak_tuning_joint(stretched, recorded, 0.3) == pytest.approx(1 / 3)
    assert peak_overlap(perfect, recorded, 0.3) == 1.0
    assert peak_overlap(centre, recorded, 0.3) == peak_overlap(stretched, recorded, 0.3)
    assert peak_overlap(stretched, recorded, 0.3) == pytest.approx(1 / 3)


def _overlap_reference(pred, real, k):
    """Brute force with Python sorting: both rankings highest first, ties to lower index."""
    top_real = sorted(range(len(real)), key=lambda i: (-real[i], i))[:k]
    top_pred = sorted(range(len(pred)), key=lambda i: (-pred[i], i))[:k]
    return len(set(top_real) & set(top_pred)) / k


def test_peak_overlap_vectorised_matches_reference_with_ties(rng):
    real = np.round(rng.normal(size=(25, 300)), 1)  # rounded: ties everywhere
    pred = np.round(real + rng.normal(scale=0.7, size=(25, 300)), 1)
    for fraction in (0.01, 0.05, 0.2, 1.0):
        k = n_top(300, fraction)
        ref = [_overlap_reference(p, r, k) for p, r in zip(pred, real, strict=True)]
        np.testing.assert_array_equal(peak_overlap(pred, real, fraction), ref)
        np.testing.assert_array_equal(peak_overlap(pred.T, real.T, fraction, axis=0), ref)
    assert peak_overlap(pred, real, 1.0).tolist() == [1.0] * 25  # k = N: every image
    assert isinstance(peak_overlap(pred[0], real[0]), float)


@pytest.mark.parametrize("measure", [peak_tuning_joint, peak_tuning_separate, peak_overlap])
@pytest.mark.parametrize(
    ("pred", "real", "kwargs", "match"),
    [
        (np.zeros(5), np.zeros(4), {}, "shape"),
        (np.zeros(0), np.zeros(0), {}, "empty"),
        (np.array([1.0, np.nan]), np.array([1.0, 2.0]), {}, "NaN"),
        (np.array([1.0, 2.0]), np.array([np.nan, 2.0]), {}, "NaN"),
        (np.zeros(5), np.zeros(5), {"top_fraction": 0.0}, "top_fraction"),
        (np.zeros(5), np.zeros(5), {"top_fraction": 1.01}, "top_fraction"),
    ],
)
def test_peak_tuning_value_errors(measure, pred, real, kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure(pred, real, **kwargs)


# ---------------------------------------------------------------- sem / summarize


def test_sem_matches_scipy(rng):
    v = rng.normal(size=(40, 3))
    np.testing.assert_allclose(sem(v), stats.sem(v, axis=0, ddof=1))
    assert sem([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)


@pytest.mark.parametrize(
    ("values", "match"),
    [([], "empty"), ([1.0], "at least 2"), ([1.0, np.nan, 2.0], "NaN")],
)
def test_sem_value_errors(values, match):
    with pytest.raises(ValueError, match=match):
        sem(values)


def test_summarize_counts_undefined():
    values = np.array([0.5, np.nan, 0.7, 0.3, np.nan])
    s = summarize(values)
    assert s == Summary(
        mean=pytest.approx(0.5), sem=pytest.approx(0.2 / np.sqrt(3)), n=3, n_undefined=2
    )
    assert s.format(precision=1, scale=100) == "50.0 ± 11.5 (n=3, 2 undefined)"
    assert summarize([1.0, 3.0]).format() == "2.000 ± 1.000 (n=2)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n = 4  # type: ignore[misc]


def test_summarize_degenerate_counts():
    one = summarize([np.nan, 0.25])
    assert (one.mean, one.n, one.n_undefined) == (0.25, 1, 1)
    assert np.isnan(one.sem)
    none = summarize([np.nan, np.nan])
    assert np.isnan(none.mean) and none.n == 0 and none.n_undefined == 2


def test_summarize_pipeline_with_constant_prediction(rng):
    real = rng.normal(size=(6, 50))
    pred = real + rng.normal(size=(6, 50))
    pred[2] = 0.0
    with pytest.warns(UndefinedCorrelationWarning):
        s = summarize(pearson(pred, real))
    assert (s.n, s.n_undefined) == (5, 1)


@pytest.mark.parametrize(("values", "match"), [([], "empty"), ([1.0, np.inf], "infinite")])
def test_summarize_value_errors(values, match):
    with pytest.raises(ValueError, match=match):
        summarize(values)


# ------------------------------------------------------------------ noise ceilings


def _simulate(rng, neurons=4, images=400, repeats=8, noise=1.0):
    signal = rng.gamma(2.0, size=(neurons, images))
    trials = signal[..., None] + rng.normal(scale=noise, size=(neurons, images, repeats))
    return signal, trials


def _feve_reference(pred, responses):
    """neuralpredictors-style FEVE for one neuron, with explicit loops over images."""
    trials = [r[~np.isnan(r)] for r in responses]
    img_var = [np.var(t, ddof=1) for t in trials if t.size >= 2]
    noise_var = np.mean(img_var)
    total_var = np.var(np.concatenate(trials), ddof=1)
    sq = np.concatenate([(t - p) ** 2 for t, p in zip(trials, pred, strict=True)])
    fev_ = (total_var - noise_var) / total_var
    return fev_, 1 - (sq.mean() - noise_var) / (total_var - noise_var)


def test_feve_tiny_hand_computed():
    responses = np.array([[1.0, 3.0], [5.0, 7.0]])  # 2 images x 2 repeats
    pred = np.array([2.0, 5.0])
    # noise_var = mean(2, 2) = 2; total_var = var([1,3,5,7], ddof=1) = 20/3;
    # MSE = (1 + 1 + 0 + 4) / 4 = 1.5; FEVE = 1 - (1.5 - 2) / (20/3 - 2) = 31/28.
    assert feve(pred, responses) == pytest.approx(31 / 28)
    assert explainable_variance(responses) == pytest.approx((20 / 3 - 2) / (20 / 3))


def test_feve_perfect_prediction_of_true_mean(rng):
    signal, trials = _simulate(rng, images=2000, repeats=10)
    np.testing.assert_allclose(feve(signal, trials), 1.0, atol=0.03)
    # A noisier prediction explains less.
    worse = signal + rng.normal(scale=0.5, size=signal.shape)
    assert (feve(worse, trials) < 0.95).all()


def test_feve_and_fev_match_reference_with_missing_repeats(rng):
    signal, trials = _simulate(rng, neurons=3, images=60, repeats=5)
    trials[rng.random(trials.shape) < 0.2] = np.nan
    trials[0, 0, 1:] = np.nan  # one valid repeat: no noise estimate for this image
    pred = signal + rng.normal(scale=0.3, size=signal.shape)
    ref = np.array([_feve_reference(p, r) for p, r in zip(pred, trials, strict=True)])
    np.testing.assert_allclose(explainable_variance(trials), ref[:, 0], rtol=1e-12)
    np.testing.assert_allclose(feve(pred, trials), ref[:, 1], rtol=1e-12)


def test_feve_undefined_without_explainable_variance(rng):
    _, trials = _simulate(rng, neurons=2, images=50, repeats=4)
    trials[1] = 3.0  # constant: total_var = noise_var = 0
    with pytest.warns(UndefinedMetricWarning, match="1 of 2"):
        out = feve(np.zeros((2, 50)), trials)
    assert np.isnan(out[1])
    with pytest.warns(UndefinedMetricWarning, match="1 of 2"):
        assert np.isnan(explainable_variance(trials)[1])
    trials[1] = np.nan  # a neuron with no valid trial at all
    with pytest.warns(UndefinedMetricWarning, match="1 of 2"):
        out = feve(np.zeros((2, 50)), trials)
    assert np.isnan(out[1]) and np.isfinite(out[0])


def test_signal_power_is_mean_cross_repeat_covariance(rng):
    _, trials = _simulate(rng, neurons=3, images=50, repeats=4)
    for neuron, resp in enumerate(trials):
        n = resp.shape[1]
        covs = [
            np.cov(resp[:, a], resp[:, b], ddof=0)[0, 1]
            for a, b in itertools.permutations(range(n), 2)
        ]
        assert signal_power(trials)[neuron] == pytest.approx(np.mean(covs), rel=1e-12)
        # Sahani & Linden's form written out.
        sp = (np.var(resp.sum(1)) - np.var(resp, axis=0).sum()) / (n * (n - 1))
        assert signal_power(resp) == pytest.approx(sp, rel=1e-12)


def test_cc_max_is_one_for_noiseless_repeats(rng):
    signal = rng.normal(size=(3, 100))
    trials = np.repeat(signal[..., None], 5, axis=-1)
    np.testing.assert_allclose(cc_max(trials), 1.0, atol=1e-12)


def test_cc_max_matches_expected_value_for_simulated_noise(rng):
    # Signal variance 1, noise variance 1, N repeats: cc_max = sqrt(1 / (1 + 1 / N)).
    signal = rng.normal(size=(2, 20000))
    trials = signal[..., None] + rng.normal(size=(2, 20000, 4))
    np.testing.assert_allclose(cc_max(trials), np.sqrt(1 / (1 + 1 / 4)), atol=0.01)


def test_cc_max_undefined_for_negative_signal_power():
    # Repeats anticorrelated across images: Var(sum) = 0 < sum of Var -> SP < 0.
    trials = np.array([[[1.0, -1.0], [-1.0, 1.0], [2.0, -2.0]]])
    with pytest.warns(UndefinedMetricWarning, match="1 of 1"):
        assert np.isnan(cc_max(trials)[0])


def _cc_norm_reference(pred, resp):
    """Brute force from pairwise covariances: Cov(pred, mean) / sqrt(Var(pred) * SP)."""
    n_img, n = resp.shape
    mean = [sum(resp[i]) / n for i in range(n_img)]
    cov = np.cov(pred, mean, ddof=0)
    sp = np.mean(
        [
            np.cov(resp[:, a], resp[:, b], ddof=0)[0, 1]
            for a, b in itertools.permutations(range(n), 2)
        ]
    )
    return cov[0, 1] / np.sqrt(cov[0, 0] * sp)


def test_normalized_correlation_matches_brute_force(rng):
    signal, trials = _simulate(rng, neurons=5, images=120, repeats=6, noise=1.5)
    pred = signal + rng.normal(scale=0.8, size=signal.shape)
    ref = [_cc_norm_reference(p, r) for p, r in zip(pred, trials, strict=True)]
    np.testing.assert_allclose(normalized_correlation(pred, trials), ref, rtol=1e-10)
    cc_abs = pearson(pred, trials.mean(-1))
    np.testing.assert_allclose(normalized_correlation(pred, trials), cc_abs / cc_max(trials))


def test_normalized_correlation_estimates_correlation_with_signal(rng):
    signal = rng.normal(size=(2, 20000))
    trials = signal[..., None] + rng.normal(scale=2.0, size=(2, 20000, 4))
    pred = signal + rng.normal(scale=0.5, size=signal.shape)
    true_r = pearson(pred, signal)
    np.testing.assert_allclose(normalized_correlation(pred, trials), true_r, atol=0.02)
    assert (pearson(pred, trials.mean(-1)) < true_r - 0.1).all()


def test_normalized_correlation_constant_prediction_warns(rng):
    _, trials = _simulate(rng, neurons=3, images=40, repeats=4)
    pred = rng.normal(size=(3, 40))
    pred[0] = 1.0
    with pytest.warns(UndefinedCorrelationWarning, match="1 of 3"):
        out = normalized_correlation(pred, trials)
    assert np.isnan(out[0]) and np.isfinite(out[1:]).all()


def test_split_half_reliability(rng):
    _, trials = _simulate(rng, neurons=3, images=80, repeats=6)
    for neuron, resp in enumerate(trials):
        r = np.corrcoef(resp[:, [0, 2, 4]].mean(1), resp[:, [1, 3, 5]].mean(1))[0, 1]
        raw = split_half_reliability(trials, spearman_brown=False)[neuron]
        assert raw == pytest.approx(r, abs=1e-13)
        corrected = split_half_reliability(trials)[neuron]
        assert corrected == pytest.approx(2 * r / (1 + r), abs=1e-13)
    # Odd repeat count: halves of 2 and 1 repeats.
    resp = trials[0, :, :3]
    r = np.corrcoef(resp[:, [0, 2]].mean(1), resp[:, 1])[0, 1]
    assert split_half_reliability(resp, spearman_brown=False) == pytest.approx(r, abs=1e-13)


def test_split_half_reliability_constant_half_warns():
    trials = np.array([[[1.0, 2.0], [1.0, 3.0], [1.0, 1.0]]])
    with pytest.warns(UndefinedCorrelationWarning):
        assert np.isnan(split_half_reliability(trials)[0])


_REPEAT_MEASURES = [explainable_variance, signal_power, cc_max, split_half_reliability]


@pytest.mark.parametrize("measure", _REPEAT_MEASURES)
@pytest.mark.parametrize(
    ("responses", "match"),
    [
        (np.zeros((0, 3)), "empty"),
        (np.zeros(5), "images, repeats"),
        (np.zeros((5, 1)), "at least 2 repeats"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), "infinite"),
    ],
)
def test_repeat_measures_value_errors(measure, responses, match):
    with pytest.raises(ValueError, match=match):
        measure(responses)


@pytest.mark.parametrize("measure", [signal_power, cc_max, split_half_reliability])
def test_complete_repeat_measures_reject_nan_and_single_image(measure):
    with pytest.raises(ValueError, match="NaN"):
        measure(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="at least 2 images"):
        measure(np.array([[1.0, 2.0]]))


@pytest.mark.parametrize("measure", [feve, normalized_correlation])
def test_prediction_measures_value_errors(measure):
    responses = np.ones((2, 5, 3))
    with pytest.raises(ValueError, match="pred shape"):
        measure(np.ones((2, 4)), responses)
    with pytest.raises(ValueError, match="NaN"):
        measure(np.full((2, 5), np.nan), responses)
    with pytest.raises(ValueError, match="empty"):
        measure(np.ones((2, 5)), np.ones((0, 5, 3)))
    with pytest.raises(ValueError, match="at least 2 repeats"):
        measure(np.ones((2, 5)), np.ones((2, 5, 1)))


def test_normalized_correlation_rejects_missing_repeats():
    responses = np.arange(30, dtype=float).reshape(2, 5, 3)
    responses[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        normalized_correlation(np.ones((2, 5)), responses)


def test_public_api_is_exported():
    for name in metrics.__all__:
        assert hasattr(metrics, name)


def test_peak_reach_counts_top_images_and_resolution():
    from sacnn.metrics import peak_reach

    r = peak_reach([0.0, 0.1, 0.3, np.nan], [10, 10, 10, 10])
    assert (r.k, r.hits, r.chances) == (10, 4, 30)
    assert r.resolution == pytest.approx(1 / 30)
    none = peak_reach([0.0] * 10, 3)
    assert none.hits == 0 and none.chances == 30
    assert np.isnan(peak_reach([np.nan], 3).resolution)
