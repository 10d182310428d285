"""Task functions the Ray tests hand to workers (a worker imports them by name, so they
live in a module, not inside a test)."""

from __future__ import annotations

import os
import time

from recsys_core.runs.executor import _run_task


def square(shared: dict, item: int, reporter) -> int:
    """item ** 2 + shared["offset"], with one event; fails on 3, dies on 5."""
    reporter.event("seen", {"item": item})
    if item == 3:
        raise ValueError("three is refused")
    if item == 5:
        os._exit(1)  # the worker process dies, as under the OOM killer
    return item * item + shared["offset"]


def dies_on_ease(shared: dict, item: dict, reporter) -> dict:
    """The executor's own run task, except that the worker training "ease" dies."""
    if item["name"] == "ease":
        time.sleep(0.5)
        os._exit(1)
    return _run_task(shared, item, reporter)
