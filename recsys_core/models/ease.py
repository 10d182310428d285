"""EASE: the closed-form item-item linear autoencoder of Steck (2019).

"Embarrassingly Shallow Autoencoders for Sparse Data" (WWW 2019) learns an item-item
weight matrix B (n_items, n_items) minimising ``||X - X B||_F^2 + l2 ||B||_F^2`` subject
to ``diag(B) = 0``. The constrained optimum has the closed form

    P = (X^T X + l2 I)^-1,     B = I - P diag(1 / diag(P)),     i.e. B_ij = -P_ij / P_jj,

with the diagonal then exactly zero. The cost is one Gram matrix (O(n_users n_items^2)
as dense GEMMs, which beat a sparse product on both CPU and GPU at MovieLens density)
and one Cholesky inverse (O(n_items^3)): seconds for a few thousand items, and the
memory bound is the (n_items, n_items) matrices themselves.

Because EASE is item-item, a user is nothing but its history: ``score`` is
``history @ B`` and works unchanged for cold users from their k support items, with no
retraining and no user parameters at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.models import check_csr, csr_to_torch_coo, resolve_device, tune_on_validation

__all__ = ["EASE", "EASEConfig", "tune_on_validation"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class EASEConfig:
    """Settings of :class:`EASE`. Validates itself on construction."""

    l2: float = 500.0
    """L2 penalty lambda on B; larger smooths towards popularity-free co-occurrence.
    Typical optima: 100-3000 on MovieLens (tune with ``tune_on_validation``)."""
    device: str = "cpu"
    """torch device for the Gram matrix, the inverse and scoring ('cpu', 'cuda', ...)."""
    dtype: Literal["float32", "float64"] = "float32"
    """precision of the fit. float32 is ample here because l2 > 0 bounds the condition
    number of X^T X + l2 I; float64 is for exactness checks (it is ~8x slower on CPU)."""
    gram_chunk: int = 2048
    """users densified at a time while accumulating X^T X (bounds temporary memory to
    gram_chunk x n_items values)."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.l2) and self.l2 > 0):
            raise ValueError(
                f"l2 must be a positive number (try 500 for MovieLens-sized data), got {self.l2}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not isinstance(self.gram_chunk, int) or self.gram_chunk < 1:
            raise ValueError(f"gram_chunk must be a positive integer, got {self.gram_chunk}")
        resolve_device(self.device)


class EASE:
    """Steck (2019) EASE scorer. ID-only: cold items score zero by construction.

    An item with no training interaction has an all-zero column of X, so its row and
    column of X^T X are zero, P has ``1/l2`` on its diagonal and zeros elsewhere in that
    row and column, and B has an all-zero row and column: such an item neither receives
    a score (exactly 0.0) nor passes any to others. ``fit`` also zeroes them explicitly,
    so the guarantee does not rest on floating-point luck.

    Attributes (after ``fit``):
        B: torch tensor (n_items, n_items) in ``config.dtype`` on ``config.device``,
            item-item weights with zero diagonal; ``B[i, j]`` is how much having item i
            in the history adds to item j's score.
        n_items: catalogue size.
        item_counts: int64 numpy (n_items,), training interactions per item.
    """

    def __init__(self, config: EASEConfig | None = None) -> None:
        self.config = config or EASEConfig()
        self.B: torch.Tensor | None = None
        self.n_items = 0
        self.item_counts = np.zeros(0, dtype=np.int64)

    def fit(self, train: sp.csr_matrix) -> EASE:
        """Compute B from the training matrix.

        Args:
            train: CSR (n_users, n_items) of interaction strengths (1.0 for binary
                implicit feedback, which is what Steck used). Rows of users held out of
                training may be all zero: they add nothing to X^T X.

        Returns:
            self, fitted.
        """
        cfg = self.config
        X = check_csr(train, "train")
        n_users, n_items = X.shape
        dtype = _DTYPES[cfg.dtype]
        from recsys_core.memory import check_model_allocation

        # the gram matrix, its inverse and B: three n_items x n_items matrices
        check_model_allocation(
            f"EASE's item-item matrices for {n_items:,} items",
            3 * n_items * n_items * torch.finfo(dtype).bits // 8,
            hint="use iALS or item-kNN for a catalogue this large (--baselines to choose)",
        )
        dev = torch.device(cfg.device)
        gram = torch.zeros(n_items, n_items, dtype=dtype, device=dev)
        # Dense GEMMs over user chunks: X^T X = sum_c X_c^T X_c. Densifying a chunk on
        # the device (one index_put) keeps host-device traffic at O(nnz).
        for start in range(0, n_users, cfg.gram_chunk):
            chunk = X[start : start + cfg.gram_chunk]
            if chunk.nnz == 0:
                continue
            coo = chunk.tocoo()
            dense = torch.zeros(chunk.shape[0], n_items, dtype=dtype, device=dev)
            dense[
                torch.from_numpy(coo.row.astype(np.int64)).to(dev),
                torch.from_numpy(coo.col.astype(np.int64)).to(dev),
            ] = torch.from_numpy(coo.data).to(device=dev, dtype=dtype)
            gram.addmm_(dense.T, dense)
            del dense
        gram.diagonal().add_(cfg.l2)
        # X^T X + l2 I is symmetric positive definite for l2 > 0, so a Cholesky factor
        # exists and its inverse is cheaper and more stable than a general inverse.
        chol = torch.linalg.cholesky(gram)
        del gram
        P = torch.cholesky_inverse(chol)
        del chol
        # Steck (2019), eq. (8): B = I - P diagMat(1 / diag(P)); column j is divided by
        # -P_jj, and the diagonal becomes exactly 0 (the "no self-similarity" constraint).
        B = P / (-torch.diagonal(P)).unsqueeze(0)
        B.fill_diagonal_(0.0)
        counts = np.bincount(X.indices, minlength=n_items).astype(np.int64)
        cold = torch.from_numpy(np.flatnonzero(counts == 0)).to(dev)
        if len(cold):
            B[cold, :] = 0.0
            B[:, cold] = 0.0
        self.B = B
        self.n_items = n_items
        self.item_counts = counts
        return self

    @torch.no_grad()
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """Scores ``history @ B`` for a batch of users.

        Args:
            users: int64 (B,) user indices; unused (EASE has no user parameters) but
                checked against ``history`` for the shared scorer contract.
            history: CSR (B, n_items), the items known for each user at scoring time
                (train(+valid) items of a warm user, the support items of a cold user).
                A cold user with k = 0 support items gets all-zero scores.

        Returns:
            float32 tensor (B, n_items) on ``config.device``; items already in the
            history are not masked here (the evaluator does that).
        """
        if self.B is None:
            raise RuntimeError("EASE.score called before fit(): fit the model on train first")
        users = np.asarray(users)
        hist = check_csr(history, "history", n_items=self.n_items)
        if users.shape != (hist.shape[0],):
            raise ValueError(
                f"users has shape {users.shape} but history has {hist.shape[0]} rows; "
                "pass one history row per user"
            )
        h = csr_to_torch_coo(hist, self.config.device, self.B.dtype)
        return torch.sparse.mm(h, self.B).to(torch.float32)
