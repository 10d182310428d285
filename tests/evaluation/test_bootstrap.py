"""Bootstrap intervals and paired deltas: exact edge cases, determinism, calibration."""

import math

import numpy as np
import pytest

from recsys_core.evaluation.bootstrap import (
    bootstrap_ci,
    bootstrap_ci_columns,
    bootstrap_means,
    paired_bootstrap_delta,
)


def test_interval_contains_mean_and_has_width():
    x = np.random.default_rng(0).random(300)
    mean, low, high = bootstrap_ci(x, n_boot=500, seed=1)
    assert mean == pytest.approx(x.mean())
    assert low < mean < high


def test_constant_values_give_zero_width():
    for c in (0.0, 0.1, 1.0):
        assert bootstrap_ci(np.full(37, c)) == (c, c, c)


def test_two_point_sample_has_hand_computed_interval():
    # resample means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles are 0 and 1
    mean, low, high = bootstrap_ci(np.array([0.0, 1.0]), n_boot=4000, seed=3)
    assert (mean, low, high) == (0.5, 0.0, 1.0)
    boot = bootstrap_means(np.array([[0.0], [1.0]]), n_boot=4000, seed=3)[:, 0]
    assert set(np.unique(boot)) == {0.0, 0.5, 1.0}
    assert (boot == 0.5).mean() == pytest.approx(0.5, abs=0.03)


def test_width_matches_normal_theory():
    x = np.random.default_rng(5).normal(size=2000)
    _, low, high = bootstrap_ci(x, n_boot=2000, seed=0)
    expected = 2 * 1.959964 * x.std() / math.sqrt(len(x))
    assert (high - low) == pytest.approx(expected, rel=0.1)


def test_same_seed_same_numbers_other_seed_other_numbers():
    x = np.random.default_rng(2).random(100)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)


def test_columns_share_draws_and_match_single_column_calls():
    x = np.random.default_rng(4).random((80, 3))
    mean, low, high = bootstrap_ci_columns(x, n_boot=300, seed=9)
    for j in range(3):
        m, lo, hi = bootstrap_ci(x[:, j], n_boot=300, seed=9)
        assert (mean[j], low[j], high[j]) == pytest.approx((m, lo, hi), rel=1e-12)


def test_empty_and_invalid_inputs():
    assert all(math.isnan(v) for v in bootstrap_ci(np.zeros(0)))
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(np.ones(3), n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(np.ones(3), alpha=1.5)


def test_paired_delta_of_identical_vectors_is_exactly_zero_with_p_one():
    a = np.random.default_rng(0).random(50)
    assert paired_bootstrap_delta(a, a.copy()) == (0.0, 0.0, 0.0, 1.0)


def test_paired_delta_detects_a_consistent_small_gain():
    rng = np.random.default_rng(1)
    b = rng.random(400)
    a = b + 0.01 + rng.normal(scale=0.01, size=400)  # small but consistent per user
    delta, low, high, p = paired_bootstrap_delta(a, b, n_boot=999, seed=0)
    assert delta == pytest.approx((a - b).mean())
    assert 0 < low < delta < high
    assert p == pytest.approx(2 / 1000)  # no replicate <= 0: (0 + 1) / (999 + 1), doubled


def test_paired_delta_without_difference_is_not_significant():
    rng = np.random.default_rng(2)
    b = rng.random(300)
    a = b + rng.normal(scale=0.1, size=300)
    a -= (a - b).mean()  # mean difference exactly ~0
    _, low, high, p = paired_bootstrap_delta(a, b, seed=0)
    assert low < 0 < high and p > 0.5


def test_paired_delta_is_deterministic_and_checks_alignment():
    rng = np.random.default_rng(3)
    a, b = rng.random(60), rng.random(60)
    assert paired_bootstrap_delta(a, b, seed=4) == paired_bootstrap_delta(a, b, seed=4)
    users = np.arange(60)
    paired_bootstrap_delta(a, b, users_a=users, users_b=users.copy())
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap_delta(a, b, users_a=users, users_b=users[::-1])
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap_delta(a, b[:-1])
