"""Seeding torch's global generator safely when runs fit in parallel threads.

Module constructors (``nn.Linear``, ``torch.randn`` in :class:`TwoTower`) draw from torch's
process-wide generator. When two runs fit at once (:mod:`recsys_core.runs.parallel`), one
thread re-seeding it while the other initialises a model would make the weights depend on
the timing. Every "seed, then draw from the global generator" goes through
:func:`seeded`, so it happens as one step; everything drawn during training uses the
run's own ``torch.Generator``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_GLOBAL_RNG = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Hold the global-generator lock, seeded with ``seed``, for the ``with`` body."""
    with _GLOBAL_RNG:
        torch.manual_seed(seed)
        yield


def seed_global(seed: int) -> None:
    """Seed torch's global generators (CPU and CUDA) without racing :func:`seeded`."""
    with _GLOBAL_RNG:
        torch.manual_seed(seed)
