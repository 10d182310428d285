"""Users page: pick a user, see history and test items, top-K of runs side by side with
hits, cold items and "because you liked"; the new-user box; rebuilding the runs' data."""

from __future__ import annotations

import numpy as np

from tests.app.conftest import displayed, texts
from ui import state
from ui.components import item_frame


def open_users(at):
    at.run()
    at.switch_page("views/users.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def top_frames(at) -> list:
    return [
        d.value
        for d in at.dataframe
        if hasattr(d.value, "columns") and "Recommended" in d.value.columns
    ]


def test_without_data(app) -> None:
    open_users(app)
    assert any("No data loaded yet" in t for t in texts(app, "markdown"))


def test_warm_user_lists_side_by_side_match_the_stored_top_k(
    loaded_app, finished_runs, scenario
) -> None:
    store, _ids = finished_runs
    scn = scenario[0]
    at = open_users(loaded_app)
    chosen = at.multiselect(key="users_runs").value
    assert len(chosen) == 2
    strategies = [store.get_run(r)["strategy"] for r in chosen]
    assert strategies[0] == "fine-tune" and strategies[1] in ("popularity", "target-only")
    u = int(at.selectbox(key="users_pick_warm users").value)
    assert any(f"User {scn.split.user_map.ids[u]}" in m for m in texts(at, "markdown"))
    titles = item_frame(scn)["title"].to_numpy()
    test_items = set(scn.split.test.loc[scn.split.test.user == u, "item"])
    hist = np.concatenate(
        [
            scn.split.train.loc[scn.split.train.user == u, "item"],
            scn.split.valid.loc[scn.split.valid.user == u, "item"],
        ]
    )
    frames = top_frames(at)
    assert len(frames) == 2
    for run_id, frame in zip(chosen, frames):
        top = store.load_table(run_id, "topk")
        want = (
            top[(top.segment == "warm_users") & (top.user == u)]
            .sort_values("rank")["item"]
            .to_numpy()[:10]
        )
        assert list(frame["Recommended"]) == [titles[i] for i in want]
        assert list(frame["Hit"]) == [i in test_items for i in want]
        cold = set(scn.split.cold_items.tolist())
        assert list(frame["Cold item"]) == ["❄ cold" if i in cold else "" for i in want]
        if store.get_run(run_id)["strategy"] == "popularity":
            assert set(frame["Because you liked"]) == {"—"}  # no item vectors
        else:
            X = store.load_tensors(run_id, "vectors_final")["items"].astype(np.float64)
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            best = hist[np.argmax(X[want] @ X[hist].T, axis=1)]
            assert list(frame["Because you liked"]) == [titles[b] for b in best]
    hits = sum(int(f["Hit"].sum()) for f in frames)
    captions = [c for c in texts(at, "caption") if "hit(s) in the top 10" in c]
    assert sum(int(c.split()[0]) for c in captions) == hits


def test_cold_user_sees_only_its_support_items(loaded_app, finished_runs, scenario) -> None:
    scn = scenario[0]
    at = open_users(loaded_app)
    at.selectbox(key="users_segment").set_value("cold users").run()
    at.selectbox(key="users_k").set_value(3).run()
    assert not at.exception
    u = int(at.selectbox(key="users_pick_cold users").value)
    sup = scn.split.support[3]
    assert at.metric[0].value == str(int((sup.user == u).sum()))
    assert any("cold user, reveals k = 3" in m for m in texts(at, "markdown"))
    assert all("segment cold_users_k3" in c for c in texts(at, "caption") if "hit(s)" in c)


def test_search_by_id(loaded_app, finished_runs, scenario) -> None:
    scn = scenario[0]
    at = open_users(loaded_app)
    at.radio(key="users_how").set_value("by id").run()
    at.text_input(key="users_id").input("nobody").run()
    assert any("No target user with id 'nobody'" in displayed(w.value) for w in at.warning)
    uid = str(scn.split.user_map.ids[int(scn.split.test.user.iloc[0])])
    at.text_input(key="users_id").input(uid).run()
    assert any(f"User {uid}" in m for m in texts(at, "markdown"))
    assert len(top_frames(at)) == 2


def test_new_user_box(loaded_app, finished_runs, scenario) -> None:
    from recsys_core.recommend import recommend_for_history

    store, _ = finished_runs
    scn = scenario[0]
    at = open_users(loaded_app)
    box = at.multiselect(key="users_new_items")
    at.multiselect(key="users_new_items").set_value([3, 7]).run()
    assert not at.exception and not at.error
    meta = item_frame(scn)
    chosen_ids = [str(meta["item_id"].iloc[i]) for i in (3, 7)]
    frames = [d.value for d in at.dataframe if "Score" in getattr(d.value, "columns", [])]
    runs = at.multiselect(key="users_runs").value
    with_vectors = [r for r in runs if store.get_run(r)["strategy"] != "popularity"]
    assert len(frames) == len(with_vectors) >= 1
    titles = dict(zip(meta["item_id"].astype(str), meta["title"]))
    for run_id, frame in zip(with_vectors, frames):
        want = recommend_for_history(store, run_id, chosen_ids, 10)
        assert list(frame["Recommended"]) == [titles[str(i)] for i in want["item_id"]]
        assert set(frame["Because you liked"]) <= {titles[i] for i in chosen_ids}
    if len(with_vectors) < len(runs):  # popularity: a friendly note, not an error
        assert any("keeps no item vectors" in displayed(i.value) for i in at.info)
    assert box.options  # titles to pick from


def test_runs_of_another_split_offer_to_rebuild_it(app, finished_runs, scenario) -> None:
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import load_scenario
    from tests.app.conftest import sample_spec

    other = load_scenario(sample_spec(), SplitConfig(seed=7), "before-target")
    app.session_state[state.SCENARIO] = other
    app.session_state[state.SPEC] = sample_spec()
    open_users(app)
    assert any("different split or data" in displayed(i.value) for i in app.info)
    app.button(key="users_reload").click().run()
    assert not app.exception
    assert app.session_state[state.SCENARIO].fingerprint() == scenario[0].fingerprint()
    assert len(top_frames(app)) == 2


def test_new_user_box_on_the_demo_shape_for_every_run(loaded_app, finished_runs, scenario) -> None:
    """The fixture has the flagship demo's shape (ids shared by source and target, a
    source title colliding with a shared item, two target items with one title): a
    history of a shared item and a repeated title gives every run with item vectors a
    list (the demo crashed here with InvalidIndexError), popularity a friendly note."""
    from tests.app.conftest import DUPLICATE_TITLE, SHARED_BY_ID

    store, ids = finished_runs
    scn = scenario[0]
    assert len(set(scn.item_ids)) == scn.n_items  # one joint row per id
    assert scn.links.shared_items_by_id == len(SHARED_BY_ID)
    at = open_users(loaded_app)
    at.multiselect(key="users_runs").set_value(ids).run()  # every strategy of the fixture
    box = at.multiselect(key="users_new_items")
    meta = item_frame(scn).iloc[: scn.n_target_items]
    # the repeated title is offered twice, told apart by item id
    assert sorted(o for o in box.options if DUPLICATE_TITLE in o) == [
        f"{DUPLICATE_TITLE} (ab-029)",
        f"{DUPLICATE_TITLE} (ab-030)",
    ]
    row = {i: n for n, i in enumerate(meta["item_id"].astype(str))}
    # ab-013: shared by id, and its title is also the source remake's
    box.set_value([row["ab-013"], row["ab-030"]]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    frames = [d.value for d in at.dataframe if "Score" in getattr(d.value, "columns", [])]
    strategies = [store.get_run(r)["strategy"] for r in ids]
    assert strategies == ["popularity", "target-only", "fine-tune"]
    assert len(frames) == 2  # target-only, fine-tune
    for frame in frames:
        assert len(frame) == 10
        recommended = list(frame["Recommended"])
        assert "The Golden Map" not in recommended  # given, so never recommended
        assert recommended.count(DUPLICATE_TITLE) <= 1  # ab-029 may be, ab-030 was given
        assert set(frame["Because you liked"]) <= {"The Golden Map", DUPLICATE_TITLE}
    assert any("keeps no item vectors" in i.value for i in at.info)


def test_new_item_exposure_slider_re_ranks_without_retraining(loaded_app, finished_runs, scenario):
    _store, _ = finished_runs
    scn = scenario[0]
    at = open_users(loaded_app)
    at.multiselect(key="users_new_items").set_value([3, 7]).run()

    def lists():
        return [
            list(d.value["Recommended"])
            for d in at.dataframe
            if "Score" in getattr(d.value, "columns", [])
        ]

    own = lists()
    at.toggle(key="users_exposure_on").set_value(True).run()
    at.slider(key="users_exposure").set_value(3.0).run()
    assert not at.exception and not at.error
    high = lists()
    at.slider(key="users_exposure").set_value(-2.0).run()
    low = lists()
    meta = item_frame(scn).iloc[: scn.n_target_items]
    new_titles = set(meta.loc[~scn.split.trained_items(), "title"])
    # more exposure puts more new items in every list; less takes them out
    assert high != low and own
    for h, lo in zip(high, low):
        assert sum(t in new_titles for t in h) >= sum(t in new_titles for t in lo)
    assert any(sum(t in new_titles for t in h) > 0 for h in high)
