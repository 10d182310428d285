"""The run store: lifecycle, artifacts round-trips, crash safety, concurrency."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.runs.store import INTERRUPTED, RunNotFoundError, RunStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "store")


def _integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


# --- root and ids -------------------------------------------------------------------------


def test_root_from_argument_env_and_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RTL_RUN_STORE", raising=False)
    assert RunStore().root == tmp_path / "transfer_lab_runs"
    monkeypatch.setenv("RTL_RUN_STORE", str(tmp_path / "from_env"))
    assert RunStore().root == tmp_path / "from_env"
    assert RunStore(tmp_path / "explicit").root == tmp_path / "explicit"
    assert (tmp_path / "from_env" / "runs.sqlite").exists()
    con = sqlite3.connect(tmp_path / "from_env" / "runs.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_create_run_id_status_and_folder(store: RunStore) -> None:
    run_id = store.create_run(
        "Fine tune", "ml-1m:drama->children", {"lr": 0.01}, "abc123", label="first"
    )
    date, clock, *middle, suffix = run_id.split("-")
    assert len(date) == 8 and len(clock) == 6 and "-".join(middle) == "fine-tune"
    assert len(suffix) == 4 and int(suffix, 16) >= 0
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["label"] == "first"
    assert run["config"] == {"lr": 0.01} and run["data_fingerprint"] == "abc123"
    assert run["pid"] == os.getpid() and run["created_at"] == run["updated_at"]
    assert run["metrics"] == [] and run["progress"] == {} and run["finished_at"] is None
    assert json.loads((store.run_dir(run_id) / "config.json").read_text())["config"] == {"lr": 0.01}
    with pytest.raises(ValueError, match="strategy"):
        store.create_run(" ", "s", {}, "f")


# --- lifecycle ------------------------------------------------------------------------------


def test_lifecycle_to_done(store: RunStore) -> None:
    run_id = store.create_run("distill", "s1", {"alpha": 0.5}, "fp")
    store.set_status(run_id, "running")
    started = store.get_run(run_id)["started_at"]
    assert started is not None
    records = [
        {"segment": "all", "metric": "ndcg", "k": 10, "value": 0.081},
        {"segment": "cold_users_k1", "metric": "recall", "k": 20, "value": 0.12},
    ]
    store.finish(
        run_id, records, {"train": 4.5, "eval": np.float64(0.5)}, {"params": np.int64(1200)}
    )
    run = store.get_run(run_id)
    assert run["status"] == "done" and run["error"] is None
    assert run["metrics"] == records
    assert run["seconds"] == {"train": 4.5, "eval": 0.5}
    assert run["extra"] == {"params": 1200}
    assert run["finished_at"] >= started
    pd.testing.assert_frame_equal(store.load_table(run_id, "metrics"), pd.DataFrame(records))
    assert store.load_json(run_id, "result")["seconds"] == {"train": 4.5, "eval": 0.5}
    # A finished run stays finished.
    with pytest.raises(ValueError, match="done"):
        store.set_status(run_id, "running")
    with pytest.raises(ValueError, match="only a queued or running run"):
        store.finish(run_id, [], {})


def test_done_only_through_finish_and_fail_keeps_error(store: RunStore) -> None:
    run_id = store.create_run("adapt", "s1", {}, "fp")
    with pytest.raises(ValueError, match="finish"):
        store.set_status(run_id, "done")
    store.set_status(run_id, "running")
    store.fail(run_id, "CUDA out of memory: lower the batch size")
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == "CUDA out of memory: lower the batch size"
    with pytest.raises(ValueError, match="failed"):
        store.finish(run_id, [], {})
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_status(run_id, "paused")  # type: ignore[arg-type]


def test_unknown_run_raises_run_not_found(store: RunStore) -> None:
    for call in (
        lambda: store.get_run("nope"),
        lambda: store.set_status("nope", "running"),
        lambda: store.heartbeat("nope", {"epoch": 1}),
        lambda: store.history("nope"),
        lambda: store.run_dir("nope"),
        lambda: store.save_json("nope", "x", {}),
    ):
        with pytest.raises(RunNotFoundError, match="no run 'nope'"):
            call()
    assert isinstance(RunNotFoundError("x"), KeyError)


# --- listing, history, delete ------------------------------------------------------------


def test_list_runs_filters_and_order(store: RunStore) -> None:
    a = store.create_run("popularity", "s1", {}, "fp")
    b = store.create_run("fine-tune", "s1", {}, "fp")
    c = store.create_run("fine-tune", "s2", {}, "fp")
    store.set_status(b, "running")
    store.set_status(c, "cancelled")
    all_runs = store.list_runs()
    assert all_runs["run_id"].tolist() == [c, b, a]  # newest first
    assert list(all_runs.columns[:5]) == ["run_id", "label", "strategy", "scenario", "status"]
    assert (
        str(all_runs["created_at"].dtype).startswith("datetime64")
        and all_runs["created_at"].dt.tz is not None
    )
    assert store.list_runs(scenario="s1")["run_id"].tolist() == [b, a]
    assert store.list_runs(status="running")["run_id"].tolist() == [b]
    assert store.list_runs(status=["queued", "cancelled"])["run_id"].tolist() == [c, a]
    assert store.list_runs(scenario="s2", status="queued").empty
    assert store.list_runs(scenario="unknown").columns.tolist() == all_runs.columns.tolist()
    with pytest.raises(ValueError, match="status must be among"):
        store.list_runs(status="finished")  # type: ignore[arg-type]


def test_owner_is_kept_and_filters_and_an_older_file_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    store = RunStore(tmp_path / "a")
    mine = store.create_run("popularity", "s1", {}, "fp", owner="user-aaaaaaaa")
    theirs = store.create_run("popularity", "s1", {}, "fp", owner="user-bbbbbbbb")
    cli = store.create_run("popularity", "s1", {}, "fp")
    assert store.get_run(mine)["owner"] == "user-aaaaaaaa"
    assert store.get_run(cli)["owner"] is None
    assert store.list_runs(owner="user-aaaaaaaa")["run_id"].tolist() == [mine]
    owners = store.list_runs()["owner"]
    assert owners.isna().tolist() == [True, False, False]
    assert owners.iloc[1:].tolist() == ["user-bbbbbbbb", "user-aaaaaaaa"]
    assert theirs in store.list_runs()["run_id"].tolist()

    # A store written before owners existed: the column is added, old runs have none.
    old = tmp_path / "old"
    old.mkdir()
    con = sqlite3.connect(old / "runs.sqlite")
    con.executescript(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, label TEXT, strategy TEXT NOT NULL, "
        "scenario TEXT NOT NULL, status TEXT NOT NULL, error TEXT, config_json TEXT NOT NULL, "
        "data_fingerprint TEXT NOT NULL, progress_json TEXT, metrics_json TEXT, seconds_json "
        "TEXT, extra_json TEXT, pid INTEGER, pid_start INTEGER, hostname TEXT, created_at REAL "
        "NOT NULL, updated_at REAL NOT NULL, started_at REAL, finished_at REAL, heartbeat_at REAL);"
        "INSERT INTO runs (run_id, strategy, scenario, status, config_json, data_fingerprint, "
        "created_at, updated_at) VALUES ('r-old', 'ease', 's', 'done', '{}', 'fp', 1, 1);"
        "PRAGMA user_version=1;"
    )
    con.close()
    upgraded = RunStore(old)
    assert upgraded.get_run("r-old")["owner"] is None
    new = upgraded.create_run("ease", "s", {}, "fp", owner="user-cccccccc")
    assert upgraded.list_runs(owner="user-cccccccc")["run_id"].tolist() == [new]
    RunStore(old)  # opening it again adds nothing twice


# --- who may read a run (issue 12) --------------------------------------------------------

A, B = "user-aaaaaaaa", "user-bbbbbbbb"


def _private_store(tmp_path: Path) -> tuple[RunStore, dict[str, str]]:
    """A store holding A's run of its private uploads, a demo run A trained, a CLI run of
    the CLI's own files, and B's private run; each with an items table."""
    store = RunStore(tmp_path / "store")
    upload = {"spec": {"target_interactions": "/cache/uploads/sid-a/t.parquet", "owner": "sid-a"}}
    demo = {"spec": {"demo": "demo:ml100k", "owner": None}}
    ids = {
        "a_private": store.create_run("popularity", "a-data", upload, "fp", owner=A),
        "a_demo": store.create_run("popularity", "demo:ml100k", demo, "fp", owner=A),
        "cli": store.create_run(
            "popularity", "mine", {"spec": {"target_interactions": "x.csv"}}, "fp"
        ),
        "b_private": store.create_run(
            "popularity", "b-data", {"spec": {**upload["spec"], "owner": "sid-b"}}, "fp", owner=B
        ),
    }
    for name, rid in ids.items():
        store.save_table(rid, "items", pd.DataFrame({"title": [f"secret title of {name}"]}))
        store.heartbeat(rid, {"step": 1})
        store.finish(rid, [], {"total": 1.0})
    return store, ids


def test_a_viewer_sees_only_its_own_private_runs_and_public_ones(tmp_path: Path) -> None:
    store, ids = _private_store(tmp_path)
    as_b = RunStore(store.root, viewer=B)
    assert set(as_b.list_runs()["run_id"]) == {ids["a_demo"], ids["cli"], ids["b_private"]}
    assert set(as_b.list_runs(status="done", owner=A)["run_id"]) == {ids["a_demo"]}
    assert as_b.list_runs(scenario="a-data").empty
    # every read of A's private run is refused as if the store never held it
    rid = ids["a_private"]
    for read in (
        lambda: as_b.get_run(rid),
        lambda: as_b.load_table(rid, "items"),
        lambda: as_b.load_json(rid, "result"),
        lambda: as_b.history(rid),
        lambda: as_b.list_artifacts(rid),
        lambda: as_b.run_dir(rid),
        lambda: as_b.read_log(rid),
    ):
        with pytest.raises(RunNotFoundError):
            read()
    assert as_b.load_table(ids["cli"], "items")["title"].tolist() == ["secret title of cli"]
    # A sees its own; no viewer (the CLI, the worker) sees everything
    as_a = RunStore(store.root, viewer=A)
    assert set(as_a.list_runs()["run_id"]) == set(ids.values()) - {ids["b_private"]}
    assert as_a.load_table(rid, "items")["title"].tolist() == ["secret title of a_private"]
    assert set(store.list_runs()["run_id"]) == set(ids.values())


def test_an_owner_shares_a_scenario_and_takes_it_back(tmp_path: Path) -> None:
    store, ids = _private_store(tmp_path)
    as_a, as_b = RunStore(store.root, viewer=A), RunStore(store.root, viewer=B)
    with pytest.raises(ValueError, match="only the owner"):
        as_b.share_scenario("a-data", A)
    as_a.share_scenario("a-data", A)
    assert as_a.is_shared("a-data", A) and not as_a.is_shared("b-data", B)
    assert ids["a_private"] in set(as_b.list_runs()["run_id"])
    assert as_b.load_table(ids["a_private"], "items")["title"].tolist() == [
        "secret title of a_private"
    ]
    # a run of the shared scenario trained later is shared too
    later = store.create_run("ease", "a-data", {"spec": {"owner": "sid-a"}}, "fp", owner=A)
    assert as_b.get_run(later)["owner"] == A
    as_a.share_scenario("a-data", A, shared=False)
    assert as_b.list_runs(scenario="a-data").empty
    with pytest.raises(RunNotFoundError):
        as_b.get_run(later)


def test_heartbeat_history_in_order(store: RunStore) -> None:
    run_id = store.create_run("fine-tune", "s1", {}, "fp")
    store.set_status(run_id, "running")
    assert store.history(run_id).columns.tolist() == ["seq", "time"]
    for epoch in range(5):
        store.heartbeat(run_id, {"epoch": epoch, "step": 10 * epoch, "loss": 1.0 / (epoch + 1)})
    store.heartbeat(run_id, {"epoch": 5, "val_ndcg@10": 0.07})
    hist = store.history(run_id)
    assert hist["seq"].tolist() == [1, 2, 3, 4, 5, 6]
    assert hist["epoch"].tolist() == [0, 1, 2, 3, 4, 5]
    assert hist["loss"].iloc[:5].tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert np.isnan(hist["loss"].iloc[5]) and hist["val_ndcg@10"].iloc[5] == 0.07
    assert hist["time"].is_monotonic_increasing
    assert store.get_run(run_id)["progress"] == {"epoch": 5, "val_ndcg@10": 0.07}


def test_delete_run_removes_row_folder_and_history(store: RunStore) -> None:
    run_id = store.create_run("fine-tune", "s1", {}, "fp")
    keep = store.create_run("fine-tune", "s1", {}, "fp")
    store.heartbeat(run_id, {"epoch": 0})
    store.save_json(run_id, "x", {"a": 1})
    folder = store.run_dir(run_id)
    store.set_status(run_id, "running")
    with pytest.raises(ValueError, match="still running"):
        store.delete_run(run_id)
    store.set_status(run_id, "cancelled")
    store.delete_run(run_id)
    assert not folder.exists()
    assert store.list_runs()["run_id"].tolist() == [keep]
    con = sqlite3.connect(store.db_path)
    assert (
        con.execute("SELECT COUNT(*) FROM history WHERE run_id = ?", (run_id,)).fetchone()[0] == 0
    )
    con.close()
    with pytest.raises(RunNotFoundError):
        store.get_run(run_id)


# --- artifacts ----------------------------------------------------------------------------


def test_table_round_trip(store: RunStore) -> None:
    run_id = store.create_run("fine-tune", "s1", {}, "fp")
    df = pd.DataFrame(
        {
            "item_id": ["Toy Story (1995)", "Heat (1995)", "Ran (1985)"],
            "score": np.array([0.5, -1.25, 3.0], dtype=np.float32),
            "rank": np.array([1, 2, 3], dtype=np.int64),
            "cold": [False, True, False],
        }
    )
    path = store.save_table(run_id, "top_items", df)
    assert path.name == "top_items.parquet"
    back = store.load_table(run_id, "top_items.parquet")
    pd.testing.assert_frame_equal(back, df)
    # Overwrite replaces atomically: no temp files are left, the new content wins.
    store.save_table(run_id, "top_items", df.iloc[:1])
    assert len(store.load_table(run_id, "top_items")) == 1
    assert store.list_artifacts(run_id) == ["config.json", "top_items.parquet"]


def test_tensor_round_trip_numpy_torch_and_metadata(store: RunStore) -> None:
    run_id = store.create_run("fine-tune", "s1", {}, "fp")
    item = np.arange(12, dtype=np.float32).reshape(4, 3)
    weight = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    tied = weight[:1]  # a view sharing storage with weight: must still save
    store.save_tensors(
        run_id, "stage_source", {"item": item, "w": weight, "tied": tied}, {"stage": "source"}
    )
    back = store.load_tensors(run_id, "stage_source")
    np.testing.assert_array_equal(back["item"], item)
    np.testing.assert_array_equal(back["w"], weight.numpy())
    np.testing.assert_array_equal(back["tied"], [[0.0, 1.0, 2.0]])
    assert back["item"].dtype == np.float32 and back["w"].dtype == np.float64
    pt = store.load_tensors(run_id, "stage_source", framework="pt")
    assert torch.equal(pt["w"], weight)
    assert store.tensor_metadata(run_id, "stage_source") == {"stage": "source"}
    # numpy-only path, no metadata
    store.save_tensors(run_id, "plain", {"ids": np.array([3, 1, 2], dtype=np.int64)})
    np.testing.assert_array_equal(store.load_tensors(run_id, "plain")["ids"], [3, 1, 2])
    assert store.tensor_metadata(run_id, "plain") == {}
    with pytest.raises(ValueError, match="strings to strings"):
        store.save_tensors(run_id, "bad", {"a": item}, {"n": 3})  # type: ignore[dict-item]


def test_json_round_trip_log_and_bad_names(store: RunStore) -> None:
    run_id = store.create_run("fine-tune", "s1", {}, "fp")
    store.save_json(run_id, "summary", {"best_epoch": np.int64(3), "curve": np.array([0.1, 0.2])})
    assert store.load_json(run_id, "summary") == {"best_epoch": 3, "curve": [0.1, 0.2]}
    store.log(run_id, "epoch 1 done")
    store.log(run_id, "two\nlines")
    lines = store.read_log(run_id)
    assert (
        len(lines) == 2 and lines[0].endswith(" epoch 1 done") and lines[1].endswith(" two lines")
    )
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="artifact name"):
            store.save_json(run_id, bad, {})
    with pytest.raises(FileNotFoundError, match=r"no artifact 'missing\.json'"):
        store.load_json(run_id, "missing")


# --- crash safety -------------------------------------------------------------------------


def test_killed_process_leaves_failed_run_and_intact_db(tmp_path: Path) -> None:
    root = tmp_path / "store"
    child = textwrap.dedent(
        f"""
        import os, signal, threading, time
        import pandas as pd
        from recsys_core.runs.store import RunStore

        store = RunStore({str(root)!r})
        run_id = store.create_run("fine-tune", "s1", {{"lr": 0.1}}, "fp")
        store.set_status(run_id, "running")
        store.save_table(run_id, "partial", pd.DataFrame({{"x": [1, 2, 3]}}))
        print(run_id, flush=True)

        def beat():
            i = 0
            while True:  # keep writing so the kill lands in the middle of transactions
                store.heartbeat(run_id, {{"step": i, "loss": 1.0}})
                i += 1

        threading.Thread(target=beat, daemon=True).start()
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_id = proc.stdout.strip()

    store = RunStore(root)
    listed = store.list_runs()
    assert listed["run_id"].tolist() == [run_id]
    assert listed["status"].tolist() == ["failed"]
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"] == INTERRUPTED
    assert run["metrics"] == []
    assert store.history(run_id)["seq"].iloc[-1] >= 1  # the heartbeats that committed survive
    pd.testing.assert_frame_equal(
        store.load_table(run_id, "partial"), pd.DataFrame({"x": [1, 2, 3]})
    )
    assert _integrity(store.db_path) == "ok"
    assert any(INTERRUPTED in line for line in store.read_log(run_id))
    # Reconciling again changes nothing.
    assert store.reconcile() == []


def test_live_runs_are_not_reconciled(store: RunStore) -> None:
    run_id = store.create_run("fine-tune", "s1", {}, "fp")
    store.set_status(run_id, "running")
    assert store.reconcile() == []
    assert store.get_run(run_id)["status"] == "running"


def test_recycled_or_foreign_pid_handling(store: RunStore) -> None:
    recycled = store.create_run("fine-tune", "s1", {}, "fp")
    foreign = store.create_run("fine-tune", "s1", {}, "fp")
    for rid in (recycled, foreign):
        store.set_status(rid, "running")
    con = sqlite3.connect(store.db_path)
    # Our own pid but a different start time: the pid was reused by another process.
    con.execute("UPDATE runs SET pid_start = -1 WHERE run_id = ?", (recycled,))
    # A run owned by another machine cannot be checked: left alone.
    con.execute("UPDATE runs SET hostname = 'elsewhere', pid = 999999 WHERE run_id = ?", (foreign,))
    con.commit()
    con.close()
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        pytest.skip("process start times need /proc")
    assert store.reconcile() == [recycled]
    assert store.get_run(foreign)["status"] == "running"


# --- concurrency --------------------------------------------------------------------------


def test_two_threads_write_concurrently(store: RunStore) -> None:
    runs = [store.create_run("fine-tune", "s1", {}, "fp") for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def worker(run_id: str) -> None:
        try:
            barrier.wait()
            store.set_status(run_id, "running")
            for step in range(60):
                store.heartbeat(run_id, {"step": step})
                if step % 20 == 0:
                    store.save_json(run_id, f"ckpt{step}", {"step": step})
            store.finish(run_id, [{"metric": "ndcg", "value": 0.1}], {"train": 1.0})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    barrier.wait()
    # The "UI thread" reads while the two writers write.
    for _ in range(20):
        store.list_runs()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    for run_id in runs:
        assert store.history(run_id)["step"].tolist() == list(range(60))
        assert store.get_run(run_id)["status"] == "done"
        assert store.list_artifacts(run_id) == [
            "ckpt0.json", "ckpt20.json", "ckpt40.json", "config.json", "metrics.parquet", "result.json"
        ]  # fmt: skip
    assert _integrity(store.db_path) == "ok"
