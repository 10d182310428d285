"""Validation scoring for early stopping and model selection: :class:`ValidationSet` and
:func:`validation_metric` (valid rows only; ``split.test`` is never read). Re-exported
from :mod:`recsys_core.evaluation.evaluate`."""

from __future__ import annotations

import numpy as np

from recsys_core.data.split_types import Split
from recsys_core.evaluation.evaluate import rows_csr
from recsys_core.evaluation.metrics import (
    METRICS,
    metric_column,
    ranking_metrics,
)
from recsys_core.evaluation.ranking import Scorer, topk_full_ranking
from recsys_core.training.device import choose_device


class ValidationSet:
    """The validation rows of a split, indexed once, to score a model against many times.

    Early stopping calls the check after every epoch (77 times for BPR on ML-100K):
    building the users' train and valid matrices once instead of at each call saves a
    third of every check. ``ValidationSet(split)(scorer)`` equals
    :func:`validation_metric` with the same arguments.
    """

    def __init__(
        self,
        split: Split,
        metric: str = "ndcg",
        k: int = 10,
        batch_size: int = 1024,
        device: str = "cpu",
        max_users: int | None = None,
        seed: int = 0,
        rows: str = "all",
    ) -> None:
        """``rows``: "all" the validation rows, or "warm-items" only those whose item has
        training interactions (early stopping: it tunes how the model learns from
        interactions, while the validation cold items judge how new items are scored)."""
        if rows not in ("all", "warm-items"):
            raise ValueError(f"rows must be 'all' or 'warm-items', got {rows!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if max_users is not None and max_users < 1:
            raise ValueError(f"max_users must be >= 1 or None, got {max_users}")
        self.metric, self.k, self.batch_size = metric, k, batch_size
        self.device = choose_device(device)
        valid = split.valid
        if rows == "warm-items" and len(valid):
            valid = valid[split.trained_items()[valid["item"].to_numpy(np.int64)]]
        users = np.unique(valid["user"].to_numpy(dtype=np.int64))
        if max_users is not None and max_users < len(users):
            rng = np.random.default_rng(seed)
            users = np.sort(rng.choice(users, size=max_users, replace=False))
        self.users = users
        self.history = rows_csr([split.train], users, split.n_items)
        self.truth = rows_csr([valid], users, split.n_items)

    def __call__(self, scorer: Scorer) -> float:
        """Mean ``metric@k`` of ``scorer`` over the validation users (NaN if none)."""
        if len(self.users) == 0:
            return float("nan")
        lists = topk_full_ranking(
            scorer,
            self.users,
            self.history,
            self.history,
            self.k,
            batch_size=self.batch_size,
            device=self.device,
        )
        pu = ranking_metrics(lists, self.truth, (self.k,), users=self.users)
        return float(pu[metric_column(self.metric, self.k)].mean()) if len(pu) else float("nan")


def validation_metric(
    scorer: Scorer,
    split: Split,
    metric: str = "ndcg",
    k: int = 10,
    batch_size: int = 1024,
    device: str = "cpu",
    max_users: int | None = None,
    seed: int = 0,
) -> float:
    """Mean ``metric@k`` on the validation rows, for early stopping and model selection.

    Warm users with valid rows are ranked with history = excluded items = their train
    items, and scored against their valid items. ``split.test`` is never read.

    Args:
        scorer: the model being trained.
        split: the split (train and valid are read).
        metric: one of recall, ndcg, hit, mrr, precision.
        k: cut-off.
        batch_size: users scored at once.
        device: where ranking runs.
        max_users: if set, a seeded random sample of that many validation users (faster
            checks during training; the same users at every call with the same seed).
        seed: seed of the user sample.

    Returns:
        The mean over the (sampled) validation users; NaN if there are none.
    """
    return ValidationSet(split, metric, k, batch_size, device, max_users, seed)(scorer)
