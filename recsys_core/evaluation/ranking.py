"""Full-catalogue top-K ranking: score every item for every user, mask, select.

The ranking is the expensive half of evaluation, so it is done once per (user, history)
and the resulting top-K lists are reused by every metric and every segment.

Ordering contract (what makes results reproducible across devices and batch sizes):

* items are ordered by descending score;
* equal scores are ordered by ascending item index (deterministic tie-breaking, so a
  popularity scorer with many equal counts, or an untrained model returning all zeros,
  gives the same list on every run, device and batch size);
* masked (excluded) items never appear; when fewer than ``k`` items remain the row is
  padded on the right with ``-1``.

Ties are resolved exactly, not by adding ``item_index * epsilon`` to the scores (which
does nothing when scores are large and reorders distinct scores when they are close).
The same answer comes out of one of three paths (and a fourth, below):

* fast path: ``torch.topk`` for k + 1 values. A row whose k + 1 largest values are all
  distinct and none of whose k largest is the mask value has no tie that matters, so
  topk's indices are the answer. With real-valued model scores that is nearly every row,
  and the cost is one copy, the sparse mask writes and one topk.
* rows with ties, scores of at most 32 bits (float32/16, bfloat16, int32...): one topk
  over unique int64 keys, the score's order-preserving int32 image in the high half and
  ``n_items - item_index`` in the low half.
* rows with ties, 64-bit scores: the k-th largest valid value is read from topk (values
  are exact even where topk's choice among ties is arbitrary), the items strictly above
  it and the lowest-indexed items equal to it are selected with a cumulative count, and
  a stable sort of the selected items by score keeps ascending index among equal scores.

Rows that are all the same scores (popularity, whose integer counts tie in every row;
any model scoring users without history alike) take a fourth path, the shared order:
the one row is ranked once, in full, by the rules above, and each user's list is the
first k items of that order that the user does not exclude, found from the positions
of the excluded items alone (:func:`_shared_order_topk`). Scoring 200,000 users of a
40,000-item catalogue by popularity went from a topk over 10^10 int64 keys to one sort
and a few searches per user (issue 13).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch


@runtime_checkable
class Scorer(Protocol):
    """What evaluation needs from a model: scores for every item of the target catalogue.

    Declared here, beside the ranking that calls it, so this module imports nothing from
    :mod:`recsys_core.evaluation.evaluate` (which re-exports it under its old path).
    """

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """users: int64 (B,) target user indices; history: (B, n_items) csr of the target
        items known for each user at scoring time (train+valid items for warm users at test,
        train only at validation, the support set for cold users). Returns (B, n_items)
        float scores on any device; higher is better. Cross-domain information (source
        histories) is the scorer's own business.

        A scorer whose scores are the same for every user and history (popularity) may
        say so with a class attribute ``user_independent = True``: the ranking then
        scores one row and ranks the catalogue once (:func:`topk_full_ranking`)."""
        ...


def _lowest(dtype: torch.dtype) -> float | int:
    """The smallest value of ``dtype``: what masked entries are set to."""
    if dtype.is_floating_point:
        return -float("inf")
    return torch.iinfo(dtype).min


def _check_scores(scores: torch.Tensor, k: int) -> torch.Tensor:
    if scores.ndim != 2:
        raise ValueError(
            f"scores must be a 2-D (users, items) matrix, got shape {tuple(scores.shape)}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if scores.is_complex():
        raise ValueError("scores must be real numbers, got a complex tensor")
    if scores.dtype == torch.bool:
        scores = scores.to(torch.int8)
    return scores


def _nan_error(n_bad: int) -> ValueError:
    return ValueError(
        f"the scorer returned NaN scores for {n_bad} user(s); the model has probably "
        "diverged (lower the learning rate or check the inputs)"
    )


def _exact_select(scores: torch.Tensor, masked: torch.Tensor, k: int) -> torch.Tensor:
    """Exact top-k with ties by ascending index, any dtype; (B, min(k, n)) int64, -1 padded.

    ``masked``: (B, n) bool, True = excluded.
    """
    b, n = scores.shape
    kk = min(k, n)
    dev = scores.device
    out = torch.full((b, kk), -1, dtype=torch.int64, device=dev)
    if b == 0 or n == 0:
        return out
    low = _lowest(scores.dtype)
    valid = ~masked
    # masked_fill returns a new tensor: the scorer's output (possibly a cached or
    # expanded tensor) is never written to.
    key = scores.masked_fill(masked, low)
    need = valid.sum(dim=1).clamp(max=kk)
    # The row sorted descending is "valid values, then masked lows", so the need-th
    # largest value overall is the need-th largest valid value.
    vals = torch.topk(key, kk, dim=1, largest=True, sorted=True).values
    vk = vals.gather(1, (need - 1).clamp(min=0).unsqueeze(1))
    # a legitimate score may equal the mask value (-inf): only valid entries count
    gt = (key > vk) & valid
    eq = (key == vk) & valid
    c_gt = gt.sum(dim=1, keepdim=True)
    # among items tied with the boundary value, keep the lowest-indexed ones
    take = eq & (eq.cumsum(dim=1) <= need.unsqueeze(1) - c_gt)
    sel = gt | take  # exactly need[i] True entries in row i
    rows, cols = sel.nonzero(as_tuple=True)  # row-major: ascending item index per row
    offsets = torch.cumsum(need, 0) - need
    slot = torch.arange(rows.numel(), device=dev) - offsets[rows]
    out[rows, slot] = cols
    # order the selected items by score; stable keeps ascending index among ties, and
    # the -1 padding (already at the right end) stays behind legitimate lowest scores
    kv = key.gather(1, out.clamp(min=0)).masked_fill(out < 0, low)
    order = torch.sort(kv, dim=1, descending=True, stable=True).indices
    return out.gather(1, order)


_PACKABLE = {
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
}
_INT64_MIN = torch.iinfo(torch.int64).min


def _packed_select(
    scores: torch.Tensor, ex_rows: torch.Tensor, ex_cols: torch.Tensor, k: int
) -> torch.Tensor:
    """Exact top-k for scores of at most 32 bits, by one topk over unique int64 keys.

    key = (order-preserving int32 image of the score) * 2**32 + (n - item index): keys
    are all distinct, larger score first and, among equal scores, lower index first.
    Excluded entries get INT64_MIN, below every real key (whose low half is >= 1).
    """
    n = scores.shape[1]
    kk = min(k, n)
    if scores.is_floating_point():
        # float16/bfloat16 -> float32 is exact; + 0.0 turns -0.0 into +0.0 (they are equal
        # scores but have different bit patterns)
        bits = (scores.to(torch.float32) + 0.0).view(torch.int32)
        # IEEE floats order like sign-magnitude integers: flipping the 31 low bits of the
        # negative ones makes the int32 order the float order
        ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    else:
        ordered = scores.to(torch.int32)
    tie = torch.arange(n, 0, -1, dtype=torch.int64, device=scores.device)
    key = (ordered.to(torch.int64) << 32) | tie
    if ex_rows.numel():
        key[ex_rows, ex_cols] = _INT64_MIN
    vals, idx = torch.topk(key, kk, dim=1, largest=True, sorted=True)
    return idx.masked_fill(vals == _INT64_MIN, -1)


def _shared_order_topk(
    order: np.ndarray, ex_rows: np.ndarray, ex_cols: np.ndarray, n_rows: int, k: int
) -> np.ndarray:
    """Top-k of ``n_rows`` users who share one ranking ``order``, each skipping the items
    it excludes.

    Args:
        order: int64 (n,) every item, best first (the ranking of the shared score row).
        ex_rows, ex_cols: int64 coordinates of the excluded (user, item) pairs;
            duplicates allowed.
        n_rows: users (rows of the result).
        k: list length.

    Returns:
        int64 (n_rows, min(k, n)): for each user the first k items of ``order`` it does
        not exclude, -1 padded when fewer remain.

    With a user's excluded positions in ``order`` sorted, e_0 < e_1 < ..., ``g_i = e_i - i``
    is the number of free positions before e_i, and the j-th free position (from 0) is
    ``j + #{i: g_i <= j}``: one sorted search per (user, j), whatever the catalogue size.
    """
    n = len(order)
    kk = min(k, n)
    out = np.full((n_rows, kk), -1, dtype=np.int64)
    if n_rows == 0 or kk == 0:
        return out
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n, dtype=np.int64)
    width = np.int64(n + 1)
    ex_rows = ex_rows.astype(np.int64)
    pos = rank_of[ex_cols.astype(np.int64)]
    # a user's k-th free position is below k + (its exclusions): deeper ones change
    # nothing, and most of a long history lies deeper (fewer keys to sort)
    near = pos < kk + np.bincount(ex_rows, minlength=n_rows)[ex_rows]
    # sorted unique (user, position) keys: rows ascending, positions ascending per row
    keys = np.unique(ex_rows[near] * width + pos[near])
    rows = keys // width
    starts = np.searchsorted(rows, np.arange(n_rows + 1, dtype=np.int64))
    within = np.arange(len(keys), dtype=np.int64) - starts[rows]
    g_keys = keys - within  # row * width + g_i, still sorted (g_i does not decrease)
    j = np.arange(kk, dtype=np.int64)
    q = np.arange(n_rows, dtype=np.int64)[:, None] * width + j[None, :]
    free = j[None, :] + (np.searchsorted(g_keys, q, side="right") - starts[:-1, None])
    ok = free < n
    out[ok] = order[free[ok]]
    return out


def _rank_one_row(row: torch.Tensor) -> np.ndarray:
    """int64 (n,): every item of one score row, by the ordering contract (module
    docstring), computed by the exact path on a single row."""
    empty = torch.zeros(0, dtype=torch.int64, device=row.device)
    return _select(row.unsqueeze(0), empty, empty, row.shape[0])[0].cpu().numpy()


def _rows_identical(scores: torch.Tensor) -> bool:
    """Every row equal to the first (exactly; -0.0 equals 0.0, NaN equals nothing)."""
    if scores.shape[0] < 2 or not bool((scores[-1] == scores[0]).all()):
        return False  # one row's check first: rows of a real model differ at once
    return bool((scores == scores[:1]).all())


def _select(
    scores: torch.Tensor, ex_rows: torch.Tensor, ex_cols: torch.Tensor, k: int
) -> torch.Tensor:
    """Top-k of ``scores`` with entries (ex_rows[j], ex_cols[j]) excluded.

    Fast path for rows without relevant ties, exact paths for the rest (module docstring).
    """
    b, n = scores.shape
    kk = min(k, n)
    dev = scores.device
    if b == 0 or n == 0:
        return torch.full((b, kk), -1, dtype=torch.int64, device=dev)
    low = _lowest(scores.dtype)
    key = scores.clone()  # never write into the scorer's tensor (it may be a view)
    if ex_rows.numel():
        key[ex_rows, ex_cols] = low
    vals, idx = torch.topk(key, min(kk + 1, n), dim=1, largest=True, sorted=True)
    if key.is_floating_point():
        # topk ranks NaN above everything, so a row with an unmasked NaN shows it here
        nan_rows = torch.isnan(vals).any(dim=1)
        if bool(nan_rows.any()):
            raise _nan_error(int(nan_rows.sum()))
    dirty = (vals[:, 1:] == vals[:, :-1]).any(dim=1) | (vals[:, :kk] == low).any(dim=1)
    out = idx[:, :kk]
    if not bool(dirty.any()):
        return out
    out = out.clone()
    d = dirty.nonzero(as_tuple=True)[0]
    # excluded entries of the dirty rows, renumbered to rows of the dirty subset
    new_row = torch.full((b,), -1, dtype=torch.int64, device=dev)
    new_row[d] = torch.arange(d.numel(), device=dev)
    r = new_row[ex_rows]
    keep = r >= 0
    d_rows, d_cols = r[keep], ex_cols[keep]
    sub = scores if d.numel() == b else scores[d]  # no copy when every row has ties
    if _rows_identical(sub):  # one shared order (module docstring): no (B, n) keys
        order = _rank_one_row(sub[0])
        top = _shared_order_topk(order, d_rows.cpu().numpy(), d_cols.cpu().numpy(), len(d), k)
        out[d] = torch.from_numpy(top).to(dev)
    elif scores.dtype in _PACKABLE:
        out[d] = _packed_select(sub, d_rows, d_cols, k)
    else:  # 64-bit scores leave no room for the index in a 64-bit key
        masked = torch.zeros((d.numel(), n), dtype=torch.bool, device=dev)
        masked[d_rows, d_cols] = True
        out[d] = _exact_select(sub, masked, k)
    return out


def topk_from_scores(scores: torch.Tensor, masked: torch.Tensor | None, k: int) -> torch.Tensor:
    """Top-k item indices of each row of a dense score matrix, ties by ascending index.

    Args:
        scores: (B, n_items) scores, any real dtype and device; higher is better. NaN is
            refused (a NaN score means the model diverged; ranking it would be noise).
        masked: (B, n_items) bool on the same device, True for items that must not be
            recommended, or None for no mask.
        k: list length, >= 1.

    Returns:
        (B, min(k, n_items)) int64 tensor on the scores' device: item indices in rank
        order, right-padded with -1 where a row has fewer than k unmasked items.
    """
    scores = _check_scores(scores, k)
    if masked is None:
        ex_rows = ex_cols = torch.zeros(0, dtype=torch.int64, device=scores.device)
    else:
        if masked.shape != scores.shape:
            raise ValueError(
                f"mask shape {tuple(masked.shape)} differs from scores {tuple(scores.shape)}"
            )
        ex_rows, ex_cols = masked.to(torch.bool).nonzero(as_tuple=True)
    return _select(scores, ex_rows, ex_cols, k)


_SHARED_CHUNK = 65_536
"""Users per step of the shared-order path (its memory is a few (chunk, k) arrays)."""


def _declared_shared_order(
    scorer: Scorer, users: np.ndarray, history: sp.csr_matrix, k: int
) -> np.ndarray | None:
    """The shared ranking of a scorer that declares ``user_independent = True``, from
    its scores for the first user; None otherwise, or when that row holds a NaN (the
    general path then raises its usual message)."""
    if not getattr(scorer, "user_independent", False) or len(users) == 0:
        return None
    row = torch.as_tensor(scorer.score(users[:1], history[:1]))
    if tuple(row.shape) != (1, history.shape[1]):
        raise ValueError(
            f"the scorer returned scores of shape {tuple(row.shape)}, expected "
            f"(1, {history.shape[1]}) = (users in the batch, items in the catalogue)"
        )
    row = _check_scores(row, k)[0]
    if row.is_floating_point() and bool(torch.isnan(row).any()):
        return None
    return _rank_one_row(row)


def _csr_coords(rows: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) int64 tensors on ``device`` of a csr's stored entries."""
    counts = np.diff(rows.indptr)
    r = np.repeat(np.arange(rows.shape[0], dtype=np.int64), counts)
    c = rows.indices.astype(np.int64, copy=False)
    return torch.from_numpy(r).to(device), torch.from_numpy(c).to(device)


def topk_full_ranking(
    scorer: Scorer,
    users: np.ndarray,
    history: sp.csr_matrix,
    exclude: sp.csr_matrix,
    k: int,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Rank the whole catalogue for each user and return the top-k items.

    Args:
        scorer: anything with ``score(users, history) -> (B, n_items) tensor``; it is
            called under ``torch.no_grad()``.
        users: int64 (n,) target user indices, passed through to the scorer.
        history: csr (n, n_items), row i = items known for ``users[i]`` at scoring time
            (what the scorer may use).
        exclude: csr (n, n_items), row i = items that must not be recommended to
            ``users[i]`` (usually the same as ``history``).
        k: list length (the largest K any metric needs).
        batch_size: users scored at once; memory is a few times
            batch_size * n_items * 4 bytes.
        device: where masking and selection run; None keeps the scorer's output device.
        progress: called as ``progress(users_done, n_users)`` after each batch.

    Returns:
        int64 array (n, k): item indices by descending score, ties by ascending item
        index, never an excluded item, right-padded with -1 when fewer than k items
        remain (also when k > n_items).
    """
    users = np.asarray(users, dtype=np.int64)
    if users.ndim != 1:
        raise ValueError(f"users must be a 1-D array, got shape {users.shape}")
    n = len(users)
    history = sp.csr_matrix(history)
    exclude = sp.csr_matrix(exclude)
    if history.shape[0] != n or exclude.shape[0] != n:
        raise ValueError(
            f"history and exclude need one row per user ({n}), got {history.shape[0]} "
            f"and {exclude.shape[0]} rows"
        )
    if history.shape[1] != exclude.shape[1]:
        raise ValueError(
            f"history and exclude disagree on the number of items: {history.shape[1]} vs "
            f"{exclude.shape[1]}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_items = history.shape[1]
    from recsys_core.memory import ranking_batch

    # a batch never holds more scores than its memory budget (a 10M-item catalogue
    # asked 40 GB for 1,024 users)
    batch_size = ranking_batch(batch_size, n_items)
    result = np.full((n, k), -1, dtype=np.int64)
    with torch.no_grad():
        order = _declared_shared_order(scorer, users, history, k)
        if order is not None:  # one ranking for everyone: no (B, n_items) block at all
            for start in range(0, n, _SHARED_CHUNK):
                stop = min(start + _SHARED_CHUNK, n)
                coo = exclude[start:stop].tocoo()
                top = _shared_order_topk(order, coo.row, coo.col, stop - start, k)
                result[start:stop, : top.shape[1]] = top
                if progress is not None:
                    progress(stop, n)
            return result
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            scores = torch.as_tensor(scorer.score(users[start:stop], history[start:stop]))
            if tuple(scores.shape) != (stop - start, n_items):
                raise ValueError(
                    f"the scorer returned scores of shape {tuple(scores.shape)}, expected "
                    f"({stop - start}, {n_items}) = (users in the batch, items in the catalogue)"
                )
            if device is not None:
                scores = scores.to(device)
            scores = _check_scores(scores, k)
            ex_rows, ex_cols = _csr_coords(exclude[start:stop], scores.device)
            top = _select(scores, ex_rows, ex_cols, k)
            result[start:stop, : top.shape[1]] = top.cpu().numpy()
            if progress is not None:
                progress(stop, n)
    return result
