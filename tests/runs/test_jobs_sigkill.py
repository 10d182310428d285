"""The app's job path survives SIGKILL (issue 12): a server process whose JobManager is
training is killed with no chance to clean up (the OOM killer, ``kill -9``, a pulled
plug). Another process opening the store then finds it consistent: the finished run is
intact, the run that was training and the one still queued are failed with a reason,
the database passes its integrity check, and a new job on the same store trains.

The CLI's path has the same test in ``test_store.py``
(``test_killed_process_leaves_failed_run_and_intact_db``); this one goes through
:class:`~recsys_core.runs.jobs.JobManager`, its worker thread and the pipeline.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd

from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import ScenarioSpec
from recsys_core.runs.jobs import JobManager
from recsys_core.runs.store import INTERRUPTED, RunStore
from tests.runs.test_jobs import request, write_tiny_domain

REPO = Path(__file__).resolve().parents[2]
OWNER = "user-sigkill01"

# The "server": one JobManager (as the app's JobRegistry makes for a browser user) with
# one job of three runs: popularity (finishes), target-only for 2,000 epochs (killed in
# the middle), popularity again (still queued when the process dies). It prints the run
# ids, then waits to be killed.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import ScenarioSpec
    from recsys_core.runs.jobs import JobManager
    from tests.runs.test_jobs import request

    data, root, owner = sys.argv[1:4]
    spec = ScenarioSpec(target_interactions=data, name="tiny", owner="sid-sigkill")
    split = SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3), cold_item_frac=0.1)
    jm = JobManager("sigkill", owner=owner)
    # one worker: the runs go one after the other, so the order above holds
    req = request("popularity", "target-only", "ease", epochs=2000, workers=1)
    job = jm.submit(spec, split, "before-target", req, root)
    print(json.dumps(jm.get(job).run_ids), flush=True)
    time.sleep(600)
    """
)


def _integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def test_sigkill_during_a_job_leaves_a_consistent_store(tmp_path: Path) -> None:
    data = write_tiny_domain(tmp_path / "data")
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(root), OWNER],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.poll() is not None else "no run ids"
        done_id, killed_id, queued_id = json.loads(line)
        store = RunStore(root)
        # Wait for the second run to be well into training (a few epochs committed).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run = store.get_run(killed_id)
            if run["status"] == "running" and run["progress"].get("epoch", 0) >= 3:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        else:
            raise AssertionError(f"target-only never trained: {store.get_run(killed_id)}")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # A fresh store object in this process, as a restarted server opens it.
    store = RunStore(root, viewer=OWNER)
    runs = store.list_runs().set_index("run_id")
    assert set(runs.index) == {done_id, killed_id, queued_id}
    assert runs.loc[done_id, "status"] == "done"
    for rid in (killed_id, queued_id):
        assert runs.loc[rid, "status"] == "failed"
        run = store.get_run(rid)
        assert run["error"] == INTERRUPTED and run["finished_at"] is not None
        assert run["metrics"] == []
        assert any(INTERRUPTED in line for line in store.read_log(rid))
    assert runs.loc[killed_id, "owner"] == OWNER
    # The killed run keeps the heartbeats it committed (its curve up to the kill).
    assert store.history(killed_id)["epoch"].max() >= 3
    # The finished run is whole: metrics, result and tables readable.
    done = store.get_run(done_id)
    assert done["metrics"] and store.load_json(done_id, "result")["metrics"]
    assert not store.load_table(done_id, "metrics").empty
    assert _integrity(store.db_path) == "ok"
    assert store.reconcile() == []  # nothing left to reconcile
    assert not [p for p in (root / killed_id).iterdir() if p.name.endswith(".tmp")]

    # A new job on the same store (a restarted server) trains, and finds the finished
    # popularity run to compare against; the failed runs are never reused.
    spec = ScenarioSpec(target_interactions=str(data), name="tiny", owner="sid-sigkill")
    split = SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3), cold_item_frac=0.1)
    jm = JobManager("after", owner=OWNER)
    job = jm.submit(spec, split, "before-target", request("popularity", "ease"), root)
    assert jm.wait(job, timeout=120)
    new_ids = jm.get(job).run_ids
    assert [store.get_run(r)["status"] for r in new_ids] == ["done", "done"]
    assert killed_id not in new_ids and queued_id not in new_ids
    after = store.list_runs().set_index("run_id")
    assert after.loc[killed_id, "status"] == after.loc[queued_id, "status"] == "failed"
    assert set(after.index) == {done_id, killed_id, queued_id, *new_ids}
    m = pd.DataFrame(store.get_run(new_ids[1])["metrics"])
    ndcg = m.loc[m["metric"] == "ndcg", "value"]
    assert len(ndcg) and ndcg.between(0, 1).all()
