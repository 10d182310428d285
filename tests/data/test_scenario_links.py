"""Joint item index of a scenario: a same-id link beats a title link, so every joint item
id is unique (the demo's "101 Dalmatians" of 1961 and 1996 share a title, not an id)."""

from __future__ import annotations

import numpy as np

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from tests.toy import demo_shaped_pair


def test_same_id_link_wins_over_an_earlier_title_match():
    src, tgt = demo_shaped_pair()
    scn = build_scenario(tgt, src, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 2)))
    ids = scn.item_ids.astype(str)
    assert len(set(ids)) == len(ids)  # no id twice in the joint table
    n_t = scn.n_target_items
    x1 = int(np.flatnonzero(ids == "x1")[0])
    assert x1 < n_t and scn.item_domain[x1] == 2  # the target row, shared with the source
    remake = int(np.flatnonzero(ids == "s_remake")[0])
    assert remake >= n_t and scn.item_domain[remake] == 1  # source only, not linked to x1
    # x0..x7 by id; the remake's title match gave way to x1's own id
    assert scn.links.shared_items_by_id == 8 and scn.links.shared_items_by_title == 0
    # the source's x1 interactions land on the target's x1
    s = src.interactions
    x1_users = set(s.loc[s["item_id"] == "x1", "user_id"])
    st = scn.source_train
    got = set(scn.user_ids[st.loc[st["item"] == x1, "user"]])
    assert got and got <= x1_users
