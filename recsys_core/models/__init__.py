"""Target-domain scorers: the ID-only baselines (popularity, EASE, iALS) and their tuning.

Every scorer here honours one contract, the evaluation module's ``Scorer`` protocol::

    score(users: np.ndarray int64 (B,), history: scipy.sparse.csr_matrix (B, n_items))
        -> torch.Tensor float32 (B, n_items), higher is better

``history`` holds, row by row, the target items known for each user at scoring time:
train (+valid) items for a warm user, the k support items for a cold user who was never
trained on. A user's own history is *not* masked by the scorer; the evaluator does that.

This ``__init__`` stays light on purpose (no torch or scipy at import time, so that
``import recsys_core.models`` is cheap for the CLI's ``--help`` and for the app's first
paint). It also holds the small helpers the three baselines share and
:func:`tune_on_validation`; torch is imported inside the functions that need it.
The model classes live in :mod:`recsys_core.models.ease`, :mod:`recsys_core.models.ials`
and :mod:`recsys_core.models.popularity`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import scipy.sparse as sp
    import torch

__all__ = [
    "DEFAULT_EASE_GRID",
    "DEFAULT_IALS_GRID",
    "check_csr",
    "csr_to_torch_coo",
    "full_ranking_metrics",
    "resolve_device",
    "tune_on_validation",
]

DEFAULT_EASE_GRID: list[float] = [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
"""EASE ``l2`` values tried by default (Steck 2019 reports optima between ~100 and ~3000
on MovieLens-sized catalogues; the grid brackets that range on a log scale)."""

DEFAULT_IALS_GRID: list[dict[str, float]] = [
    {"factors": 64, "reg": 0.05, "alpha": 0.5},
    {"factors": 64, "reg": 0.1, "alpha": 0.25},
    {"factors": 64, "reg": 0.1, "alpha": 0.5},
    {"factors": 64, "reg": 0.1, "alpha": 1.0},
    {"factors": 128, "reg": 0.1, "alpha": 0.5},
    {"factors": 128, "reg": 0.2, "alpha": 0.5},
]
"""Six iALS points (overrides of :class:`~recsys_core.models.ials.IALSConfig` fields).

Six rather than a full factors x reg x alpha product keeps a tuning run to a few minutes
on MovieLens-1M on two CPU cores. ``reg`` is the base of the frequency-scaled penalty
(``reg_scaling="frequency"``, the default). The points sit where a wider validation
sweep on ML-100K and ML-1M (f in {64, 128, 256}, reg in {0.01 ... 1}, alpha in
{0.25 ... 10}) found the optimum: reg 0.05-0.2 and alpha <= 1; alpha >= 3 and
reg <= 0.01 were clearly worse on both, and f = 256 no better than 64 at 12-15 sweeps."""


def resolve_device(device: str) -> str:
    """Check that ``device`` names a torch device usable here; return it unchanged.

    The check is :func:`recsys_core.training.device.choose_device`, the engine's one
    resolver; a model config stores a concrete device, so "auto" is refused here (resolve
    it with ``choose_device`` first).

    Raises:
        ValueError: unknown name, "auto", or an accelerator this machine does not have.
    """
    from recsys_core.training.device import choose_device

    if str(device).strip() == "auto":
        raise ValueError(
            "device must be a concrete device such as 'cpu' or 'cuda' here, not 'auto'; "
            "resolve it first with recsys_core.training.device.choose_device"
        )
    choose_device(device)
    return device


def check_csr(matrix: Any, name: str, n_items: int | None = None) -> sp.csr_matrix:
    """Return ``matrix`` as a canonical float32 CSR copy (sorted, no duplicates or zeros).

    Args:
        matrix: anything scipy can turn into a CSR matrix of shape (rows, n_items).
        name: the argument name, for the error message.
        n_items: expected number of columns, if known.

    Raises:
        ValueError: not 2-D, wrong number of columns, or negative/non-finite values.
    """
    import scipy.sparse as sp

    if not sp.issparse(matrix):
        raise ValueError(
            f"{name} must be a scipy.sparse matrix (users x items), got {type(matrix)}"
        )
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    if n_items is not None and out.shape[1] != n_items:
        raise ValueError(
            f"{name} has {out.shape[1]} item columns but the model was fitted on {n_items}; "
            "build it with the same item index as the training matrix"
        )
    if out.nnz and (not np.isfinite(out.data).all() or (out.data < 0).any()):
        raise ValueError(f"{name} must hold non-negative finite interaction strengths")
    return out


def csr_to_torch_coo(matrix: sp.csr_matrix, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Canonical CSR (rows, cols) -> coalesced torch sparse COO tensor on ``device``.

    ``matrix`` must be canonical (see :func:`check_csr`); the COO indices then come out
    sorted and unique, so the tensor is built as coalesced without a sort.
    """
    import torch

    coo = matrix.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    vals = torch.from_numpy(coo.data)
    return torch.sparse_coo_tensor(
        idx, vals, size=matrix.shape, check_invariants=False, is_coalesced=True
    ).to(device=device, dtype=dtype)


def full_ranking_metrics(
    model: Any,
    users: np.ndarray,
    history: sp.csr_matrix,
    exclude: sp.csr_matrix,
    targets: sp.csr_matrix,
    k: int = 10,
    batch_size: int = 1024,
) -> dict[str, float]:
    """NDCG@k and Recall@k over the whole catalogue, averaged over ``users``.

    Goes through the evaluation module's ranking and metrics (exact tie-breaking by item
    index, the one ranking path of the product), so a hyper-parameter chosen here is
    chosen on the same numbers the evaluation reports. Items in ``exclude`` are never
    ranked; users without targets are skipped.

    Args:
        model: a scorer (``score(users, history) -> (B, n_items)`` tensor).
        users: int64 (n,) user indices.
        history, exclude, targets: CSR (n, n_items), row j belongs to ``users[j]``.
        k: cut-off.
        batch_size: users scored at once.

    Returns:
        ``{"ndcg@k": float, "recall@k": float, "users": int}``.
    """
    from recsys_core.evaluation.metrics import ranking_metrics
    from recsys_core.evaluation.ranking import topk_full_ranking

    users = np.asarray(users, dtype=np.int64)
    keep = np.flatnonzero(np.diff(targets.indptr) > 0)
    if len(keep) == 0:
        return {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0, "users": 0}
    lists = topk_full_ranking(
        model, users[keep], history[keep], exclude[keep], k, batch_size=batch_size
    )
    pu = ranking_metrics(lists, targets[keep], (k,), users=users[keep])
    return {
        f"ndcg@{k}": float(pu[f"ndcg@{k}"].mean()),
        f"recall@{k}": float(pu[f"recall@{k}"].mean()),
        "users": len(keep),
    }


def tune_on_validation(
    make_model: Callable[[Any], Any],
    grid: Sequence[Any],
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    k: int = 10,
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Fit one model per grid value on ``train``; keep the best by validation NDCG@k.

    Validation protocol: every user with at least one ``valid`` item is scored from its
    ``train`` row as history, ``train`` items are masked, full-catalogue ranking. The
    test set is never touched. Ties go to the earlier grid value.

    Args:
        make_model: value -> unfitted model with ``fit(train)`` and ``score``.
        grid: the values to try, in order (floats for EASE's ``l2``, dicts of
            :class:`~recsys_core.models.ials.IALSConfig` overrides for iALS...).
        train, valid: CSR (n_users, n_items) on the same user and item indices.
        k: NDCG cut-off.

    Returns:
        ``(best_value, best_model, table)``: the fitted best model and one row per grid
        value, ``{"value": v, f"ndcg@{k}": float, "seconds": fit seconds}``.

    Raises:
        ValueError: empty grid, mismatched shapes, or no user with validation items.
    """
    if len(grid) == 0:
        raise ValueError("grid is empty: give at least one hyper-parameter value to try")
    if train.shape != valid.shape:
        raise ValueError(
            f"train {train.shape} and valid {valid.shape} must have the same (users, items) shape"
        )
    valid = check_csr(valid, "valid")
    users = np.flatnonzero(np.diff(valid.indptr) > 0).astype(np.int64)
    if len(users) == 0:
        raise ValueError("valid has no interactions: cannot choose hyper-parameters on it")
    train_c = check_csr(train, "train")
    hist = train_c[users]
    targets = valid[users]
    key = f"ndcg@{k}"
    best_value, best_model, best_score = None, None, -np.inf
    table: list[dict[str, Any]] = []
    for value in grid:
        model = make_model(value)
        t0 = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - t0
        score = full_ranking_metrics(model, users, hist, hist, targets, k=k)[key]
        table.append({"value": value, key: score, "seconds": seconds})
        if score > best_score:
            best_value, best_model, best_score = value, model, score
        del model
    return best_value, best_model, table
