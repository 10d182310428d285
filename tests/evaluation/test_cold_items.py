"""Cold-item AUC and cold-catalogue ranking on hand-computed cases, ties included."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_core.evaluation.cold_items import cold_catalogue_per_user, cold_item_auc


def test_auc_by_hand_with_ties():
    scores = np.array(
        [
            [0.9, 0.5, 0.5, 0.1],  # pos {0}: beats 3 negatives -> 1
            [0.5, 0.5, 0.2, 0.9],  # pos {0}: tie with 1 (0.5), beats 2, loses to 3 -> 1.5/3
            [0.3, 0.3, 0.3, 0.3],  # pos {1, 2}: all ties -> 0.5
            [0.1, 0.2, 0.3, 0.4],  # no positive -> NaN
        ]
    )
    pos = np.array(
        [
            [1, 0, 0, 0],
            [1, 0, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0],
        ],
        dtype=bool,
    )
    got = cold_item_auc(scores, pos)
    np.testing.assert_allclose(got[:3], [1.0, 0.5, 0.5])
    assert np.isnan(got[3])
    # two positives, pairs: (p=0.4 vs 0.1, 0.3) both win; (p=0.2 vs 0.1 win, vs 0.3 lose)
    assert cold_item_auc(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([[0, 1, 0, 1]], bool))[
        0
    ] == pytest.approx(3 / 4)


class Fixed:
    def __init__(self, rows):
        self.rows = torch.as_tensor(rows, dtype=torch.float32)

    def score(self, users, history):
        return self.rows[np.asarray(users)]


def test_cold_catalogue_ranks_cold_items_among_themselves_ties_by_index():
    # 6 items; items 2, 3, 5 are cold. Warm items score high but never compete.
    rows = np.array(
        [
            [9, 9, 0.2, 0.7, 9, 0.7],  # ties 3 and 5 at 0.7 -> 3 first; list [3, 5, 2]
            [9, 9, 0.9, 0.1, 9, 0.5],  # list [2, 5, 3]
        ]
    )
    truth = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0]], dtype=np.float32))
    hist = sp.csr_matrix((2, 6), dtype=np.float32)
    pu = cold_catalogue_per_user(
        Fixed(rows), np.array([0, 1]), hist, truth, np.array([2, 3, 5]), (1, 2)
    )
    pu = pu.set_index("user")
    # user 0: truth {5} at rank 2 -> recall@1 0, recall@2 1, ndcg@2 = 1/log2(3)
    assert pu.loc[0, "recall@1"] == 0 and pu.loc[0, "recall@2"] == 1
    assert pu.loc[0, "ndcg@2"] == pytest.approx(1 / np.log2(3))
    # AUC of user 0: 5 (0.7) vs 2 (0.2) win, vs 3 (0.7) tie -> 0.75
    assert pu.loc[0, "auc"] == pytest.approx(0.75)
    # user 1: truth {3} ranked last among cold items -> AUC 0, recall@2 0
    assert pu.loc[1, "auc"] == 0 and pu.loc[1, "recall@2"] == 0


def test_counted_auc_and_topk_equal_the_rank_and_sort_versions(monkeypatch):
    # the AUC by counting and the list by the ranking's top-k replaced a full rankdata
    # and argsort of every row (issue 13): bit for bit the same numbers, ties included
    from scipy.stats import rankdata

    import recsys_core.evaluation.cold_items as ci

    rng = np.random.default_rng(1)
    n, m = 70, 23
    scores = rng.integers(0, 5, size=(n, m)).astype(np.float32)  # ties everywhere
    scores[::3] = rng.normal(size=(len(scores[::3]), m))
    scores[5, [1, 2]] = -0.0
    pos = rng.random((n, m)) < 0.15
    pos[0], pos[1] = False, True  # no positive; no negative
    s64 = scores.astype(np.float64)
    ranks = rankdata(s64, method="average", axis=1)
    n_pos = pos.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        old = ((ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * (m - n_pos))
    old[(n_pos == 0) | (n_pos == m)] = np.nan
    monkeypatch.setattr(ci, "_PAIR_BLOCK", 50)  # several blocks of positives
    np.testing.assert_array_equal(cold_item_auc(scores, pos), old)

    cold = np.sort(rng.choice(40, size=m, replace=False))
    full = np.zeros((n, 40), np.float32)
    full[:, cold] = scores
    truth = sp.lil_matrix((n, 40), dtype=np.float32)
    for i, j in zip(*np.nonzero(pos)):
        truth[i, cold[j]] = 1.0
    hist = sp.csr_matrix((n, 40), dtype=np.float32)
    pu = cold_catalogue_per_user(Fixed(full), np.arange(n), hist, truth.tocsr(), cold, (5, 10))
    lists = cold[np.argsort(-scores, axis=1, kind="stable")[:, :10]]
    from recsys_core.evaluation.metrics import ranking_metrics

    want = ranking_metrics(lists, truth.tocsr(), (5, 10), users=np.arange(n))
    np.testing.assert_array_equal(pu.drop(columns="auc").to_numpy(), want.to_numpy())


def test_a_user_independent_scorer_is_asked_for_one_row():
    class Shared(Fixed):
        user_independent = True

        def score(self, users, history):
            self.asked = getattr(self, "asked", 0) + len(users)
            return self.rows[[0] * len(users)]

    rows = np.array([[9, 9, 0.2, 0.7, 9, 0.7]] * 2)
    truth = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0]], dtype=np.float32))
    hist = sp.csr_matrix((2, 6), dtype=np.float32)
    args = (np.array([0, 1]), hist, truth, np.array([2, 3, 5]), (1, 2))
    scorer = Shared(rows)
    shared = cold_catalogue_per_user(scorer, *args)
    assert scorer.asked == 1
    pd.testing.assert_frame_equal(shared, cold_catalogue_per_user(Fixed(rows), *args))


def test_average_ranks_are_scipys_rankdata():
    """The numpy ranks that spare every evaluation scipy.stats' import (issue 13): ties,
    a single value, empty, negative zero and NaN, against scipy's own."""
    from scipy.stats import rankdata

    from recsys_core.evaluation.cold_items import average_ranks

    rng = np.random.default_rng(0)
    cases = [rng.integers(0, 4, n).astype(float) for n in (1, 2, 7, 40)]
    cases += [
        rng.normal(size=50),
        np.array([]),
        np.array([0.0, -0.0, 1.0]),
        np.array([2.0, np.nan]),
    ]
    for x in cases:
        np.testing.assert_array_equal(average_ranks(x), rankdata(x, method="average"))
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
