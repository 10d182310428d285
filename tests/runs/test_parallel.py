"""The scheduler that fits the runs of one call side by side (issue 13)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from recsys_core.runs.parallel import StopAll, Task, plan_workers, run_tasks
from recsys_core.strategies.step_cache import StepCache


def _task(i: int, cost: float = 0.0, steps=(), run=None, log=None) -> Task:
    def default_run():
        if log is not None:
            log.append(("start", i))
        return f"out{i}"

    return Task(
        index=i,
        name=f"t{i}",
        steps=frozenset(steps),
        cost=cost,
        run=run or default_run,
        skip=lambda: f"skipped{i}",
    )


def test_outcomes_come_back_in_request_order_and_run_longest_first():
    log: list = []
    tasks = [_task(0, 1.0, log=log), _task(1, 5.0, log=log), _task(2, 3.0, log=log)]
    out = run_tasks(tasks, 2, 1, lambda: set(), lambda: False)
    assert out == ["out0", "out1", "out2"]
    assert log[0] == ("start", 1)  # the most expensive starts first


def test_two_workers_really_run_side_by_side():
    # Each task waits for the other at a barrier: one worker would deadlock (timeout).
    barrier = threading.Barrier(2, timeout=10)

    def meet():
        barrier.wait()
        return "met"

    out = run_tasks([_task(0, run=meet), _task(1, run=meet)], 2, 1, lambda: set(), lambda: False)
    assert out == ["met", "met"]


def test_a_task_waits_while_another_computes_its_shared_step():
    cache = StepCache()
    order: list[str] = []
    started = threading.Event()

    def pretrain_then_finetune():
        def pretrain():
            started.set()
            time.sleep(0.3)
            order.append("pretrain done")
            return 1

        cache.get_or_compute("k", pretrain, step="pretrain_source")
        return "fine-tune"

    def distill():
        order.append("distill starts")
        return "distill"

    def cheap():
        started.wait(5)  # the pretraining has begun: distill must not start now
        order.append("cheap")
        return "cheap"

    tasks = [
        _task(0, 3.0, run=pretrain_then_finetune),
        _task(1, 2.0, steps={"pretrain_source"}, run=distill),
        _task(2, 1.0, run=cheap),
    ]
    out = run_tasks(tasks, 2, 1, cache.running_steps, lambda: False, on_change=cache.on_change)
    assert out == ["fine-tune", "distill", "cheap"]
    assert order.index("pretrain done") < order.index("distill starts")
    assert order.index("cheap") < order.index("distill starts")


def test_a_step_claimed_by_a_started_task_blocks_its_readers_until_done():
    """Two tasks read the same text, which neither has begun to encode when both could
    start: the second waits for the first's encoding and a third task runs meanwhile,
    instead of the second sitting blocked beside it (issue 13)."""
    cache = StepCache()
    order: list[str] = []
    encoded = threading.Event()

    def reader(name: str):
        def run():
            time.sleep(0.2)  # set-up before the shared step begins
            order.append(f"{name} wants text")
            cache.get_or_compute("text", lambda: (time.sleep(0.3), encoded.set()), step="text")
            order.append(f"{name} has text")
            return name

        return run

    def other():
        order.append("other starts")
        return "other"

    tasks = [
        _task(0, 3.0, steps={"text"}, run=reader("a")),
        _task(1, 2.0, steps={"text"}, run=reader("b")),
        _task(2, 1.0, run=other),
    ]
    out = run_tasks(
        tasks, 2, 1, cache.running_steps, lambda: False,
        on_change=cache.on_change, done_steps=cache.done_steps,
    )  # fmt: skip
    assert out == ["a", "b", "other"]
    assert order.index("other starts") < order.index("a has text")
    assert order.index("b wants text") > order.index("a has text")


def test_stop_all_skips_what_has_not_started():
    def stop():
        raise StopAll("cancelled0")

    tasks = [_task(0, 9.0, run=stop), _task(1, 1.0), _task(2, 0.5)]
    assert run_tasks(tasks, 1, 0, lambda: set(), lambda: False) == [
        "cancelled0",
        "skipped1",
        "skipped2",
    ]
    # two workers: the first stops everything; the second may have started one task
    out = run_tasks(tasks, 2, 1, lambda: set(), lambda: False)
    assert out[0] == "cancelled0" and set(out[1:]) <= {"out1", "out2", "skipped1", "skipped2"}


def test_a_bug_in_the_runner_is_raised_not_swallowed():
    def boom():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_tasks([_task(0, run=boom), _task(1)], 2, 1, lambda: set(), lambda: False)


def test_workers_leave_the_callers_thread_count_alone():
    before = torch.get_num_threads()
    run_tasks([_task(0), _task(1)], 2, 1, lambda: set(), lambda: False)
    assert torch.get_num_threads() == before


def test_plan_workers():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert plan_workers(0, gpu, 5) == (1, 0)
    assert plan_workers(3, cpu, 2)[0] == 2  # never more workers than runs
    assert plan_workers(1, cpu, 9) == (1, 0)
    w, t = plan_workers(2, cpu, 9)
    assert w == 2 and t >= 1


def test_step_cache_computes_once_and_does_not_cache_a_failure():
    cache = StepCache()
    calls: list[int] = []
    gate = threading.Event()

    def slow():
        calls.append(1)
        gate.wait(5)
        return 42

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow, "s")))
        for _ in range(3)
    ]
    for th in threads:
        th.start()
    time.sleep(0.2)
    assert cache.running_steps() == {"s"}
    gate.set()
    for th in threads:
        th.join()
    assert results == [42, 42, 42] and calls == [1]
    assert cache.running_steps() == set() and cache["k"] == 42

    def fail():
        raise ValueError("no")

    with pytest.raises(ValueError):
        cache.get_or_compute("bad", fail, "s")
    assert "bad" not in cache
    assert cache.get_or_compute("bad", lambda: 7) == 7
