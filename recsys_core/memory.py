"""How much memory one allocation that grows with the catalogue may take.

A 10-million-item catalogue once trained popularity for 12 minutes and then failed
allocating 40 GB for a 1,024-user ranking batch; EASE on 60,000 items passed 8 GB before
anything said no (issue 12). Allocations that grow with the catalogue are sized here
first: a ranking batch shrinks to fit its budget, and a model whose matrices cannot fit
is refused at once with a message that names the size, the limit and how to raise it.
The same holds for item-kNN's similarity blocks (sized to the budget) and the
two-tower's full softmax (refused before training starts).
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


KNN_BLOCK_BYTES = 24
"""Bytes per (item, column) cell of one item-kNN similarity block."""
KNN_KEPT_BYTES = 48
"""Bytes per kept item-kNN neighbour while the lists are gathered and made a csr."""
SOFTMAX_BLOCKS = 3
"""(B, n_items) float32 blocks of one full-softmax step: logits, log-probabilities and
their gradient."""


def _size(n_bytes: float) -> str:
    """'1.4 GiB', or MiB below a GiB ('0.9 MiB'): sizes a reader can compare."""
    if n_bytes >= 1024 * MiB:
        return f"{n_bytes / MiB / 1024:.1f} GiB"
    return f"{n_bytes / MiB:.1f} MiB"


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
            f"{what} would take {_size(n_bytes)}, over the limit of "
            f"{_size(limit)}; {hint}, or raise the limit with {MODEL_ENV}=MiB"
        )


def ranking_batch(batch_size: int, n_items: int, bytes_per_score: int = 4) -> int:
    """Users per ranking batch: ``batch_size``, shrunk so that a batch's scores, mask and
    selection (about three (B, n_items) blocks) stay within ``TRANSFER_LAB_MAX_RANKING_MB``."""
    per_user = max(1, 3 * n_items * bytes_per_score)
    return max(1, min(int(batch_size), _budget(RANKING_ENV, RANKING_DEFAULT_MB) // per_user))


def knn_block_columns(n_items: int, neighbours: int, wanted: int) -> int:
    """Columns per block of item-kNN's similarity (:class:`~recsys_core.strategies.item_knn.ItemKNN`).

    A block of b columns holds about ``KNN_BLOCK_BYTES`` bytes per (item, column) cell
    (co-occurrence counts, similarities, their negation and argpartition's int64
    indices); the kept neighbours about ``KNN_KEPT_BYTES`` per entry while their lists
    are gathered and turned into a csr. Both share the model budget: the kept lists come
    first, the block gets the rest, at most ``wanted`` columns. Refuses, before anything
    is allocated, a catalogue whose lists or single-column block cannot fit.
    """
    limit = model_budget()
    kept = n_items * neighbours * KNN_KEPT_BYTES
    if kept > limit:
        raise ValueError(
            f"item-kNN's neighbour lists for {n_items:,} items x {neighbours:,} neighbours "
            f"would take {_size(kept)}, over the limit of "
            f"{_size(limit)}; keep fewer neighbours per item (the strategy's "
            f"neighbours option), or raise the limit with {MODEL_ENV}=MiB"
        )
    per_column = n_items * KNN_BLOCK_BYTES
    fit = (limit - kept) // max(per_column, 1)
    if fit < 1:
        need = kept + per_column
        raise ValueError(
            f"item-kNN's similarity for {n_items:,} items would take "
            f"{_size(need)} even one item at a time ({neighbours:,} "
            f"neighbours kept per item), over the limit of {_size(limit)}; "
            f"keep fewer neighbours per item, or raise the limit with {MODEL_ENV}=MiB"
        )
    return int(max(1, min(wanted, fit)))


def check_full_softmax(domains, cfg) -> None:
    """Refuse, before training starts, a full softmax whose per-step logits cannot fit.

    The two-tower's ``full-softmax`` loss scores each batch row against the domain's
    whole catalogue: ``SOFTMAX_BLOCKS`` blocks of batch x catalogue float32 a step. At
    the default batch of 4,096 that passes the default 4 GiB past about 87,000 items.

    Why refuse rather than switch: both automatic ways out change what is trained (a
    sampled softmax is another objective; a smaller batch, other optimisation steps at a
    learning rate tuned for the larger one), and an analyst must not receive a different
    model in silence (issue 12). The full softmax's compute per epoch (pairs x
    catalogue x d) does not shrink with the batch either, so where its memory overflows
    the sampled softmax is the choice the message puts first.

    Args:
        domains: the training domains (``name``, ``loss`` or None, ``pool``, ``len()``).
        cfg: the :class:`~recsys_core.training.loop.TrainConfig` (``loss``, ``batch_size``).
    """
    limit = model_budget()
    for d in domains:
        if (d.loss or cfg.loss) != "full-softmax":
            continue
        n_items = len(d.pool)
        batch = min(int(cfg.batch_size), len(d))
        need = SOFTMAX_BLOCKS * 4 * batch * n_items
        if need <= limit:
            continue
        most = limit // (SOFTMAX_BLOCKS * 4 * max(n_items, 1))
        smaller = f", or a batch of at most {most:,} (--batch-size)" if most >= 8 else ""
        raise ValueError(
            f"the full softmax over the {n_items:,} items of domain {d.name!r} would take "
            f"{_size(need)} a training step at a batch of {batch:,} (logits, "
            f"log-probabilities and their gradient), over the limit of "
            f"{_size(limit)}; train with the sampled softmax (loss 'softmax', "
            f"--loss softmax), the usual choice for a large catalogue{smaller}, or raise the "
            f"limit with {MODEL_ENV}=MiB"
        )
