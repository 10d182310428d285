"""Shift measures on tiny seeded data, checked against their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys_core.embeddings.shift import (
    align_by_ids,
    alignment,
    knn_overlap,
    linear_cka,
    mmd_unbiased,
    procrustes_drift,
    shift_report,
    uniformity,
)


def _orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


@pytest.fixture
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(300, 16))


# --- align_by_ids -------------------------------------------------------------------


def test_align_by_ids_keeps_common_ids_in_order_of_a() -> None:
    ids_a = ["a", "b", "c", "d"]
    X_a = np.arange(8.0).reshape(4, 2)
    ids_b = ["d", "x", "b"]
    X_b = np.array([[30.0, 31.0, 32.0], [0.0, 0.0, 0.0], [10.0, 11.0, 12.0]])
    common, A, B = align_by_ids(ids_a, X_a, ids_b, X_b)
    assert common.tolist() == ["b", "d"]
    np.testing.assert_array_equal(A, [[2.0, 3.0], [6.0, 7.0]])
    np.testing.assert_array_equal(B, [[10.0, 11.0, 12.0], [30.0, 31.0, 32.0]])
    assert A.dtype == np.float64 and B.dtype == np.float64


def test_align_by_ids_rejects_duplicates_and_length_mismatch() -> None:
    with pytest.raises(ValueError, match="repeated ids"):
        align_by_ids(["a", "a"], np.zeros((2, 2)), ["a"], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="3 ids but its matrix has 2 rows"):
        align_by_ids(["a", "b", "c"], np.zeros((2, 2)), ["a"], np.zeros((1, 2)))


# --- CKA ---------------------------------------------------------------------------------


def test_cka_is_one_under_orthogonal_transform_and_scaling(X: np.ndarray) -> None:
    Q = _orthogonal(16, seed=1)
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, X @ Q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, 3.5 * X @ Q + 7.0) == pytest.approx(1.0, abs=1e-12)


def test_cka_works_across_dimensions(X: np.ndarray) -> None:
    # Zero-padding X to 24 dims and rotating in that bigger space is the same arrangement.
    padded = np.hstack([X, np.zeros((300, 8))]) @ _orthogonal(24, seed=2)
    assert linear_cka(X, padded) == pytest.approx(1.0, abs=1e-12)


def test_cka_of_independent_noise_is_near_zero() -> None:
    rng = np.random.default_rng(3)
    value = linear_cka(rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)))
    # Expected value for independent Gaussians is about d / n = 0.008.
    assert 0.0 <= value < 0.02


def test_cka_is_symmetric_and_nan_without_variance(X: np.ndarray) -> None:
    Y = np.tanh(X[:, :5]) + 0.1 * np.random.default_rng(4).normal(size=(300, 5))
    assert linear_cka(X, Y) == pytest.approx(linear_cka(Y, X), rel=1e-12)
    assert math.isnan(linear_cka(np.ones((10, 3)), np.random.default_rng(0).normal(size=(10, 3))))


# --- Procrustes drift -------------------------------------------------------------------


def test_drift_is_zero_after_rotation_shift_and_scale(X: np.ndarray) -> None:
    drift = procrustes_drift(X, 2.0 * X @ _orthogonal(16, seed=5) - 1.0)
    assert drift.shape == (300,)
    np.testing.assert_allclose(drift, 0.0, atol=1e-10)


def test_drift_zero_pads_the_smaller_dimension(X: np.ndarray) -> None:
    bigger = np.hstack([X, np.zeros((300, 4))]) @ _orthogonal(20, seed=6)
    np.testing.assert_allclose(procrustes_drift(X, bigger), 0.0, atol=1e-10)
    np.testing.assert_allclose(procrustes_drift(bigger, X), 0.0, atol=1e-10)


def test_drift_singles_out_the_item_that_moved(X: np.ndarray) -> None:
    Y = X @ _orthogonal(16, seed=7)
    Y[42] = -Y[42]  # one item flipped to the opposite side of the centre
    drift = procrustes_drift(X, Y)
    assert int(np.argmax(drift)) == 42
    assert drift[42] > 1.5
    assert np.median(drift) < 0.01


# --- k-NN overlap -----------------------------------------------------------------------


def test_knn_overlap_is_one_under_rotation(X: np.ndarray) -> None:
    overlap = knn_overlap(X, X @ _orthogonal(16, seed=8), k=10)
    assert overlap.shape == (300,)
    np.testing.assert_array_equal(overlap, 1.0)


def test_knn_overlap_of_independent_noise_is_near_chance() -> None:
    rng = np.random.default_rng(9)
    overlap = knn_overlap(rng.normal(size=(500, 8)), rng.normal(size=(500, 8)), k=10)
    # Chance level is k / (n - 1) = 0.02.
    assert overlap.mean() < 0.05


def test_knn_overlap_hand_example() -> None:
    # Four directions at angles 0, 0.197, 0.381, 0.540 rad; in Y rows 0 and 3 swap places.
    X = np.array([[1.0, 0.0], [1.0, 0.2], [1.0, 0.4], [1.0, 0.6]])
    Y = X[[3, 1, 2, 0]]
    # Nearest by angle in X: 0->1, 1->2, 2->3, 3->2. In Y: 0->2, 1->2, 2->0, 3->1.
    np.testing.assert_array_equal(knn_overlap(X, Y, k=1), [0.0, 1.0, 0.0, 0.0])
    # k is capped at n - 1, where every point keeps all its neighbours.
    np.testing.assert_array_equal(knn_overlap(X, Y, k=50), 1.0)


def test_knn_overlap_rejects_bad_k(X: np.ndarray) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        knn_overlap(X, X, k=0)


# --- MMD ---------------------------------------------------------------------------------


def test_mmd_near_zero_for_same_distribution_and_positive_for_shift() -> None:
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    shifted = rng.normal(size=(400, 8)) + 1.0
    same = mmd_unbiased(a, b)
    moved = mmd_unbiased(a, shifted)
    assert abs(same) < 0.005
    assert moved > 0.1
    assert moved > 20 * abs(same)


def test_mmd_fixed_bandwidth_hand_value() -> None:
    # One-dimensional, two points each, s = 1: k(x, y) = exp(-(x - y)^2 / 2).
    X = np.array([[0.0], [1.0]])
    Y = np.array([[0.0], [2.0]])
    k = lambda d: math.exp(-(d**2) / 2)  # noqa: E731
    expected = k(1) + k(2) - 2 * (k(0) + k(2) + k(1) + k(1)) / 4
    assert mmd_unbiased(X, Y, bandwidths=[1.0]) == pytest.approx(expected, rel=1e-12)


def test_mmd_subsamples_and_is_seeded() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(900, 4)), rng.normal(size=(900, 4)) + 0.5
    v1 = mmd_unbiased(a, b, max_points=200, seed=1)
    assert v1 == mmd_unbiased(a, b, max_points=200, seed=1)
    assert v1 > 0.02


def test_mmd_rejects_mismatched_dimensions() -> None:
    with pytest.raises(ValueError, match="one space"):
        mmd_unbiased(np.zeros((3, 2)), np.zeros((3, 3)))


# --- alignment and uniformity -----------------------------------------------------------


def test_alignment_hand_values() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    b = np.array([[5.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
    # Normalised: identical (0), opposite (4), 45 degrees (2 - 2 cos 45 = 2 - sqrt 2).
    assert alignment(a, b) == pytest.approx((0 + 4 + (2 - math.sqrt(2))) / 3)
    assert alignment(a[:1], b[:1]) == 0.0


def test_uniformity_hand_values() -> None:
    # Two orthogonal unit vectors: ||x - y||^2 = 2, so log exp(-2 * 2) = -4.
    assert uniformity(np.array([[3.0, 0.0], [0.0, 0.5]])) == pytest.approx(-4.0)
    # (1,0), (-1,0), (0,1): squared distances 4, 2, 2.
    three = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    expected = math.log((math.exp(-8) + 2 * math.exp(-4)) / 3)
    assert uniformity(three) == pytest.approx(expected)
    # Collapsed vectors: every distance 0, the worst possible value 0.
    assert uniformity(np.ones((4, 3))) == pytest.approx(0.0)


# --- report -----------------------------------------------------------------------------


def test_shift_report_rows_and_values(X: np.ndarray) -> None:
    ids = np.array([f"i{j}" for j in range(300)], dtype=object)
    rotated = X @ _orthogonal(16, seed=12)
    noise = np.random.default_rng(13).normal(size=(300, 8))
    stages = {
        "source": (ids, X),
        "rotated": (ids[::-1].copy(), rotated[::-1].copy()),  # order must not matter
        "noise": (ids[:200], noise[:200]),
    }
    domains = {i: ("source" if j < 150 else "target") for j, i in enumerate(ids)}
    report = shift_report(stages, domains=domains)
    assert list(report.columns) == ["measure", "stage_a", "stage_b", "value", "explanation"]
    assert report["explanation"].str.len().min() > 40

    def value(measure: str, a: str, b: str | None) -> float:
        sel = report[(report.measure == measure) & (report.stage_a == a)]
        sel = sel[sel.stage_b.isna()] if b is None else sel[sel.stage_b == b]
        assert len(sel) == 1, (measure, a, b)
        return float(sel.value.iloc[0])

    assert value("linear_cka", "source", "rotated") == pytest.approx(1.0)
    assert value("procrustes_drift_mean", "source", "rotated") == pytest.approx(0.0, abs=1e-9)
    assert value("knn_overlap_mean", "source", "rotated") == 1.0
    assert value("linear_cka", "source", "noise") < 0.2
    assert value("knn_overlap_mean", "source", "noise") < 0.1
    # Same dimension: alignment present; different dimension: absent.
    assert value("alignment", "source", "rotated") > 0.5  # rotated coordinates differ
    assert not ((report.measure == "alignment") & (report.stage_b == "noise")).any()
    # Rotation keeps uniformity; MMD is computed per stage on its source/target halves.
    assert value("uniformity", "source", None) == pytest.approx(
        value("uniformity", "rotated", None)
    )
    assert abs(value("mmd_source_target", "source", None)) < 0.05
    assert value("mmd_source_target", "noise", None) == pytest.approx(
        mmd_unbiased(noise[:150], noise[150:200])
    )
    # 3 single-stage measures x 2 + 3 pairs x 4 + 1 alignment.
    assert len(report) == 3 * 2 + 3 * 4 + 1


def test_shift_report_explains_pairs_without_shared_ids() -> None:
    rng = np.random.default_rng(14)
    stages = {
        "a": (["x", "y", "z"], rng.normal(size=(3, 2))),
        "b": (["p", "q"], rng.normal(size=(2, 2))),
    }
    report = shift_report(stages)
    pair = report[report.stage_b == "b"]
    assert len(pair) == 5 and pair.value.isna().all()
    assert pair.explanation.str.contains("share only 0 ids").all()
    assert isinstance(report, pd.DataFrame)


def test_shift_report_knn_matches_direct_computation_when_rows_are_permuted() -> None:
    rng = np.random.default_rng(15)
    X = rng.normal(size=(120, 6))
    Y = X + 0.7 * rng.normal(size=(120, 6))
    ids = np.arange(120)
    perm = rng.permutation(120)
    report = shift_report({"a": (ids, X), "b": (ids[perm], Y[perm])}, k=5)
    got = report.loc[report.measure == "knn_overlap_mean", "value"].item()
    expected = knn_overlap(X, Y, k=5).mean()
    assert 0.2 < expected < 0.9  # a partial overlap, so the check has teeth
    assert got == pytest.approx(expected)
    assert "5 nearest" in report.loc[report.measure == "knn_overlap_mean", "explanation"].item()
