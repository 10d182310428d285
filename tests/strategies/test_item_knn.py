"""Item-kNN: cosine with shrinkage, hand-computed; neighbour pruning; blocks; cold users."""

import numpy as np
import scipy.sparse as sp

from recsys_core.strategies.item_knn import ItemKNN

# users x items: item 0 and 1 co-occur twice, 0 and 2 once, 3 alone
X = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [1, 0, 0, 1],
            [0, 0, 1, 0],
        ],
        dtype=np.float32,
    )
)


def test_similarity_is_cosine_with_shrinkage_by_hand():
    m = ItemKNN(neighbours=10, shrink=1.0).fit(X)
    S = m.S.toarray()
    n = np.array([3, 2, 2, 1], dtype=float)  # users per item
    # sim(0,1) = 2 / (sqrt(3) sqrt(2) + 1); sim(0,2) = 1 / (sqrt(3) sqrt(2) + 1);
    # sim(1,2) = 1 / (2 + 1); sim(0,3) = 1 / (sqrt(3) + 1); sim(1,3) = sim(2,3) = 0
    assert np.isclose(S[0, 1], 2 / (np.sqrt(n[0] * n[1]) + 1))
    assert np.isclose(S[0, 2], 1 / (np.sqrt(n[0] * n[2]) + 1))
    assert np.isclose(S[1, 2], 1 / 3)
    assert np.isclose(S[0, 3], 1 / (np.sqrt(3) + 1))
    assert S[1, 3] == S[2, 3] == 0 and np.all(np.diag(S) == 0)
    np.testing.assert_allclose(S, S.T)


def test_a_cold_user_is_scored_from_support_items_alone():
    m = ItemKNN(neighbours=10, shrink=0.0).fit(X)
    support = sp.csr_matrix(([1.0], ([0], [1])), shape=(1, 4))  # revealed item 1 only
    scores = m.score(np.array([99]), support)[0]
    # neighbours of item 1: item 0 (2 / sqrt 6) ranks first, then item 2 (1/2), then 3 (0)
    assert scores[0] > scores[2] > scores[3] == 0
    assert np.isclose(float(scores[0]), 2 / np.sqrt(6), atol=1e-6)
    empty = sp.csr_matrix((1, 4), dtype=np.float32)
    assert float(m.score(np.array([0]), empty).abs().sum()) == 0.0  # the prior takes over


def test_only_the_top_neighbours_are_kept_and_blocks_change_nothing():
    rng = np.random.default_rng(0)
    big = sp.csr_matrix((rng.random((80, 50)) < 0.15).astype(np.float32))
    full = ItemKNN(neighbours=49, shrink=5.0).fit(big).S.toarray()
    pruned = ItemKNN(neighbours=5, shrink=5.0).fit(big).S.toarray()
    blocked = ItemKNN(neighbours=5, shrink=5.0, block=7).fit(big).S.toarray()
    np.testing.assert_allclose(pruned, blocked)
    assert ((pruned > 0).sum(axis=0) <= 5).all()
    for j in range(50):  # each kept column entry is among the column's 5 largest
        kept = np.flatnonzero(pruned[:, j])
        if len(kept):
            assert pruned[kept, j].min() >= np.sort(full[:, j])[-5] - 1e-7
