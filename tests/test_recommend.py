"""New-user recommendations from stored vectors equal the model's own cold-user scores."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import RunRequest, run_strategies
from recsys_core.recommend import NoVectorsError, explain, recommend_for_history
from recsys_core.runs.store import RunStore
from recsys_core.strategies.base import ModelSettings
from tests.toy import toy_pair, toy_text


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    _src, tgt = toy_pair()
    scn = build_scenario(tgt, None, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 2)))
    store = RunStore(tmp_path_factory.mktemp("store"))
    settings = ModelSettings(dim=8, epochs=2, cold_item_scores="calibrated")
    req = RunRequest(("popularity", "target-only"), settings, n_boot=10, device="cpu")
    outs = run_strategies(scn, req, store, text=toy_text(scn.item_ids))
    return scn, store, outs


def test_matches_the_scorer_for_a_cold_profile(stored):
    scn, store, outs = stored
    run = outs[1].run_id
    liked = list(scn.item_ids[[0, 3, 5]])
    recs = recommend_for_history(store, run, liked, k=5)
    assert len(recs) == 5 and not set(recs["item_id"]) & set(liked)
    # same ranking, over the whole catalogue, as the two-tower scoring a never-seen user
    # with that history, new items calibrated as in the run's evaluation
    from recsys_core.strategies.base import Context, untrained_target_items
    from recsys_core.strategies.baselines import fit_target_two_tower

    n = scn.n_target_items
    ctx = Context(scn, toy_text(scn.item_ids), ModelSettings(dim=8, epochs=2))
    fitted = fit_target_two_tower(ctx)
    model = fitted.scorer.model
    h = sp.csr_matrix((np.ones(3), (np.zeros(3), [0, 3, 5])), shape=(1, n))
    model.trained_user[:] = False  # a brand-new user has no id embedding
    untrained = untrained_target_items(scn)
    assert bool(untrained.any())
    s = model.score_users(np.array([0]), h, n, untrained=untrained).numpy()[0]
    s[[0, 3, 5]] = -np.inf
    expected = scn.item_ids[np.argsort(-s, kind="stable")[: n - 3]]
    every = recommend_for_history(store, run, liked, k=n - 3, new_item_offset=0.0, prior=False)
    assert list(every["item_id"]) == list(expected)
    np.testing.assert_allclose(
        every["score"], s[np.argsort(-s, kind="stable")[: n - 3]], rtol=1e-4, atol=1e-5
    )
    # by default, as the evaluation scored a cold user with 3 support items: the
    # popularity prior of k = 3 blended in, then the run's new-item offset
    from recsys_core.evaluation.exposure import shift_untrained
    from recsys_core.strategies.prior import PriorBlendScorer

    info = store.get_run(run)["extra"]["info"]
    counts = np.bincount(scn.split.train["item"], minlength=n).astype(np.float32)
    row = torch.from_numpy(np.where(np.isinf(s), 0, s).astype(np.float32))[None]

    class Row:
        def score(self, users, history):
            return row.clone()

    full = PriorBlendScorer(Row(), counts, info["popularity_prior"]).score(np.array([0]), h)
    full = shift_untrained(full, untrained, info.get("exposure", {}).get("chosen_offset", 0.0))
    full = full[0].numpy().astype(np.float64)
    full[[0, 3, 5]] = -np.inf
    want = scn.item_ids[np.argsort(-full, kind="stable")[:5]]
    assert list(recommend_for_history(store, run, liked, k=5)["item_id"]) == list(want)
    moved = recommend_for_history(store, run, liked, k=n - 3, new_item_offset=3.0)
    new = set(scn.item_ids[~scn.split.trained_items()])
    top = list(moved["item_id"][:5])
    assert sum(i in new for i in top) >= sum(i in new for i in want)  # the slider re-ranks


def test_popularity_run_says_it_has_no_vectors(stored):
    _, store, outs = stored
    with pytest.raises(NoVectorsError, match="no item vectors"):
        recommend_for_history(store, outs[0].run_id, ["x1"])


def test_explain_picks_most_similar_history_item():
    V = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    assert explain(V, np.array([0, 1]), np.array([2, 3])).tolist() == [0, 1]
    assert explain(V, np.array([], dtype=np.int64), np.array([2])).tolist() == [-1]


def test_joint_rows_prefers_the_target_row_of_a_repeated_id():
    import pandas as pd

    from recsys_core.recommend import joint_rows

    # a joint table stored before same-id links won: "x1" once as target, once source-only
    items = pd.DataFrame({"item_id": ["x0", "x1", "t2", "x1", "s9"], "domain": [2, 2, 0, 1, 1]})
    assert joint_rows(items, ["x1", "s9", "t2", "nope"]).tolist() == [1, 4, 2, -1]
    src_first = items.iloc[[3, 0, 1, 2, 4]].reset_index(drop=True)
    assert joint_rows(src_first, ["x1"]).tolist() == [2]


def test_new_user_on_a_demo_shaped_scenario(tmp_path):
    """Shared ids, a source title that collides with a shared item, duplicate target
    titles: every two-tower strategy recommends for a history of shared items, also from
    a joint table that repeats an id (as runs stored before the linking fix do)."""
    from recsys_core.pipeline import RunRequest as Req
    from tests.toy import demo_shaped_pair

    src, tgt = demo_shaped_pair()
    scn = build_scenario(tgt, src, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 2)))
    store = RunStore(tmp_path)
    req = Req(
        ("target-only", "fine-tune"),
        ModelSettings(dim=8, epochs=2, source_epochs=2),
        n_boot=10,
        device="cpu",
    )
    outs = run_strategies(scn, req, store, text=toy_text(scn.item_ids))
    liked = ["x1", "x2", "t9"]
    for out in outs:
        recs = recommend_for_history(store, out.run_id, liked, k=5)
        assert len(recs) == 5 and not set(recs["item_id"]) & set(liked)
        assert set(recs["item_id"]) <= set(scn.item_ids[: scn.n_target_items])
        # the same run with its table stored the old way: x1 repeated as a source-only row
        items = store.load_table(out.run_id, "items")
        old = items.copy()
        old.loc[old["item_id"] == "s_remake", "item_id"] = "x1"
        store.save_table(out.run_id, "items", old)
        again = recommend_for_history(store, out.run_id, liked, k=5)
        assert again["item_id"].tolist() == recs["item_id"].tolist()
        store.save_table(out.run_id, "items", items)
