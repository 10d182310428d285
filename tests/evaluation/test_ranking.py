"""Full ranking: masking, exact tie-breaking, padding, batching."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.evaluation.ranking import topk_from_scores, topk_full_ranking


def rank(scores, masked=None, k=3):
    s = torch.as_tensor(scores)
    m = None if masked is None else torch.as_tensor(masked, dtype=torch.bool)
    return topk_from_scores(s, m, k).tolist()


class DotScorer:
    """score = U[u] @ V.T; records what it was given."""

    def __init__(self, u, v):
        self.u, self.v = torch.as_tensor(u), torch.as_tensor(v)
        self.calls = []

    def score(self, users, history):
        self.calls.append((users.copy(), history.copy()))
        return self.u[torch.as_tensor(users)] @ self.v.T


def reference_topk(scores, exclude, k):
    """Stable argsort on -score (ties by ascending index), excluded items dropped."""
    out = np.full((len(scores), k), -1, dtype=np.int64)
    for i, row in enumerate(scores):
        order = np.argsort(-row, kind="stable")
        order = order[~np.isin(order, exclude[i])][:k]
        out[i, : len(order)] = order
    return out


def test_all_equal_scores_rank_by_item_index():
    assert rank(np.zeros((2, 6), np.float32), k=4) == [[0, 1, 2, 3]] * 2
    assert rank(np.ones((1, 6), np.float64), k=6) == [[0, 1, 2, 3, 4, 5]]
    assert rank(np.full((1, 5), 7, np.int64), k=2) == [[0, 1]]


def test_ties_inside_and_at_the_boundary():
    s = np.array([[1.0, 3, 3, 2, 3, 3]], np.float32)
    assert rank(s, k=3) == [[1, 2, 4]]  # four items tie at 3: the lowest indices win
    assert rank(s, k=5) == [[1, 2, 4, 5, 3]]
    m = np.array([[False, False, True, False, False, False]])
    assert rank(s, m, k=3) == [[1, 4, 5]]


def test_close_distinct_scores_are_not_reordered_by_index():
    # An "index * epsilon" tie-breaker would swap these: they differ by one ulp.
    a = np.float32(1e8)
    b = np.nextafter(a, np.float32(np.inf))
    assert rank(np.array([[a, b]], np.float32), k=2) == [[1, 0]]
    assert rank(np.array([[1e300, 1e300, -1e300]]), k=3) == [[0, 1, 2]]


def test_signed_zeros_tie():
    assert rank(np.array([[0.0, -0.0, 0.0]], np.float32), k=3) == [[0, 1, 2]]
    assert rank(np.array([[-0.0, 0.0]], np.float32), k=2) == [[0, 1]]
    assert rank(np.array([[-0.0, 0.0, -1.0]], np.float64), k=2) == [[0, 1]]
    # negative scores of every magnitude keep their order in the packed int32 image
    neg = np.array([[-np.inf, -3.5, -1e-30, -0.0, 2.0, -2.0, -3.5]], np.float32)
    assert rank(neg, k=7) == [[4, 3, 2, 5, 1, 6, 0]]


def test_masked_items_never_appear_and_rows_are_padded():
    s = np.array([[9.0, 1, 2, 3], [9.0, 8, 7, 6]], np.float32)
    m = np.array([[True, False, False, False], [True, True, True, False]])
    assert rank(s, m, k=3) == [[3, 2, 1], [3, -1, -1]]
    assert rank(s, np.ones((2, 4), bool), k=2) == [[-1, -1], [-1, -1]]


def test_legitimate_minus_inf_beats_masked_item():
    # item 0 masked; item 2 genuinely scored -inf must still be recommended, before padding
    s = np.array([[-np.inf, 5.0, -np.inf]], np.float32)
    assert rank(s, [[True, False, False]], k=3) == [[1, 2, -1]]
    assert rank(s.astype(np.float64), [[True, False, False]], k=3) == [[1, 2, -1]]
    s64 = np.array([[np.iinfo(np.int64).min, 5, np.iinfo(np.int64).min]])
    assert rank(s64, [[True, False, False]], k=3) == [[1, 2, -1]]
    s32 = np.array([[np.iinfo(np.int32).min, 5, np.iinfo(np.int32).min]], np.int32)
    assert rank(s32, [[True, False, False]], k=3) == [[1, 2, -1]]


def test_k_larger_than_catalogue_is_cut_to_catalogue():
    assert rank(np.array([[1.0, 2.0]]), k=5) == [[1, 0]]


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        rank(np.array([[1.0, np.nan]]), k=1)


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.int8]
)
def test_matches_stable_argsort_reference_with_many_ties(dtype):
    rng = np.random.default_rng(0)
    scores = rng.integers(-3, 4, size=(40, 30)).astype(dtype)  # many ties
    exclude = [rng.choice(30, size=rng.integers(0, 28), replace=False) for _ in range(40)]
    mask = np.zeros((40, 30), bool)
    for i, e in enumerate(exclude):
        mask[i, e] = True
    got = topk_from_scores(torch.from_numpy(scores), torch.from_numpy(mask), 7).numpy()
    np.testing.assert_array_equal(got, reference_topk(scores.astype(np.float64), exclude, 7))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_mixing_rows_with_and_without_ties(dtype):
    # even rows continuous (fast path), odd rows integer-valued (tie paths)
    rng = np.random.default_rng(6)
    scores = rng.normal(size=(30, 25)).astype(dtype)
    scores[1::2] = rng.integers(0, 3, size=(15, 25))
    exclude = [rng.choice(25, size=rng.integers(0, 24), replace=False) for _ in range(30)]
    mask = np.zeros((30, 25), bool)
    for i, e in enumerate(exclude):
        mask[i, e] = True
    got = topk_from_scores(torch.from_numpy(scores), torch.from_numpy(mask), 5).numpy()
    np.testing.assert_array_equal(got, reference_topk(scores.astype(np.float64), exclude, 5))


def make_problem(n_users=50, n_items=40, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    # small integer factors give integer scores with plenty of ties
    u = rng.integers(-2, 3, size=(n_users, dim)).astype(np.float32)
    v = rng.integers(-2, 3, size=(n_items, dim)).astype(np.float32)
    dense = rng.random((n_users, n_items)) < 0.3
    dense[0, :] = True  # a user with everything excluded
    dense[1, :] = False
    return u, v, sp.csr_matrix(dense.astype(np.float32))


@pytest.mark.parametrize("batch_size", [1, 7, 1024])
def test_full_ranking_matches_reference_for_any_batch_size(batch_size):
    u, v, hist = make_problem()
    users = np.arange(50, dtype=np.int64)
    got = topk_full_ranking(DotScorer(u, v), users, hist, hist, k=10, batch_size=batch_size)
    excl = [hist[i].indices for i in range(50)]
    np.testing.assert_array_equal(got, reference_topk(u @ v.T, excl, 10))
    assert got.dtype == np.int64 and got.shape == (50, 10)
    assert (got[0] == -1).all()


def test_top_scored_history_item_never_recommended():
    # item 2 has by far the highest score for everyone, but it is in user 0's history
    u = np.ones((2, 1), np.float32)
    v = np.array([[1.0], [2.0], [100.0], [3.0]], np.float32)
    hist = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 0, 0, 0]], np.float32))
    got = topk_full_ranking(DotScorer(u, v), np.array([0, 1]), hist, hist, k=3)
    assert got.tolist() == [[3, 1, 0], [2, 3, 1]]


def test_scorer_gets_its_users_and_history_rows_and_exclude_is_separate():
    u, v, hist = make_problem(n_users=5, n_items=6)
    scorer = DotScorer(u, v)
    users = np.array([4, 2, 0, 1, 3])
    excl = sp.csr_matrix((5, 6), dtype=np.float32)
    progress = []
    topk_full_ranking(
        scorer, users, hist, excl, k=6, batch_size=2, progress=lambda d, n: progress.append((d, n))
    )
    assert [c[0].tolist() for c in scorer.calls] == [[4, 2], [0, 1], [3]]
    assert (scorer.calls[1][1] != hist[2:4]).nnz == 0
    assert progress == [(2, 5), (4, 5), (5, 5)]


def test_wrong_score_shape_is_reported():
    class Bad:
        def score(self, users, history):
            return torch.zeros(len(users), 3)

    h = sp.csr_matrix((2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"expected \(2, 4\)"):
        topk_full_ranking(Bad(), np.array([0, 1]), h, h, k=2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_same_lists_as_cpu():
    u, v, hist = make_problem()
    users = np.arange(50, dtype=np.int64)
    cpu = topk_full_ranking(DotScorer(u, v), users, hist, hist, k=10)
    gpu = topk_full_ranking(DotScorer(u, v), users, hist, hist, k=10, device="cuda")
    np.testing.assert_array_equal(cpu, gpu)


class SharedScorer:
    """The same row for every user; optionally declares it (``user_independent``)."""

    def __init__(self, row, declared):
        self.row = torch.as_tensor(row)
        self.user_independent = declared
        self.users_scored = 0

    def score(self, users, history):
        self.users_scored += len(users)
        return self.row.unsqueeze(0).expand(len(users), -1).clone()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("declared", [True, False])
def test_one_shared_score_row_ranks_as_the_exact_path(dtype, declared):
    # popularity-like counts (ties everywhere), -0.0, -inf, and users excluding
    # everything, nothing, duplicates, and more than the catalogue minus k
    rng = np.random.default_rng(3)
    n_users, n_items = 60, 35
    row = rng.integers(0, 6, n_items).astype(np.float64)
    if dtype is not np.int32:
        row[[3, 7]] = -0.0
        row[[4, 9]] = -np.inf
    row = row.astype(dtype)
    dense = rng.random((n_users, n_items)) < rng.random((n_users, 1))
    dense[0, :], dense[1, :] = True, False
    rows, cols = np.nonzero(dense)
    rows, cols = np.concatenate([rows, rows[:20]]), np.concatenate([cols, cols[:20]])
    excl = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (n_users, n_items))
    excl.sum_duplicates()
    scorer = SharedScorer(row, declared)
    users = np.arange(n_users, dtype=np.int64)
    got = topk_full_ranking(scorer, users, excl, excl, k=12, batch_size=16)
    want = reference_topk(np.tile(row.astype(np.float64), (n_users, 1)),
                          [excl[i].indices for i in range(n_users)], 12)  # fmt: skip
    np.testing.assert_array_equal(got, want)
    # the packed path of the old code gives the same lists (it ranks each row alone)
    for i in range(0, n_users, 9):
        one = topk_full_ranking(SharedScorer(row, False), users[i : i + 1], excl[i], excl[i], 12)
        np.testing.assert_array_equal(one[0], want[i])
    # a declared scorer is asked for one row, not one per user
    assert scorer.users_scored == (1 if declared else n_users)


def test_declared_shared_row_with_nan_still_refused():
    row = np.array([1.0, np.nan, 2.0], np.float32)
    hist = sp.csr_matrix((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        topk_full_ranking(SharedScorer(row, True), np.arange(3), hist, hist, k=2)
