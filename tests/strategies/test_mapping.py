"""The mapping strategy (EMCDR, Man et al. 2017) does what it claims."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_core.data.scenario import build_scenario
from recsys_core.data.schema import Domain
from recsys_core.data.split_types import SplitConfig
from recsys_core.evaluation.evaluate import EvalConfig, evaluate
from recsys_core.strategies.base import Context, ModelSettings
from recsys_core.strategies.mapping import (
    MappingConfig,
    MappingStrategy,
    blend_grid,
    cold_shared_users,
    fit_linear_map,
)
from recsys_core.strategies.registry import STRATEGIES, get_strategy

PERM = np.array([2, 0, 3, 1])
"""Target topic of a user whose source topic is t: a permutation, i.e. a linear map of
one-hot preference vectors (what the linear mapper must learn)."""


def _domain(name, users, topic_of_user, n_items, per_user, prefix, t0, seed) -> Domain:
    rng = np.random.default_rng(seed)
    topic_of_item = np.arange(n_items) % 4
    rows = []
    for u, fav in zip(users, topic_of_user):
        liked = np.flatnonzero(topic_of_item == fav)
        other = np.flatnonzero(topic_of_item != fav)
        n_fav = round(0.85 * per_user)
        picks = np.concatenate(
            [
                rng.choice(liked, min(n_fav, len(liked)), replace=False),
                rng.choice(other, per_user - min(n_fav, len(liked)), replace=False),
            ]
        )
        rng.shuffle(picks)
        for j, i in enumerate(picks):
            rows.append((u, f"{prefix}{i}", 4.0, t0 + 100 * j))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Domain(name, inter)


def linear_pair(n_users: int = 240) -> tuple[Domain, Domain]:
    """(source, target) where each user's target topic is PERM[source topic].

    All users are shared; the source comes first in time (nothing is cut), is rich (20
    interactions) and the target thin (10).
    """
    users = [f"u{u}" for u in range(n_users)]
    src_topic = np.arange(n_users) % 4
    src = _domain("source", users, src_topic, 80, 20, "s", 1_000, seed=1)
    tgt = _domain("target", users, PERM[src_topic], 40, 10, "t", 1_000_000, seed=2)
    return src, tgt


@pytest.fixture(scope="module")
def linear_scenario():
    src, tgt = linear_pair()
    cfg = SplitConfig(cold_user_frac=0.25, cold_item_frac=0.0, cold_ks=(0, 1, 3), seed=0)
    return build_scenario(tgt, src, cfg)


def _ctx(scn, seed: int = 0) -> Context:
    return Context(scn, None, ModelSettings(seed=seed))


class TopicOracle:
    """Knows each user's planted target topic and ranks that topic's items first."""

    def __init__(self, scn) -> None:
        self.scn = scn

    def score(self, users, history) -> torch.Tensor:
        ids = self.scn.item_ids[: self.scn.n_target_items]
        item_topic = np.array([int(i[1:]) for i in ids]) % 4
        fav = PERM[np.array([int(self.scn.user_ids[u][1:]) for u in users]) % 4]
        return torch.tensor((item_topic[None, :] == fav[:, None]).astype(np.float32))


# ------------------------------------------------------------------------- the maps
def test_linear_map_recovers_a_planted_map_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * np.array([1, 2, 3, 0.5, 1, 10])
    w = rng.normal(size=(6, 4))
    b = np.array([1.0, -2.0, 0.5, 3.0])
    m = fit_linear_map(x, x @ w + b, ridge=0.0)
    np.testing.assert_allclose(m.weight, w, atol=1e-9)
    np.testing.assert_allclose(m.bias, b, atol=1e-9)
    np.testing.assert_allclose(m.predict(x[:3]), x[:3] @ w + b, atol=1e-9)


def test_linear_map_is_the_ridge_closed_form():
    """With a penalty it equals the least-squares solution of the augmented system
    [Xs; sqrt(lam) I] W = [Y - mean Y; 0] on z-scored inputs (a different route to the
    same closed form), and the penalty shrinks the weights."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 5)) * 3 + 1
    y = x @ rng.normal(size=(5, 3)) + rng.normal(size=(50, 3))
    lam = 7.0
    mu, sd = x.mean(0), x.std(0)
    xs = (x - mu) / sd
    a = np.vstack([xs, np.sqrt(lam) * np.eye(5)])
    rhs = np.vstack([y - y.mean(0), np.zeros((5, 3))])
    w_std = np.linalg.lstsq(a, rhs, rcond=None)[0]
    m = fit_linear_map(x, y, ridge=lam)
    np.testing.assert_allclose(m.weight, w_std / sd[:, None], atol=1e-10)
    np.testing.assert_allclose(m.bias, y.mean(0) - mu @ (w_std / sd[:, None]), atol=1e-10)
    free = fit_linear_map(x, y, ridge=0.0)
    assert np.linalg.norm(m.weight * sd[:, None]) < np.linalg.norm(free.weight * sd[:, None])


def test_blend_grid_mixes_the_map_with_one_target_only_score():
    g1 = blend_grid(with_support=True)
    g0 = blend_grid(with_support=False)
    assert len(g0) == 11 and len(g1) == 21
    assert all(b == 0.0 for _, b, _ in g0)
    for a, b, c in g1:
        assert a + b + c == pytest.approx(1.0) and b * c == 0.0
    assert g1[0] == (1.0, 0.0, 0.0)  # ties go to the map
    assert (0.0, 0.0, 1.0) in g1 and (0.0, 1.0, 0.0) in g1 and (0.7, 0.3, 0.0) in g1


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mapper"):
        MappingConfig(mapper="cubic")
    with pytest.raises(ValueError, match="blend"):
        MappingConfig(blend="always")
    with pytest.raises(ValueError, match="holdout_frac"):
        MappingConfig(holdout_frac=0.95)
    with pytest.raises(ValueError, match="factors"):
        MappingConfig(factors=0)
    assert STRATEGIES["mapping"] is MappingStrategy and MappingStrategy.needs_source


# --------------------------------------------------------------------- on a scenario
def test_mapping_beats_popularity_for_cold_shared_users_at_k0(linear_scenario):
    scn = linear_scenario
    ctx = _ctx(scn)
    fitted = get_strategy("mapping").fit(ctx)
    pop = get_strategy("popularity").fit(ctx)
    cfg = EvalConfig(ks=(10,), n_boot=500)
    r_map, r_pop = evaluate(fitted.scorer, scn.split, cfg), evaluate(pop.scorer, scn.split, cfg)
    assert len(cold_shared_users(scn)) == len(scn.split.cold_users) == 60
    d = r_map.paired_delta(r_pop, "cold_users_k0", "ndcg", 10)
    assert d["ci_low"] > 0.4  # a large, clear gain with no target interaction at all
    assert r_pop.metric("cold_users_k0", "ndcg", 10) == pytest.approx(0.205, abs=0.005)
    # as good as knowing each cold user's planted target topic (0.711 here)
    oracle = evaluate(TopicOracle(scn), scn.split, EvalConfig(ks=(10,), n_boot=0))
    assert (
        r_map.metric("cold_users_k0", "ndcg", 10)
        >= oracle.metric("cold_users_k0", "ndcg", 10) - 0.01
    )
    # the map was learned on warm shared users only, and chosen on validation
    assert fitted.info["warm_shared_users"] == 180
    assert fitted.info["blend_weights"]["0"][0] > 0.5


def test_mlp_mapper_also_transfers_and_stops_early(linear_scenario):
    scn = linear_scenario
    fitted = get_strategy("mapping", {"mapper": "mlp", "mlp_epochs": 200}).fit(_ctx(scn))
    rows = [r for r in fitted.history if r["stage"] == "map"]
    assert len(rows) == fitted.info["mlp_epochs_run"] <= 200
    assert rows[-1]["loss"] < rows[0]["loss"]
    r = evaluate(fitted.scorer, scn.split, EvalConfig(ks=(10,), n_boot=0))
    assert r.metric("cold_users_k0", "ndcg", 10) > 0.6  # popularity: 0.205, oracle: 0.711


def test_warm_users_fall_back_to_the_target_factorisation(linear_scenario):
    scn = linear_scenario
    scorer = get_strategy("mapping").fit(_ctx(scn)).scorer
    warm = np.flatnonzero(scn.split.warm_users)[:7]
    hist = sp.csr_matrix((len(warm), scn.n_target_items), dtype=np.float32)
    torch.testing.assert_close(scorer.score(warm, hist), scorer.target.score(warm, hist))
    assert not scorer.cold_shared(warm).any()


def test_scorer_honours_source_train(linear_scenario):
    """Cold users whose usable source rows are removed (as a before-target cut would)
    are no longer mapped: at k = 0 they get the popularity ranking."""
    scn = linear_scenario
    cold = scn.split.cold_users
    st = scn.source_train
    cut = dataclasses.replace(
        scn, source_train=st[~st["user"].isin(cold[:30])].reset_index(drop=True)
    )
    scorer = get_strategy("mapping").fit(_ctx(cut)).scorer
    assert scorer.cold_shared(cold).tolist() == [False] * 30 + [True] * 30
    hist = sp.csr_matrix((30, scn.n_target_items), dtype=np.float32)
    pop = np.bincount(scn.split.train["item"], minlength=scn.n_target_items).astype(np.float32)
    np.testing.assert_array_equal(scorer.score(cold[:30], hist).numpy(), np.tile(pop, (30, 1)))
    assert not np.allclose(scorer.score(cold[30:], hist).numpy(), np.tile(pop, (30, 1)))


def test_blend_none_scores_cold_shared_users_by_the_map_alone(linear_scenario):
    scn = linear_scenario
    fitted = get_strategy("mapping", {"blend": "none"}).fit(_ctx(scn))
    assert set(map(tuple, fitted.info["blend_weights"].values())) == {(1.0, 0.0, 0.0)}
    s = fitted.scorer
    cold = scn.split.cold_users[:5]
    sup = scn.split.support[3]
    sup = sup[sup["user"].isin(cold)]
    hist = sp.csr_matrix(
        (np.ones(len(sup), np.float32), (np.searchsorted(cold, sup["user"]), sup["item"])),
        shape=(5, scn.n_target_items),
    )
    mapped = (s.mapped[torch.from_numpy(cold)] @ s.target.V.T).float()
    z = (mapped - mapped.mean(1, keepdim=True)) / mapped.std(1, keepdim=True)
    torch.testing.assert_close(s.score(cold, hist), z, rtol=1e-5, atol=1e-5)


def test_fit_repeats_exactly(linear_scenario):
    scn = linear_scenario
    a = get_strategy("mapping").fit(_ctx(scn)).scorer
    b = get_strategy("mapping").fit(_ctx(scn)).scorer
    users = np.arange(scn.n_target_users)
    hist = sp.csr_matrix((len(users), scn.n_target_items), dtype=np.float32)
    torch.testing.assert_close(a.score(users, hist), b.score(users, hist), rtol=0, atol=0)


def test_needs_a_source_and_shared_users(linear_scenario):
    scn = linear_scenario
    none = dataclasses.replace(scn, source=None, source_train=scn.source_train.iloc[:0])
    with pytest.raises(ValueError, match="needs a source domain"):
        get_strategy("mapping").fit(_ctx(none))
    # Source users who never appear in the target: nobody to learn the map on.
    only_src = scn.source_train.assign(user=scn.source_train["user"] + scn.n_users)
    other = dataclasses.replace(
        scn,
        source_train=only_src,
        user_ids=np.concatenate(
            [scn.user_ids, np.array([f"z{i}" for i in range(scn.n_users)], dtype=object)]
        ),
    )
    with pytest.raises(ValueError, match="in both domains"):
        get_strategy("mapping").fit(_ctx(other))
