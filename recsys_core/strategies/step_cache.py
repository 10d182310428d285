"""Results the runs of one call share, computed once even when runs fit in parallel.

Source pre-training feeds fine-tune, distill and (optionally) adapt; target-only's
two-tower feeds fusion; iALS feeds content-map. :class:`StepCache` keeps them for one
call (one CLI run, one app job) and makes a second run that asks for a result another
run is computing wait for it instead of computing it again. Each result may name the
*step* it belongs to ("pretrain_source", ...): the parallel scheduler
(:mod:`recsys_core.runs.parallel`) does not start a run whose declared steps
(:meth:`~recsys_core.strategies.base.Strategy.shared_steps`) are being computed by
another run, so no worker thread sits blocked while there is other work (issue 13).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any


class StepCache:
    """A dict of shared results with single-flight computation per key.

    Plain dict reads work (``key in cache``, ``cache[key]``, ``cache.items()``) so a
    caller can snapshot it; :meth:`get_or_compute` is what strategies call.
    """

    def __init__(self, initial: dict | None = None) -> None:
        self._values: dict[Any, Any] = dict(initial or {})
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()
        self._running: Counter[str] = Counter()
        self._done: set[str] = set()
        self._listeners: list[Callable[[], None]] = []

    def get_or_compute(self, key: Any, compute: Callable[[], Any], step: str | None = None) -> Any:
        """The value under ``key``, computing it with ``compute()`` if absent.

        Concurrent callers with the same key wait for the first one's result; if it
        raises, the next caller computes again (a failure is not cached).
        """
        with self._guard:
            if key in self._values:
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._values:
                    return self._values[key]
                if step:
                    self._running[step] += 1
            try:
                value = compute()
                with self._guard:
                    self._values[key] = value
                    if step:
                        self._done.add(step)
            finally:
                if step:
                    with self._guard:
                        self._running[step] -= 1
                    self._notify()
            return value

    def running_steps(self) -> set[str]:
        """Names of the steps some thread is computing now."""
        with self._guard:
            return {s for s, n in self._running.items() if n > 0}

    def done_steps(self) -> set[str]:
        """Names of the steps computed at least once in this cache."""
        with self._guard:
            return set(self._done)

    def on_change(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` (from the computing thread) whenever a step finishes."""
        self._listeners.append(fn)

    def _notify(self) -> None:
        for fn in list(self._listeners):
            fn()

    # dict-style reads
    def __contains__(self, key: object) -> bool:
        with self._guard:
            return key in self._values

    def __getitem__(self, key: Any) -> Any:
        with self._guard:
            return self._values[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._guard:
            self._values[key] = value

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._values))

    def items(self) -> list[tuple[Any, Any]]:
        with self._guard:
            return list(self._values.items())
