"""The executor seam (issue 14): local is today's behaviour and needs no Ray; ray gives
the same metrics, writes the same store, survives a dead worker and cancels.

The Ray tests start a local Ray of two CPUs once for the module and skip, with a
message, when the ``ray`` extra is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.runs.executor import (
    ExecutorConfig,
    LocalExecutor,
    RecordingStore,
    make_executor,
    replay,
)
from recsys_core.runs.plan import RunRequest
from recsys_core.runs.seeds import create_runs, repeat_over_seeds
from recsys_core.runs.store import RunStore
from recsys_core.strategies.base import ModelSettings
from recsys_core.training.callbacks import Callbacks, Cancelled
from tests.toy import toy_pair

ROOT = Path(__file__).resolve().parents[2]
CONFIG = SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1, cold_ks=(0, 1, 3), seed=0)
SETTINGS = ModelSettings(model="two-tower", dim=8, epochs=2, batch_size=256, patience=1000)
ID_ONLY = ("popularity", "ease", "ials", "target-only")


@pytest.fixture(scope="module")
def scn():
    src, tgt = toy_pair()
    return build_scenario(tgt, src, CONFIG)


def request(*names: str, settings: ModelSettings = SETTINGS) -> RunRequest:
    return RunRequest(strategies=names, settings=settings, baselines="none", n_boot=50)


def metrics_of(store: RunStore, run_ids) -> dict:
    out = {}
    for rid in run_ids:
        r = store.get_run(rid)
        out[r["strategy"]] = sorted(
            (m["segment"], m["metric"], m["k"], m["value"], m["ci_low"], m["ci_high"])
            for m in r["metrics"]
        )
    return out


def assert_store_consistent(store: RunStore) -> None:
    """Nothing left queued or running; a done run has its results, the others a reason."""
    for r in store.list_runs().to_dict("records"):
        run = store.get_run(r["run_id"])
        assert run["status"] in ("done", "failed", "cancelled"), run["status"]
        if run["status"] == "done":
            assert run["metrics"] and "per_user" in " ".join(store.list_artifacts(r["run_id"]))
        else:
            assert run["error"], run


# --------------------------------------------------------------------------- no Ray


def assert_prints_ok(code: str, env: dict[str, str]) -> None:
    """Run ``code`` in a fresh interpreter (this checkout first on the path): exit 0, "ok"."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_nothing_imports_ray_unless_it_is_chosen():
    code = """
import sys
from recsys_core.cli import build_parser, main
import recsys_core.pipeline, recsys_core.curves, recsys_core.compare
from recsys_core.runs.jobs import JobManager, JobRegistry
from recsys_core.runs.executor import ExecutorConfig, make_executor
build_parser()  # every command's flags, --executor included
ex = make_executor(ExecutorConfig(kind="auto"))
assert ex.name == "local", ex.name
JobRegistry(ExecutorConfig(kind="auto")).manager("owner-token-1")
assert "ray" not in sys.modules, "ray was imported"
print("ok")
"""
    assert_prints_ok(code, {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})


def test_auto_follows_ray_address_and_config_checks(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ExecutorConfig(kind="auto").resolved() == "local"
    assert ExecutorConfig(kind="auto", address="ray://head:10001").resolved() == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert ExecutorConfig(kind="auto").resolved() == "ray"
    assert ExecutorConfig(kind="local").resolved() == "local"
    with pytest.raises(ValueError, match="executor must be one of"):
        ExecutorConfig(kind="dask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_cpus"):
        ExecutorConfig(kind="ray", num_cpus=0)


def test_without_ray_the_ray_executor_is_refused_with_the_fix():
    code = """
import sys, argparse
sys.modules["ray"] = None  # as if the extra were not installed
from recsys_core.runs.executor import make_executor
from recsys_core.cli.executing import executor_config
from recsys_core.errors import DataError
try:
    make_executor("ray")
except RuntimeError as exc:
    assert "pip install" in str(exc), exc
else:
    raise SystemExit("no error")
ns = argparse.Namespace(executor="ray", ray_address=None, ray_cpus=1.0, ray_gpus=None)
try:
    executor_config(ns)
except DataError as exc:
    assert "not installed" in str(exc), exc
else:
    raise SystemExit("no error from the CLI")
print("ok")
"""
    assert_prints_ok(code, dict(os.environ))


def _double(shared, item, reporter):
    reporter.event("seen", {"item": item})
    if item == 2:
        raise ValueError("two is refused")
    if item == 4:
        raise Cancelled("stop")
    return item * shared["k"]


def test_local_map_keeps_order_isolates_failures_and_stops_at_a_cancel():
    events, results = [], []
    out = LocalExecutor().map(
        _double,
        {"k": 10},
        [0, 1, 2, 3, 4, 5],
        on_event=lambda i, kind, p: events.append((i, kind, p["item"])),
        on_result=lambda o: results.append(o.index),
    )
    assert [o.status for o in out] == ["done", "done", "failed", "done", "cancelled", "cancelled"]
    assert [o.value for o in out[:2]] + [out[3].value] == [0, 10, 30]
    assert out[2].error == "ValueError: two is refused"
    assert not out[5].started and out[5].error == "cancelled before it started"
    assert events == [(i, "seen", i) for i in range(5)]  # item 5 never ran
    assert results == [0, 1, 2, 3, 4, 5]


def test_recording_store_replays_into_the_real_store(tmp_path, scn):
    """What a Ray task records is what the driver writes: same tables, same result."""
    store = RunStore(tmp_path / "store")
    req = request("popularity")
    (rid,) = create_runs(store, scn, req)
    sent = []

    class Rep:
        def event(self, kind, payload):
            sent.append(kind)

        def should_cancel(self):
            return False

    from recsys_core.pipeline import run_strategies

    rec = RecordingStore(Rep())
    (o,) = run_strategies(scn, req, rec, run_ids=[rid])
    assert store.get_run(rid)["status"] == "queued"  # nothing written yet
    assert sent[0] == "running" and "progress" in sent
    replay(store, rec.ops)
    run = store.get_run(rid)
    assert run["status"] == "done" and run["metrics"] == o.metrics
    assert {"per_user.parquet", "topk.parquet", "items.parquet"} <= set(store.list_artifacts(rid))


def test_a_run_that_encodes_its_text_gets_the_exposure_choice_too(tmp_path, scn, monkeypatch):
    """The app's queue encodes inside the first run (encode_text=True); the CLI hands the
    vectors in. Both must give the same run, exposure choice included (it was skipped on
    the app's path, so a Ray run, handed the vectors, differed from a local one)."""
    from recsys_core import pipeline
    from tests.toy import toy_text

    monkeypatch.setattr(pipeline, "encode_scenario_text", lambda s, *a, **k: toy_text(s.item_ids))
    r = RunRequest(strategies=("target-only",), settings=SETTINGS, baselines="none", n_boot=20)
    (own,) = pipeline.run_strategies(scn, r, RunStore(tmp_path / "a"), encode_text=True)
    (given,) = pipeline.run_strategies(
        scn, r, RunStore(tmp_path / "b"), text=toy_text(scn.item_ids)
    )
    assert "exposure" in given.info
    assert own.info["exposure"] == given.info["exposure"]
    assert own.metrics == given.metrics


def test_seeds_repeat_the_model_seed_only(scn):
    req = request("popularity", "ease")
    reqs = repeat_over_seeds(req, (0, 1, 2))
    assert [r.settings.seed for r in reqs] == [0, 1, 2]
    assert all(r.strategies == req.strategies and r.settings.dim == 8 for r in reqs)
    assert repeat_over_seeds(req, None) == [req]
    with pytest.raises(ValueError, match="twice"):
        repeat_over_seeds(req, (1, 1))


# --------------------------------------------------------------------------- Ray

HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of two CPUs for the module (skipped, saying why, without the extra)."""
    if not HAS_RAY:
        pytest.skip("the ray extra is not installed (pip install '.[ray]'): Ray tests skipped")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture()
def one_thread():
    """Both executors with one torch thread per fit: iALS's float sums depend on the
    thread count, and identical means identical."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ray_map_ships_shared_once_and_survives_a_dead_worker(local_ray):
    from tests.runs.ray_tasks import square

    seen, results = [], []
    ex = make_executor(ExecutorConfig(kind="ray"))
    out = ex.map(
        square,
        {"offset": 1},
        [1, 2, 3, 4, 5, 6],
        on_event=lambda i, kind, p: seen.append(p["item"]),
        on_result=lambda o: results.append(o.index),
    )
    assert [o.status for o in out] == ["done", "done", "failed", "done", "failed", "done"]
    assert [out[i].value for i in (0, 1, 3, 5)] == [2, 5, 17, 37]
    assert out[2].error.startswith("ValueError: three is refused")
    assert "worker" in out[4].error and "died" in out[4].error
    assert sorted(results) == list(range(6))
    assert {1, 2, 3, 4, 6} <= set(seen)


def test_same_metrics_and_store_under_local_and_ray(local_ray, one_thread, tmp_path, scn):
    req = request(*ID_ONLY)
    stores, ids = {}, {}
    for kind in ("local", "ray"):
        stores[kind] = RunStore(tmp_path / kind)
        ids[kind] = create_runs(stores[kind], scn, req)
        events = []
        ex = make_executor(ExecutorConfig(kind=kind))
        (outs,) = ex.run_batches(
            scn, [(req, ids[kind])], stores[kind], callbacks=Callbacks(on_progress=events.append)
        )
        assert [o.status for o in outs] == ["done"] * len(ID_ONLY)
        assert events and max(e.fraction for e in events) <= 1.0
    assert metrics_of(stores["local"], ids["local"]) == metrics_of(stores["ray"], ids["ray"])
    for a, b in zip(ids["local"], ids["ray"]):
        pd.testing.assert_frame_equal(
            stores["local"].load_table(a, "per_user"), stores["ray"].load_table(b, "per_user")
        )
        assert stores["local"].list_artifacts(a) == stores["ray"].list_artifacts(b)
        ra, rb = stores["local"].get_run(a), stores["ray"].get_run(b)
        assert ra["config"] == rb["config"] and ra["data_fingerprint"] == rb["data_fingerprint"]
        assert len(stores["ray"].history(b)) > 0  # the live panel's heartbeats arrived
    assert_store_consistent(stores["ray"])


def test_curve_is_the_same_under_local_and_ray(local_ray, one_thread, scn):
    from recsys_core.curves import what_if_curve

    kw = dict(draws=2, seed=0, n_boot=100, options={"mapping": {"tune_target": False}})
    args = (scn, "warm_users", [10, None], ["mapping"], ["popularity", "ease"],
            ModelSettings(model="ials"))  # fmt: skip
    local = what_if_curve(*args, **kw)
    fits = []
    ray_df = what_if_curve(
        *args, **kw, executor=make_executor("ray"), on_fit=fits.append
    )  # fmt: skip
    pd.testing.assert_frame_equal(local, ray_df)
    assert len(fits) == 2 * 2 * 3 and {f["total"] for f in fits} == {12}


def test_a_dead_worker_fails_its_run_and_the_others_finish(local_ray, tmp_path, scn):
    from tests.runs.ray_tasks import dies_on_ease

    store = RunStore(tmp_path / "store")
    req = request("popularity", "ease", "ials")
    run_ids = create_runs(store, scn, req)
    ex = make_executor(ExecutorConfig(kind="ray"))
    ex.run_task = dies_on_ease
    (outs,) = ex.run_batches(scn, [(req, run_ids)], store)
    by = {o.strategy: o for o in outs}
    assert by["popularity"].status == by["ials"].status == "done"
    assert by["ease"].status == "failed"
    ease = store.get_run(run_ids[1])
    assert ease["status"] == "failed" and "worker" in ease["error"] and "died" in ease["error"]
    assert_store_consistent(store)


def test_cancel_from_the_app_cancels_the_ray_tasks(local_ray, tmp_path, scn):
    """The app's path: a JobManager on Ray, Cancel while the runs train."""
    from recsys_core.data.spec import ScenarioSpec
    from recsys_core.runs.jobs import JobManager

    # bpr-mf reads no text (no text model loads). 500 epochs took 5 s here, a small margin
    # for Cancel to land in (the app's Ray test lost that race once in CI): 10,000 epochs
    # with patience 0 (never stop early) take well over a minute unless cancelled.
    slow = ModelSettings(model="bpr-mf", dim=8, epochs=10_000, batch_size=16, patience=0)
    req = request("popularity", "target-only", settings=slow)
    from recsys_core.runs.jobs import needs_text

    assert not needs_text(req)
    jm = JobManager("t", executor=ExecutorConfig(kind="ray"))
    root = tmp_path / "store"
    spec = ScenarioSpec(target_interactions="unused.csv", name="toy")
    job = jm.submit(spec, CONFIG, "before-target", req, root, scenario=scn)
    store = RunStore(root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until a run trains on a worker
        runs = [store.get_run(r) for r in jm.get(job).run_ids]
        if any(r["status"] == "running" and r.get("progress") for r in runs):
            break
        time.sleep(0.2)
    else:
        pytest.fail("no run started on Ray")
    t0 = time.monotonic()
    assert jm.cancel(job)
    assert jm.wait(job, timeout=60), "the job did not stop"
    assert time.monotonic() - t0 < 30
    info = jm.get(job)
    assert info.state == "cancelled"
    statuses = {store.get_run(r)["status"] for r in info.run_ids}
    assert "done" not in statuses or statuses <= {"done", "cancelled"}
    assert "cancelled" in statuses
    assert_store_consistent(store)
    assert not [t for t in threading.enumerate() if t.name.startswith("rtl-ray-")]
    jm.close()


def test_cli_run_on_ray_with_seeds(local_ray, tmp_path, toy_files, capsys):
    """``transfer-lab run --executor ray --seeds 0,1``: every run on Ray, one per seed,
    in the store like any other (the CLI leaves a Ray it did not start running)."""
    import json

    import ray

    from recsys_core.cli import main

    store = str(tmp_path / "store")
    code = main(
        ["run", "--target", toy_files["target"], "--strategy", "popularity,ease",
         "--cold-ks", "0,1,3", "--n-boot", "20", "--device", "cpu", "--store", store,
         "--json", "--quiet", "--baselines", "none", "--seeds", "0,1", "--executor", "ray"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = [json.loads(x) for x in out.out.strip().splitlines()]
    assert [(x["strategy"], x["status"]) for x in lines] == [
        ("popularity", "done"), ("ease", "done"), ("popularity", "done"), ("ease", "done")
    ]  # fmt: skip
    rs = RunStore(store)
    assert [rs.get_run(x["run_id"])["config"]["settings"]["seed"] for x in lines] == [0, 0, 1, 1]
    assert ray.is_initialized()
