"""Implicit alternating least squares (iALS), vectorised in torch.

Model (Hu, Koren, Volinsky 2008, "Collaborative Filtering for Implicit Feedback
Datasets"): user factors U (n_users, f), item factors V (n_items, f), score U V^T,
fitted to the weighted least-squares loss

    sum_{u,i} c_ui (p_ui - u_u . v_i)^2 + sum_u lam_u |u_u|^2 + sum_i lam_i |v_i|^2,

with preference p_ui = 1 if r_ui > 0 else 0 and confidence c_ui = 1 + alpha r_ui, over
*all* (user, item) cells. Each half-step solves, for every user u at once,

    (V^T V + V^T (C_u - I) V + lam_u I) u_u = V^T C_u p_u,

where the Gramian V^T V is shared by all users and V^T (C_u - I) V only sums over the
n_u items the user touched (C_u - I is zero elsewhere): one sweep costs
O(nnz f^2 + (n_users + n_items) f^3) for the exact solver instead of O(n_users n_items f^2).

Two solvers, both batched over users on the device (no Python loop per user):

* ``"cholesky"``: builds the (B, f, f) systems with one padded batched matmul per batch
  of users, then ``torch.linalg.cholesky`` + ``cholesky_solve``; exact.
* ``"cg"``: a few conjugate-gradient steps per half-step warm-started from the previous
  factors, never forming the f x f systems (Takács, Pilászy, Tikk 2011, "Applications of
  the conjugate gradient method for implicit feedback collaborative filtering"; the same
  scheme as ``implicit``'s CG solver). A sweep then costs O(cg_steps nnz f + n f^2), and
  3 steps are enough once the factors settle, which is why it is the default. All rows
  of a side take their steps together: the product with the observed cells is a
  sampled dense-dense product (the n_u dot products y_i . p_u) and a sparse-dense one,
  both on the CSR matrix, so the other side's factors are read from cache and nothing
  of size nnz x f is built (issue 13: the padded batched products took 8.5 of the
  demo's 13 s of iALS grid search).

For the Cholesky solver (and fold-in), rows are sorted by history length and cut into
batches whose padded (B, L, f) tensor stays under a memory budget, so padding waste is
small even for power users.

Regularisation follows Rendle, Krichene, Zhang, Koren (2022), "Revisiting the
performance of iALS on item recommendation benchmarks", which found that scaling the
penalty with each row's frequency is what makes iALS competitive: ``reg_scaling=
"frequency"`` uses ``lam_u = reg * (1 + n_u) ** nu`` (n_u = the row's number of
interactions, nu = ``reg_exponent``, so nu = 1 gives ``reg * (1 + n_u)``). This is
their ``reg * (n_u + alpha_0 |I|) ** nu`` with the unobserved-mass term ``alpha_0 |I|``
replaced by 1, so that ``reg`` keeps the scale of the plain penalty (``implicit``'s
``regularization``) for rows with almost no history. ``reg_scaling="none"`` is the plain
``lam_u = reg`` of Hu et al.

Cold users (never trained on) are *folded in* at scoring time: their factor is the exact
solution of the user half-step above against the fixed item factors, computed from
their support history; k = 0 support items gives a zero vector and zero scores.
Cold items (no training interaction) keep all-zero factors and score exactly 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.models import check_csr, resolve_device, tune_on_validation
from recsys_core.training.callbacks import Cancelled

__all__ = ["IALS", "IALSConfig", "tune_on_validation"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class IALSConfig:
    """Settings of :class:`IALS`. Validates itself on construction."""

    factors: int = 64
    """latent dimension f."""
    reg: float = 0.1
    """L2 penalty (the base lam of the per-row penalty, see ``reg_scaling``). 0.1 rather
    than ``implicit``'s 0.01: with the frequency scaling, 0.1 was better on both ML-100K
    and ML-1M validation (0.256 vs 0.222 NDCG@10 on ML-100K, f = 64)."""
    alpha: float = 1.0
    """confidence slope: c_ui = 1 + alpha * r_ui for observed cells, 1 for the rest."""
    iterations: int = 15
    """full sweeps (users then items)."""
    solver: Literal["cholesky", "cg"] = "cg"
    """exact batched Cholesky, or warm-started conjugate gradient (Takács et al. 2011)."""
    cg_steps: int = 3
    """conjugate-gradient steps per half-sweep (solver='cg' only)."""
    reg_scaling: Literal["none", "frequency"] = "frequency"
    """'frequency': lam_u = reg * (1 + n_u) ** reg_exponent (Rendle et al. 2022);
    'none': lam_u = reg."""
    reg_exponent: float = 1.0
    """nu in the frequency-scaled penalty (0 turns the scaling off, 1 is linear)."""
    init_std: float = 0.01
    """standard deviation of the Gaussian initial factors."""
    seed: int = 0
    """seed of the initial factors; the same seed on the same device repeats exactly."""
    device: str = "cpu"
    """torch device ('cpu', 'cuda', 'cuda:1', ...)."""
    dtype: Literal["float32", "float64"] = "float32"
    """precision of the factors and solves."""
    batch_budget: int = 2**23
    """max values in one padded (B, L, f) or (B, f, f) temporary tensor of the Cholesky
    solver and of fold-in (memory knob; 2**23 float32 values = 32 MiB). The CG solver
    builds nothing larger than the factors and one value per observed cell."""

    def __post_init__(self) -> None:
        if not isinstance(self.factors, int) or self.factors < 1:
            raise ValueError(f"factors must be a positive integer (try 64), got {self.factors}")
        if not (np.isfinite(self.reg) and self.reg > 0):
            raise ValueError(
                f"reg must be a positive number (without it a user's system can be "
                f"singular); try reg=0.1, got {self.reg}"
            )
        for name in ("alpha", "reg_exponent", "init_std"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {v}")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(
                f"iterations must be a positive integer (try 15), got {self.iterations}"
            )
        if self.solver not in ("cholesky", "cg"):
            raise ValueError(f"solver must be 'cholesky' or 'cg', got {self.solver!r}")
        if not isinstance(self.cg_steps, int) or self.cg_steps < 1:
            raise ValueError(f"cg_steps must be a positive integer (try 3), got {self.cg_steps}")
        if self.reg_scaling not in ("none", "frequency"):
            raise ValueError(f"reg_scaling must be 'none' or 'frequency', got {self.reg_scaling!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not isinstance(self.batch_budget, int) or self.batch_budget < 1:
            raise ValueError(f"batch_budget must be a positive integer, got {self.batch_budget}")
        resolve_device(self.device)


@dataclass(frozen=True)
class _Batch:
    """One batch of rows solved together (all tensors on the device).

    rows: int64 (B,) rows (users, or items on the item side) being solved for.
    idx: int64 (B, L) the other side's indices of each row's interactions, 0-padded.
    weight: (B, L) alpha * r on real entries (the C_u - I of the Gramian trick), 0 on pads.
    conf: (B, L) 1 + alpha * r on real entries (C_u p_u), 0 on pads.
    lam: (B,) the per-row L2 penalty.
    """

    rows: torch.Tensor
    idx: torch.Tensor
    weight: torch.Tensor
    conf: torch.Tensor
    lam: torch.Tensor


def _row_penalty(counts: np.ndarray, cfg: IALSConfig) -> np.ndarray:
    """Per-row penalty (float64 (n,)) from the number of interactions per row."""
    if cfg.reg_scaling == "frequency":
        return cfg.reg * (1.0 + counts.astype(np.float64)) ** cfg.reg_exponent
    return np.full(len(counts), cfg.reg, dtype=np.float64)


def _plan(matrix: sp.csr_matrix, cfg: IALSConfig, dtype: torch.dtype) -> list[_Batch]:
    """Cut the non-empty rows of ``matrix`` into padded batches, longest rows first.

    Sorting by length and ending a batch where rows fall below 3/4 of its longest keeps
    padding under 25%; the batch size is also capped so that B * L * f and B * f * f
    stay under ``cfg.batch_budget``.
    Built once per fit with numpy (a handful of vectorised operations per batch).
    """
    dev = torch.device(cfg.device)
    counts = np.diff(matrix.indptr)
    nonempty = np.flatnonzero(counts > 0)
    order = nonempty[np.argsort(-counts[nonempty], kind="stable")]
    lam_all = _row_penalty(counts, cfg)
    f = cfg.factors
    batches: list[_Batch] = []
    start = 0
    while start < len(order):
        length = int(counts[order[start]])
        size = max(1, min(cfg.batch_budget // (length * f), cfg.batch_budget // (f * f)))
        sel = order[start : start + size]
        # Keep at least 3/4 of each padded row real: stop the batch where rows get short.
        sel = sel[: max(1, int(np.searchsorted(-counts[sel], -0.75 * length, side="right")))]
        start += len(sel)
        n_sel = counts[sel]
        # Positions of every real entry inside the padded (B, L) layout.
        row_of = np.repeat(np.arange(len(sel)), n_sel)
        col_of = np.arange(n_sel.sum()) - np.repeat(np.cumsum(n_sel) - n_sel, n_sel)
        src = np.repeat(matrix.indptr[sel], n_sel) + col_of
        idx = np.zeros((len(sel), length), dtype=np.int64)
        val = np.zeros((len(sel), length), dtype=np.float64)
        idx[row_of, col_of] = matrix.indices[src]
        val[row_of, col_of] = matrix.data[src]
        mask = np.zeros((len(sel), length), dtype=bool)
        mask[row_of, col_of] = True
        weight = cfg.alpha * val
        conf = np.where(mask, 1.0 + cfg.alpha * val, 0.0)
        batches.append(
            _Batch(
                rows=torch.from_numpy(sel.astype(np.int64)).to(dev),
                idx=torch.from_numpy(idx).to(dev),
                weight=torch.from_numpy(weight).to(device=dev, dtype=dtype),
                conf=torch.from_numpy(conf).to(device=dev, dtype=dtype),
                lam=torch.from_numpy(lam_all[sel]).to(device=dev, dtype=dtype),
            )
        )
    return batches


def _rhs(batch: _Batch, Yp: torch.Tensor) -> torch.Tensor:
    """b_u = Y^T C_u p_u = sum_i c_ui y_i over the row's interactions; (B, f)."""
    return torch.bmm(batch.conf.unsqueeze(1), Yp).squeeze(1)


def _solve_cholesky(batch: _Batch, Y: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """Exact solutions (B, f) of (Y^T Y + Y^T (C_u - I) Y + lam_u I) x_u = Y^T C_u p_u."""
    Yp = Y[batch.idx]  # (B, L, f)
    A = torch.bmm((Yp * batch.weight.unsqueeze(-1)).transpose(1, 2), Yp)  # (B, f, f)
    A += gram
    A.diagonal(dim1=1, dim2=2).add_(batch.lam.unsqueeze(1))
    chol = torch.linalg.cholesky(A)
    return torch.cholesky_solve(_rhs(batch, Yp).unsqueeze(-1), chol).squeeze(-1)


@dataclass(frozen=True)
class _Side:
    """One side's observed cells as CSR (n rows, m columns), for the CG solver and the loss.

    crow: int64 (n + 1,); col: int64 (nnz,) column of each cell, sorted within a row.
    weight: (nnz,) alpha * r (the C_u - I of the Gramian trick); conf: (nnz,) 1 + alpha * r.
    lam: (n,) the per-row L2 penalty.
    """

    crow: torch.Tensor
    col: torch.Tensor
    weight: torch.Tensor
    conf: torch.Tensor
    lam: torch.Tensor
    shape: tuple[int, int]

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """The (n, m) sparse CSR tensor with these cell values."""
        return torch.sparse_csr_tensor(
            self.crow, self.col, values, self.shape, check_invariants=False
        )

    def cell_dots(self, P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """(nnz,) p_u . y_i for every observed cell (u, i): P (n, f), Y (m, f)."""
        pattern = self.matrix(torch.zeros_like(self.weight))
        return torch.sparse.sampled_addmm(pattern, P, Y.T, beta=0.0).values()

    def spmm(self, values: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """(n, f): row u's sum of values[u, i] * y_i over its cells."""
        return torch.sparse.mm(self.matrix(values), Y)


def _side(matrix: sp.csr_matrix, cfg: IALSConfig, dtype: torch.dtype) -> _Side:
    """The CSR side of ``matrix`` (indices sorted) on the config's device."""
    dev = torch.device(cfg.device)
    m = matrix.copy()
    m.sort_indices()
    counts = np.diff(m.indptr)
    val = m.data.astype(np.float64)
    return _Side(
        crow=torch.from_numpy(m.indptr.astype(np.int64)).to(dev),
        col=torch.from_numpy(m.indices.astype(np.int64)).to(dev),
        weight=torch.from_numpy(cfg.alpha * val).to(device=dev, dtype=dtype),
        conf=torch.from_numpy(1.0 + cfg.alpha * val).to(device=dev, dtype=dtype),
        lam=torch.from_numpy(_row_penalty(counts, cfg)).to(device=dev, dtype=dtype),
        shape=(int(m.shape[0]), int(m.shape[1])),
    )


def _cg_side(
    side: _Side, Y: torch.Tensor, gram: torch.Tensor, x0: torch.Tensor, steps: int
) -> torch.Tensor:
    """``steps`` conjugate-gradient steps on every row's system, from ``x0`` (n, f).

    The systems are (Y^T Y + Y^T (C_u - I) Y + lam_u I) x_u = Y^T C_u p_u; the product
    A p is applied as p Y^T Y + lam p + sum_i w_i (y_i . p) y_i without ever forming A
    (Takács et al. 2011), its last term on the side's CSR. Rows whose residual has
    vanished stop moving; rows without cells have a zero right-hand side, so from a zero
    start they stay zero.
    """
    lam = side.lam.unsqueeze(1)

    def matvec(p: torch.Tensor) -> torch.Tensor:
        t = side.cell_dots(p, Y) * side.weight
        return p @ gram + lam * p + side.spmm(t, Y)

    tiny = torch.finfo(Y.dtype).tiny
    x = x0.clone()
    r = side.spmm(side.conf, Y) - matvec(x)
    p = r.clone()
    rs = (r * r).sum(1)
    for _ in range(steps):
        Ap = matvec(p)
        pAp = (p * Ap).sum(1)
        # implicit's CG stops a row once |r|^2 < 1e-20; here the row's step becomes 0.
        active = (rs > 1e-20) & (pAp > 0)
        a = torch.where(active, rs / pAp.clamp_min(tiny), torch.zeros_like(rs))
        x += a.unsqueeze(1) * p
        r -= a.unsqueeze(1) * Ap
        rs_new = (r * r).sum(1)
        beta = torch.where(active, rs_new / rs.clamp_min(tiny), torch.zeros_like(rs))
        p = r + beta.unsqueeze(1) * p
        rs = rs_new
    return x


class IALS:
    """Implicit ALS scorer (Hu et al. 2008) with batched Cholesky or CG solvers.

    ID-only: cold items (no training interaction) have all-zero item factors and so
    score exactly 0 for every user. Cold users are folded in from their history.

    Attributes (after ``fit``):
        U: tensor (n_users, f) user factors; all-zero rows for users without training
            interactions.
        V: tensor (n_items, f) item factors; all-zero rows for cold items.
        known_users: bool numpy (n_users,), True for users with training interactions
            (scored from U); any other user index is folded in at scoring time.
        item_counts: int64 numpy (n_items,), training interactions per item.
        loss_history: list of the normalised training loss after each sweep (the loss
            above divided by the total confidence n_users n_items + alpha sum r).
        seconds_history: list of cumulative fit seconds after each sweep.
    """

    def __init__(self, config: IALSConfig | None = None) -> None:
        self.config = config or IALSConfig()
        self.U: torch.Tensor | None = None
        self.V: torch.Tensor | None = None
        self.n_users = 0
        self.n_items = 0
        self.known_users = np.zeros(0, dtype=bool)
        self.item_counts = np.zeros(0, dtype=np.int64)
        self.loss_history: list[float] = []
        self.seconds_history: list[float] = []

    @property
    def _dtype(self) -> torch.dtype:
        return _DTYPES[self.config.dtype]

    def fit(
        self,
        train: sp.csr_matrix,
        callback: Callable[[int, float, float | None], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> IALS:
        """Alternate exact (or CG) least-squares updates of U and V.

        Args:
            train: CSR (n_users, n_items) of non-negative interaction strengths r_ui
                (1.0 for binary feedback; counts or ratings raise the confidence).
            callback: called after each sweep as ``callback(iteration, seconds, loss)``
                with the 1-based iteration, cumulative seconds and the normalised loss;
                its return value is ignored.
            cancel: checked before each sweep; when it returns True the fit stops.

        Returns:
            self, fitted.

        Raises:
            Cancelled: ``cancel()`` returned True (the factors then hold the completed
                sweeps only and ``loss_history`` says how many).
        """
        cfg = self.config
        dtype = self._dtype
        dev = torch.device(cfg.device)
        X = check_csr(train, "train")
        n_users, n_items = X.shape
        Xt = X.T.tocsr()
        Xt.sort_indices()
        t0 = time.perf_counter()
        if cfg.solver == "cg":
            user_side, item_side = _side(X, cfg, dtype), _side(Xt, cfg, dtype)
        else:
            user_plan, item_plan = _plan(X, cfg, dtype), _plan(Xt, cfg, dtype)

        gen = torch.Generator().manual_seed(cfg.seed)
        U = torch.randn(n_users, cfg.factors, generator=gen, dtype=torch.float64) * cfg.init_std
        V = torch.randn(n_items, cfg.factors, generator=gen, dtype=torch.float64) * cfg.init_std
        user_counts = np.diff(X.indptr)
        item_counts = np.diff(Xt.indptr)
        # Rows never updated (no interactions) stay exactly zero: cold items score 0.
        U[torch.from_numpy(user_counts == 0)] = 0.0
        V[torch.from_numpy(item_counts == 0)] = 0.0
        U = U.to(device=dev, dtype=dtype)
        V = V.to(device=dev, dtype=dtype)

        self.U, self.V = U, V
        self.n_users, self.n_items = n_users, n_items
        self.known_users = user_counts > 0
        self.item_counts = item_counts.astype(np.int64)
        self.loss_history, self.seconds_history = [], []
        self._total_conf = float(n_users) * n_items + cfg.alpha * float(X.data.sum())
        self._user_lam = torch.from_numpy(_row_penalty(user_counts, cfg)).to(dev, dtype)
        self._item_lam = torch.from_numpy(_row_penalty(item_counts, cfg)).to(dev, dtype)

        with torch.no_grad():
            for it in range(1, cfg.iterations + 1):
                if cancel is not None and cancel():
                    # The house contract (training.callbacks): a cancelled fit raises, so
                    # a half-trained model is never evaluated as if it were finished.
                    raise Cancelled(
                        f"iALS fit cancelled after {it - 1} of {cfg.iterations} iterations"
                    )
                if cfg.solver == "cg":
                    U[:] = _cg_side(user_side, V, V.T @ V, U, cfg.cg_steps)
                    V[:] = _cg_side(item_side, U, U.T @ U, V, cfg.cg_steps)
                    loss = self._loss_side(U, V, user_side)
                else:
                    self._half_step(U, V, user_plan)
                    self._half_step(V, U, item_plan)
                    loss = self._loss(U, V, user_plan)
                seconds = time.perf_counter() - t0
                self.loss_history.append(loss)
                self.seconds_history.append(seconds)
                if callback is not None:
                    callback(it, seconds, loss)
        return self

    def _half_step(self, X: torch.Tensor, Y: torch.Tensor, plan: list[_Batch]) -> None:
        """Exact update, in place, of the rows of X listed in ``plan`` given Y (Cholesky)."""
        gram = Y.T @ Y
        for batch in plan:
            X[batch.rows] = _solve_cholesky(batch, Y, gram)

    def _loss_side(self, U: torch.Tensor, V: torch.Tensor, side: _Side) -> float:
        """:meth:`_loss` with the observed cells' scores from the CSR side."""
        U64, V64 = U.double(), V.double()
        total = ((U64.T @ U64) * (V64.T @ V64)).sum()
        s = side.cell_dots(U, V)
        total += (side.conf * (1.0 - s) ** 2 - s**2).sum(dtype=torch.float64)
        total += (self._user_lam.double() * (U64 * U64).sum(1)).sum()
        total += (self._item_lam.double() * (V64 * V64).sum(1)).sum()
        return float(total) / self._total_conf

    def _loss(self, U: torch.Tensor, V: torch.Tensor, user_plan: list[_Batch]) -> float:
        """The normalised weighted loss; O(nnz f + (n_users + n_items) f^2).

        sum over all cells of s^2 is trace((U^T U)(V^T V)); the observed cells then
        swap their s^2 for c (1 - s)^2.
        """
        # Per-cell predictions in the factors' precision, sums accumulated in float64.
        U64, V64 = U.double(), V.double()
        total = ((U64.T @ U64) * (V64.T @ V64)).sum()
        for batch in user_plan:
            s = torch.bmm(V[batch.idx], U[batch.rows].unsqueeze(-1)).squeeze(-1)
            cell = torch.where(batch.conf > 0, batch.conf * (1.0 - s) ** 2 - s**2, 0.0)
            total += cell.sum(dtype=torch.float64)
        total += (self._user_lam.double() * (U64 * U64).sum(1)).sum()
        total += (self._item_lam.double() * (V64 * V64).sum(1)).sum()
        return float(total) / self._total_conf

    @torch.no_grad()
    def fold_in(self, history: sp.csr_matrix) -> torch.Tensor:
        """User factors (B, f) solved against the fixed item factors from ``history``.

        One exact ALS user half-step (Hu et al. 2008, eq. 4) with the same confidence
        and penalty as training: the factor a user would get if V were held fixed while
        training it. Rows with no history give zero vectors.

        Args:
            history: CSR (B, n_items) interaction strengths.
        """
        if self.V is None:
            raise RuntimeError("IALS.fold_in called before fit(): fit the model on train first")
        hist = check_csr(history, "history", n_items=self.n_items)
        cfg = self.config
        out = torch.zeros(hist.shape[0], cfg.factors, dtype=self._dtype, device=self.V.device)
        gram = self.V.T @ self.V
        for batch in _plan(hist, cfg, self._dtype):
            out[batch.rows] = _solve_cholesky(batch, self.V, gram)
        return out

    @torch.no_grad()
    def user_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """Factors (B, f): trained rows of U for known users, fold-in for the others.

        A user is folded in when its index is outside the training matrix or it had no
        training interactions (``known_users`` is False), so cold users with k support
        items get a real vector and cold users with k = 0 a zero vector.
        """
        if self.U is None:
            raise RuntimeError("IALS.score called before fit(): fit the model on train first")
        users = np.asarray(users, dtype=np.int64)
        if users.shape != (history.shape[0],):
            raise ValueError(
                f"users has shape {users.shape} but history has {history.shape[0]} rows; "
                "pass one history row per user"
            )
        if history.shape[1] != self.n_items:
            raise ValueError(
                f"history has {history.shape[1]} item columns but the model was fitted on "
                f"{self.n_items}; build it with the same item index as the training matrix"
            )
        known = np.zeros(len(users), dtype=bool)
        inside = (users >= 0) & (users < self.n_users)
        known[inside] = self.known_users[users[inside]]
        vecs = torch.zeros(len(users), self.config.factors, dtype=self._dtype, device=self.U.device)
        if known.any():
            pos = torch.from_numpy(np.flatnonzero(known)).to(self.U.device)
            vecs[pos] = self.U[torch.from_numpy(users[known]).to(self.U.device)]
        if (~known).any():
            cold = np.flatnonzero(~known)
            hist = check_csr(history, "history", n_items=self.n_items)[cold]
            vecs[torch.from_numpy(cold).to(self.U.device)] = self.fold_in(hist)
        return vecs

    def as_cold(self) -> _FoldInAll:
        """This model folding every user in from the history it is given (its trained
        rows of U unused): how a user it never saw would be scored."""
        return _FoldInAll(self)

    @torch.no_grad()
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """Scores ``user_vector . v_i`` for every item.

        Args:
            users: int64 (B,) target user indices.
            history: CSR (B, n_items) items known for each user at scoring time; only
                read for users that are folded in (see :meth:`user_vectors`).

        Returns:
            float32 tensor (B, n_items) on ``config.device``; cold items score 0.
        """
        return (self.user_vectors(users, history) @ self.V.T).to(torch.float32)


class _FoldInAll:
    """:meth:`IALS.as_cold`: scores every user by fold-in (user index -1 is never known)."""

    def __init__(self, model: IALS) -> None:
        self.model = model

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.model.score(np.full(len(np.asarray(users)), -1, dtype=np.int64), history)
