"""Where independent fits run: in this process (``local``) or on a Ray cluster (``ray``).

Everything that runs several independent fits goes through one :class:`Executor`: the
app's queue (:class:`~recsys_core.runs.jobs.JobManager`), ``transfer-lab run`` with
several strategies or ``--seeds``, ``transfer-lab curve`` and the What-if page (issue 14).
Two operations:

* :meth:`Executor.run_batches`: train, evaluate and store the runs of one or more
  :class:`~recsys_core.runs.plan.RunRequest` on one scenario. ``local`` is exactly
  today's :func:`~recsys_core.pipeline.run_strategies`, one request after another,
  sharing its ``Context.cache`` (source pre-training, target-only's fit) between the
  strategies of a request. ``ray`` sends one task per (request, strategy); each task
  trains with a store that only *records* what it would write
  (:class:`RecordingStore`); the driver replays the record into the real SQLite store,
  so a run trained on a cluster is stored exactly as one trained here.
* :meth:`Executor.map`: ``fn(shared, item, reporter)`` for each item (the what-if curve's
  cells). ``shared`` is what every task reads (scenario, text vectors): under Ray it goes
  into the object store once (``ray.put``), never once per task.

Progress and cancel travel through :class:`Reporter` (what a task sees: ``event`` and
``should_cancel``) and the caller's callbacks (what the driver sees). Under Ray a small
actor (the *hub*) carries the tasks' events back; the driver, polling ``ray.wait``,
drains it and calls the same callbacks the CLI's bar and the app's live panel use, in
the caller's thread. A cancel sets the hub's flag (tasks stop at their next check) and
``ray.cancel``s the tasks; a task whose worker process dies is marked failed with the
reason and the others go on (``max_retries=0``: a fit that killed its worker once would
kill it again).

Nothing here imports Ray unless the ray executor is chosen: :func:`make_executor` with
``local`` (or ``auto`` without ``RAY_ADDRESS``) never touches it, so the extra stays
optional. Ray moves objects between the processes of one cluster with its own
serialisation; nothing is ever written to disk that way (the store stays Parquet,
safetensors, JSON and SQLite).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # torch and the pipeline are imported when a batch runs
    from recsys_core.data.scenario import Scenario
    from recsys_core.pipeline import RunOutcome
    from recsys_core.runs.plan import RunRequest
    from recsys_core.training.callbacks import Callbacks

ExecutorKind = Literal["local", "ray", "auto"]
EXECUTORS: tuple[str, ...] = ("local", "ray", "auto")
TaskStatus = Literal["done", "failed", "cancelled"]

_INIT_LOCK = threading.Lock()
"""ray.init is once per process: two app sessions must not race to it."""

RAY_MISSING = (
    "the ray executor needs Ray: pip install 'recsys-transfer-lab[ray]' "
    "(or pip install ray==2.60.0), or choose --executor local"
)


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor, and what each Ray task reserves. Validates itself.

    Attributes:
        kind: "local" (in this process, one fit after another: the default), "ray", or
            "auto" (ray when the ``RAY_ADDRESS`` environment variable is set, else local).
        address: the Ray cluster to connect to ("ray://head:10001", "auto", "host:6379");
            None: ``RAY_ADDRESS`` when set, else a Ray started on this machine.
        num_cpus: CPUs each Ray task reserves (and the threads torch uses in it).
        num_gpus: GPUs each Ray task reserves; None: 1 when the request's device is
            "cuda" (or "auto" on a cluster with GPUs), else 0.
        local_cpus: CPUs of a Ray started on this machine (None: all of them).
    """

    kind: ExecutorKind = "local"
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float | None = None
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {self.kind!r}")
        if not 0 < float(self.num_cpus) <= 1024:
            raise ValueError(f"num_cpus per task must be in (0, 1024], got {self.num_cpus}")
        if self.num_gpus is not None and not 0 <= float(self.num_gpus) <= 64:
            raise ValueError(f"num_gpus per task must be in [0, 64], got {self.num_gpus}")
        if self.local_cpus is not None and self.local_cpus < 1:
            raise ValueError(f"local_cpus must be >= 1, got {self.local_cpus}")
        if self.address is not None and not str(self.address).strip():
            object.__setattr__(self, "address", None)

    def resolved(self) -> Literal["local", "ray"]:
        """The executor this config picks now ("auto" looks at ``RAY_ADDRESS``)."""
        if self.kind == "auto":
            return "ray" if (self.address or os.environ.get("RAY_ADDRESS")) else "local"
        return self.kind


class Reporter(Protocol):
    """What a task sees of its driver: send an event, ask whether to stop."""

    def event(self, kind: str, payload: dict) -> None: ...

    def should_cancel(self) -> bool: ...


@dataclass
class TaskOutcome:
    """One item's end: its value (done), or why not (failed, cancelled).

    ``started`` says whether the task had begun (a cancel before it started is worded so).
    """

    index: int
    status: TaskStatus
    value: Any = None
    error: str | None = None
    started: bool = True


EventFn = Callable[[int, str, dict], None]
"""on_event(item index, kind, payload), called in the driver's thread."""


class Executor:
    """The seam: :meth:`map` and :meth:`run_batches` (module docstring)."""

    name: str = "local"

    def describe(self) -> str:
        """A few words for logs and the app ("local", "ray at 10.0.0.5:6379 (8 CPUs)")."""
        return self.name

    def map(
        self,
        fn: Callable[[dict, Any, Reporter], Any],
        shared: dict[str, Any],
        items: Sequence[Any],
        *,
        on_event: EventFn | None = None,
        on_result: Callable[[TaskOutcome], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        resources: dict[str, float] | None = None,
    ) -> list[TaskOutcome]:
        """``fn(shared, item, reporter)`` for every item; outcomes in the items' order.

        ``fn`` must be a module-level function (a Ray worker imports it by name).
        ``Cancelled`` raised in ``fn`` ends that item as cancelled and stops the rest;
        any other exception fails that item only. ``on_result`` is called as each item
        ends (out of order under Ray).
        """
        raise NotImplementedError

    def run_batches(
        self,
        scn: Scenario,
        batches: Sequence[tuple[RunRequest, Sequence[str]]],
        store,
        *,
        text=None,
        callbacks: Callbacks | None = None,
        seconds_so_far: dict | None = None,
        encode_text: bool = False,
    ) -> list[list[RunOutcome]]:
        """Train, evaluate and store each batch ``(request, run_ids)`` (runs created
        beforehand, one per strategy of the request, in its order).

        Same contract as :func:`~recsys_core.pipeline.run_strategies` for each batch:
        ``text`` (or ``encode_text``), ``seconds_so_far`` charged to the first run
        trained. Returns the outcomes per batch, in the order of its strategies.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Let go of what this executor holds (nothing for local)."""


# --------------------------------------------------------------------------- local


class _LocalReporter:
    def __init__(self, index: int, on_event: EventFn | None, should_cancel) -> None:
        self.index, self._on_event, self._cancel = index, on_event, should_cancel

    def event(self, kind: str, payload: dict) -> None:
        if self._on_event is not None:
            self._on_event(self.index, kind, payload)

    def should_cancel(self) -> bool:
        return bool(self._cancel is not None and self._cancel())


class LocalExecutor(Executor):
    """Today's behaviour: in this process, one item after another; no new dependency."""

    name = "local"

    def map(self, fn, shared, items, *, on_event=None, on_result=None, should_cancel=None,
            resources=None):  # fmt: skip
        from recsys_core.training.callbacks import Cancelled

        out: list[TaskOutcome] = []
        stop = False
        for i, item in enumerate(items):
            if stop or (should_cancel is not None and should_cancel()):
                stop = True
                o = TaskOutcome(i, "cancelled", error="cancelled before it started", started=False)
            else:
                try:
                    o = TaskOutcome(i, "done", fn(shared, item, _LocalReporter(i, on_event,
                                                                               should_cancel)))  # fmt: skip
                except Cancelled:
                    o, stop = TaskOutcome(i, "cancelled", error="cancelled by the user"), True
                except Exception as exc:  # one broken item must not take the others down
                    o = TaskOutcome(i, "failed", error=f"{type(exc).__name__}: {exc}")
            out.append(o)
            if on_result is not None:
                on_result(o)
        return out

    def run_batches(self, scn, batches, store, *, text=None, callbacks=None,
                    seconds_so_far=None, encode_text=False):  # fmt: skip
        from recsys_core.pipeline import run_strategies
        from recsys_core.training.callbacks import Callbacks

        cb = callbacks or Callbacks()
        pending = dict(seconds_so_far or {})
        out = []
        for request, run_ids in batches:
            if cb.should_cancel is not None and cb.should_cancel():
                out.append(_cancel_unstarted(store, request, run_ids))
                continue
            outcomes = run_strategies(
                scn, request, store, text=text, callbacks=cb, seconds_so_far=pending,
                run_ids=list(run_ids), encode_text=encode_text,
            )  # fmt: skip
            pending = {}
            out.append(outcomes)
        return out


def _cancel_unstarted(store, request, run_ids) -> list[RunOutcome]:
    from recsys_core.pipeline import RunOutcome

    outs = []
    for rid, name in zip(run_ids, request.strategies):
        if request.reuse.get(name) == rid:
            continue
        _close_run(store, rid, "cancelled", "cancelled before it started")
        outs.append(RunOutcome(rid, name, "cancelled", "", {}, [], {}, "cancelled"))
    return outs


def _close_run(store, run_id: str, status: str, message: str) -> None:
    """Move a queued or running run to failed or cancelled (a finished one stays)."""
    try:
        if store.get_run(run_id)["status"] in ("queued", "running"):
            store.set_status(run_id, status, error=message)
    except (KeyError, ValueError):
        pass  # deleted, or finished meanwhile


# --------------------------------------------------------------------------- recording


class RecordingStore:
    """The part of :class:`~recsys_core.runs.store.RunStore` that
    :func:`~recsys_core.pipeline.run_strategies` writes to, recorded instead of written.

    Runs inside a Ray task: "running" and heartbeats go to the driver at once through
    the reporter (the app's live panel), everything else (tables, tensors, the log,
    finish or fail) is kept in :attr:`ops` and returned; :func:`replay` writes it into
    the real store, in order, in the driver.
    """

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.ops: list[tuple] = []

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        if status == "running":
            self.reporter.event("running", {"run_id": run_id})
        else:
            self.ops.append(("set_status", run_id, status, error))

    def heartbeat(self, run_id: str, progress: dict) -> None:
        self.reporter.event("progress", {"run_id": run_id, "progress": dict(progress)})

    def log(self, run_id: str, line: str) -> None:
        self.ops.append(("log", run_id, line))

    def fail(self, run_id: str, error: str) -> None:
        self.ops.append(("set_status", run_id, "failed", str(error)))

    def finish(self, run_id, metrics_records, seconds, extra=None) -> None:
        self.ops.append(("finish", run_id, list(metrics_records), dict(seconds), dict(extra or {})))

    def save_table(self, run_id: str, name: str, df) -> None:
        self.ops.append(("save_table", run_id, name, df))

    def save_tensors(self, run_id: str, name: str, tensors, metadata=None) -> None:
        import numpy as np

        arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in tensors.items()}
        self.ops.append(("save_tensors", run_id, name, arrays, metadata))


def replay(store, ops: Sequence[tuple]) -> None:
    """Write a :class:`RecordingStore`'s record into ``store``, in order. A run closed in
    the meantime (cancelled from the app while its result travelled) stays closed."""
    for op in ops:
        kind, rid = op[0], op[1]
        try:
            if kind == "save_table":
                store.save_table(rid, op[2], op[3])
            elif kind == "save_tensors":
                store.save_tensors(rid, op[2], op[3], op[4])
            elif kind == "log":
                store.log(rid, op[2])
            elif kind == "finish":
                store.finish(rid, op[2], op[3], extra=op[4])
            elif kind == "set_status":
                store.set_status(rid, op[2], error=op[3])
        except (KeyError, ValueError):
            pass  # the run was deleted, or closed meanwhile: its status stands


def _run_task(shared: dict, item: dict, reporter: Reporter) -> dict:
    """One strategy of one request, trained where the task runs (a Ray worker).

    Returns the worker's outcome (JSON) and the store operations to replay."""
    from recsys_core.pipeline import run_strategies
    from recsys_core.training.callbacks import Callbacks

    rec = RecordingStore(reporter)
    outcomes = run_strategies(
        shared["scenario"],
        item["request"],
        rec,
        text=shared.get("text"),
        callbacks=Callbacks(should_cancel=reporter.should_cancel),
        seconds_so_far=item["seconds"],
        run_ids=[item["run_id"]],
    )
    return {"outcome": outcomes[0].to_json(), "ops": rec.ops}


# --------------------------------------------------------------------------- ray


class RayExecutor(Executor):
    """Ray core tasks, one per fit, each with its own CPU/GPU reservation.

    Connects on first use: to ``config.address`` or ``RAY_ADDRESS``, else it starts a
    Ray on this machine (shut down by :meth:`close`). A Ray already initialised in
    this process (a test, a notebook) is used as it is.
    """

    name = "ray"
    run_task = staticmethod(_run_task)
    """What a run's task does in the worker (a test swaps in one that kills its worker)."""
    cancel_grace_s = 20.0
    """After a cancel, seconds to wait for the tasks to stop before forcing them."""

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        self.config = config or ExecutorConfig(kind="ray")
        self._started_here = False

    # -------------------------------------------------------------- connection
    def _ray(self):
        try:
            import ray
        except ImportError as exc:  # the extra is not installed
            raise RuntimeError(RAY_MISSING) from exc
        with _INIT_LOCK:
            if not ray.is_initialized():
                self._init(ray)
        return ray

    def _init(self, ray) -> None:
        address = self.config.address or os.environ.get("RAY_ADDRESS")
        if address:
            try:
                ray.init(address=address, log_to_driver=False)
            except Exception as exc:  # unreachable, refused, other Ray version...
                from recsys_core.errors import DataError

                raise DataError(
                    f"could not reach the Ray cluster at {address} ({type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})",
                    hint="Check --ray-address or RAY_ADDRESS, or train with --executor local",
                ) from exc
            return
        # workers import this very package: the folder above it goes first on their
        # path (a local Ray only; a cluster has the package installed)
        root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        ray.init(
            address="local",  # a new Ray, never a stray `ray start` of this machine
            num_cpus=self.config.local_cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
        self._started_here = True

    def describe(self) -> str:
        ray = self._ray()
        res = ray.cluster_resources()
        gpus = f", {res['GPU']:g} GPUs" if res.get("GPU") else ""
        where = self.config.address or os.environ.get("RAY_ADDRESS") or "this machine"
        return f"ray at {where} ({res.get('CPU', 0):g} CPUs{gpus})"

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False

    def gpus_for(self, device: str) -> float:
        """GPUs a task of a request on ``device`` reserves (config.num_gpus wins)."""
        if self.config.num_gpus is not None:
            return float(self.config.num_gpus)
        if device == "cuda":
            return 1.0
        if device == "auto":
            return 1.0 if self._ray().cluster_resources().get("GPU", 0) >= 1 else 0.0
        return 0.0

    # -------------------------------------------------------------- map
    def map(self, fn, shared, items, *, on_event=None, on_result=None, should_cancel=None,
            resources=None):  # fmt: skip
        ray = self._ray()
        res = {"num_cpus": self.config.num_cpus, "num_gpus": 0.0, **(resources or {})}
        items = list(items)
        per_item = [dict(res) for _ in items]
        return self._submit(ray, fn, shared, items, per_item, on_event, on_result, should_cancel)

    def _submit(self, ray, fn, shared, items, per_item, on_event, on_result, should_cancel):
        hub = _hub_class(ray).remote()
        keys = list(shared)
        refs_shared = [ray.put(shared[k]) for k in keys]  # once, not once per task
        task = ray.remote(_ray_entry)
        refs = []
        for i, item in enumerate(items):
            r = per_item[i]
            threads = max(1, int(r["num_cpus"]))
            refs.append(
                task.options(num_cpus=r["num_cpus"], num_gpus=r["num_gpus"], max_retries=0)
                .remote(fn, keys, item, i, hub, threads, _engine_id(), *refs_shared)
            )  # fmt: skip
        index = {ref: i for i, ref in enumerate(refs)}
        outcomes: dict[int, TaskOutcome] = {}
        started: set[int] = set()
        pending = list(refs)
        cancel_at: float | None = None

        def deliver(events) -> None:
            for i, kind, payload in events:
                if kind == "_started":
                    started.add(i)
                elif i not in outcomes and on_event is not None:
                    on_event(i, kind, payload)

        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                deliver(ray.get(hub.drain.remote()))
                for ref in ready:
                    i = index[ref]
                    outcomes[i] = self._settle(ray, ref, i, i in started)
                    if on_result is not None:
                        on_result(outcomes[i])
                if cancel_at is None and should_cancel is not None and should_cancel():
                    cancel_at = time.monotonic()
                    ray.get(hub.cancel.remote())
                    for ref in pending:  # queued ones never start; running ones see the flag
                        if index[ref] not in started:
                            ray.cancel(ref, force=False)
                elif cancel_at is not None and time.monotonic() - cancel_at > self.cancel_grace_s:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    cancel_at = float("inf")
            deliver(ray.get(hub.drain.remote()))
        finally:  # leaving early (a callback raised, Ctrl-C): nothing keeps running
            for ref in pending:
                ray.cancel(ref, force=True)
            ray.kill(hub)
        return [outcomes[i] for i in range(len(items))]

    @staticmethod
    def _settle(ray, ref, i: int, started: bool) -> TaskOutcome:
        from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

        try:
            status, value = ray.get(ref)
        except TaskCancelledError:
            why = "cancelled by the user" if started else "cancelled before it started"
            return TaskOutcome(i, "cancelled", error=why, started=started)
        except WorkerCrashedError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return TaskOutcome(
                i, "failed", error=f"the Ray worker running it died ({first})".replace(" ()", "")
            )
        except RayTaskError as exc:  # an error outside fn (deserialising the inputs...)
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return TaskOutcome(i, "failed", error=f"{type(cause).__name__}: {cause}")
        except Exception as exc:  # the node went away, the object was lost...
            return TaskOutcome(i, "failed", error=f"Ray: {type(exc).__name__}: {exc}")
        if status == "done":
            return TaskOutcome(i, "done", value)
        if status == "cancelled":
            return TaskOutcome(i, "cancelled", error="cancelled by the user")
        return TaskOutcome(i, "failed", error=str(value))

    # -------------------------------------------------------------- runs
    def run_batches(self, scn, batches, store, *, text=None, callbacks=None,
                    seconds_so_far=None, encode_text=False):  # fmt: skip
        from recsys_core.pipeline import RunOutcome, _reused_outcome, encode_scenario_text
        from recsys_core.strategies.registry import needs_text
        from recsys_core.training.callbacks import Callbacks, ProgressEvent
        from recsys_core.training.device import choose_device

        cb = callbacks or Callbacks()
        ray = self._ray()
        charged = dict(seconds_so_far or {})
        tasks: list[dict] = []  # one per strategy to train
        slots: list[list] = []  # per batch: RunOutcome or the task's index
        for request, run_ids in batches:
            row = []
            for rid, name in zip(run_ids, request.strategies):
                if request.reuse.get(name) == rid:
                    row.append(_reused_outcome(store, rid, name))
                    continue
                single = replace(request, strategies=(name,), reuse={}, baselines="none")
                tasks.append({"request": single, "run_id": rid, "name": name, "seconds": {}})
                row.append(len(tasks) - 1)
            slots.append(row)
        reads = [t for t in tasks if needs_text([t["name"]], t["request"].settings)]
        if text is None and encode_text and reads:
            # encoded once, here, then shared through the object store; charged to the
            # first run that reads it, as in-process
            t_enc = time.perf_counter()
            device = choose_device(tasks[0]["request"].device).type
            text = encode_scenario_text(scn, device, cb)
            charged["encode_text"] = time.perf_counter() - t_enc
        if tasks:
            enc = charged.pop("encode_text", None)
            payer = reads[0] if reads else tasks[0]
            tasks[0]["seconds"].update(charged)
            if enc is not None:
                payer["seconds"]["encode_text"] = enc
        latest: dict[int, float] = {}
        ids = [t["run_id"] for t in tasks]

        def on_event(i: int, kind: str, payload: dict) -> None:
            rid = ids[i]
            try:
                if kind == "running":
                    store.set_status(rid, "running")
                elif kind == "progress":
                    store.heartbeat(rid, payload["progress"])
                    latest[i] = float(payload["progress"].get("fraction") or 0.0)
            except (KeyError, ValueError):
                return  # deleted or closed meanwhile
            if kind == "progress":
                done = sum(latest.values())
                cb.progress(ProgressEvent(
                    stage=f"train {len(tasks)} runs on Ray",
                    step=len([v for v in latest.values() if v >= 1.0]),
                    fraction=done / max(len(tasks), 1),
                ))  # fmt: skip

        def on_result(o: TaskOutcome) -> None:
            t = tasks[o.index]
            latest[o.index] = 1.0
            if o.status == "done":
                replay(store, o.value["ops"])
            else:
                status = "cancelled" if o.status == "cancelled" else "failed"
                _close_run(store, t["run_id"], status, o.error or status)

        per_item = [
            {"num_cpus": self.config.num_cpus, "num_gpus": self.gpus_for(t["request"].device)}
            for t in tasks
        ]
        shared = {"scenario": scn, "text": text}
        results = self._submit(ray, self.run_task, shared, tasks, per_item, on_event, on_result,
                               cb.should_cancel)  # fmt: skip
        out = []
        for row in slots:
            batch = []
            for s in row:
                if not isinstance(s, int):
                    batch.append(s)
                    continue
                o, t = results[s], tasks[s]
                if o.status == "done":
                    batch.append(RunOutcome(**o.value["outcome"]))
                else:
                    batch.append(RunOutcome(t["run_id"], t["name"], o.status, "", {}, [], {},
                                            o.error))  # fmt: skip
            out.append(batch)
        return out


def _engine_id() -> str:
    """This package's version and engine version: a worker with other code would give
    other figures under the same run config."""
    from recsys_core import __version__
    from recsys_core.runs.plan import ENGINE_VERSION

    return f"recsys-transfer-lab {__version__}, engine {ENGINE_VERSION}"


def _ray_entry(fn, keys, item, index, hub, threads, engine, *shared_values):
    """What a Ray worker runs: ``fn`` with a reporter wired to the hub actor.

    Returns ("done", value), ("cancelled", None) or ("failed", message): an exception
    in ``fn`` is an outcome, not a Ray error, so the driver tells it from a dead worker.
    A worker whose installed package differs from the driver's refuses (``engine``).
    """
    import ray

    if _engine_id() != engine:
        return "failed", (
            f"the Ray worker has {_engine_id()}, the app {engine}: install the same "
            "version on the cluster's nodes"
        )

    try:
        import torch

        torch.set_num_threads(threads)  # the task's CPU reservation, not the node's
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    from recsys_core.training.callbacks import Cancelled

    reporter = _RayReporter(ray, hub, index)
    reporter.event("_started", {})
    shared = dict(zip(keys, shared_values))
    try:
        out = "done", fn(shared, item, reporter)
    except Cancelled:
        out = "cancelled", None
    except Exception as exc:
        out = "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
    reporter.flush(wait=True)
    return out


class _RayReporter:
    """Events to the hub in small batches (at most five calls a second, at once for
    anything but progress); the cancel flag read at most twice a second."""

    poll_s = 0.5
    flush_s = 0.2

    def __init__(self, ray, hub, index: int) -> None:
        self._ray, self._hub, self.index = ray, hub, index
        self._checked, self._cancelled = 0.0, False
        self._buffer: list = []
        self._flushed = time.monotonic()

    def event(self, kind: str, payload: dict) -> None:
        self._buffer.append((self.index, kind, payload))
        if kind != "progress" or time.monotonic() - self._flushed >= self.flush_s:
            self.flush()

    def flush(self, wait: bool = False) -> None:
        """Send the buffered events; ``wait``: until the hub has them all (a task's
        events arrive before its result: one caller's actor calls run in order)."""
        if self._buffer or wait:  # waiting on an empty call still waits for the earlier
            ref = self._hub.push_many.remote(self._buffer)
            self._buffer = []
            if wait:
                self._ray.get(ref)
        self._flushed = time.monotonic()

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._checked >= self.poll_s:
            self._checked = now
            self._cancelled = bool(self._ray.get(self._hub.cancelled.remote()))
        return self._cancelled


class _Hub:
    """The actor between the tasks and the driver: events in, events out, a cancel flag."""

    def __init__(self) -> None:
        self.events: list = []
        self.flag = False

    def push_many(self, events: list) -> None:
        self.events.extend(events)

    def drain(self) -> list:
        out, self.events = self.events, []
        return out

    def cancel(self) -> None:
        self.flag = True

    def cancelled(self) -> bool:
        return self.flag


def _hub_class(ray):
    return ray.remote(num_cpus=0)(_Hub)


# --------------------------------------------------------------------------- choosing


def ray_installed() -> bool:
    """Whether the ray extra is installed (looked up, not imported)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def app_choices() -> tuple[list[str], str]:
    """(the executors the app offers, the one it starts on): "local" always, "ray" when
    the extra is installed; "ray" first when ``RAY_ADDRESS`` is set (auto)."""
    offered = ["local"] + (["ray"] if ray_installed() else [])
    auto = ExecutorConfig(kind="auto").resolved()
    return offered, "ray" if "ray" in offered and auto == "ray" else "local"


def make_executor(config: ExecutorConfig | str | None = None) -> Executor:
    """The executor a config (or a kind: "local", "ray", "auto") picks.

    Raises:
        RuntimeError: ray chosen (or auto with ``RAY_ADDRESS``) and Ray not installed.
    """
    if config is None:
        config = ExecutorConfig()
    elif isinstance(config, str):
        config = ExecutorConfig(kind=config)  # type: ignore[arg-type]
    if config.resolved() == "local":
        return LocalExecutor()
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(RAY_MISSING) from exc
    return RayExecutor(config)


__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorConfig",
    "LocalExecutor",
    "RayExecutor",
    "RecordingStore",
    "Reporter",
    "TaskOutcome",
    "app_choices",
    "make_executor",
    "ray_installed",
    "replay",
]
