"""Fitting the independent runs of one call side by side on a multi-core CPU.

Why (issue 13): one fit of the two-tower is a few large matrix products per step, and
on a 2-core CPU two intra-op threads make a step only about 1.2x faster than one. Two
fits side by side, one thread each, finish the same work about 1.6x sooner. So a call
with several runs (the demo's ten: seven strategies and the baseline suite) hands them to
``workers`` threads, each with ``cores // workers`` torch threads.

What makes it safe:

* Shared results (source pre-training, target-only's two-tower, iALS, the text vectors)
  are computed once through :class:`~recsys_core.strategies.step_cache.StepCache`; a run
  whose declared steps (:meth:`Strategy.shared_steps`) another run is computing is not
  started yet, so no worker sits blocked while there is other work.
* Model initialisation seeds and draws from torch's global generator as one step
  (:func:`recsys_core.training.rng.seeded`) and training draws from its own generator,
  so a run's weights do not depend on what ran beside it.
* Each run writes its own rows of the run store (one SQLite connection per call).

Runs are started longest first (the store's typical seconds, else the registry's order),
the classic LPT rule, so the last run to finish is a short one. Results come back in the
request's order. On a GPU, or with one core, runs go one after the other as before.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


class StopAll(Exception):
    """Raised by a task's ``run`` once it has recorded its run as cancelled: start no
    other task. ``outcome`` is that run's outcome."""

    def __init__(self, outcome: Any) -> None:
        super().__init__("cancelled")
        self.outcome = outcome


@dataclass
class Task:
    """One run to fit.

    Attributes:
        index: position in the request (results are returned in this order).
        name: strategy name (for messages).
        steps: shared steps it reads (see :meth:`Strategy.shared_steps`), plus "text"
            when it reads item text that is not encoded yet.
        cost: expected seconds; larger first.
        run: does the work in the calling thread and returns its outcome; raises
            :class:`StopAll` when the user stopped the call.
        skip: called instead of ``run`` for a task never started because the call was
            cancelled; returns its outcome.
    """

    index: int
    name: str
    steps: frozenset[str]
    cost: float
    run: Callable[[], Any]
    skip: Callable[[], Any]


def plan_workers(requested: int, device: torch.device, n_tasks: int) -> tuple[int, int]:
    """(worker threads, torch threads per worker) for ``n_tasks`` runs.

    ``requested``: 0 chooses: on a CPU, one worker per core up to four, so each fit has
    ``cores // workers`` intra-op threads; on a GPU one (the card is the bottleneck, and
    kernels of two fits would only interleave). A positive value is used as given
    (capped by the number of runs).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    if requested > 0:
        workers = requested
    elif device.type != "cpu":
        workers = 1
    else:
        workers = min(4, cores)
    workers = max(1, min(workers, n_tasks))
    threads = max(1, torch.get_num_threads() // workers) if workers > 1 else 0
    return workers, threads


def run_tasks(
    tasks: list[Task],
    workers: int,
    threads_per_worker: int,
    running_steps: Callable[[], set[str]],
    should_cancel: Callable[[], bool],
    on_change: Callable[[Callable[[], None]], None] | None = None,
    done_steps: Callable[[], set[str]] | None = None,
) -> list[Any]:
    """Run ``tasks`` on ``workers`` threads; return their outcomes in ``index`` order.

    A task is started when a worker is free and none of its ``steps`` is in
    ``running_steps()`` (another task computing it); among those, the most expensive
    first. After a :class:`StopAll` (or once ``should_cancel()``), no task is started
    and the rest get their ``skip()`` outcome. An exception other than StopAll is the
    task's to record: ``run`` must not raise it (if it does, the other workers stop and
    it is re-raised here).

    ``on_change(fn)``: registers ``fn`` to be called when a shared step finishes, so a
    waiting worker looks again at once (it also looks every half second).

    ``done_steps()`` (the steps computed so far): with it, a step that a started task
    declared counts as busy until it is done (or that task ends), not only while it is
    computing. Without it, two tasks reading the same not-yet-encoded text started
    together at the first pick, and the second sat blocked for the whole encoding
    (12 s of the demo) while other work waited (issue 13).
    """
    results: dict[int, Any] = {}
    if workers <= 1:
        stopped = False
        for t in sorted(tasks, key=lambda t: t.index):
            if stopped or should_cancel():
                results[t.index] = t.skip()
                stopped = True
                continue
            try:
                results[t.index] = t.run()
            except StopAll as exc:
                results[t.index] = exc.outcome
                stopped = True
        return [results[i] for i in sorted(results)]

    pending = sorted(tasks, key=lambda t: (-t.cost, t.index))  # longest first
    claims: Counter[str] = Counter()  # declared steps of the tasks started and not ended
    cond = threading.Condition()
    state = {"stopped": False}
    if on_change is not None:

        def wake() -> None:
            with cond:
                cond.notify_all()

        on_change(wake)

    def take() -> Task | None:
        with cond:
            while pending:
                if state["stopped"] or should_cancel():
                    state["stopped"] = True
                    return None
                busy = running_steps()
                if done_steps is not None:
                    busy |= {s for s, n in claims.items() if n > 0} - done_steps()
                for t in pending:
                    if not (t.steps & busy):
                        pending.remove(t)
                        claims.update(t.steps)
                        return t
                cond.wait(0.5)
            return None

    errors: list[BaseException] = []

    def worker() -> None:
        if threads_per_worker:
            torch.set_num_threads(threads_per_worker)  # this thread's intra-op pool
        while True:
            t = take()
            if t is None:
                return
            try:
                results[t.index] = t.run()
            except StopAll as exc:
                results[t.index] = exc.outcome
                with cond:
                    state["stopped"] = True
                    cond.notify_all()
            except BaseException as exc:  # a bug in the runner itself: re-raised below
                errors.append(exc)
                with cond:
                    state["stopped"] = True
                    cond.notify_all()
            finally:
                with cond:
                    claims.subtract(t.steps)
                    cond.notify_all()

    main_threads = torch.get_num_threads()
    pool = [threading.Thread(target=worker, name=f"fit-{i}", daemon=True) for i in range(workers)]
    try:
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    finally:
        torch.set_num_threads(main_threads)
    if errors:
        raise errors[0]
    for t in pending:
        results[t.index] = t.skip()
    return [results[i] for i in sorted(results)]
