"""evaluate() on a hand-built split: segments, truth sets, hand-computed metrics."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_core.data.schema import IdMap
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.evaluation.bootstrap import bootstrap_ci
from recsys_core.evaluation.evaluate import (
    EvalConfig,
    Scorer,
    evaluate,
    evaluate_recommendations,
    evaluate_topk,
    ranking_tasks,
    recommendations_to_topk,
    segment_users,
    validation_metric,
)

L3 = 1.0 / math.log2(3)


def frame(pairs, **extra):
    df = pd.DataFrame(pairs, columns=["user", "item"]).astype(np.int64)
    for k, v in extra.items():
        df[k] = v
    return df


def hand_split(protocol="cold-start") -> Split:
    """Users 0-3 warm, 4-5 cold; items 0-7, item 7 cold (no train/valid interaction).

    train: u0 {0,1}  u1 {1,2}  u2 {2,3}  u3 {0,3}       (every train item has popularity 2)
    valid: u0 {2}    u1 {3}    u2 {0}    u3 {1}
    test (warm): u0 {4, 7*}  u1 {5}  u2 {6, 4}  u3 {7*}  (* cold item)
    cold users: support k0 = {}, k1: u4 {0}, u5 {1}; test u4 {5, 6}, u5 {4}
    """
    cfg = SplitConfig(protocol=protocol, cold_ks=(0, 1))
    train = frame([(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 0), (3, 3)])
    train["timestamp"] = np.arange(len(train), dtype=np.int64)
    valid = frame([(0, 2), (1, 3), (2, 0), (3, 1)])
    warm_test = [(0, 4), (0, 7), (1, 5), (2, 6), (2, 4), (3, 7)]
    cold_test = [(4, 5), (4, 6), (5, 4)]
    if protocol != "cold-start":
        cold_test = []
    test = frame(warm_test + cold_test)
    test["cold_user"] = test["user"] >= 4
    test["cold_item"] = test["item"] == 7
    support = {}
    if protocol == "cold-start":
        support = {0: frame([]), 1: frame([(4, 0), (5, 1)])}
    return Split(
        config=cfg,
        user_map=IdMap(np.array([f"u{i}" for i in range(6)], dtype=object)),
        item_map=IdMap(np.array([f"i{i}" for i in range(8)], dtype=object)),
        train=train,
        valid=valid,
        test=test,
        support=support,
        cold_users=np.array([4, 5], np.int64),
        cold_items=np.array([7], np.int64),
        first_time=np.zeros(6, np.int64),
    )


class ItemOrderScorer:
    """Same scores for everyone: item 0 best, item 7 worst. Records its inputs."""

    def __init__(self, n_items=8, dtype=torch.float32):
        self.s = torch.arange(n_items, 0, -1, dtype=dtype)
        self.calls = []

    def score(self, users, history):
        self.calls.append((np.asarray(users).copy(), history.copy()))
        return self.s.expand(len(users), -1)  # an expanded view: must not be written to


CFG = EvalConfig(ks=(1, 3, 5), n_boot=200)


@pytest.fixture(scope="module")
def result():
    return evaluate(ItemOrderScorer(), hand_split(), CFG)


def test_scorer_protocol_is_structural():
    assert isinstance(ItemOrderScorer(), Scorer)


def test_segments_and_their_users(result):
    assert result.segments == ["all", "warm_users", "cold_users_k0", "cold_users_k1", "cold_items"]
    users = {s: result.topk[s][0].tolist() for s in result.segments}
    assert users == {
        "all": [0, 1, 2, 3, 4, 5],
        "warm_users": [0, 1, 2, 3],
        "cold_users_k0": [4, 5],
        "cold_users_k1": [4, 5],
        "cold_items": [0, 3],
    }
    n = result.summary.groupby("segment")["n_users"].first().to_dict()
    assert n == {"all": 6, "warm_users": 4, "cold_users_k0": 2, "cold_users_k1": 2, "cold_items": 2}


def test_segment_users_are_the_users_the_metrics_count(result):
    """The public segment membership (the Users page reads it) is the evaluation's own:
    the same users each segment's metrics are averaged over."""
    segs = segment_users(hand_split())
    assert list(segs) == ["warm_users", "cold_users_k0", "cold_users_k1", "cold_items"]
    for name, users in segs.items():
        assert users.dtype == np.int64
        assert users.tolist() == result.topk[name][0].tolist()
    assert list(segment_users(hand_split("recbole"))) == ["warm_users"]


def test_rankings_mask_history_and_are_shared(result):
    warm = result.topk["warm_users"][1]
    # exclude = train + valid: u0 {0,1,2}, u1 {1,2,3}, u2 {0,2,3}, u3 {0,1,3}
    assert warm.tolist() == [[3, 4, 5, 6, 7], [0, 4, 5, 6, 7], [1, 4, 5, 6, 7], [2, 4, 5, 6, 7]]
    assert result.topk["cold_users_k0"][1].tolist() == [[0, 1, 2, 3, 4]] * 2
    assert result.topk["cold_users_k1"][1].tolist() == [[1, 2, 3, 4, 5], [0, 2, 3, 4, 5]]
    np.testing.assert_array_equal(result.topk["cold_items"][1], warm[[0, 3]])
    np.testing.assert_array_equal(result.topk["all"][1][:4], warm)
    np.testing.assert_array_equal(result.topk["all"][1][4:], result.topk["cold_users_k1"][1])


def test_scorer_is_called_once_per_history_with_the_right_history():
    scorer = ItemOrderScorer()
    evaluate(scorer, hand_split(), CFG)
    assert [c[0].tolist() for c in scorer.calls] == [[0, 1, 2, 3], [4, 5], [4, 5]]
    warm_hist = scorer.calls[0][1].toarray().astype(bool)
    assert [np.flatnonzero(r).tolist() for r in warm_hist] == [
        [0, 1, 2],
        [1, 2, 3],
        [0, 2, 3],
        [0, 1, 3],
    ]
    assert scorer.calls[1][1].nnz == 0  # k = 0: no support
    assert [np.flatnonzero(r).tolist() for r in scorer.calls[2][1].toarray()] == [[0], [1]]


def test_per_user_values_hand_computed(result):
    pu = result.per_user.set_index(["segment", "user"])
    # warm: u0 truth {4,7} at ranks 2, 5; u1 {5} at 3; u2 {6,4} at 4, 2; u3 {7} at 5
    w = pu.loc["warm_users"]
    assert w["recall@3"].tolist() == [0.5, 1.0, 0.5, 0.0]
    assert w["recall@5"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert w["mrr@5"].tolist() == pytest.approx([1 / 2, 1 / 3, 1 / 2, 1 / 5])
    assert w["precision@5"].tolist() == pytest.approx([2 / 5, 1 / 5, 2 / 5, 1 / 5])
    assert w.loc[0, "ndcg@5"] == pytest.approx((L3 + 1 / math.log2(6)) / (1 + L3))
    assert w.loc[2, "ndcg@3"] == pytest.approx(L3 / (1 + L3))
    # cold items: truth restricted to item 7, found at rank 5 for u0 and u3
    ci = pu.loc["cold_items"]
    assert ci["recall@5"].tolist() == [1.0, 1.0]
    assert ci["recall@3"].tolist() == [0.0, 0.0]
    assert ci["ndcg@5"].tolist() == pytest.approx([1 / math.log2(6)] * 2)
    # cold k0: lists [0..4]; u4 truth {5,6} missed, u5 truth {4} at rank 5
    assert pu.loc["cold_users_k0", "hit@5"].tolist() == [0.0, 1.0]
    # cold k1: u4 list [1,2,3,4,5] -> 5 at rank 5; u5 list [0,2,3,4,5] -> 4 at rank 4
    assert pu.loc["cold_users_k1", "mrr@5"].tolist() == pytest.approx([1 / 5, 1 / 4])
    assert pu.loc["cold_users_k1", "recall@5"].tolist() == [0.5, 1.0]


def test_summary_values_and_intervals(result):
    r = result
    assert r.metric("warm_users", "mrr", 5) == pytest.approx((1 / 2 + 1 / 3 + 1 / 2 + 1 / 5) / 4)
    assert r.metric("warm_users", "recall", 3) == pytest.approx(0.5)
    assert r.metric("all", "recall", 5) == pytest.approx((4 + 0.5 + 1) / 6)
    # coverage: top-1 of warm users {3, 0, 1, 2} = 4 of 8 items; top-5 covers all 8
    assert r.metric("warm_users", "coverage", 1) == pytest.approx(0.5)
    assert r.metric("warm_users", "coverage", 5) == pytest.approx(1.0)
    # arp: every top-1 item has 2 train interactions; top-5 holds one such item per user
    assert r.metric("warm_users", "arp", 1) == pytest.approx(2.0)
    assert r.metric("warm_users", "arp", 5) == pytest.approx(0.4)
    s = r.summary
    assert list(s.columns) == ["segment", "metric", "k", "value", "ci_low", "ci_high", "n_users"]
    acc = s[~s["metric"].isin(["coverage", "arp"])]
    assert (
        (acc["ci_low"] <= acc["value"] + 1e-12) & (acc["value"] <= acc["ci_high"] + 1e-12)
    ).all()
    assert s[s["metric"].isin(["coverage", "arp"])][["ci_low", "ci_high"]].isna().all().all()
    # constant per-user values -> zero-width interval
    row = s[(s.segment == "warm_users") & (s.metric == "recall") & (s.k == 5)].iloc[0]
    assert (row.value, row.ci_low, row.ci_high) == (1.0, 1.0, 1.0)
    # the summary interval is bootstrap_ci of the per-user column with the config's seed
    col = r.per_user.query("segment == 'all'")["ndcg@5"].to_numpy()
    row = s[(s.segment == "all") & (s.metric == "ndcg") & (s.k == 5)].iloc[0]
    assert (row.value, row.ci_low, row.ci_high) == pytest.approx(bootstrap_ci(col, 200, seed=0))


def test_deterministic_and_batch_size_invariant(result):
    again = evaluate(
        ItemOrderScorer(dtype=torch.float64), hand_split(), dataclasses.replace(CFG, batch_size=1)
    )
    pd.testing.assert_frame_equal(result.summary, again.summary)
    pd.testing.assert_frame_equal(result.per_user, again.per_user)


def test_progress_counts_every_ranked_user():
    calls = []
    evaluate(
        ItemOrderScorer(),
        hand_split(),
        dataclasses.replace(CFG, batch_size=3),
        progress=lambda d, n: calls.append((d, n)),
    )
    assert calls == [(3, 8), (4, 8), (6, 8), (8, 8)]


def test_recbole_protocol_has_only_all_and_warm_users_which_agree():
    r = evaluate(ItemOrderScorer(), hand_split("recbole"), CFG)
    assert r.segments == ["all", "warm_users"]
    a = r.summary[r.summary.segment == "all"].drop(columns="segment").reset_index(drop=True)
    w = r.summary[r.summary.segment == "warm_users"].drop(columns="segment").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, w)


def test_segments_without_users_are_left_out():
    split = hand_split()
    no_cold = dataclasses.replace(
        split, test=split.test[~split.test.cold_user & ~split.test.cold_item]
    )
    r = evaluate(ItemOrderScorer(), no_cold, CFG)
    assert r.segments == ["all", "warm_users"]
    assert r.topk["all"][0].tolist() == [0, 1, 2]  # u3's only test item was the cold item


def test_to_records_is_json_ready(result):
    recs = result.to_records()
    assert len(recs) == len(result.summary)
    assert set(recs[0]) == {"segment", "metric", "k", "value", "ci_low", "ci_high"}
    cov = next(x for x in recs if x["metric"] == "coverage")
    assert cov["ci_low"] is None and cov["ci_high"] is None
    assert json.loads(json.dumps(recs, allow_nan=False)) == recs


def test_metric_lookup_error_names_what_exists(result):
    with pytest.raises(KeyError, match="warm_users"):
        result.metric("nobody", "ndcg", 5)


def test_paired_delta_aligns_users_and_refuses_different_splits(result):
    same = result.paired_delta(result, "all", "ndcg", 5, n_boot=100)
    assert (same["delta"], same["ci_low"], same["ci_high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    assert same["significant"] is False and same["n_users"] == 6

    class Reversed(ItemOrderScorer):  # item 7 best: finds the cold item at rank 1
        def __init__(self):
            super().__init__()
            self.s = torch.arange(8, dtype=torch.float32)

    other = evaluate(Reversed(), hand_split(), CFG)
    d = other.paired_delta(result, "cold_items", "mrr", 5, n_boot=100)
    assert d["delta"] == pytest.approx(1 - 1 / 5)  # both users: rank 1 vs rank 5
    assert d["significant"] is True
    rb = evaluate(ItemOrderScorer(), hand_split("recbole"), CFG)
    with pytest.raises(ValueError, match="different users"):
        result.paired_delta(rb, "all", "ndcg", 5)
    with pytest.raises(ValueError, match="per-user metric"):
        result.paired_delta(result, "all", "coverage", 5)


def test_external_lists_go_through_the_same_code_path(result):
    split = hand_split()
    rankings = {
        "warm": result.topk["warm_users"],
        "cold_k0": result.topk["cold_users_k0"],
        "cold_k1": result.topk["cold_users_k1"],
    }
    again = evaluate_topk(rankings, split, CFG)
    pd.testing.assert_frame_equal(again.summary, result.summary)


def test_recommendation_frame_to_lists_and_missing_users_count_as_zero():
    recs = pd.DataFrame({"user": [1, 0, 0, 0], "item": [5, 4, 7, 3], "rank": [1, 2, 3, 1]})
    users, items = recommendations_to_topk(recs, 2)
    assert users.tolist() == [0, 1] and items.tolist() == [[3, 4], [5, -1]]
    r = evaluate_recommendations(recs, hand_split(), EvalConfig(ks=(1, 2), n_boot=0))
    w = r.per_user.query("segment == 'warm_users'").set_index("user")
    assert w["recall@2"].tolist() == [0.5, 1.0, 0.0, 0.0]  # users 2 and 3 got no list
    assert r.summary["ci_low"].isna().all()  # n_boot = 0: no intervals
    with pytest.raises(ValueError, match="twice"):
        recommendations_to_topk(pd.concat([recs, recs]), 2)


def test_ranking_tasks_use_train_plus_valid_for_warm_and_support_for_cold():
    tasks = ranking_tasks(hand_split())
    assert sorted(tasks) == ["cold_k0", "cold_k1", "warm"]
    assert tasks["warm"].exclude.sum(axis=1).A1.tolist() == [3, 3, 3, 3]
    assert tasks["cold_k1"].users.tolist() == [4, 5]


def test_validation_metric_reads_train_and_valid_only():
    split = hand_split()
    scorer = ItemOrderScorer()
    # history = exclude = train: u0 [2,3..] valid 2 @1; u1 [0,3..] valid 3 @2;
    # u2 [0,1..] valid 0 @1; u3 [1,2..] valid 1 @1
    v = validation_metric(scorer, split, "ndcg", 2)
    assert v == pytest.approx((3 + L3) / 4)
    assert validation_metric(scorer, split, "recall", 1) == pytest.approx(0.75)
    assert [np.flatnonzero(r).tolist() for r in scorer.calls[0][1].toarray()] == [
        [0, 1],
        [1, 2],
        [2, 3],
        [0, 3],
    ]
    # a test frame that would change everything (or one that cannot be read) changes nothing
    leaky = dataclasses.replace(
        split,
        test=frame([(u, i) for u in range(4) for i in range(8)], cold_user=False, cold_item=False),
    )
    assert validation_metric(ItemOrderScorer(), leaky, "ndcg", 2) == v
    assert (
        validation_metric(ItemOrderScorer(), dataclasses.replace(split, test=None), "ndcg", 2) == v
    )


def test_validation_metric_user_sample_is_seeded():
    split = hand_split()
    a = validation_metric(ItemOrderScorer(), split, "mrr", 2, max_users=2, seed=1)
    b = validation_metric(ItemOrderScorer(), split, "mrr", 2, max_users=2, seed=1)
    assert a == b
    scorer = ItemOrderScorer()
    validation_metric(scorer, split, "mrr", 2, max_users=2, seed=1)
    assert len(scorer.calls[0][0]) == 2


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"ks": ()}, "ks"),
        ({"ks": (5, 5)}, "repeated"),
        ({"ks": (0, 5)}, "positive"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_boot": -1}, "n_boot"),
        ({"alpha": 0.0}, "alpha"),
        ({"device": "gpu!"}, "device"),
    ],
)
def test_eval_config_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        EvalConfig(**kwargs)


def test_eval_config_sorts_ks_and_round_trips_through_json():
    cfg = EvalConfig(ks=(20, 5, 10), n_boot=50, device="cpu")
    assert cfg.ks == (5, 10, 20) and cfg.k_max == 20
    assert EvalConfig(**json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_sparse_matrix_type_is_what_scorers_receive(result):
    scorer = ItemOrderScorer()
    evaluate(scorer, hand_split(), CFG)
    assert all(sp.isspmatrix_csr(h) and h.shape[1] == 8 for _, h in scorer.calls)
