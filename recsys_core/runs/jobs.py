"""Background training jobs for the app: one worker thread per manager, jobs run FIFO.

The app keeps one :class:`JobManager` per *owner*, the browser's user (an opaque token
the app keeps in the page's URL), in a :class:`JobRegistry`: two users never see each
other's jobs, and a user's jobs outlive a page load, so after a reload or in a second
tab the queue, the live progress and Cancel come back. Each run in the store records its
owner. The page never talks to the worker thread about progress: the worker writes
everything (status, heartbeats, results, errors) to the run store and the page polls the
store. Nothing here imports streamlit, and the worker never calls into the UI.

At interpreter exit (a stopped server) every manager with a thread cancels its jobs and
side tasks and joins its threads (``atexit``), so no daemon thread is still inside torch
while the process tears down (which aborted with "terminate called without an active
exception").

Lifecycle of one job (:meth:`JobManager.submit`):

1. At once, in the caller's thread: the scenario is loaded (unless the caller passes the
   one it already holds) and one run per strategy is created in the store with status
   "queued", so a what-if grid shows as a queue before anything trains. If the data
   cannot be loaded, the runs are created and marked failed with the loader's message.
2. In the worker thread, when the job's turn comes,
   :func:`recsys_core.pipeline.run_strategies` trains, evaluates and stores each run;
   the item text is encoded (cached on disk by the engine) as a step of the first run
   that reads it, which shows its progress and is charged its seconds.
3. :meth:`JobManager.cancel` sets the job's event, which the engine polls through
   ``Callbacks.should_cancel``; a queued job is cancelled before it starts.

Where the runs train is the job's executor (:mod:`recsys_core.runs.executor`, issue
14): ``local`` trains in the worker thread, as always; ``ray`` hands each strategy to a
Ray task, and the worker thread drives it (progress into the store, cancel, results
written into the store here). Jobs on Ray do not wait for each other: each gets its own
driver thread, and the cluster's scheduler shares the CPUs and GPUs out.

Side tasks (:meth:`JobManager.start_task`: a UMAP fit, a what-if curve) run in their own
threads and report through a :class:`TaskHandle` (progress kept in memory, a cancel
flag), so they too survive a reload.

Heavy modules (torch, the pipeline) are imported inside the functions that need them so
that importing this module, which the app does on its first page, stays cheap.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import queue
import re
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from recsys_core.errors import DataError

if TYPE_CHECKING:  # imported lazily at run time (torch behind them)
    from recsys_core.data.scenario import Scenario
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import RunRequest, ScenarioSpec
    from recsys_core.runs.executor import Executor, ExecutorConfig

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed", "cancelled"]

ACTIVE = ("queued", "running")
UNAVAILABLE_FINGERPRINT = "unavailable"
"""Data fingerprint of runs whose data could not be loaded."""


def needs_text(request: RunRequest) -> bool:
    """Whether any strategy of ``request`` that will train reads the frozen item text
    vectors (the strategies' own declarations decide: registry.needs_text); a request
    made only of id-only strategies skips the text encoder (tens of seconds the first
    time on a CPU)."""
    from recsys_core.strategies.registry import needs_text as _needs

    return _needs([n for n in request.strategies if n not in request.reuse], request.settings)


@dataclass
class _Job:
    job_id: str
    label: str
    strategies: tuple[str, ...]
    run_ids: list[str]
    store_root: str
    request: Any
    scenario: Any
    submitted_at: float
    cancel_event: threading.Event = field(default_factory=threading.Event)
    executor: Any = None
    """the job's ExecutorConfig (None: the manager's)."""
    state: JobState = "queued"
    phase: str = "queued"
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class JobInfo:
    """A read-only snapshot of one job, safe to hand to the UI thread.

    Attributes:
        job_id: "job-1", "job-2"... (unique within one manager).
        label: what the analyst called it (or the strategies joined by " + ").
        strategies: the strategies of the job, in run order.
        run_ids: the store's run ids, one per strategy, in the same order.
        state: queued, running, done (at least one run finished), failed (none
            finished), cancelled.
        phase: what the worker is doing now ("encode text", "train", ...).
        error: the message when the job failed before or outside any run.
    """

    job_id: str
    label: str
    strategies: tuple[str, ...]
    run_ids: tuple[str, ...]
    store_root: str
    state: JobState
    phase: str
    error: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class JobManager:
    """Runs training jobs one after another in a single background thread.

    One manager per owner (the app's browser user; see :class:`JobRegistry`).
    Thread-safe: ``submit``, ``cancel`` and the read methods may be called from any
    thread. The worker thread is started on the first submit and is a daemon, so it
    never keeps a stopping server alive; at exit :meth:`close` cancels and joins it.

    Args:
        name: names the threads (logs, profilers).
        owner: recorded on every run this manager creates (``RunStore`` column "owner");
            None for a manager that belongs to nobody in particular (tests, scripts).
        executor: where jobs train unless :meth:`submit` says otherwise
            (:class:`~recsys_core.runs.executor.ExecutorConfig`); None: local.
    """

    def __init__(
        self,
        name: str = "session",
        owner: str | None = None,
        executor: ExecutorConfig | None = None,
    ) -> None:
        self.name = name
        self.owner = owner
        self.executor = executor
        self._executors: dict[Any, Executor] = {}
        self._closing = threading.Event()
        self._exit_hook = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._jobs: dict[str, _Job] = {}
        self._counter = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._tasks: dict[str, dict[str, Any]] = {}
        self._device: dict[str, Any] | None = None
        self._device_thread: threading.Thread | None = None
        # Called with (manager, store root, done run ids) after a job that finished runs:
        # the app's managers precompute the Embeddings maps there (issue 13).
        self.after_job: Callable[[JobManager, str, list[str]], Any] | None = None

    # ------------------------------------------------------------------ submitting

    def submit(
        self,
        spec: ScenarioSpec,
        split_config: SplitConfig,
        source_history: str,
        request: RunRequest,
        store_root: str | Path,
        *,
        scenario: Scenario | None = None,
        executor: ExecutorConfig | None = None,
    ) -> str:
        """Queue one job (one run per strategy of ``request``) and return its id.

        Args:
            spec: where the data comes from (recorded in each run's config, so the
                scenario can be rebuilt later).
            split_config, source_history: how the target is split and how much source
                history cold users keep.
            request: strategies, model settings, options, device, bootstrap size.
            store_root: the run store folder the runs land in.
            scenario: the scenario already loaded from ``spec`` with these settings (the
                app's Data page holds one); None loads it here, synchronously.
            executor: where this job trains; None: the manager's executor.

        Returns:
            The job id. The runs exist in the store (status "queued", or "failed" with
            the loader's message when the data could not be loaded) when this returns.
        """
        from recsys_core.runs.store import RunStore

        # planning reuses only runs this owner may read (another user's private run is
        # not offered, issue 12); the runs it creates are its own
        store = RunStore(store_root, viewer=self.owner)
        label = request.label or " + ".join(request.strategies)
        load_error: str | None = None
        if scenario is None:
            try:
                from recsys_core.pipeline import load_scenario

                scenario = load_scenario(spec, split_config, source_history)
            except (DataError, ValueError, OSError) as exc:
                load_error = str(exc)
        if scenario is not None:
            from recsys_core.pipeline import plan_request

            # the baseline suite (and reusable runs) decided once, here, before the runs
            # exist in the store, so the queue shows every run the job will make
            request = plan_request(request, scenario, store)
        run_ids = self._create_runs(store, spec, request, scenario, load_error)
        with self._lock:
            job_id = f"job-{next(self._counter)}"
            job = _Job(
                job_id=job_id,
                label=label,
                strategies=tuple(request.strategies),
                run_ids=run_ids,
                store_root=str(store.root),
                request=request,
                scenario=scenario,
                submitted_at=time.time(),
                executor=executor if executor is not None else self.executor,
            )
            self._jobs[job_id] = job
            if load_error is not None:
                job.state, job.phase, job.error = "failed", "failed", load_error
                job.finished_at = time.time()
                job.scenario = None
                return job_id
            self._ensure_worker()
        self._queue.put(job)
        return job_id

    def _create_runs(
        self,
        store,
        spec: ScenarioSpec,
        request: RunRequest,
        scenario: Scenario | None,
        load_error: str | None,
    ) -> list[str]:
        ids = []
        spec_dict = asdict(spec)
        for name in request.strategies:
            if name in request.reuse:
                ids.append(request.reuse[name])
                continue
            if scenario is not None:
                from recsys_core.pipeline import run_config

                config = {**run_config(scenario, request, name), "spec": spec_dict}
                rid = store.create_run(
                    name,
                    scenario.name,
                    config,
                    scenario.fingerprint(),
                    label=request.label,
                    owner=self.owner,
                )
            else:
                config = {
                    "strategy": name,
                    "options": dict(request.options.get(name) or {}),
                    "settings": asdict(request.settings),
                    "device": request.device,
                    "n_boot": request.n_boot,
                    "spec": spec_dict,
                }
                rid = store.create_run(
                    name,
                    spec.label,
                    config,
                    UNAVAILABLE_FINGERPRINT,
                    label=request.label,
                    owner=self.owner,
                )
                store.fail(rid, load_error or "the data could not be loaded")
            ids.append(rid)
        return ids

    def _ensure_worker(self) -> None:
        """Start the worker thread if it is not running (caller holds the lock)."""
        if self._closing.is_set():
            raise RuntimeError("the server is stopping: no new jobs")
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=self._loop, name=f"rtl-jobs-{self.name}", daemon=True
            )
            self._worker.start()
            self._watch(self._worker)

    def _watch(self, thread: threading.Thread) -> None:
        """Remember a thread for :meth:`close`; the first one registers the exit hook
        (through a weak reference, so the hook never keeps a manager alive)."""
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        if not self._exit_hook:
            atexit.register(_close_at_exit, weakref.ref(self))
            self._exit_hook = True

    # ------------------------------------------------------------------ controlling

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop. A queued job is cancelled at once; a running one stops at
        the engine's next check (within one training step).

        Returns:
            True when the job was queued or running, False when it had already ended.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(f"no job {job_id!r} in this session")
            if job.state not in ("queued", "running"):
                return False
            job.cancel_event.set()
            queued = job.state == "queued"
            if queued:  # ended now; the worker skips it when its turn comes
                job.state, job.phase, job.finished_at = "cancelled", "cancelled", time.time()
        if queued:
            # Show it at once; the worker skips a cancelled job when its turn comes.
            self._mark_open_runs(job, "cancelled", self._why_cancelled(started=False))
        return True

    def shutdown(self, wait: bool = False, timeout: float | None = None) -> None:
        """Cancel every job and stop the worker (tests; the app never needs it)."""
        for info in self.jobs():
            if info.active:
                self.cancel(info.job_id)
        self._queue.put(None)
        if wait and self._worker is not None:
            self._worker.join(timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Cancel every job and side task, stop the worker and wait for the threads.

        Called at interpreter exit for every manager that started a thread: a daemon
        thread still inside torch while Python tears down aborts the process
        ("terminate called without an active exception"). Training stops within one
        step of a cancel; an evaluation under way finishes first.

        Args:
            timeout: seconds to wait for all threads together.

        Returns:
            True when every thread has ended.
        """
        self._closing.set()
        for info in self.jobs():
            if info.active:
                try:
                    self.cancel(info.job_id)
                except Exception:  # pragma: no cover - a store gone at exit
                    log.exception("could not cancel %s", info.job_id)
        with self._lock:
            for t in self._tasks.values():
                t["cancel"].set()
            threads = list(self._threads)
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning("threads still running at exit: %s", ", ".join(alive))
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for ex in executors:  # a Ray started by this process is stopped with it
            try:
                ex.close()
            except Exception:  # pragma: no cover - a cluster gone at exit
                log.exception("could not close the %s executor", ex.name)
        return not alive

    # ------------------------------------------------------------------ reading

    def jobs(self) -> list[JobInfo]:
        """Snapshots of every job of this manager, newest first."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [self._snapshot(j) for j in reversed(jobs)]

    def get(self, job_id: str) -> JobInfo:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(f"no job {job_id!r} in this session")
            return self._snapshot(job)

    def run_ids(self) -> list[str]:
        """Every run id submitted through this manager, oldest first."""
        with self._lock:
            return [r for j in self._jobs.values() for r in j.run_ids]

    def busy(self) -> bool:
        """Whether a job is queued or running."""
        with self._lock:
            return any(j.state in ("queued", "running") for j in self._jobs.values())

    def wait(self, job_id: str | None = None, timeout: float | None = None) -> bool:
        """Block until a job (or every job) has ended; False on timeout. For tests and the CLI."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                jobs = [self._jobs[job_id]] if job_id else list(self._jobs.values())
                done = all(j.state not in ("queued", "running") for j in jobs)
            if done:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    @staticmethod
    def _snapshot(j: _Job) -> JobInfo:
        return JobInfo(
            job_id=j.job_id,
            label=j.label,
            strategies=j.strategies,
            run_ids=tuple(j.run_ids),
            store_root=j.store_root,
            state=j.state,
            phase=j.phase,
            error=j.error,
            submitted_at=j.submitted_at,
            started_at=j.started_at,
            finished_at=j.finished_at,
        )

    # ------------------------------------------------------------------ the worker

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._kind(job) == "ray":  # the cluster schedules: do not wait for it
                t = threading.Thread(
                    target=self._run_guarded, args=(job,), name=f"rtl-ray-{job.job_id}",
                    daemon=True,
                )  # fmt: skip
                with self._lock:
                    self._watch(t)
                t.start()
                continue
            self._run_guarded(job)

    def _run_guarded(self, job: _Job) -> None:
        try:
            self._run(job)
        except Exception:  # pragma: no cover - _run already records every failure
            log.exception("job %s crashed", job.job_id)
        finally:
            job.scenario = None  # let the scenario go once the job is over

    def _set(self, job: _Job, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(job, k, v)

    def _run(self, job: _Job) -> None:
        from recsys_core.runs.store import RunStore

        store = RunStore(job.store_root)
        with self._lock:  # one step with cancel(): a job is either cancelled or started
            skip = job.cancel_event.is_set()
            if not skip:
                job.state, job.phase, job.started_at = "running", "starting", time.time()
        if skip:
            self._mark_open_runs(job, "cancelled", self._why_cancelled(started=False), store)
            self._set(job, state="cancelled", phase="cancelled")
            if job.finished_at is None:
                self._set(job, finished_at=time.time())
            return
        try:
            from recsys_core.training.callbacks import Callbacks, Cancelled
        except Exception as exc:  # a broken installation: say so on every run
            self._fail_job(
                job, store, f"the engine could not be loaded ({type(exc).__name__}: {exc})"
            )
            return

        should_cancel = job.cancel_event.is_set
        request, scn = job.request, job.scenario
        try:
            self._set(job, phase="train")
            executor = self._executor(job)
            # The item text is encoded inside the first run that reads it (its own
            # step, with progress, charged to that run), not up front; on Ray, once in
            # this thread, then shared through the object store.
            (outcomes,) = executor.run_batches(
                scn,
                [(request, list(job.run_ids))],
                store,
                callbacks=Callbacks(should_cancel=should_cancel, log=lambda line: log.info(line)),
                encode_text=needs_text(request),
            )
        except Cancelled:
            self._mark_open_runs(job, "cancelled", self._why_cancelled(), store)
            self._set(job, state="cancelled", phase="cancelled", finished_at=time.time())
            return
        except (DataError, ValueError, RuntimeError, OSError) as exc:
            self._fail_job(job, store, str(exc))
            return
        except Exception as exc:  # a bug: keep the message, log the traceback
            for rid in job.run_ids:
                try:
                    store.log(rid, traceback.format_exc())
                except Exception:  # pragma: no cover
                    pass
            self._fail_job(job, store, f"internal error ({type(exc).__name__}: {exc})")
            return
        # Anything the pipeline left open (it stops at a cancel) is closed here.
        cancelled = job.cancel_event.is_set() or any(o.status == "cancelled" for o in outcomes)
        if cancelled:
            self._mark_open_runs(job, "cancelled", self._why_cancelled(), store)
        else:
            self._mark_open_runs(job, "failed", "the run ended without a result", store)
        statuses = [o.status for o in outcomes]
        if cancelled:
            state: JobState = "cancelled"
        elif "done" in statuses:
            state = "done"
        else:
            state = "failed"
        errors = [o.error for o in outcomes if o.error and o.status == "failed"]
        # The follow-up tasks are queued before the job says "done", so whoever waits for
        # the job finds them (a page would otherwise start the same map a second time).
        if self.after_job is not None and state == "done":
            try:
                self.after_job(
                    self, job.store_root, [o.run_id for o in outcomes if o.status == "done"]
                )
            except Exception:  # the runs are saved: a failed follow-up is only logged
                log.exception("after-job hook of %s failed", job.job_id)
        self._set(
            job,
            state=state,
            phase=state,
            error=errors[0] if state == "failed" and errors else None,
            finished_at=time.time(),
        )

    def _kind(self, job: _Job) -> str:
        """ "local" or "ray": where ``job`` trains."""
        from recsys_core.runs.executor import ExecutorConfig

        return (job.executor or self.executor or ExecutorConfig()).resolved()

    def _executor(self, job: _Job) -> Executor:
        """The executor of ``job``'s config, made once per config and kept (a Ray
        connection is made once per process)."""
        from recsys_core.runs.executor import ExecutorConfig, make_executor

        config = job.executor or self.executor or ExecutorConfig()
        with self._lock:
            ex = self._executors.get(config)
            if ex is None:
                ex = self._executors[config] = make_executor(config)
            return ex

    def _why_cancelled(self, started: bool = True) -> str:
        if self._closing.is_set():
            return "stopped: the server shut down"
        return "cancelled by the user" if started else "cancelled before it started"

    def _fail_job(self, job: _Job, store, message: str) -> None:
        self._mark_open_runs(job, "failed", message, store)
        self._set(job, state="failed", phase="failed", error=message, finished_at=time.time())

    def _mark_open_runs(self, job: _Job, status: str, message: str, store=None) -> None:
        """Move the job's queued or running runs to ``status`` (failed or cancelled)."""
        if store is None:
            from recsys_core.runs.store import RunStore

            store = RunStore(job.store_root)
        # At a server stop, the run the engine itself marked "cancelled by the user" is
        # worded like the others: nobody asked.
        closing = self._closing.is_set() and status == "cancelled"
        open_ = (*ACTIVE, "cancelled") if closing else ACTIVE
        for rid in job.run_ids:
            try:
                if store.get_run(rid)["status"] in open_:
                    store.set_status(rid, status, error=message)  # type: ignore[arg-type]
            except (KeyError, ValueError):
                pass  # deleted, or finished in the meantime: nothing to close

    # ------------------------------------------------------------------ side tasks

    def start_task(self, key: str, fn: Callable[[TaskHandle], Any]) -> bool:
        """Run ``fn(task)`` once in its own daemon thread (a UMAP fit, a what-if curve).

        ``task`` is a :class:`TaskHandle`: ``fn`` reports its progress through
        ``task.report`` and polls ``task.should_cancel`` (or passes ``task.callbacks()``
        to the engine). What ``fn`` returns is kept in this manager's memory (never
        written to disk, so no file can be planted in its place) until
        :meth:`task_result` hands it back; progress too (:meth:`task_progress`), so a
        reloaded page finds both. Returns False when a task with this key is already
        running or has finished (:meth:`discard_task` forgets a finished one).
        """
        from recsys_core.training.callbacks import Cancelled

        with self._lock:
            if self._closing.is_set():
                return False
            if key in self._tasks and self._tasks[key]["state"] in ("running", "done"):
                return False
            handle = TaskHandle(self, key, threading.Event())
            self._tasks[key] = {
                "state": "running",
                "error": None,
                "started": time.time(),
                "result": None,
                "cancel": handle.cancel_event,
                "progress": {"fraction": 0.0, "line": "starting", "seconds": 0.0},
            }

        def target() -> None:
            try:
                value = fn(handle)
                result = {"state": "done", "error": None, "result": value}
            except Cancelled:
                result = {"state": "cancelled", "error": None}
            except Exception as exc:
                log.exception("task %s failed", key)
                result = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
            with self._lock:
                self._tasks[key].update(result, finished=time.time())

        thread = threading.Thread(target=target, name=f"rtl-task-{key[:20]}", daemon=True)
        with self._lock:
            self._watch(thread)
        thread.start()
        return True

    def task_state(self, key: str) -> tuple[str | None, str | None]:
        """(state, error) of a side task: state None (never started), running, done,
        failed, cancelled (stopped before it returned anything)."""
        with self._lock:
            t = self._tasks.get(key)
            return (None, None) if t is None else (t["state"], t["error"])

    def task_result(self, key: str) -> Any:
        """What side task ``key`` returned, or None until it is done (or if it failed)."""
        with self._lock:
            t = self._tasks.get(key)
            return t["result"] if t is not None and t["state"] == "done" else None

    def task_progress(self, key: str) -> dict[str, Any]:
        """The last progress a side task reported: fraction (0..1), line (words),
        seconds since it started, eta_s (seconds left, estimated from the pace so far,
        or None), plus whatever else it reported. {} for an unknown key."""
        with self._lock:
            t = self._tasks.get(key)
            if t is None:
                return {}
            p = dict(t["progress"])
            end = t.get("finished") or time.time()
        p["seconds"] = end - float(t["started"])
        p.setdefault("eta_s", eta_seconds(p["seconds"], p.get("fraction")))
        return p

    def cancel_task(self, key: str) -> bool:
        """Ask a running side task to stop (its ``should_cancel`` turns True)."""
        with self._lock:
            t = self._tasks.get(key)
            if t is None or t["state"] != "running":
                return False
            t["cancel"].set()
            return True

    def task_cancelling(self, key: str) -> bool:
        """Whether a stop was asked for side task ``key``."""
        with self._lock:
            t = self._tasks.get(key)
            return t is not None and t["cancel"].is_set()

    def task_keys(self, prefix: str = "", state: str | None = None) -> list[str]:
        """Keys of this manager's side tasks starting with ``prefix`` (in any state, or
        in ``state``), oldest first: what a reloaded page can find again."""
        with self._lock:
            return [
                k
                for k, t in self._tasks.items()
                if k.startswith(prefix) and (state is None or t["state"] == state)
            ]

    def discard_task(self, key: str) -> None:
        """Forget a side task that is no longer running (so it may be started afresh)."""
        with self._lock:
            t = self._tasks.get(key)
            if t is not None and t["state"] != "running":
                del self._tasks[key]

    def _task_report(self, key: str, info: dict[str, Any]) -> None:
        with self._lock:
            t = self._tasks.get(key)
            if t is not None:
                t["progress"] = {**t["progress"], **info}

    # ------------------------------------------------------------------ device

    def device_info(self) -> dict[str, Any] | None:
        """{"label": "CUDA: NVIDIA H100..." or "CPU (n threads)", "cuda": bool}, or None
        while it is being found out. The first call starts a thread that imports torch,
        so the app's first page never waits for it."""
        with self._lock:
            if self._device is not None:
                return dict(self._device)
            if self._device_thread is None:
                self._device_thread = threading.Thread(
                    target=self._probe_device, name="rtl-device", daemon=True
                )
                self._device_thread.start()
                self._watch(self._device_thread)
        return None

    def _probe_device(self) -> None:
        try:
            import torch

            from recsys_core.training.device import choose_device, describe_device

            info = {
                "label": describe_device(choose_device("auto")),
                "cuda": bool(torch.cuda.is_available()),
            }
        except Exception as exc:  # pragma: no cover - torch missing or broken
            info = {"label": f"unknown ({type(exc).__name__})", "cuda": False}
        with self._lock:
            self._device = info


def eta_seconds(elapsed: float, fraction: float | None) -> float | None:
    """Seconds left at the pace so far (None before there is a pace to go by)."""
    if fraction is None:
        return None
    if fraction >= 1.0:
        return 0.0
    if fraction < 0.01 or elapsed < 1.0:  # too early: the first steps say little
        return None
    return elapsed * (1.0 - fraction) / fraction


@dataclass(frozen=True)
class TaskHandle:
    """What a side task sees of its manager: report progress, ask whether to stop."""

    manager: JobManager
    key: str
    cancel_event: threading.Event

    def report(self, fraction: float | None = None, line: str | None = None, **info: Any) -> None:
        """Record progress: ``fraction`` of the work done (0..1), ``line`` in words,
        ``eta_s`` when the task knows better than the pace so far."""
        upd = dict(info)
        if fraction is not None:
            upd["fraction"] = float(min(max(fraction, 0.0), 1.0))
        if line is not None:
            upd["line"] = str(line)
        self.manager._task_report(self.key, upd)

    def should_cancel(self) -> bool:
        return self.cancel_event.is_set()

    def callbacks(self, log: Callable[[str], None] | None = None):
        """Engine callbacks whose progress events feed :meth:`report`."""
        from recsys_core.training.callbacks import Callbacks

        def on_progress(ev) -> None:
            self.report(ev.fraction, ev.stage)

        return Callbacks(on_progress=on_progress, should_cancel=self.should_cancel, log=log)


def _precompute_maps(jm: JobManager, store_root: str, run_ids: list[str]) -> None:
    """The Embeddings page's UMAP maps of a job's runs, as low-priority side tasks."""
    from recsys_core.embeddings.maps import schedule_maps

    schedule_maps(jm, store_root, run_ids)


def _close_at_exit(ref: weakref.ref) -> None:
    manager = ref()
    if manager is not None:
        manager.close()


OWNER_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
"""What an owner token may look like (the app draws 16 URL-safe characters)."""


class JobRegistry:
    """The JobManagers of one server process, one per owner (a browser user).

    The app keeps a single registry for the whole server (``st.cache_resource``, which
    every session shares), and that is safe only because every lookup is keyed by the
    owner: a session asks for its own user's manager and never sees another's. A
    user's manager outlives their page loads, which is the point: a reload or a second
    tab finds the same queue. Managers are small once their jobs have ended (the
    scenario is dropped), and the registry lives as long as the server.
    """

    def __init__(self, executor: ExecutorConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._managers: dict[str, JobManager] = {}
        self.executor = executor
        """every manager's default executor (the app: "auto", so RAY_ADDRESS decides)."""

    def manager(self, owner: str) -> JobManager:
        """The JobManager of ``owner``, created on first use.

        Raises:
            ValueError: for a token that is not 8-64 letters, digits, "-" or "_".
        """
        if not isinstance(owner, str) or not OWNER_RE.match(owner):
            raise ValueError("an owner is 8-64 letters, digits, '-' or '_'")
        with self._lock:
            jm = self._managers.get(owner)
            if jm is None:
                jm = self._managers[owner] = JobManager(
                    owner[:8], owner=owner, executor=self.executor
                )
                jm.after_job = _precompute_maps
            return jm

    def owners(self) -> list[str]:
        with self._lock:
            return list(self._managers)

    def close(self, timeout: float = 30.0) -> bool:
        """Close every manager (cancel, join); True when every thread has ended."""
        with self._lock:
            managers = list(self._managers.values())
        deadline = time.monotonic() + timeout
        return all([m.close(max(0.0, deadline - time.monotonic())) for m in managers])


__all__ = [
    "JobInfo",
    "JobManager",
    "JobRegistry",
    "TaskHandle",
    "eta_seconds",
    "needs_text",
]
