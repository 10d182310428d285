"""EASE (Steck 2019) against its closed form, and validation tuning on an obvious case."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.models import tune_on_validation
from recsys_core.models.ease import EASE, EASEConfig
from recsys_core.models.popularity import Popularity


def _random_binary(seed: int, shape: tuple[int, int], density: float) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random(shape) < density).astype(np.float32))


def _pairs_matrix() -> sp.csr_matrix:
    """Items come in pairs (0,1), (2,3), (4,5) that always co-occur; 4 and 5 are the most
    popular; item 6 is never seen (cold)."""
    rows = [[0, 1]] * 5 + [[2, 3]] * 6 + [[4, 5]] * 12
    dense = np.zeros((len(rows), 7), dtype=np.float32)
    for u, items in enumerate(rows):
        dense[u, items] = 1.0
    return sp.csr_matrix(dense)


def test_matches_numpy_closed_form() -> None:
    X = _random_binary(0, (40, 9), 0.35)
    l2 = 3.0
    model = EASE(EASEConfig(l2=l2, dtype="float64")).fit(X)
    Xd = X.toarray().astype(np.float64)
    P = np.linalg.inv(Xd.T @ Xd + l2 * np.eye(9))
    B = np.eye(9) - P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    got = model.B.cpu().numpy()
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_allclose(got, B, atol=1e-12)
    # float32 is within single precision of the same matrix.
    got32 = EASE(EASEConfig(l2=l2)).fit(X).B.numpy()
    np.testing.assert_allclose(got32, B, atol=1e-5)


def test_score_is_history_times_B() -> None:
    X = _random_binary(1, (30, 8), 0.4)
    model = EASE(EASEConfig(l2=2.0, dtype="float64")).fit(X)
    hist = X[[3, 7]]
    scores = model.score(np.array([3, 7]), hist)
    assert scores.dtype == torch.float32 and scores.shape == (2, 8)
    expected = hist.toarray() @ model.B.numpy()
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_partner_item_ranks_first() -> None:
    model = EASE(EASEConfig(l2=1.0)).fit(_pairs_matrix())
    # A cold user (never trained on) whose one support item is 2: its partner 3 is first
    # although 4 and 5 are twice as popular.
    hist = sp.csr_matrix(([1.0], ([0], [2])), shape=(1, 7))
    scores = model.score(np.array([99]), hist)[0]
    scores[2] = float("-inf")
    assert int(torch.argmax(scores)) == 3
    assert scores[3].item() > 0.5
    assert scores[4].item() == 0.0 and scores[5].item() == 0.0


def test_cold_items_score_exactly_zero_and_pass_nothing_on() -> None:
    model = EASE(EASEConfig(l2=1.0)).fit(_pairs_matrix())
    assert torch.count_nonzero(model.B[:, 6]) == 0
    assert torch.count_nonzero(model.B[6, :]) == 0
    hist = sp.csr_matrix(np.array([[1, 0, 1, 0, 1, 0, 1]], dtype=np.float32))
    assert model.score(np.array([0]), hist)[0, 6].item() == 0.0
    assert model.item_counts.tolist() == [5, 5, 6, 6, 12, 12, 0]


def test_empty_history_gives_zero_scores() -> None:
    model = EASE().fit(_pairs_matrix())
    scores = model.score(np.array([0, 1]), sp.csr_matrix((2, 7)))
    assert torch.count_nonzero(scores) == 0


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="l2 must be a positive"):
        EASEConfig(l2=0.0)
    with pytest.raises(ValueError, match="dtype"):
        EASEConfig(dtype="float16")
    with pytest.raises(RuntimeError, match="before fit"):
        EASE().score(np.array([0]), sp.csr_matrix((1, 7)))
    model = EASE().fit(_pairs_matrix())
    with pytest.raises(ValueError, match="item columns"):
        model.score(np.array([0]), sp.csr_matrix((1, 5)))
    with pytest.raises(ValueError, match="one history row per user"):
        model.score(np.array([0, 1]), sp.csr_matrix((1, 7)))


def _tuning_case() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Train: the pairs data plus 4 users who saw item 0 (or 2) only; valid: the partner."""
    base = _pairs_matrix().toarray()
    extra = np.zeros((4, 7), dtype=np.float32)
    extra[[0, 1], 0] = 1.0
    extra[[2, 3], 2] = 1.0
    train = sp.csr_matrix(np.vstack([base, extra]))
    valid = np.zeros_like(train.toarray())
    n = base.shape[0]
    valid[[n, n + 1], 1] = 1.0
    valid[[n + 2, n + 3], 3] = 1.0
    return train, sp.csr_matrix(valid)


def test_tune_on_validation_picks_the_obvious_winner() -> None:
    train, valid = _tuning_case()

    def make(value: str):
        return Popularity() if value == "popularity" else EASE(EASEConfig(l2=1.0))

    best, model, table = tune_on_validation(make, ["popularity", "ease"], train, valid, k=2)
    assert best == "ease"
    assert isinstance(model, EASE)
    assert [row["value"] for row in table] == ["popularity", "ease"]
    # EASE puts every partner first; popularity puts items 4 and 5 in the top 2.
    assert table[1]["ndcg@2"] == pytest.approx(1.0)
    assert table[0]["ndcg@2"] == pytest.approx(0.0)
    assert all(row["seconds"] >= 0.0 for row in table)


def test_tune_on_validation_ties_go_to_the_first_value() -> None:
    train, valid = _tuning_case()
    best, model, table = tune_on_validation(
        lambda v: EASE(EASEConfig(l2=v)), [1.0, 10.0], train, valid, k=2
    )
    assert [row["ndcg@2"] for row in table] == pytest.approx([1.0, 1.0])
    assert best == 1.0 and model.config.l2 == 1.0


def test_tune_on_validation_rejects_bad_input() -> None:
    train, valid = _tuning_case()
    with pytest.raises(ValueError, match="grid is empty"):
        tune_on_validation(lambda v: EASE(), [], train, valid)
    with pytest.raises(ValueError, match="valid has no interactions"):
        tune_on_validation(lambda v: EASE(), [1.0], train, sp.csr_matrix(train.shape))
