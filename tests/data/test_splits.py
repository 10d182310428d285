"""Splits: no leakage, right segments, deterministic, RecBole-compatible counts."""

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.schema import Domain
from recsys_core.data.split_types import SplitConfig
from recsys_core.data.splits import _holdout_counts, make_split
from tests.toy import toy_domain


def _pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["user"].to_numpy().tolist(), df["item"].to_numpy().tolist()))


@pytest.fixture(scope="module")
def dom() -> Domain:
    return toy_domain("t", 80, 50, 12, seed=3, item_prefix="i")


@pytest.mark.parametrize("protocol", ["cold-start", "recbole", "temporal"])
def test_no_test_or_valid_pair_in_train(dom, protocol):
    s = make_split(dom, SplitConfig(protocol=protocol, seed=1))
    train = _pairs(s.train)
    assert not train & _pairs(s.valid)
    assert not train & _pairs(s.test)
    for sup in s.support.values():
        assert not train & _pairs(sup)
    # every interaction lands somewhere (cold-user rows before max k are support only)
    total = (
        len(s.train)
        + len(s.valid)
        + len(s.test)
        + (len(s.support[max(s.support)]) if s.support else 0)
    )
    assert total == len(dom.interactions)


def test_cold_users_and_items_have_no_training_rows(dom):
    s = make_split(dom, SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1, seed=2))
    assert len(s.cold_users) == 16
    assert not set(s.cold_users) & set(s.train["user"]) and not set(s.cold_users) & set(
        s.valid["user"]
    )
    assert len(s.cold_items) >= 5
    assert not set(s.cold_items) & set(s.train["item"])
    # test rows carry the right flags
    t = s.test
    assert set(t.loc[t.cold_user, "user"]) == set(s.cold_users)
    assert (t["cold_item"] == t["item"].isin(s.cold_items)).all()


def test_validation_cold_items_mirror_the_test_cold_items(dom):
    cfg = SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1, seed=2)
    assert cfg.valid_cold_item_frac == 0.1  # defaults to the test share
    s = make_split(dom, cfg)
    without = make_split(dom, SplitConfig(**{**cfg.to_dict(), "valid_cold_item_frac": 0.0}))
    # the test's cold items and users do not depend on the validation cold items
    assert np.array_equal(s.cold_users, without.cold_users)
    test_cold = set(s.test.loc[s.test.cold_item & ~s.test.cold_user, "item"])
    assert test_cold == set(
        without.test.loc[without.test.cold_item & ~without.test.cold_user, "item"]
    )
    # 5 items (10% of 50) whose every warm-user row is a validation row
    vcold = set(s.valid["item"]) - set(s.train["item"])
    assert len(vcold) == 5 and not vcold & test_cold
    assert vcold <= set(s.cold_items)  # untrained, so cold for every model
    warm_test = s.test[~s.test.cold_user]
    assert not vcold & set(warm_test["item"])
    inter = dom.interactions
    for i in list(vcold)[:3]:
        iid = s.item_map.ids[i]
        trained_users = set(s.user_map.ids[np.unique(s.train["user"])])
        want = set(inter.loc[(inter.item_id == iid) & inter.user_id.isin(trained_users), "user_id"])
        got = set(s.user_map.ids[s.valid.loc[s.valid.item == i, "user"].to_numpy()])
        assert got == want
    with pytest.raises(ValueError, match="valid_cold_item_frac"):
        SplitConfig(cold_item_frac=0.3, valid_cold_item_frac=0.3)


def test_support_is_first_k_by_time_and_test_after_kmax(dom):
    cfg = SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3, 5), seed=4)
    s = make_split(dom, cfg)
    inter = dom.interactions
    for u in s.cold_users[:5]:
        uid = s.user_map.ids[u]
        rows = inter[inter.user_id == uid].sort_values("timestamp")
        items = s.item_map.encode(rows.item_id.to_numpy())
        for k in cfg.cold_ks:
            sup = s.support[k]
            assert sup.loc[sup.user == u, "item"].tolist() == items[:k].tolist()
        test_items = s.test.loc[(s.test.user == u) & s.test.cold_user, "item"]
        assert sorted(test_items) == sorted(items[5:])
    assert len(s.support[0]) == 0


def test_warm_users_test_is_latest(dom):
    s = make_split(dom, SplitConfig(protocol="temporal", seed=0))
    inter = dom.interactions.assign(
        user=s.user_map.encode(dom.interactions.user_id),
        item=s.item_map.encode(dom.interactions.item_id),
    )
    t_of = inter.set_index(["user", "item"])["timestamp"]
    for u in range(5):
        tr = s.train[s.train.user == u]
        te = s.test[s.test.user == u]
        if len(te):
            assert tr["timestamp"].max() <= min(t_of[(u, i)] for i in te["item"])


def test_same_seed_same_split_other_seed_differs(dom):
    a = make_split(dom, SplitConfig(seed=7))
    b = make_split(dom, SplitConfig(seed=7))
    c = make_split(dom, SplitConfig(seed=8))
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not np.array_equal(a.cold_users, c.cold_users)


def test_recbole_holdout_counts_match_recbole_rule():
    # RecBole _calcu_split_ids with ratios 0.8/0.1/0.1
    def recbole(tot):
        ratios = [0.8, 0.1, 0.1]
        cnt = [int(r * tot) for r in ratios]
        cnt[0] = tot - sum(cnt[1:])
        for i in range(1, len(ratios)):
            if cnt[0] <= 1:
                break
            if 0 < ratios[-i] * tot < 1:
                cnt[-i] += 1
                cnt[0] -= 1
        return cnt[1], cnt[2]

    n = np.arange(1, 60)
    v, t = _holdout_counts(n, 0.1, 0.1)
    assert [(int(a), int(b)) for a, b in zip(v, t)] == [recbole(int(x)) for x in n]


def test_segment_labels_on_hand_made_example():
    # u0..u3 with 4 items each at times 1..4; item "c" is rarely used
    rows = []
    for u in range(4):
        for j, it in enumerate(["a", "b", "d", "e"]):
            rows.append((f"u{u}", it, 1.0, 10 * u + j))
    rows.append(("u0", "c", 1.0, 100))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    dom = Domain("hand", df)
    s = make_split(
        dom,
        SplitConfig(
            cold_user_frac=0.25, cold_item_frac=0.0, cold_ks=(0, 1), valid_frac=0.2, test_frac=0.2
        ),
    )
    # one cold user (25% of 4), tested on everything after its first interaction
    assert len(s.cold_users) == 1
    cu = int(s.cold_users[0])
    assert s.test.loc[s.test.user == cu, "cold_user"].all()
    assert len(s.test[s.test.user == cu]) == (5 if s.user_map.ids[cu] == "u0" else 4) - 1
    # item c appears only at u0's last position: never trained -> cold item
    c = int(s.item_map.encode(np.array(["c"]))[0])
    assert c in set(s.cold_items)
    assert s.test.loc[s.test.item == c, "cold_item"].all()


def test_min_rating_and_kcore(dom):
    s = make_split(dom, SplitConfig(min_rating=4, k_core=2))
    kept = dom.interactions[dom.interactions.rating >= 4]
    assert s.n_users <= kept.user_id.nunique()
    counts = pd.concat([s.train, s.valid, s.test])["item"].value_counts()
    assert len(counts) == s.n_items


def test_config_validates():
    with pytest.raises(ValueError, match="protocol"):
        SplitConfig(protocol="random")
    with pytest.raises(ValueError, match="cold_ks"):
        SplitConfig(cold_ks=(1, 1))
    with pytest.raises(ValueError, match="valid_frac"):
        SplitConfig(valid_frac=0.7)
