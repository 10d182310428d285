"""Background jobs: queue at once, run FIFO in one worker thread, cancel, failures as runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import RunRequest, ScenarioSpec, load_scenario
from recsys_core.runs.jobs import JobManager, needs_text
from recsys_core.runs.store import RunStore
from recsys_core.strategies.base import ModelSettings
from recsys_core.strategies.registry import suite_names

QUICK = ModelSettings(model="two-tower", dim=8, epochs=2, source_epochs=2, batch_size=256)


def write_tiny_domain(
    folder: Path, n_users: int = 40, n_items: int = 30, per_user: int = 10, seed: int = 0
) -> Path:
    """An id-only target domain (no item table, so no text model is ever loaded): users
    prefer one of three item clusters, times increase per user."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        cluster = u % 3
        pool = [i for i in range(n_items) if i % 3 == cluster]
        others = [i for i in range(n_items) if i % 3 != cluster]
        picks = list(rng.choice(pool, size=min(per_user - 2, len(pool)), replace=False))
        picks += list(rng.choice(others, size=2, replace=False))
        t0 = 1_600_000_000 + u * 1000
        for j, i in enumerate(picks):
            rows.append((f"u{u:03d}", f"i{i:03d}", float(rng.integers(1, 6)), t0 + 60 * j))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "target_interactions.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(
        path, index=False
    )
    return path


@pytest.fixture()
def tiny(tmp_path: Path):
    path = write_tiny_domain(tmp_path / "data")
    spec = ScenarioSpec(target_interactions=str(path), name="tiny")
    split = SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3), cold_item_frac=0.1)
    return spec, split, tmp_path / "store"


def request(
    *strategies: str,
    epochs: int = 2,
    options: dict | None = None,
    baselines="none",
    workers: int = 0,
) -> RunRequest:
    settings = ModelSettings(model="two-tower", dim=8, epochs=epochs, batch_size=256, patience=1000)
    return RunRequest(
        strategies=strategies,
        settings=settings,
        options=options or {},
        device="cpu",
        n_boot=50,
        baselines=baselines,
        workers=workers,
    )


def test_the_suite_is_queued_with_a_transfer_job_and_reused_by_the_next(tiny) -> None:
    spec, split, root = tiny
    jm = JobManager()
    first = jm.submit(spec, split, "before-target", request("fusion", baselines="suite"), root)
    assert jm.wait(first, timeout=120)
    info = jm.get(first)
    # id-only data: text-zero-shot cannot run, so the suite leaves it out; the baselines
    # train first (fusion itself fails here for want of text, which does not matter)
    suite = suite_names(has_text=False)
    assert "text-zero-shot" not in suite and {"popularity", "ease", "ials"} <= set(suite)
    assert info.strategies == (*suite, "fusion")
    store = RunStore(root)
    statuses = [store.get_run(r)["status"] for r in info.run_ids]
    assert statuses == ["done"] * len(suite) + ["failed"]
    second = jm.submit(spec, split, "before-target", request("fusion", baselines="suite"), root)
    assert jm.wait(second, timeout=120)
    again = jm.get(second)
    # every baseline run is the same stored run; only fusion trained again
    assert again.run_ids[:-1] == info.run_ids[:-1]
    assert again.run_ids[-1] != info.run_ids[-1]


def test_needs_text_only_for_text_reading_strategies() -> None:
    assert not needs_text(request("popularity"))
    assert needs_text(request("popularity", "target-only"))  # two-tower reads text
    mf = RunRequest(strategies=("target-only",), settings=ModelSettings(model="bpr-mf"))
    assert not needs_text(mf)
    assert needs_text(RunRequest(strategies=("fusion",), settings=ModelSettings(model="bpr-mf")))


def test_job_completes_and_runs_land_in_the_store(tiny) -> None:
    spec, split, root = tiny
    jm = JobManager()
    job_id = jm.submit(spec, split, "before-target", request("popularity", "target-only"), root)
    info = jm.get(job_id)
    assert info.strategies == ("popularity", "target-only")
    store = RunStore(root)
    # The runs exist as soon as submit returns.
    assert set(store.list_runs()["run_id"]) == set(info.run_ids)
    assert jm.wait(job_id, timeout=120)
    info = jm.get(job_id)
    assert info.state == "done" and info.error is None
    runs = [store.get_run(r) for r in info.run_ids]
    assert [r["status"] for r in runs] == ["done", "done"]
    assert [r["strategy"] for r in runs] == ["popularity", "target-only"]
    # Metrics with intervals, the spec recorded for rebuilding, progress written as heartbeats.
    m = pd.DataFrame(runs[1]["metrics"])
    row = m[(m.segment == "warm_users") & (m.metric == "ndcg") & (m.k == 10)].iloc[0]
    assert 0.0 <= row.ci_low <= row.value <= row.ci_high <= 1.0
    assert runs[1]["config"]["spec"]["target_interactions"] == spec.target_interactions
    hist = store.history(info.run_ids[1])
    assert len(hist) >= 2 and hist["epoch"].max() == 2
    assert runs[0]["data_fingerprint"] == runs[1]["data_fingerprint"] != "unavailable"
    assert jm.run_ids() == list(info.run_ids)
    assert not jm.busy()


def test_given_scenario_is_used_and_jobs_run_fifo(tiny) -> None:
    spec, split, root = tiny
    scn = load_scenario(spec, split, "before-target")
    jm = JobManager()
    a = jm.submit(spec, split, "before-target", request("target-only"), root, scenario=scn)
    b = jm.submit(spec, split, "before-target", request("popularity"), root, scenario=scn)
    assert [j.job_id for j in jm.jobs()] == [b, a]  # newest first
    assert jm.wait(timeout=120)
    store = RunStore(root)
    ra, rb = (store.get_run(jm.get(j).run_ids[0]) for j in (a, b))
    assert ra["status"] == rb["status"] == "done"
    # One worker: b started only after a had finished.
    assert rb["started_at"] >= ra["finished_at"]
    assert ra["data_fingerprint"] == scn.fingerprint()


def test_cancel_a_queued_job_before_it_starts(tiny, monkeypatch) -> None:
    spec, split, root = tiny
    jm = JobManager()
    monkeypatch.setattr(jm, "_ensure_worker", lambda: None)  # hold the queue
    job_id = jm.submit(spec, split, "before-target", request("popularity", "target-only"), root)
    store = RunStore(root)
    assert [store.get_run(r)["status"] for r in jm.get(job_id).run_ids] == ["queued", "queued"]
    assert jm.cancel(job_id) is True
    assert [store.get_run(r)["status"] for r in jm.get(job_id).run_ids] == [
        "cancelled",
        "cancelled",
    ]
    monkeypatch.undo()
    with jm._lock:
        jm._ensure_worker()
    assert jm.wait(job_id, timeout=30)
    assert jm.get(job_id).state == "cancelled"
    assert jm.cancel(job_id) is False  # already over
    assert store.get_run(jm.get(job_id).run_ids[0])["error"] == "cancelled before it started"


def test_cancel_a_running_job(tiny) -> None:
    spec, split, root = tiny
    jm = JobManager()
    # one worker: the runs go one after the other, so the second has not started
    req = request("target-only", "popularity", epochs=500, workers=1)
    job_id = jm.submit(spec, split, "before-target", req, root)
    store = RunStore(root)
    first, second = jm.get(job_id).run_ids
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and store.get_run(first)["progress"].get("epoch", 0) < 1:
        time.sleep(0.05)
    assert store.get_run(first)["status"] == "running"
    assert jm.cancel(job_id)
    assert jm.wait(job_id, timeout=60)
    assert jm.get(job_id).state == "cancelled"
    assert store.get_run(first)["status"] == "cancelled"
    assert store.get_run(second)["status"] == "cancelled"  # never started
    assert store.get_run(first)["progress"]["epoch"] < 500


def test_a_failing_strategy_gives_a_failed_run_with_its_message(tiny) -> None:
    spec, split, root = tiny
    jm = JobManager()
    # text-zero-shot is a valid choice, but this id-only data has no item text.
    job_id = jm.submit(spec, split, "before-target", request("text-zero-shot", "popularity"), root)
    assert jm.wait(job_id, timeout=60)
    store = RunStore(root)
    bad, good = (store.get_run(r) for r in jm.get(job_id).run_ids)
    assert bad["status"] == "failed"
    assert "needs item text" in bad["error"]
    assert good["status"] == "done"  # the other strategy still ran
    assert jm.get(job_id).state == "done"


def test_a_fine_tune_without_source_fails_with_the_engine_message(tiny) -> None:
    spec, split, root = tiny
    jm = JobManager()
    job_id = jm.submit(
        spec,
        split,
        "before-target",
        request("fine-tune", options={"fine-tune": {"freeze": "text"}}),
        root,
    )
    assert jm.wait(job_id, timeout=60)
    info = jm.get(job_id)
    run = RunStore(root).get_run(info.run_ids[0])
    assert run["status"] == "failed" and "needs a source domain" in run["error"]
    assert info.state == "failed" and "needs a source domain" in info.error


def test_data_that_cannot_be_loaded_gives_failed_runs_with_the_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("user_id,item_id,rating\nu1,i1,4\nu2,i2,five\n")
    jm = JobManager()
    job_id = jm.submit(
        ScenarioSpec(target_interactions=str(bad)),
        SplitConfig(),
        "before-target",
        request("popularity"),
        tmp_path / "s",
    )
    info = jm.get(job_id)
    assert info.state == "failed"
    run = RunStore(tmp_path / "s").get_run(info.run_ids[0])
    assert run["status"] == "failed"
    assert "broken.csv" in run["error"] and "line 3" in run["error"] and "rating" in run["error"]
    assert run["error"] == info.error


def test_two_managers_do_not_see_each_others_jobs(tiny) -> None:
    spec, split, root = tiny
    a, b = JobManager("a"), JobManager("b")
    ja = a.submit(spec, split, "before-target", request("popularity"), root)
    assert [j.job_id for j in a.jobs()] == [ja]
    assert b.jobs() == [] and b.run_ids() == []
    with pytest.raises(KeyError):
        b.cancel(ja)
    assert a.wait(timeout=60)


def test_side_task_runs_once_and_reports_failure() -> None:
    jm = JobManager()
    calls = []
    assert jm.start_task("k", lambda task: calls.append(1))
    deadline = time.monotonic() + 10
    while jm.task_state("k")[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jm.task_state("k") == ("done", None)
    assert not jm.start_task("k", lambda task: calls.append(2))  # done: not again
    assert calls == [1]

    def boom(task) -> None:
        raise ValueError("no")

    jm.start_task("bad", boom)
    while jm.task_state("bad")[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jm.task_state("bad") == ("failed", "ValueError: no")
    assert jm.task_state("never") == (None, None)
    assert jm.task_result("bad") is None and jm.task_result("never") is None


def test_side_task_result_is_kept_in_memory_not_on_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    jm = JobManager()
    release = threading.Event()

    def curve(task) -> pd.DataFrame:
        release.wait(10)
        return pd.DataFrame({"value": [10, "all"], "delta": [0.5, -0.25]})

    jm.start_task("c", curve)
    assert jm.task_state("c")[0] == "running" and jm.task_result("c") is None
    release.set()
    deadline = time.monotonic() + 10
    while jm.task_state("c")[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    df = jm.task_result("c")
    # the mixed int/str column comes back as it was: no file format in between
    assert df["value"].tolist() == [10, "all"] and df["delta"].tolist() == [0.5, -0.25]
    assert list(tmp_path.iterdir()) == []


def test_device_info_is_found_in_the_background() -> None:
    jm = JobManager()
    info = jm.device_info()
    deadline = time.monotonic() + 60
    while info is None and time.monotonic() < deadline:
        time.sleep(0.05)
        info = jm.device_info()
    assert info is not None and ("CPU" in info["label"] or "CUDA" in info["label"])


def test_registry_gives_each_owner_one_manager_and_runs_carry_the_owner(tiny) -> None:
    from recsys_core.runs.jobs import JobRegistry

    spec, split, root = tiny
    reg = JobRegistry()
    mine = reg.manager("owner-aaaaaaaa")
    assert reg.manager("owner-aaaaaaaa") is mine  # a reload: the same queue
    theirs = reg.manager("owner-bbbbbbbb")
    assert theirs is not mine and sorted(reg.owners()) == ["owner-aaaaaaaa", "owner-bbbbbbbb"]
    for bad in ("short", "../../etc/passwd", "x" * 65, "", None):
        with pytest.raises(ValueError):
            reg.manager(bad)  # type: ignore[arg-type]
    job = mine.submit(spec, split, "before-target", request("popularity"), root)
    assert theirs.jobs() == []
    assert mine.wait(job, timeout=60)
    store = RunStore(root)
    (rid,) = mine.get(job).run_ids
    assert store.get_run(rid)["owner"] == "owner-aaaaaaaa"
    assert store.list_runs(owner="owner-bbbbbbbb").empty
    assert reg.close(timeout=10)


def test_close_cancels_running_and_queued_jobs_and_joins_the_worker(tiny) -> None:
    spec, split, root = tiny
    jm = JobManager("close", owner="owner-cccccccc")
    long = request("target-only", epochs=10_000)
    running = jm.submit(spec, split, "before-target", long, root)
    queued = jm.submit(spec, split, "before-target", request("popularity"), root)
    store = RunStore(root)
    (rid,) = jm.get(running).run_ids
    deadline = time.monotonic() + 60
    while not store.get_run(rid)["progress"].get("epoch") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jm.get(running).state == "running"
    t0 = time.monotonic()
    assert jm.close(timeout=30)
    assert time.monotonic() - t0 < 30
    assert [jm.get(j).state for j in (running, queued)] == ["cancelled", "cancelled"]
    for j in (running, queued):
        run = store.get_run(jm.get(j).run_ids[0])
        assert run["status"] == "cancelled" and run["error"] == "stopped: the server shut down"
    with pytest.raises(RuntimeError, match="stopping"):
        jm.submit(spec, split, "before-target", request("popularity"), root)


def test_a_process_exiting_with_a_job_training_stops_it_cleanly(tmp_path: Path) -> None:
    """The atexit hook: without it, the daemon worker is inside torch when Python tears
    down and the process aborts ("terminate called without an active exception")."""
    import subprocess
    import sys
    import textwrap

    repo = Path(__file__).resolve().parents[2]
    child = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(repo)!r})
        from pathlib import Path
        from tests.runs.test_jobs import request, write_tiny_domain
        from recsys_core.data.split_types import SplitConfig
        from recsys_core.pipeline import ScenarioSpec
        from recsys_core.runs.jobs import JobManager
        from recsys_core.runs.store import RunStore

        root = Path({str(tmp_path)!r})
        path = write_tiny_domain(root / "data", n_users=200, n_items=100, per_user=20)
        spec = ScenarioSpec(target_interactions=str(path), name="tiny")
        jm = JobManager("exit", owner="owner-exit-test")
        job = jm.submit(spec, SplitConfig(), "before-target",
                        request("target-only", epochs=10_000), root / "store")
        store = RunStore(root / "store")
        rid = jm.get(job).run_ids[0]
        deadline = time.monotonic() + 60
        while not store.get_run(rid)["progress"].get("epoch") and time.monotonic() < deadline:
            time.sleep(0.05)
        print(rid, store.get_run(rid)["status"], flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr
    rid, status = proc.stdout.split()
    assert status == "running"  # it was training when the main thread ended
    run = RunStore(tmp_path / "store").get_run(rid)
    assert run["status"] == "cancelled" and run["error"] == "stopped: the server shut down"


def test_side_task_reports_progress_and_stops_when_asked() -> None:
    from recsys_core.runs.jobs import eta_seconds
    from recsys_core.training.callbacks import Cancelled

    jm = JobManager()
    halfway = threading.Event()

    def work(task) -> str:
        task.report(0.5, "half done")
        halfway.set()
        while not task.should_cancel():
            time.sleep(0.01)
        raise Cancelled("stop")

    assert jm.start_task("t", work)
    assert halfway.wait(10)
    p = jm.task_progress("t")
    assert p["fraction"] == 0.5 and p["line"] == "half done" and p["seconds"] >= 0
    assert not jm.task_cancelling("t")
    assert jm.cancel_task("t") and jm.task_cancelling("t")
    deadline = time.monotonic() + 10
    while jm.task_state("t")[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jm.task_state("t") == ("cancelled", None) and jm.task_result("t") is None
    assert not jm.cancel_task("t")
    jm.discard_task("t")  # forgotten: it may start afresh
    assert jm.task_state("t") == (None, None) and jm.task_progress("t") == {}
    assert jm.start_task("t", lambda task: "again")
    # the estimate: 30 s for 25% -> 90 s to go; none too early; 0 when done
    assert eta_seconds(30.0, 0.25) == pytest.approx(90.0)
    assert eta_seconds(0.5, 0.25) is None and eta_seconds(30.0, None) is None
    assert eta_seconds(30.0, 1.0) == 0.0
    assert jm.close(timeout=10)
