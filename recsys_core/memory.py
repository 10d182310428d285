"""How much memory one allocation that grows with the catalogue may take.

A 10-million-item catalogue once trained popularity for 12 minutes and then failed
allocating 40 GB for a 1,024-user ranking batch; EASE on 60,000 items passed 8 GB before
anything said no (issue 12). Allocations that grow with the catalogue are sized here
first: a ranking batch shrinks to fit its budget, and a model whose matrices cannot fit
is refused at once with a message that names the size, the limit and how to raise it.
"""

from __future__ import annotations

import os

MiB = 1024 * 1024

MODEL_ENV = "TRANSFER_LAB_MAX_MODEL_MB"
MODEL_DEFAULT_MB = 4096
"""Largest dense matrix set one model may allocate (EASE's item-item matrices)."""

RANKING_ENV = "TRANSFER_LAB_MAX_RANKING_MB"
RANKING_DEFAULT_MB = 1024
"""Largest score block one ranking batch may hold (scores, mask and selection)."""


def _budget(env: str, default_mb: int) -> int:
    raw = os.environ.get(env)
    try:
        mb = float(raw) if raw else float(default_mb)
    except ValueError as exc:
        raise ValueError(f"{env} must be a number of MiB, got {raw!r}") from exc
    if not mb > 0:
        raise ValueError(f"{env} must be a positive number of MiB, got {raw!r}")
    return int(mb * MiB)


def model_budget() -> int:
    """Bytes one model's dense matrices may take (``TRANSFER_LAB_MAX_MODEL_MB``)."""
    return _budget(MODEL_ENV, MODEL_DEFAULT_MB)


def check_model_allocation(what: str, n_bytes: int, hint: str) -> None:
    """Refuse, before allocating, ``n_bytes`` for ``what`` beyond the model budget."""
    limit = model_budget()
    if n_bytes > limit:
        raise ValueError(
            f"{what} would take {n_bytes / MiB / 1024:.1f} GiB, over the limit of "
            f"{limit / MiB / 1024:.1f} GiB; {hint}, or raise the limit with {MODEL_ENV}=MiB"
        )


def ranking_batch(batch_size: int, n_items: int, bytes_per_score: int = 4) -> int:
    """Users per ranking batch: ``batch_size``, shrunk so that a batch's scores, mask and
    selection (about three (B, n_items) blocks) stay within ``TRANSFER_LAB_MAX_RANKING_MB``."""
    per_user = max(1, 3 * n_items * bytes_per_score)
    return max(1, min(int(batch_size), _budget(RANKING_ENV, RANKING_DEFAULT_MB) // per_user))
