"""Inference across seeds: p-values against brute force and scipy, verdicts, Holm, crossings."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from jaxprecond.engine import inference
from jaxprecond.engine.inference import FAILS, HOLDS, INCONCLUSIVE


def brute_force_sign_flip_p(values) -> float:
    """The exact two-sided sign-flip p-value, by listing every sign pattern."""
    values = np.asarray(values, np.float64)
    observed = abs(values.mean())
    patterns = list(itertools.product([-1.0, 1.0], repeat=values.size))
    extreme = sum(abs(np.mean(np.array(signs) * values)) >= observed - 1e-12 for signs in patterns)
    return extreme / len(patterns)


# --- sign_flip_test ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [0.3, 1.2, -0.4, 2.0, 0.9, 1.5, -0.1],
        [0.1, -0.2, 0.05, -0.3, 0.25],
        [1.0, 2.0, 3.0, -6.5],
    ],
)
def test_sign_flip_exact_p_matches_brute_force(values):
    test = inference.sign_flip_test(values)
    assert test.p_value == pytest.approx(brute_force_sign_flip_p(values), abs=1e-15)
    assert test.estimate == pytest.approx(np.mean(values))
    assert (test.n, test.n_dropped) == (len(values), 0)
    assert "exact" in test.method


def test_sign_flip_interval_is_student_t():
    values = np.array([0.3, 1.2, -0.4, 2.0, 0.9])
    half = scipy_stats.t.ppf(0.975, 4) * values.std(ddof=1) / math.sqrt(5)
    low, high = inference.sign_flip_test(values).interval
    assert (low, high) == pytest.approx((values.mean() - half, values.mean() + half))


def test_sign_flip_ties_count_as_extreme():
    # 0.1 + 0.2 - 0.3 is not exactly 0 in floating point; every flip of it is a tie in truth.
    test = inference.sign_flip_test([0.1, 0.2, -0.3])
    assert test.p_value == 1.0


def test_sign_flip_monte_carlo_close_to_t_test_for_normal_data():
    rng = np.random.default_rng(3)
    for _ in range(3):
        values = rng.normal(0.45, 1.0, 20)
        test = inference.sign_flip_test(values, resamples=20_000, seed=1)
        assert "20000 random sign patterns" in test.method
        reference = scipy_stats.ttest_1samp(values, 0.0).pvalue
        assert test.p_value == pytest.approx(reference, abs=0.02)
        extreme = test.p_value * 20_001 - 1  # p = (1 + #extreme) / (1 + resamples)
        assert extreme == pytest.approx(round(extreme), abs=1e-6)
        assert inference.sign_flip_test(values, seed=1) == test


def test_two_seeds_can_never_hold():
    for values in ([1.0, 1.0], [5.0, 5.1], [1e6, 2e6]):
        test = inference.sign_flip_test(values)
        assert test.p_value == 0.5
        assert inference.verdict(test, +1) == INCONCLUSIVE


def test_six_consistent_seeds_reach_the_smallest_p():
    test = inference.sign_flip_test([0.8, 1.1, 0.9, 1.3, 0.7, 1.0])
    assert test.p_value == 2 / 64
    assert inference.verdict(test, +1) == HOLDS
    assert inference.verdict(test, -1) == FAILS


def test_sign_flip_drops_and_counts_non_finite_seeds():
    test = inference.sign_flip_test([1.0, np.nan, np.inf, 3.0, -np.inf])
    assert (test.n, test.n_dropped, test.estimate) == (2, 3, 2.0)


def test_sign_flip_degenerate_inputs():
    empty = inference.sign_flip_test([np.nan, np.nan])
    assert (empty.n, empty.n_dropped) == (0, 2)
    assert math.isnan(empty.estimate) and math.isnan(empty.p_value)
    assert inference.verdict(empty, +1) == INCONCLUSIVE
    one = inference.sign_flip_test([2.0])
    assert one.p_value == 1.0 and all(math.isnan(v) for v in one.interval)
    assert inference.sign_flip_test(np.zeros(8)).p_value == 1.0
    assert inference.sign_flip_test(np.zeros(30)).p_value == 1.0


def test_paired_difference_drops_a_seed_when_either_value_diverged():
    a = np.array([3.0, 4.0, np.nan, 5.0, 2.0])
    b = np.array([1.0, 1.0, 0.0, np.inf, 1.5])
    test = inference.paired_difference(a, b)
    assert (test.n, test.n_dropped) == (3, 2)
    expected = inference.sign_flip_test([2.0, 3.0, 0.5])
    assert (test.estimate, test.p_value) == (expected.estimate, expected.p_value)
    with pytest.raises(ValueError):
        inference.paired_difference(a, b[:3])


# --- seedwise_trend ------------------------------------------------------------------------------


def test_trend_perfectly_increasing_in_every_seed():
    x = np.linspace(-1.0, 1.0, 5)
    values = np.exp(x)[:, None] * np.arange(1.0, 9.0)  # 5 powers × 8 seeds, all increasing
    test = inference.seedwise_trend(x, values)
    assert test.estimate == pytest.approx(1.0)
    assert test.p_value == 2 / 2**8
    assert "per-seed Spearman ρ" in test.method
    assert inference.verdict(test, +1) == HOLDS


def test_trend_with_all_values_equal_is_zero_and_inconclusive():
    test = inference.seedwise_trend([0.0, 0.5, 1.0], np.ones((3, 6)))
    assert (test.estimate, test.p_value) == (0.0, 1.0)
    assert inference.verdict(test, +1) == INCONCLUSIVE


def test_trend_with_a_single_power_is_inconclusive():
    test = inference.seedwise_trend([0.5], np.ones((1, 6)))
    assert math.isnan(test.estimate) and math.isnan(test.p_value)
    assert inference.verdict(test, +1) == INCONCLUSIVE


def test_trend_all_nan_drops_every_seed():
    test = inference.seedwise_trend([0.0, 0.5, 1.0], np.full((3, 4), np.nan))
    assert (test.n, test.n_dropped) == (0, 4)
    assert inference.verdict(test, +1) == INCONCLUSIVE


def test_trend_drops_a_seed_with_one_diverged_point():
    values = np.array([[1.0, 1.0, 3.0], [2.0, np.nan, 2.0], [3.0, 3.0, 1.0]])
    test = inference.seedwise_trend([0.0, 1.0, 2.0], values)
    assert (test.n, test.n_dropped, test.estimate) == (2, 1, 0.0)


def test_two_seeds_cannot_make_a_trend_hold_although_pooled_points_look_decisive():
    x = np.linspace(0.0, 1.0, 20)
    values = np.stack([x, 2 * x + 0.01], axis=1)  # 20 powers × 2 seeds, both increasing
    pooled = scipy_stats.spearmanr(np.repeat(x, 2), values.ravel())
    assert pooled.pvalue < 1e-10
    test = inference.seedwise_trend(x, values)
    assert (test.estimate, test.p_value) == (1.0, 0.5)
    assert inference.verdict(test, +1) == INCONCLUSIVE


def test_seeds_of_opposite_trend_cancel_although_pooling_finds_one(rng):
    # Three seeds rise steeply, three fall gently: pooled (p, seed) points show a strong rise,
    # but per seed the trend is +1 three times and -1 three times.
    x = np.linspace(-1.0, 1.0, 30)
    rising = 50 + 40 * x[:, None] + rng.normal(0, 1, (30, 3))
    falling = 50 - 2 * x[:, None] + rng.normal(0, 0.05, (30, 3))
    values = np.concatenate([rising, falling], axis=1)
    pooled = scipy_stats.spearmanr(np.repeat(x, 6), values.ravel())
    assert pooled.statistic > 0 and pooled.pvalue < 1e-3
    test = inference.seedwise_trend(x, values)
    assert abs(test.estimate) < 0.05 and test.p_value > 0.5
    assert inference.verdict(test, +1) == INCONCLUSIVE


# --- tost and equivalence_verdict ----------------------------------------------------------------


def test_tost_p_value_is_the_larger_one_sided_t_test(rng):
    differences = rng.normal(0.02, 0.05, 10)
    test = inference.tost(differences, 0.1)
    lower = scipy_stats.ttest_1samp(differences, -0.1, alternative="greater").pvalue
    upper = scipy_stats.ttest_1samp(differences, 0.1, alternative="less").pvalue
    assert test.p_value == pytest.approx(max(lower, upper))
    half = scipy_stats.t.ppf(0.95, 9) * differences.std(ddof=1) / math.sqrt(10)
    assert test.interval == pytest.approx((differences.mean() - half, differences.mean() + half))


def test_tost_identical_data_holds(rng):
    test = inference.tost(rng.normal(0.0, 1e-3, 30), 0.1)
    assert test.p_value < 1e-10
    assert inference.equivalence_verdict(test, 0.1) == HOLDS


def test_tost_large_shift_fails(rng):
    test = inference.tost(rng.normal(1.0, 0.1, 10), 0.1)
    assert test.interval[0] > 0.1
    assert inference.equivalence_verdict(test, 0.1) == FAILS


def test_tost_wide_noise_is_inconclusive():
    test = inference.tost([-1.2, 0.9, 0.4, -0.6, 0.5], 0.1)  # mean 0, spread 0.9
    low, high = test.interval
    assert low < 0.1 and high > -0.1 and test.p_value >= 0.05
    assert inference.equivalence_verdict(test, 0.1) == INCONCLUSIVE


def test_tost_needs_two_seeds_and_a_positive_margin():
    test = inference.tost([0.0, np.nan], 0.1)
    assert (test.n, test.n_dropped) == (1, 1) and math.isnan(test.p_value)
    assert inference.equivalence_verdict(test, 0.1) == INCONCLUSIVE
    with pytest.raises(ValueError):
        inference.tost([0.0, 1.0], 0.0)


# --- verdict and holm ----------------------------------------------------------------------------


def make_test(estimate: float, p_value: float) -> inference.Test:
    return inference.Test(estimate, (estimate - 1, estimate + 1), p_value, 8, 0, "made up")


def test_verdict_three_outcomes_and_the_override():
    assert inference.verdict(make_test(0.3, 0.01), +1) == HOLDS
    assert inference.verdict(make_test(-0.3, 0.01), -1) == HOLDS
    assert inference.verdict(make_test(-0.3, 0.01), +1) == FAILS
    assert inference.verdict(make_test(0.3, 0.2), +1) == INCONCLUSIVE
    assert inference.verdict(make_test(0.3, 0.05), +1) == INCONCLUSIVE  # p < alpha, strictly
    assert inference.verdict(make_test(0.3, 0.01), +1, p_value=0.06) == INCONCLUSIVE
    assert inference.verdict(make_test(0.3, 0.2), +1, p_value=0.01) == HOLDS
    assert inference.verdict(make_test(0.3, 0.04), +1, alpha=0.01) == INCONCLUSIVE
    assert inference.verdict(make_test(np.nan, np.nan), +1) == INCONCLUSIVE
    assert inference.verdict(make_test(0.3, np.nan), -1) == INCONCLUSIVE
    assert inference.verdict(make_test(0.0, 0.01), +1) == INCONCLUSIVE
    with pytest.raises(ValueError):
        inference.verdict(make_test(0.3, 0.01), 0)


def test_holm_against_a_hand_computation():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max so far 0.06.
    adjusted = inference.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan():
    # Two defined p-values, so m = 2: 0.01·2 = 0.02, then max(0.02, 0.7·1) = 0.7.
    # And 0.6·2 = 1.2 is capped at 1, which the running maximum carries to 0.9.
    adjusted = inference.holm([0.01, np.nan, 0.7])
    np.testing.assert_allclose(adjusted, [0.02, np.nan, 0.7])
    np.testing.assert_allclose(inference.holm([0.6, 0.9]), [1.0, 1.0])
    assert np.isnan(inference.holm([np.nan, np.nan])).all()
    assert inference.holm([]).shape == (0,)


# --- bootstrap_crossing --------------------------------------------------------------------------


def test_crossing_of_two_lines_at_the_closed_form(rng):
    # high = x + a_s, low = c - x + b_s per seed: d(x) = 2x - c + mean(a - b), zero at
    # x* = (c - mean(a - b)) / 2, and linear interpolation of a line is exact.
    x = np.linspace(0.0, 2.0, 9)
    c, seeds = 1.3, 12
    a, b = rng.normal(0, 0.2, seeds), rng.normal(0, 0.2, seeds)
    high = x[:, None] + a
    low = c - x[:, None] + b
    crossing, (lo, hi), undefined = inference.bootstrap_crossing(x, high, low)
    assert crossing == pytest.approx((c - np.mean(a - b)) / 2, abs=1e-12)
    assert lo <= crossing <= hi and lo <= c / 2 <= hi
    assert hi - lo < 0.3
    assert undefined == 0.0


def test_crossing_ignores_a_diverged_seed():
    x = np.array([0.0, 1.0, 2.0])
    high = np.array([[0.0, 0.0, 5.0], [1.0, 1.0, np.nan], [2.0, 2.0, 5.0]])
    crossing, _, _ = inference.bootstrap_crossing(x, high, np.full((3, 3), 1.5))
    assert crossing == pytest.approx(1.5)


def test_crossing_at_an_exact_grid_zero_is_that_point():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    high = np.array([[-1.0], [0.0], [1.0], [2.0]])
    crossing, interval, undefined = inference.bootstrap_crossing(x, high, np.zeros((4, 1)))
    assert crossing == 1.0 and interval == (1.0, 1.0) and undefined == 0.0


def test_curves_that_never_cross(rng):
    x = np.linspace(0.0, 1.0, 6)
    low = rng.normal(0, 0.1, (6, 8))
    crossing, (lo, hi), undefined = inference.bootstrap_crossing(x, low + 1.0, low)
    assert math.isnan(crossing) and math.isnan(lo) and math.isnan(hi)
    assert undefined == 1.0


def test_crossing_first_sign_change_counts():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    d = np.array([[-1.0], [1.0], [-1.0], [1.0]])  # changes sign three times
    crossing, _, _ = inference.bootstrap_crossing(x, d, np.zeros((4, 1)))
    assert crossing == 0.5


# --- best_against_others -------------------------------------------------------------------------


def test_a_clear_best_row_beats_every_other_after_holm(rng):
    means = np.array([2.0, 1.5, 0.5, 1.8])
    values = means[:, None] + rng.normal(0, 0.05, (4, 8))  # 4 rows × 8 seeds
    best, tests, adjusted = inference.best_against_others(values)
    assert best == 2 and tests[2] is None and np.isnan(adjusted[2])
    for j in (0, 1, 3):
        assert tests[j].estimate == pytest.approx(np.mean(values[j] - values[2]))
        assert inference.verdict(tests[j], +1, p_value=adjusted[j]) == HOLDS
    np.testing.assert_allclose(adjusted[[0, 1, 3]], 3 * 2 / 2**8)


def test_higher_is_better_flips_the_sign(rng):
    values = np.array([[0.9], [0.5]]) + rng.normal(0, 0.01, (2, 6))
    best, tests, adjusted = inference.best_against_others(values, lower_is_better=False)
    assert best == 0 and tests[1].estimate > 0
    assert inference.verdict(tests[1], +1, p_value=adjusted[1]) == HOLDS


def test_overlapping_rows_with_few_seeds_are_inconclusive():
    values = np.array([[1.0, 1.3, 0.8], [1.1, 1.0, 1.2], [0.9, 1.4, 1.0]])  # 3 rows × 3 seeds
    best, tests, adjusted = inference.best_against_others(values)
    others = [j for j in range(3) if j != best]
    for j in others:
        low, high = tests[j].interval
        assert low < 0 < high
        assert inference.verdict(tests[j], +1, p_value=adjusted[j]) == INCONCLUSIVE


def test_best_ignores_diverged_seeds_in_the_mean():
    values = np.array([[1.0, 1.0, np.inf], [2.0, 2.0, 0.0]])
    best, tests, _ = inference.best_against_others(values)
    assert best == 0 and (tests[1].n, tests[1].n_dropped) == (2, 1)


def test_a_single_row_has_nothing_to_compare():
    best, tests, adjusted = inference.best_against_others(np.ones((1, 5)))
    assert best == 0 and tests == [None]
    assert adjusted.shape == (1,) and np.isnan(adjusted[0])
