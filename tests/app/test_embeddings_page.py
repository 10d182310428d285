"""Embeddings page: stages of a run (plus the target-only run), a joint map coloured by
domain/genre/popularity/cold status, and the engine's shift measures."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_core.embeddings.shift import shift_report
from tests.app.conftest import frame_with, texts
from ui import state


def open_emb(at):
    at.run()
    at.switch_page("views/embeddings.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def plot_json(at) -> list[dict]:
    import json

    return [json.loads(p.proto.spec) for p in at.get("plotly_chart")]


def arr(v) -> np.ndarray:
    """A plotly JSON array, plain or base64 typed ({"dtype", "bdata"})."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def wait_while(busy, seconds: float = 30.0) -> None:
    """Poll ``busy()`` until it is false; fail after ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while busy():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def fine_tune_run(finished_runs):
    """(store, the fine-tune run's id) of the ``finished_runs`` fixture."""
    store, ids = finished_runs
    return store, next(r for r in ids if store.get_run(r)["strategy"] == "fine-tune")


def test_no_runs_with_vectors(app, tmp_path) -> None:
    app.session_state[state.STORE_ROOT] = str(tmp_path / "empty")
    open_emb(app)
    assert any("No runs yet" in t for t in texts(app, "markdown"))


def test_fine_tune_stages_map_and_shift_measures(loaded_app, finished_runs) -> None:
    store, ids = finished_runs
    at = open_emb(loaded_app)
    ft = next(r for r in ids if store.get_run(r)["strategy"] == "fine-tune")
    to = next(r for r in ids if store.get_run(r)["strategy"] == "target-only")
    assert at.selectbox(key="emb_run").value == ft  # transfer runs first
    assert at.multiselect(key=f"emb_peers_{ft}").value == [to]  # target-only added by default
    figs = plot_json(at)
    emap = figs[0]
    # One panel per stage: source model, after fine-tune, target-only.
    titles = [a["text"] for a in emap["layout"]["annotations"]]
    assert titles == ["source model (fine-tune)", "fine-tune", "target-only"]
    scn = at.session_state[state.SCENARIO]
    n = sum(len(arr(t["x"])) for t in emap["data"])
    assert n == 3 * scn.n_items  # every joint item (62 < 2000) in each of the 3 stages
    names = {t["name"] for t in emap["data"]}
    assert names == {"target", "source", "both"}
    hover = [h for t in emap["data"] for h in arr(t["text"])]
    assert "Salt, Sea and Sky" in hover  # titles on hover
    # The shift measures are the engine's, over all items of the three stages.
    A = store.load_tensors(ft, "vectors_source")["items"]
    B = store.load_tensors(ft, "vectors_final")["items"]
    C = store.load_tensors(to, "vectors_final")["items"]
    dom = {
        i: ("source" if d == 1 else "target") for i, d in enumerate(scn.item_domain) if d in (0, 1)
    }
    rep = shift_report(
        {
            "source model (fine-tune)": (np.arange(len(A)), A),
            "fine-tune": (np.arange(len(B)), B),
            "target-only": (np.arange(len(C)), C),
        },
        domains=dom,
    )
    cka = rep[
        (rep.measure == "linear_cka")
        & (rep.stage_a == "source model (fine-tune)")
        & (rep.stage_b == "fine-tune")
    ]
    pairs = frame_with(at, "to")
    assert list(zip(pairs["from"], pairs["to"])) == [
        ("source model (fine-tune)", "fine-tune"),
        ("source model (fine-tune)", "target-only"),
        ("fine-tune", "target-only"),
    ]
    assert np.isclose(pairs["linear_cka"].iloc[0], cka.value.iloc[0])
    drift = rep[(rep.measure == "procrustes_drift_mean") & (rep.stage_b == "target-only")].value
    assert np.allclose(pairs["procrustes_drift_mean"].iloc[1:], drift)
    single = frame_with(at, "stage")
    mmd = rep[(rep.measure == "mmd_source_target") & (rep.stage_a == "fine-tune")].value.iloc[0]
    assert np.isclose(single.set_index("stage").loc["fine-tune", "mmd_source_target"], mmd)
    # Each measure is explained in a sentence on the page.
    md = " ".join(texts(at, "markdown"))
    assert cka.explanation.iloc[0] in md and "**CKA**" in md
    # Drift histogram for the first pair.
    assert figs[-1]["layout"]["title"]["text"].startswith("Per-item drift")


def test_colour_by_genre_and_cold_status(loaded_app, finished_runs) -> None:
    at = open_emb(loaded_app)
    at.segmented_control(key="emb_color").set_value("genre").run()
    names = {t["name"] for t in plot_json(at)[0]["data"]}
    assert {"Mystery", "Poetry", "Biography"} <= names
    at.segmented_control(key="emb_color").set_value("cold status").run()
    names = {t["name"] for t in plot_json(at)[0]["data"]}
    assert names == {"warm item", "cold item", "source only"}


def test_pca_at_once_and_umap_button_when_not_cached(loaded_app, finished_runs) -> None:
    at = open_emb(loaded_app)
    assert any("UMAP is not computed yet" in c for c in texts(at, "caption"))
    assert at.button(key="emb_umap_go").label == "Compute UMAP"
    # 63 joint items (30 target, 33 source only) x 3 stages
    assert any(c.startswith("PCA of 189 points") for c in texts(at, "caption"))


def test_genre_colours_are_distinct_and_rare_genres_grouped() -> None:
    """MovieLens has 18 genres: the 12 most frequent get a hue each (Drama and Adventure
    no longer share blue), the rest one grey "other"; users keep their own colour."""
    import pandas as pd

    from ui import charts

    genres = [f"g{i:02d}" for i in range(18)]
    rows = [g for i, g in enumerate(genres) for _ in range(40 - i)]  # g00 most frequent
    rows = ["Drama"] * 60 + ["Adventure"] * 50 + rows + ["users"] * 5  # 20 genres in all
    pts = pd.DataFrame(
        {"x": range(len(rows)), "y": 0.0, "stage": "final", "title": "t", "genre": rows}
    )
    fig = charts.embedding_map(pts, "genre", "pca")
    traces = {t.name: t.marker.color for t in fig.data}
    assert list(traces)[:2] == ["Drama", "Adventure"]
    assert len(traces) == 12 + 2  # 12 genres, other, users
    named = [c for n, c in traces.items() if n not in ("other", "users")]
    assert len(set(named)) == 12  # no colour twice
    assert traces["Drama"] != traces["Adventure"]
    assert traces["other"] == charts.SPECIAL_COLORS["other"] not in named
    assert traces["users"] == charts.SPECIAL_COLORS["users"]
    other = next(t for t in fig.data if t.name == "other")
    assert len(other.x) == sum(40 - i for i in range(10, 18))  # g10..g17, the 8 rarest


def test_umap_shows_its_progress_over_the_pca_map_then_replaces_it(
    loaded_app, finished_runs, monkeypatch
) -> None:
    """Compute UMAP: PCA stays on screen with a progress bar (graph, then epochs, time
    left) and a Stop button; when the fit is done the next run shows the UMAP map."""
    import threading

    from recsys_core.embeddings import projection
    from recsys_core.training.callbacks import ProgressEvent

    release = threading.Event()

    def slow_umap(X, seed, n_neighbors, min_dist, cb=None):  # stands in for umap-learn
        cb.progress(ProgressEvent(stage="UMAP: neighbour graph", fraction=0.0))
        for epoch, secs in ((0, 10.0), (50, 20.0), (100, 30.0)):
            cb.progress(
                ProgressEvent(stage="UMAP: layout", epoch=epoch, epochs=200, seconds=secs,
                              fraction=0.3 + 0.7 * epoch / 200)
            )  # fmt: skip
        release.wait(30)
        cb.check_cancel()
        return projection._fit_pca(X) * -1.0  # recognisably not the PCA map

    monkeypatch.setattr(projection, "_fit_umap", slow_umap)
    at = open_emb(loaded_app)
    at.button(key="emb_umap_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    jm = at.session_state[state.JOBS]
    (key,) = [k for k in jm.task_keys("umap-") if jm.task_state(k)[0] == "running"]
    wait_while(lambda: "epoch 100/200" not in jm.task_progress(key).get("line", ""))
    at.run()
    (bar,) = at.get("progress")
    # 10 s per 50 epochs -> 100 epochs to go: about 20 s left
    assert bar.proto.text.startswith("UMAP: layout · epoch 100/200 · ")
    assert bar.proto.text.endswith("about 20 s left") and bar.proto.value in (64, 65)
    assert at.button(key="emb_umap_stop").label == "Stop"
    assert any(c.startswith("PCA of 189 points") for c in texts(at, "caption"))
    assert any("UMAP map replaces it when it is ready" in c for c in texts(at, "caption"))
    release.set()
    wait_while(lambda: jm.task_state(key)[0] == "running")
    assert jm.task_state(key) == ("done", None)
    at.run()
    assert not at.get("progress")
    assert any(c.startswith("UMAP of 189 points") for c in texts(at, "caption"))


def test_umap_can_be_stopped_and_the_pca_map_stays(loaded_app, finished_runs, monkeypatch) -> None:
    import time

    from recsys_core.embeddings import projection
    from recsys_core.training.callbacks import ProgressEvent

    def endless_umap(X, seed, n_neighbors, min_dist, cb=None):
        while True:
            cb.progress(ProgressEvent(stage="UMAP: neighbour graph", fraction=0.0))
            cb.check_cancel()
            time.sleep(0.01)

    monkeypatch.setattr(projection, "_fit_umap", endless_umap)
    at = open_emb(loaded_app)
    at.toggle(key="emb_source_items").set_value(False).run()  # points no UMAP is cached for
    at.button(key="emb_umap_go").click().run()
    jm = at.session_state[state.JOBS]
    (key,) = [k for k in jm.task_keys("umap-") if jm.task_state(k)[0] == "running"]
    at.button(key="emb_umap_stop").click().run()
    wait_while(lambda: jm.task_state(key)[0] == "running")
    assert jm.task_state(key) == ("cancelled", None)
    at.run()
    assert any("UMAP was stopped" in c for c in texts(at, "caption"))
    assert any(c.startswith("PCA of 90 points") for c in texts(at, "caption"))
    assert at.button(key="emb_umap_go").label == "Compute UMAP"  # may start again


# ------------------------------------------------ maps without a click (issue 13)


@pytest.fixture()
def maps_on(finished_runs, monkeypatch):
    """Background maps on, an empty map cache, and UMAP replaced by a stand-in that
    waits for ``release`` (a threading.Event) and returns minus the PCA map."""
    import shutil
    import threading

    from recsys_core.embeddings import maps, projection

    store, _ = finished_runs
    shutil.rmtree(maps.projection_dir(store.root), ignore_errors=True)
    monkeypatch.setenv(maps.ENV_VAR, "1")
    # as if warmed already: no real UMAP in the test process (app.py warms on each run)
    monkeypatch.setattr(projection, "_warm_thread", threading.Thread())
    release = threading.Event()
    calls: list[int] = []

    def fit(X, seed, n_neighbors, min_dist, cb=None):
        calls.append(len(X))
        while not release.wait(0.02):
            cb.check_cancel()
        return -projection._fit_pca(X)

    monkeypatch.setattr(projection, "_fit_umap", fit)
    return release, calls


def map_xy(at) -> np.ndarray:
    """The map's points as (x, y) rows, sorted (trace order differs from row order)."""
    emap = plot_json(at)[0]
    xy = np.concatenate([np.c_[arr(t["x"]), arr(t["y"])] for t in emap["data"]])
    return xy[np.lexsort(xy.T[::-1])]


def test_a_cached_map_is_drawn_as_umap_at_once_without_a_click(
    loaded_app, finished_runs, maps_on
) -> None:
    from recsys_core.embeddings import maps

    release, calls = maps_on
    release.set()
    store, ft = fine_tune_run(finished_runs)
    Y = maps.precompute_projection(store, ft)  # what the job does after training
    assert calls == [189]
    at = open_emb(loaded_app)
    assert any(c.startswith("UMAP of 189 points") for c in texts(at, "caption"))
    assert not any("Session key" in t for t in texts(at, "markdown"))  # no stray docstring
    assert at.segmented_control(key="emb_method").value == "umap"
    assert not at.get("progress") and not [b for b in at.button if b.key == "emb_umap_go"]
    got = map_xy(at)
    np.testing.assert_allclose(got, Y[np.lexsort(Y.T[::-1])], rtol=1e-6)
    assert calls == [189]  # read, not fitted again
    # PCA is one click away, and back.
    at.segmented_control(key="emb_method").set_value("pca").run()
    assert any(c.startswith("PCA of 189 points") for c in texts(at, "caption"))


def test_the_page_starts_the_map_itself_shows_pca_meanwhile_then_umap(
    loaded_app, finished_runs, maps_on
) -> None:
    """A run trained by the CLI has no map: the page shows PCA, says UMAP is on its way,
    starts the fit itself (no click) with its progress and Stop, then shows UMAP."""

    release, calls = maps_on
    at = open_emb(loaded_app)
    assert any(c.startswith("PCA of 189 points") for c in texts(at, "caption"))
    assert any("UMAP is on its way" in c for c in texts(at, "caption"))
    assert not [b for b in at.button if b.key == "emb_umap_go"]
    assert at.button(key="emb_umap_stop").label == "Stop"
    jm = at.session_state[state.JOBS]
    (key,) = jm.task_keys("umap-", state="running")
    at.run()  # a rerun does not start a second fit
    assert jm.task_keys("umap-") == [key]
    release.set()
    wait_while(lambda: jm.task_state(key)[0] == "running")
    at.run()
    assert any(c.startswith("UMAP of 189 points") for c in texts(at, "caption"))
    assert not at.get("progress")
    assert calls == [189]


def test_a_stopped_map_is_not_restarted_by_itself(loaded_app, finished_runs, maps_on) -> None:

    at = open_emb(loaded_app)
    jm = at.session_state[state.JOBS]
    (key,) = jm.task_keys("umap-", state="running")
    at.button(key="emb_umap_stop").click().run()
    wait_while(lambda: jm.task_state(key)[0] == "running")
    at.run()
    assert jm.task_state(key) == ("cancelled", None)
    assert any("UMAP was stopped" in c for c in texts(at, "caption"))
    assert any(c.startswith("PCA of 189 points") for c in texts(at, "caption"))
    assert at.button(key="emb_umap_go").label == "Compute UMAP"


def test_a_damaged_map_file_gives_pca_and_a_new_fit_never_a_traceback(
    loaded_app, finished_runs, maps_on
) -> None:

    from recsys_core.embeddings import maps

    release, calls = maps_on
    release.set()
    store, ft = fine_tune_run(finished_runs)
    maps.precompute_projection(store, ft)
    (path,) = maps.projection_dir(store.root).iterdir()
    path.write_bytes(b"\x00" * 64)
    at = open_emb(loaded_app)
    assert not at.exception
    jm = at.session_state[state.JOBS]
    wait_while(lambda: jm.task_keys("umap-", state="running"))
    at.run()
    assert not at.exception
    assert any(c.startswith("UMAP of 189 points") for c in texts(at, "caption"))
    assert calls == [189, 189]  # fitted again, in the background
