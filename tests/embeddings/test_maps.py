"""The Embeddings page's default map computed ahead and cached (issue 13): which points,
the content-hash cache in the run store, and the job manager's follow-up task.

UMAP itself is replaced by a recognisable, counting stand-in (the real fit is covered by
the slow tests of test_projection.py): these tests are about what is cached and when.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from recsys_core.embeddings import maps, projection
from recsys_core.embeddings.maps import (
    MapSettings,
    cached_map,
    default_picks,
    map_groups,
    map_task_key,
    precompute_projection,
    projection_dir,
    run_map_groups,
    select_points,
)
from recsys_core.runs.store import RunStore


@pytest.fixture()
def fake_umap(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """_fit_umap replaced by minus the PCA map; returns the list of fitted sizes."""
    calls: list[int] = []

    def fit(X, seed, n_neighbors, min_dist, cb=None):
        calls.append(len(X))
        return -projection._fit_pca(X)

    monkeypatch.setattr(projection, "_fit_umap", fit)
    monkeypatch.setenv(maps.ENV_VAR, "1")
    return calls


def add_run(
    store: RunStore, strategy: str, stages: dict[str, np.ndarray], fp: str = "data-1"
) -> str:
    rid = store.create_run(strategy, "toy", {"strategy": strategy}, fp)
    store.set_status(rid, "running")
    for stage, items in stages.items():
        store.save_tensors(rid, f"vectors_{stage}", {"items": items.astype(np.float32)})
    store.finish(rid, [], {"train": 1.0})
    return rid


@pytest.fixture()
def store_with_runs(tmp_path: Path):
    """A target-only run, then a fine-tune run (source and final stages), 50 items, 8-d."""
    rng = np.random.default_rng(0)
    store = RunStore(tmp_path / "runs")
    to = add_run(store, "target-only", {"final": rng.normal(size=(50, 8))})
    time.sleep(0.01)  # created_at orders the runs
    ft = add_run(
        store, "fine-tune", {"source": rng.normal(size=(50, 8)), "final": rng.normal(size=(50, 8))}
    )
    return store, to, ft


def test_default_picks_are_the_run_stages_then_the_target_only_peer(store_with_runs) -> None:
    store, to, ft = store_with_runs
    assert default_picks(store, ft) == [(ft, "source"), (ft, "final"), (to, "final")]
    assert default_picks(store, to) == [(to, "final")]  # no peer for target-only itself
    # A target-only run of other data is no peer.
    other = add_run(store, "fine-tune", {"final": np.ones((50, 8))}, fp="data-2")
    assert default_picks(store, other) == [(other, "final")]


def test_select_points_draws_the_same_items_in_every_stage() -> None:
    rng = np.random.default_rng(1)
    stages = [{"items": rng.normal(size=(30, 4))} for _ in range(3)]
    blocks = select_points(stages, MapSettings(items_per_stage=10))
    assert [b.pick for b in blocks] == [0, 1, 2]
    rows = blocks[0].rows
    assert len(rows) == 10 and np.all(np.diff(rows) > 0)
    for b, V in zip(blocks, stages):
        np.testing.assert_array_equal(b.rows, rows)
        np.testing.assert_array_equal(b.X, V["items"][rows])
    # Without source-only items: only the others are drawn from.
    is_source = np.arange(30) >= 20
    blocks = select_points(stages, MapSettings(source_items=False), is_source=is_source)
    np.testing.assert_array_equal(blocks[0].rows, np.arange(20))
    # Users of each stage after its items, the first n_target_users only.
    with_users = [{**V, "users": rng.normal(size=(40, 4))} for V in stages]
    blocks = select_points(
        with_users, MapSettings(users=True, users_per_stage=5), n_target_users=12
    )
    assert [(b.pick, b.kind) for b in blocks] == [
        (0, "items"), (0, "users"), (1, "items"), (1, "users"), (2, "items"), (2, "users"),
    ]  # fmt: skip
    assert all(len(b.rows) == 5 and b.rows.max() < 12 for b in blocks if b.kind == "users")
    # Stages of different dimensions: one map per block, else one joint map.
    assert len(map_groups(blocks)) == 1
    mixed = select_points([{"items": np.ones((6, 4))}, {"items": np.ones((6, 3))}])
    assert [g.shape for g in map_groups(mixed)] == [(6, 4), (6, 3)]


def test_cache_hit_returns_identical_coordinates(store_with_runs, fake_umap) -> None:
    store, to, ft = store_with_runs
    Y = precompute_projection(store, ft)
    assert fake_umap == [150]  # 50 items x 3 stages, one joint fit
    assert Y.shape == (150, 2)
    groups = run_map_groups(store, ft)
    np.testing.assert_array_equal(groups[0][:50], store.load_tensors(ft, "vectors_source")["items"])
    np.testing.assert_array_equal(groups[0][100:], store.load_tensors(to, "vectors_final")["items"])
    np.testing.assert_array_equal(Y, -projection._fit_pca(groups[0]))
    again = precompute_projection(store, ft)
    assert fake_umap == [150]  # served from the cache, not fitted again
    np.testing.assert_array_equal(again, Y)
    np.testing.assert_array_equal(cached_map(groups, projection_dir(store.root)), Y)
    # In the run store's folder, as safetensors (no pickle).
    files = sorted(p.name for p in projection_dir(store.root).iterdir())
    assert len(files) == 1 and files[0].startswith("umap-") and files[0].endswith(".safetensors")


def test_cache_key_changes_with_the_embeddings_and_the_parameters(
    store_with_runs, fake_umap
) -> None:
    store, to, ft = store_with_runs
    precompute_projection(store, ft)
    groups = run_map_groups(store, ft)
    key = map_task_key(groups)
    cache = projection_dir(store.root)
    # One item of the peer moved: another key, nothing cached for it.
    final = store.load_tensors(to, "vectors_final")["items"]
    final[7, 0] += 1e-3
    store.save_tensors(to, "vectors_final", {"items": final})
    moved = run_map_groups(store, ft)
    assert map_task_key(moved) != key
    assert cached_map(moved, cache) is None
    # Each UMAP parameter and the seed are in the key; the items drawn too.
    for s in (MapSettings(n_neighbors=10), MapSettings(min_dist=0.3), MapSettings(seed=1)):
        assert map_task_key(groups, s) != key
        assert cached_map(groups, cache, s) is None
    assert map_task_key(run_map_groups(store, ft, MapSettings(items_per_stage=20))) != key
    # A newer target-only run becomes the peer: the default map changes with it.
    add_run(store, "target-only", {"final": np.zeros((50, 8))})
    assert map_task_key(run_map_groups(store, ft)) not in (key, map_task_key(moved))


def test_a_corrupted_cache_file_is_recomputed_without_an_error(
    store_with_runs, fake_umap, caplog
) -> None:
    store, _, ft = store_with_runs
    Y = precompute_projection(store, ft)
    (path,) = projection_dir(store.root).iterdir()
    path.write_bytes(path.read_bytes()[:-20])  # truncated, as by a full disk
    groups = run_map_groups(store, ft)
    assert cached_map(groups, projection_dir(store.root)) is None
    again = precompute_projection(store, ft)  # no exception: fitted again and rewritten
    assert fake_umap == [150, 150]
    np.testing.assert_array_equal(again, Y)
    np.testing.assert_array_equal(cached_map(groups, projection_dir(store.root)), Y)
    assert any("unreadable" in r.message for r in caplog.records)  # said in the log, once


def test_a_run_without_vectors_has_no_map(tmp_path: Path, fake_umap) -> None:
    store = RunStore(tmp_path / "runs")
    rid = add_run(store, "popularity", {})
    assert precompute_projection(store, rid) is None and fake_umap == []


def test_schedule_maps_waits_for_training_then_caches_and_is_cancellable(
    store_with_runs, fake_umap
) -> None:
    from recsys_core.runs.jobs import JobManager

    store, to, ft = store_with_runs
    jm = JobManager("t")
    training = [True]
    jm.busy = lambda: training[0]  # type: ignore[method-assign]  # a job is training
    keys = maps.schedule_maps(jm, store.root, [to, ft])
    # Transfer runs first (the page opens on them), one task per run.
    assert keys == [
        map_task_key(run_map_groups(store, ft)),
        map_task_key(run_map_groups(store, to)),
    ]
    deadline = time.monotonic() + 10
    while jm.task_progress(keys[0]).get("line") != "UMAP: waiting for training to finish":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    assert fake_umap == []  # low priority: nothing fitted while training
    assert jm.cancel_task(keys[1])
    training[0] = False
    while jm.task_state(keys[0])[0] == "running" or jm.task_state(keys[1])[0] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert jm.task_state(keys[0]) == ("done", None)
    assert jm.task_state(keys[1]) == ("cancelled", None)
    assert fake_umap == [150]
    assert cached_map(run_map_groups(store, ft), projection_dir(store.root)) is not None
    # Cached now: scheduling again starts nothing; off by the environment, nothing either.
    assert maps.schedule_maps(jm, store.root, [ft]) == []


def test_schedule_maps_is_off_when_the_environment_says_so(
    store_with_runs, fake_umap, monkeypatch
) -> None:
    from recsys_core.runs.jobs import JobManager

    store, _, ft = store_with_runs
    monkeypatch.setenv(maps.ENV_VAR, "0")
    assert maps.schedule_maps(JobManager("t"), store.root, [ft]) == []


def test_a_finished_app_job_caches_its_runs_default_map(tmp_path: Path, fake_umap) -> None:
    """The app's managers (JobRegistry) compute the map after a job; a bare JobManager
    (scripts, the CLI's path has none at all) does not."""
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import RunRequest, ScenarioSpec
    from recsys_core.runs.jobs import JobManager, JobRegistry
    from recsys_core.strategies.base import ModelSettings
    from tests.runs.test_jobs import write_tiny_domain

    spec = ScenarioSpec(target_interactions=str(write_tiny_domain(tmp_path / "d")), name="tiny")
    split = SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1), cold_item_frac=0.1)
    req = RunRequest(
        strategies=("target-only",),
        settings=ModelSettings(model="two-tower", dim=8, epochs=1, batch_size=256),
        device="cpu",
        n_boot=20,
    )
    bare = JobManager("bare")
    assert bare.wait(bare.submit(spec, split, "before-target", req, tmp_path / "a"), timeout=120)
    assert bare.task_keys() == []
    jm = JobRegistry().manager("owner-123456")
    job = jm.submit(spec, split, "before-target", req, tmp_path / "b")
    assert jm.wait(job, timeout=120)
    (rid,) = jm.get(job).run_ids
    store = RunStore(tmp_path / "b")
    key = map_task_key(run_map_groups(store, rid))
    deadline = time.monotonic() + 30
    while jm.task_state(key)[0] != "done":
        assert jm.task_state(key)[0] == "running" and time.monotonic() < deadline
        time.sleep(0.05)
    assert cached_map(run_map_groups(store, rid), projection_dir(store.root)) is not None
    jm.close()


def test_the_warm_up_runs_once_per_process_and_not_when_maps_are_off(monkeypatch) -> None:
    import threading

    runs: list[float] = []
    monkeypatch.setattr(projection, "_warm", lambda delay_s=0.0: runs.append(delay_s))
    monkeypatch.setattr(projection, "_warm_thread", None)
    monkeypatch.setenv(maps.ENV_VAR, "0")
    maps.warm_maps()
    assert projection._warm_thread is None
    monkeypatch.setenv(maps.ENV_VAR, "1")
    maps.warm_maps()
    first = projection._warm_thread
    assert isinstance(first, threading.Thread)
    first.join(5)
    maps.warm_maps()  # every app run calls it: nothing more
    assert projection._warm_thread is first and runs == [maps.WARM_DELAY_S]


def test_the_numba_cache_goes_under_the_cache_root_unless_chosen(monkeypatch, tmp_path) -> None:
    import sys

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("RTL_CACHE_DIR", str(tmp_path))
    if "numba" in sys.modules:  # numba read its setting already: left alone
        assert projection.use_numba_cache() is None
    else:
        assert projection.use_numba_cache() == str(tmp_path / "numba")
        assert (tmp_path / "numba").is_dir()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert projection.use_numba_cache() == str(tmp_path / "mine")
