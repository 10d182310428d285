"""iALS (Hu, Koren, Volinsky 2008) on seeded synthetic matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.models.ials import IALS, IALSConfig, _plan, _row_penalty
from recsys_core.training.callbacks import Cancelled


def _planted(seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """60 users x 40 items in 3 planted taste clusters (rank-3 pattern); items 36-39 are
    never interacted with (cold). Returns the training matrix and one held-out positive
    per user (taken out of the matrix)."""
    rng = np.random.default_rng(seed)
    user_c = np.repeat(np.arange(3), 20)
    item_c = np.repeat(np.arange(3), 12)
    prob = np.where(user_c[:, None] == item_c[None, :], 0.6, 0.03)
    dense = np.zeros((60, 40), dtype=np.float32)
    dense[:, :36] = rng.random((60, 36)) < prob
    held = np.empty(60, dtype=np.int64)
    for u in range(60):
        own = np.flatnonzero(dense[u, :36] * (item_c == user_c[u]))
        held[u] = rng.choice(own)
        dense[u, held[u]] = 0.0
    return sp.csr_matrix(dense), held


def _auc(scores: np.ndarray, train: sp.csr_matrix, held: np.ndarray) -> float:
    """Mean over users of P(score(held-out positive) > score(random unseen warm item))."""
    aucs = []
    dense = train.toarray()
    for u in range(scores.shape[0]):
        neg = np.flatnonzero(dense[u, :36] == 0)
        neg = neg[neg != held[u]]
        aucs.append(float(np.mean(scores[u, held[u]] > scores[u, neg])))
    return float(np.mean(aucs))


def _fit(train: sp.csr_matrix, **kw) -> IALS:
    cfg = {"factors": 4, "reg": 0.05, "alpha": 2.0, "iterations": 10, **kw}
    return IALS(IALSConfig(**cfg)).fit(train)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_loss_decreases_every_sweep(solver: str) -> None:
    train, _ = _planted()
    model = _fit(train, solver=solver, iterations=8)
    losses = model.loss_history
    assert len(losses) == 8
    assert all(b <= a + 1e-7 for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_planted_pattern_ranks_held_out_positives_high(solver: str) -> None:
    train, held = _planted()
    model = _fit(train, solver=solver)
    scores = model.score(np.arange(60), train).numpy()
    assert _auc(scores, train, held) > 0.9


def test_cg_and_cholesky_agree_after_convergence() -> None:
    train, _ = _planted()
    exact = _fit(train, solver="cholesky", iterations=40)
    cg = _fit(train, solver="cg", cg_steps=3, iterations=40)
    users = np.arange(60)
    diff = (exact.score(users, train) - cg.score(users, train)).abs().max().item()
    assert diff < 1e-3
    assert cg.loss_history[-1] == pytest.approx(exact.loss_history[-1], rel=1e-4)


def test_fold_in_of_a_trained_user_recovers_its_vector() -> None:
    train, _ = _planted()
    model = _fit(train, solver="cholesky", iterations=40)
    folded = model.fold_in(train[[0, 25, 59]])
    trained = model.U[[0, 25, 59]]
    # U was solved against the item factors of the previous sweep, the fold-in against
    # the final ones: equal once the sweeps have converged.
    rel = ((folded - trained).norm(dim=1) / trained.norm(dim=1)).max().item()
    assert rel < 5e-3
    early = _fit(train, solver="cholesky", iterations=1)
    rel_early = (early.fold_in(train[[0]]) - early.U[[0]]).norm() / early.U[0].norm()
    assert rel_early.item() > 10 * rel


def test_fold_in_is_the_exact_least_squares_half_step() -> None:
    train, _ = _planted()
    model = _fit(train, solver="cg", dtype="float64", alpha=3.0, reg=0.2)
    support = sp.csr_matrix(([1.0, 2.0], ([0, 0], [3, 7])), shape=(1, 40))
    got = model.fold_in(support)[0].numpy()
    V = model.V.numpy()
    c = np.ones(40)
    c[[3, 7]] = [1 + 3.0 * 1.0, 1 + 3.0 * 2.0]
    p = np.zeros(40)
    p[[3, 7]] = 1.0
    lam = 0.2 * (1 + 2)  # frequency scaling: 2 support interactions
    want = np.linalg.solve(V.T @ (c[:, None] * V) + lam * np.eye(4), V.T @ (c * p))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_cold_users_are_folded_in_from_support() -> None:
    train, _ = _planted()
    dense = train.toarray()
    dense[5] = 0.0  # user 5 (cluster 0) is held out of training: a cold user
    model = _fit(sp.csr_matrix(dense), solver="cholesky")
    assert not model.known_users[5] and model.known_users[4]
    assert torch.count_nonzero(model.U[5]) == 0
    # k = 0: no support, all scores exactly zero.
    zero = model.score(np.array([5]), sp.csr_matrix((1, 40)))
    assert torch.count_nonzero(zero) == 0
    # k = 3 support items from cluster 0: the top 9 unseen items are all cluster 0.
    support = sp.csr_matrix((np.ones(3), ([0, 0, 0], [0, 1, 2])), shape=(1, 40))
    scores = model.score(np.array([5]), support)[0]
    scores[[0, 1, 2]] = float("-inf")
    top = torch.topk(scores, 9).indices
    assert bool((top < 12).all())
    assert torch.allclose(model.score(np.array([5]), support), model.fold_in(support) @ model.V.T)
    # A user index beyond the training matrix is cold too.
    beyond = model.score(np.array([5, 1000]), sp.vstack([support, support]).tocsr())
    assert torch.equal(beyond[0], beyond[1])


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_cold_items_score_exactly_zero(solver: str) -> None:
    train, _ = _planted()
    model = _fit(train, solver=solver)
    assert torch.count_nonzero(model.V[36:]) == 0
    scores = model.score(np.arange(60), train)
    assert torch.count_nonzero(scores[:, 36:]) == 0
    cold_user = model.score(np.array([999]), sp.csr_matrix(([1.0], ([0], [3])), shape=(1, 40)))
    assert torch.count_nonzero(cold_user[:, 36:]) == 0


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_seeded_runs_repeat_exactly(solver: str) -> None:
    train, _ = _planted()
    a = _fit(train, solver=solver, seed=7)
    b = _fit(train, solver=solver, seed=7)
    c = _fit(train, solver=solver, seed=8)
    assert torch.equal(a.U, b.U) and torch.equal(a.V, b.V)
    assert a.loss_history == b.loss_history
    assert not torch.equal(a.V, c.V)


def test_callback_and_cancel() -> None:
    train, _ = _planted()
    seen: list[tuple[int, float, float]] = []
    model = IALS(IALSConfig(factors=4, iterations=5)).fit(
        train, callback=lambda it, s, loss: seen.append((it, s, loss))
    )
    assert [it for it, _, _ in seen] == [1, 2, 3, 4, 5]
    assert [loss for _, _, loss in seen] == model.loss_history
    assert all(s2 >= s1 for (_, s1, _), (_, s2, _) in itertools.pairwise(seen))

    calls = iter([False, False, True])
    stopped = IALS(IALSConfig(factors=4, iterations=5))
    with pytest.raises(Cancelled, match="after 2 of 5 iterations"):
        stopped.fit(train, cancel=lambda: next(calls))
    assert len(stopped.loss_history) == 2


def test_row_penalty_scaling() -> None:
    counts = np.array([0, 1, 3])
    freq = _row_penalty(counts, IALSConfig(reg=0.1))
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.4])
    sqrt = _row_penalty(counts, IALSConfig(reg=0.1, reg_exponent=0.5))
    np.testing.assert_allclose(sqrt, [0.1, 0.1 * np.sqrt(2), 0.2])
    plain = _row_penalty(counts, IALSConfig(reg=0.1, reg_scaling="none"))
    np.testing.assert_allclose(plain, [0.1, 0.1, 0.1])


def test_small_batch_budget_gives_the_same_model() -> None:
    train, _ = _planted()
    big = _fit(train, solver="cholesky", dtype="float64", iterations=3)
    small = _fit(train, solver="cholesky", dtype="float64", iterations=3, batch_budget=256)
    n_small = len(_plan(train, small.config, torch.float64))
    assert n_small > len(_plan(train, big.config, torch.float64))
    assert torch.allclose(big.U, small.U, rtol=1e-10, atol=1e-12)
    assert torch.allclose(big.V, small.V, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"factors": 0}, "factors must be a positive integer"),
        ({"reg": -1.0}, "reg must be a positive number"),
        ({"reg": 0.0, "solver": "cg"}, "reg must be a positive number"),
        ({"alpha": float("nan")}, "alpha must be a non-negative"),
        ({"iterations": 0}, "iterations must be a positive"),
        ({"solver": "lu"}, "solver must be"),
        ({"cg_steps": 0}, "cg_steps must be"),
        ({"reg_scaling": "log"}, "reg_scaling must be"),
        ({"device": "tpu9"}, "device"),
    ],
)
def test_config_errors(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IALSConfig(**kw)


def test_score_before_fit_and_shape_checks() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        IALS().score(np.array([0]), sp.csr_matrix((1, 40)))
    train, _ = _planted()
    model = _fit(train, iterations=1)
    with pytest.raises(ValueError, match="one history row per user"):
        model.score(np.array([0, 1]), train[[0]])
    with pytest.raises(ValueError, match="item columns"):
        model.score(np.array([999]), sp.csr_matrix((1, 30)))
