"""Time-respecting cross-domain histories: under "before-target" a cold user's usable
source history ends before their first target interaction; under "all" nothing is cut.

Checked against the raw interactions (ids and timestamps), independently of how the
scenario indexes them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.scenario import build_scenario
from recsys_core.data.schema import Domain
from recsys_core.data.split_types import SplitConfig
from tests.toy import toy_domain, toy_pair


def _kept_pairs(scn, users: np.ndarray) -> set[tuple[str, str]]:
    """(user_id, item_id) pairs of ``scn.source_train`` for target users ``users``.

    Joint items carry their original id except title-linked ones; the toy and hand-made
    data link items by id only, so the ids are the source ids.
    """
    st = scn.source_train[scn.source_train["user"].isin(users)]
    return set(zip(scn.user_ids[st["user"]], scn.item_ids[st["item"]]))


def _first_target_time(target: Domain) -> pd.Series:
    return target.interactions.groupby("user_id")["timestamp"].min()


def _expected(source: Domain, target: Domain, user_ids, honest: bool) -> set[tuple[str, str]]:
    """Pairs a cold user may use: those with a source row strictly before the user's
    first target interaction (honest), or all of them."""
    s = source.interactions[source.interactions["user_id"].isin(user_ids)]
    if honest:
        first = _first_target_time(target)
        s = s[s["timestamp"].to_numpy() < first.reindex(s["user_id"]).to_numpy()]
    return set(zip(s["user_id"], s["item_id"]))


def interleaved_pair() -> tuple[Domain, Domain]:
    """The toy pair with source activity overlapping target activity in time (in the
    plain toy pair every source row precedes every target row, so nothing is cut)."""
    _, tgt = toy_pair()
    late = toy_domain("source", 60, 60, 20, 0, "s", t0=1_000_000 - 12_000)
    return Domain("source", late.interactions, late.items, None, late.text_fields), tgt


CONFIG = SplitConfig(cold_user_frac=0.3, cold_item_frac=0.0, cold_ks=(0, 1, 3), seed=0)


@pytest.mark.parametrize("pair", [toy_pair, interleaved_pair], ids=["toy", "interleaved"])
def test_before_target_keeps_only_source_rows_before_the_first_target_interaction(pair):
    src, tgt = pair()
    scn = build_scenario(tgt, src, CONFIG, source_history="before-target")
    cold = scn.split.cold_users
    cold_ids = scn.user_ids[cold]
    assert len(cold) == 18
    kept = _kept_pairs(scn, cold)
    assert kept == _expected(src, tgt, cold_ids, honest=True)
    # Stated the other way round: no kept pair has every one of its rows at or after
    # the user's first target interaction.
    first = _first_target_time(tgt)
    s = src.interactions
    earliest = s.groupby(["user_id", "item_id"])["timestamp"].min()
    for u, i in kept:
        assert earliest[(u, i)] < first[u]


def test_all_keeps_every_source_row_of_cold_users():
    src, tgt = interleaved_pair()
    scn = build_scenario(tgt, src, CONFIG, source_history="all")
    cold_ids = scn.user_ids[scn.split.cold_users]
    assert _kept_pairs(scn, scn.split.cold_users) == _expected(src, tgt, cold_ids, honest=False)


def test_the_interleaved_cut_is_not_vacuous():
    src, tgt = interleaved_pair()
    honest = build_scenario(tgt, src, CONFIG, source_history="before-target")
    everything = build_scenario(tgt, src, CONFIG, source_history="all")
    cold = honest.split.cold_users
    full = src.interactions["user_id"].isin(honest.user_ids[cold]).sum()
    assert len(_kept_pairs(everything, cold)) == full == 556
    assert len(_kept_pairs(honest, cold)) == 216  # 340 rows at or after a first target time go
    # in the plain toy pair all source rows come first: the honest cut removes nothing
    src0, tgt0 = toy_pair()
    a = build_scenario(tgt0, src0, CONFIG, source_history="before-target")
    b = build_scenario(tgt0, src0, CONFIG, source_history="all")
    assert len(a.source_train) == len(b.source_train)


def _hand_made() -> tuple[Domain, Domain]:
    """Four users, times chosen by hand. Each user's first target interaction is at
    t = 100; their source rows sit before it, exactly at it, and after it."""
    target_rows, source_rows = [], []
    for u in ("a", "b", "c", "d"):
        for j in range(5):
            target_rows.append((u, f"t{j}", 4.0, 100 + 10 * j))
        source_rows += [
            (u, "early", 4.0, 50),  # before: usable
            (u, "edge", 4.0, 100),  # at the first target interaction: not usable
            (u, "late", 4.0, 150),  # after: not usable
        ]
    cols = ["user_id", "item_id", "rating", "timestamp"]
    tgt = Domain("target", pd.DataFrame(target_rows, columns=cols))
    src = Domain("source", pd.DataFrame(source_rows, columns=cols))
    return src, tgt


def test_hand_made_example():
    src, tgt = _hand_made()
    cfg = SplitConfig(cold_user_frac=0.5, cold_item_frac=0.0, cold_ks=(0, 1), seed=0)
    honest = build_scenario(tgt, src, cfg, source_history="before-target")
    everything = build_scenario(tgt, src, cfg, source_history="all")
    cold = honest.split.cold_users
    assert len(cold) == 2
    for u in cold:
        uid = honest.user_ids[u]
        assert _kept_pairs(honest, [u]) == {(uid, "early")}
        assert _kept_pairs(everything, [u]) == {(uid, "early"), (uid, "edge"), (uid, "late")}
    # Warm users keep what precedes (or coincides with) their last training interaction:
    # with 5 target rows (train at t = 100, 110, 120) "edge" (t = 100) is usable,
    # "late" (t = 150) is not.
    warm = np.flatnonzero(honest.split.warm_users)
    assert len(warm) == 2
    last = honest.split.train.groupby("user")["timestamp"].max()
    for u in warm:
        uid = honest.user_ids[u]
        assert last[u] == 120
        assert _kept_pairs(honest, [u]) == {(uid, "early"), (uid, "edge")}
    assert honest.source_history == "before-target" and everything.source_history == "all"
