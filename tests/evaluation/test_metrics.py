"""Per-user metrics against hand-computed values and a plain-loop reference."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_core.evaluation.metrics import (
    METRICS,
    average_popularity,
    coverage,
    hit_matrix,
    ranking_metrics,
    truth_to_csr,
)

L3 = 1.0 / math.log2(3)  # discount at rank 2


def one_user():
    # ranked list: item 1 at rank 2, item 7 at rank 10; truth {1, 7}
    topk = np.array([[3, 1, 2, 0, 4, 5, 6, 8, 9, 7]])
    return topk, [np.array([1, 7])]


def test_hand_computed_single_user():
    topk, truth = one_user()
    row = ranking_metrics(topk, truth, ks=(1, 5, 10)).iloc[0]
    assert row["recall@1"] == 0.0 and row["ndcg@1"] == 0.0 and row["mrr@1"] == 0.0
    assert row["hit@1"] == 0.0 and row["precision@1"] == 0.0
    assert row["recall@5"] == pytest.approx(0.5)
    assert row["precision@5"] == pytest.approx(1 / 5)
    assert row["hit@5"] == 1.0
    assert row["mrr@5"] == pytest.approx(0.5)
    assert row["ndcg@5"] == pytest.approx(L3 / (1 + L3))
    assert row["recall@10"] == pytest.approx(1.0)
    assert row["precision@10"] == pytest.approx(0.2)
    assert row["mrr@10"] == pytest.approx(0.5)
    assert row["ndcg@10"] == pytest.approx((L3 + 1 / math.log2(11)) / (1 + L3))


def test_column_order_and_user_column():
    topk, truth = one_user()
    df = ranking_metrics(topk, truth, ks=(5, 10), users=np.array([42]))
    assert list(df.columns) == ["user"] + [f"{m}@{k}" for m in METRICS for k in (5, 10)]
    assert df["user"].tolist() == [42]


def test_recall_denominator_is_number_of_test_items_not_min_with_k():
    # 3 test items, both top-2 items relevant: RecBole recall@2 = 2/3, ndcg@2 = 1
    row = ranking_metrics(np.array([[0, 1, 5]]), [np.array([0, 1, 2])], ks=(2,)).iloc[0]
    assert row["recall@2"] == pytest.approx(2 / 3)
    assert row["ndcg@2"] == pytest.approx(1.0)
    assert row["precision@2"] == pytest.approx(1.0)


def test_ideal_dcg_uses_min_of_test_items_and_k():
    # one test item found at rank 3: ideal has it at rank 1 -> ndcg = (1/log2 4) / 1
    row = ranking_metrics(np.array([[5, 6, 2, 7]]), [np.array([2])], ks=(4,)).iloc[0]
    assert row["ndcg@4"] == pytest.approx(0.5)
    assert row["mrr@4"] == pytest.approx(1 / 3)


def test_users_without_truth_are_skipped_not_zero():
    topk = np.array([[0, 1], [0, 1], [2, 3]])
    df = ranking_metrics(topk, [np.array([1]), np.array([], dtype=np.int64), [9]], ks=(2,))
    assert df["user"].tolist() == [0, 2]
    assert df["recall@2"].tolist() == [1.0, 0.0]


def test_padding_never_hits_and_precision_divides_by_k():
    row = ranking_metrics(np.array([[4, -1, -1]]), [np.array([4, 0])], ks=(3,)).iloc[0]
    assert row["precision@3"] == pytest.approx(1 / 3)
    assert row["recall@3"] == pytest.approx(0.5)


def test_csr_and_list_truth_agree_and_duplicates_in_truth_merge():
    rng = np.random.default_rng(0)
    topk = np.stack([rng.permutation(30)[:10] for _ in range(25)])
    lists = [rng.choice(30, size=rng.integers(0, 6), replace=True) for _ in range(25)]
    a = ranking_metrics(topk, lists, ks=(3, 10))
    m = truth_to_csr(lists, 25, 30)
    b = ranking_metrics(topk, m, ks=(3, 10))
    pd.testing.assert_frame_equal(a, b)
    assert m.data.max() == 1.0  # repeated test items count once


def reference(topk, truth, k):
    """Plain per-user loop, straight from the definitions."""
    out = []
    for lst, t in zip(topk, truth):
        t = set(int(x) for x in t)
        if not t:
            continue
        rel = [int(i) in t for i in lst[:k]]
        h = sum(rel)
        first = next((r + 1 for r, x in enumerate(rel) if x), None)
        dcg = sum(1 / math.log2(r + 2) for r, x in enumerate(rel) if x)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(t), k)))
        out.append((h / len(t), dcg / idcg, float(h > 0), 1 / first if first else 0.0, h / k))
    return np.array(out)


def test_vectorised_matches_loop_reference():
    rng = np.random.default_rng(1)
    n, n_items = 200, 50
    topk = np.stack([rng.permutation(n_items)[:20] for _ in range(n)])
    topk[rng.random((n, 20)) < 0.05] = -1  # some padding (repeated -1 is allowed)
    truth = [rng.choice(n_items, size=rng.integers(0, 8), replace=False) for _ in range(n)]
    df = ranking_metrics(topk, truth, ks=(5, 20))
    for k in (5, 20):
        ref = reference(topk, truth, k)
        got = df[[f"{m}@{k}" for m in METRICS]].to_numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_invalid_lists_rejected():
    with pytest.raises(ValueError, match="same item twice"):
        ranking_metrics(np.array([[1, 2, 1]]), [[1]], ks=(3,))
    with pytest.raises(ValueError, match="K=5"):
        ranking_metrics(np.array([[1, 2, 3]]), [[1]], ks=(5,))
    with pytest.raises(ValueError, match="one per user"):
        ranking_metrics(np.array([[1, 2, 3]]), [[1], [2]], ks=(3,))
    with pytest.raises(ValueError, match="catalogue has 4 items"):
        hit_matrix(np.array([[4]]), sp.csr_matrix((1, 4)))


def test_coverage_hand_computed():
    topk = np.array([[0, 1, -1], [1, 2, 3]])
    assert coverage(topk, 10, 2) == pytest.approx(0.3)  # {0, 1, 2}
    assert coverage(topk, 10, 3) == pytest.approx(0.4)  # {0, 1, 2, 3}


def test_average_popularity_hand_computed():
    pop = np.array([10, 20, 30, 40])
    topk = np.array([[0, 1], [2, -1], [-1, -1]])
    # user 0: (10 + 20) / 2 = 15; user 1: 30 (padding ignored); user 2 has no items: skipped
    assert average_popularity(topk, pop, 2) == pytest.approx(22.5)
    assert average_popularity(topk, pop, 1) == pytest.approx(20.0)  # (10 + 30) / 2
    assert math.isnan(average_popularity(np.full((2, 2), -1), pop, 2))
