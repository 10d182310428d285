"""The one scorer every trained strategy shares: a two-tower model over a joint item space.

    score(u, i) = <user_vec(u), item_vec(i)> + bias(i)

* ``item_vec(i) = id_emb[i] * trained_item[i] + text_proj(text[i])``: items never seen in
  training keep a zero id part, so a cold item is scored from its text alone.
* ``user_vec(u) = id_emb[u] * trained_user[u] + mean_{j in H(u)} item_vec(j)``: a user
  with k support items gets a vector without retraining (k = 0: only the id part, or
  nothing, and the score falls back to the learned item bias, i.e. a popularity prior).
* ``bias(i) = id_bias[i] * trained_item[i] + w_b . text[i]``.

``use_text=False, use_history=False`` gives plain BPR matrix factorisation (ids only, as
in the standard libraries, Rendle et al. 2009). Histories in training are a random
subsample of ``history_len`` items of the user's training items with the positive
removed (leave-one-out): the pooled vector never contains the item it is asked to
predict, and short sampled histories train the model for the few-shot cold users it is
evaluated on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TwoTowerConfig:
    """Shape of the scorer."""

    dim: int = 64
    """embedding dimension d."""
    use_text: bool = True
    """add a projection of the frozen text vector to each item (needed for cold items)."""
    use_history: bool = True
    """add the mean of the history item vectors to each user (needed for cold users)."""
    use_ids: bool = True
    """learn an id embedding per user and item."""
    text_hidden: int = 0
    """0: linear text projection; >0: a 2-layer MLP with this hidden size."""
    history_len: int = 32
    """history items sampled per user per training step."""
    init_std: float = 0.05
    id_dropout: float = 0.25
    """training only: share of items whose id part (embedding and bias) is dropped each
    step, so the text part learns to score an item on its own, as it must for a cold
    item (DropoutNet, Volkovs et al., NeurIPS 2017). Ignored without text."""

    def __post_init__(self) -> None:
        if not 2 <= self.dim <= 2048:
            raise ValueError(f"dim must be between 2 and 2048, got {self.dim}")
        if not (self.use_ids or self.use_text):
            raise ValueError("the scorer needs id embeddings or text (use_ids or use_text)")
        if self.text_hidden < 0:
            raise ValueError(f"text_hidden must be >= 0, got {self.text_hidden}")
        if not 0 <= self.id_dropout < 1:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if not 1 <= self.history_len <= 1024:
            raise ValueError(f"history_len must be between 1 and 1024, got {self.history_len}")


class TwoTower(nn.Module):
    """Two-tower scorer over ``n_items`` joint items and ``n_users`` joint users.

    Args:
        text: float32 (n_items, text_dim) frozen, L2-normalised text vectors, or None.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        config: TwoTowerConfig = TwoTowerConfig(),
        text: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.n_users, self.n_items = n_users, n_items
        d = config.dim
        use_text = config.use_text and text is not None
        self.use_text = use_text
        if config.use_ids:
            self.user_emb = nn.Parameter(torch.randn(n_users, d) * config.init_std)
            self.item_emb = nn.Parameter(torch.randn(n_items, d) * config.init_std)
            self.item_bias = nn.Parameter(torch.zeros(n_items))
        if use_text:
            self.register_buffer("text", text.float(), persistent=False)
            td = text.shape[1]
            if config.text_hidden:
                self.text_proj = nn.Sequential(
                    nn.Linear(td, config.text_hidden), nn.GELU(), nn.Linear(config.text_hidden, d)
                )
            else:
                self.text_proj = nn.Linear(td, d, bias=False)
            self.text_bias = nn.Linear(td, 1)
            nn.init.zeros_(self.text_bias.weight)
            nn.init.zeros_(self.text_bias.bias)
        # Which rows have been trained on (any stage). Untrained id rows are masked out so
        # an unseen user/item contributes nothing but its text and history.
        self.register_buffer("trained_user", torch.zeros(n_users, dtype=torch.bool))
        self.register_buffer("trained_item", torch.zeros(n_items, dtype=torch.bool))

    # ------------------------------------------------------------------ towers
    def id_keep_mask(self, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """(n_items,) bool for one training step: False where the id part is dropped."""
        p = self.config.id_dropout
        if not (self.training and self.use_text and self.config.use_ids and p > 0):
            return None
        r = torch.rand(self.n_items, generator=generator).to(self.trained_item.device)
        return r >= p

    def _rows(self, t: torch.Tensor, items: torch.Tensor | None, limit: int | None):
        if items is not None:
            return t.index_select(0, items)
        return t if limit is None else t[:limit]

    def item_vectors(
        self,
        items: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        limit: int | None = None,
    ) -> torch.Tensor:
        """(n, d) item vectors for ``items``, else for the first ``limit`` joint items,
        else for all joint items.

        ``keep``: optional (n_items,) mask from :meth:`id_keep_mask` (training only).
        ``limit`` lets training on the target alone project the text of the target's
        items only (they come first in the joint index), a third of the demo's catalogue.
        """
        parts = []
        if self.config.use_ids:
            emb = self._rows(self.item_emb, items, limit)
            mask = self.trained_item if keep is None else self.trained_item & keep
            mask = self._rows(mask, items, limit)
            parts.append(emb * mask.unsqueeze(1).to(emb.dtype))
        if self.use_text:
            parts.append(self.text_proj(self._rows(self.text, items, limit)))
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def item_biases(
        self,
        items: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        limit: int | None = None,
    ) -> torch.Tensor:
        """(n,) item bias: learned popularity prior (id part masked for unseen items);
        ``items`` and ``limit`` as in :meth:`item_vectors`."""
        out = None
        if self.config.use_ids:
            b = self._rows(self.item_bias, items, limit)
            m = self.trained_item if keep is None else self.trained_item & keep
            out = b * self._rows(m, items, limit).to(b.dtype)
        if self.use_text:
            tb = self.text_bias(self._rows(self.text, items, limit)).squeeze(1)
            out = tb if out is None else out + tb
        return out

    def user_id_part(self, users: torch.Tensor) -> torch.Tensor | None:
        if not self.config.use_ids:
            return None
        keep = self.trained_user.index_select(0, users).unsqueeze(1).to(self.user_emb.dtype)
        return self.user_emb.index_select(0, users) * keep

    def user_vectors_from_sum(
        self, users: torch.Tensor, hist_sum: torch.Tensor | None, hist_cnt: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, d) user vectors from the id part plus the mean pooled history."""
        out = self.user_id_part(users)
        if self.config.use_history and hist_sum is not None:
            pooled = hist_sum / hist_cnt.clamp(min=1).unsqueeze(1)
            out = pooled if out is None else out + pooled
        if out is None:
            out = torch.zeros(len(users), self.config.dim, device=users.device)
        return out

    # ------------------------------------------------------------------ training
    def sampled_history(
        self,
        users: torch.Tensor,
        positives: torch.Tensor,
        indptr: torch.Tensor,
        indices: torch.Tensor,
        item_vecs: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum and count of ``history_len`` sampled history vectors, positive excluded.

        ``indptr``/``indices``: csr structure of the training history (joint users x joint
        items). Returns ((B, d), (B,)).
        """
        L = self.config.history_len
        B = len(users)
        start = indptr.index_select(0, users)
        end = indptr.index_select(0, users + 1)
        n = end - start
        r = torch.rand(B, L, generator=generator, device=users.device)
        pos = start.unsqueeze(1) + (r * n.unsqueeze(1)).long()
        pos = torch.minimum(pos, (end - 1).clamp(min=0).unsqueeze(1))
        hist = indices.index_select(0, pos.reshape(-1)).reshape(B, L)
        valid = (hist != positives.unsqueeze(1)) & (n > 0).unsqueeze(1)
        # Pool with embedding_bag (a sum of B*L rows weighted 0/1): its forward and
        # backward are fused gather/scatter kernels, about a fifth cheaper per step than
        # the sparse (B x n_items) product used before (issue 13), and far cheaper than
        # gathering a (B, L, d) tensor and scattering its gradient back. In float32
        # even under bf16 autocast: pooling a sum of 32 vectors wants the precision.
        offsets = torch.arange(0, B * L, L, device=users.device)
        with torch.autocast(device_type=item_vecs.device.type, enabled=False):
            if item_vecs.device.type == "cpu" and torch.is_grad_enabled():
                pooled = _HistoryPool.apply(hist, item_vecs.float(), valid.float())
            else:
                pooled = F.embedding_bag(
                    hist.reshape(-1),
                    item_vecs.float(),
                    offsets,
                    mode="sum",
                    per_sample_weights=valid.reshape(-1).float(),
                )
        return pooled, valid.sum(1).float()

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score_users(
        self,
        users: np.ndarray,
        history: sp.csr_matrix,
        candidate_items: int,
        extra_history: sp.csr_matrix | None = None,
        device: torch.device | str = "cpu",
        untrained: torch.Tensor | None = None,
        anonymous: bool = False,
    ) -> torch.Tensor:
        """(B, candidate_items) scores over the first ``candidate_items`` joint items.

        ``anonymous``: score every user as a cold one, from ``history`` alone (no id
        vector): how the popularity prior's weights are chosen on validation users
        treated as cold (:mod:`recsys_core.strategies.prior`).

        ``history``: (B, candidate_items) target items known for each user;
        ``extra_history``: (B, n_items) further joint items (a shared user's source
        history), pooled together with ``history``; ``untrained``: optional bool
        (candidate_items,) of items without training interactions in this domain, whose
        content-path scores are calibrated (:meth:`_calibrate_untrained`).
        """
        self.eval()
        item_vecs = self.item_vectors()
        cand = item_vecs[:candidate_items]
        bias = self.item_biases()[:candidate_items]
        u = torch.as_tensor(users, dtype=torch.long, device=item_vecs.device)
        hsum = hcnt = None
        if self.config.use_history:
            hsum, hcnt = _pool(history, cand, item_vecs.device)
            if extra_history is not None and extra_history.nnz:
                es, ec = _pool(extra_history, item_vecs, item_vecs.device)
                hsum, hcnt = hsum + es, hcnt + ec
        if anonymous:
            uv = torch.zeros(len(u), self.config.dim, device=item_vecs.device)
            if hsum is not None:
                uv = hsum / hcnt.clamp(min=1).unsqueeze(1)
        else:
            uv = self.user_vectors_from_sum(u, hsum, hcnt)
        scores = uv @ cand.T + bias
        if untrained is not None and self.use_text:
            scores = self._calibrate_untrained(uv, scores, untrained.to(scores.device))
        return scores

    def _calibrate_untrained(
        self, uv: torch.Tensor, scores: torch.Tensor, untrained: torch.Tensor
    ) -> torch.Tensor:
        """Put the content-path scores of untrained items on the trained items' scale.

        An item with no training interaction has only its text path, ``<u, P t_i> +
        w_b . t_i``, while a trained item adds an id vector and an id bias. The two sit on
        different scales (the text path was trained in the shadow of the ids), so raw
        scores rank every new item below the catalogue: NDCG@10 0.000 to 0.002 on the
        demo's cold items even after fine-tuning on ML-1M. Per user, the text-path score
        of each item is standardised over the *trained* items' text-path scores and
        mapped onto the mean and spread of their full scores: a new item whose content
        path scores like the user's favourite trained items' content paths is ranked
        among them. It is a fixed rule (moment matching) with no parameter to tune; the
        validation rows include cold items of their own, so validation judges it.

        ``untrained``: bool (n_candidates,). Returns a copy of ``scores``.
        """
        if not bool(untrained.any()) or bool(untrained.all()):
            return scores
        n = scores.shape[1]
        txt = self.text[:n]
        content = uv @ self.text_proj(txt).T + self.text_bias(txt).squeeze(1)
        return calibrate_untrained(scores, content, untrained)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def calibrate_untrained(
    scores: torch.Tensor, content: torch.Tensor, untrained: torch.Tensor
) -> torch.Tensor:
    """Moment matching of :meth:`TwoTower._calibrate_untrained`, on given arrays.

    Args:
        scores: (B, n) full scores (id + text + bias) of every candidate item.
        content: (B, n) content-path scores ``<u, P t_i> + w_b . t_i`` of the same items.
        untrained: bool (n,), items without training interactions.

    Returns:
        (B, n): ``scores`` where an untrained item's score is replaced by its content
        z-score (over the trained items' content scores) mapped onto the trained items'
        mean and spread of ``scores``. Unchanged when no or every item is untrained.
    """
    if not bool(untrained.any()) or bool(untrained.all()):
        return scores
    warm = ~untrained
    s_w, c_w = scores[:, warm], content[:, warm]
    z = (content - c_w.mean(1, keepdim=True)) / c_w.std(1, keepdim=True).clamp(min=1e-6)
    mapped = s_w.mean(1, keepdim=True) + s_w.std(1, keepdim=True) * z
    return torch.where(untrained.unsqueeze(0), mapped, scores)


def _pool(history: sp.csr_matrix, vecs: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of item vectors per row of a binary csr, and the row counts."""
    h = history.tocoo()
    idx = torch.from_numpy(np.vstack([h.row, h.col]).astype(np.int64))
    vals = torch.ones(h.nnz, dtype=vecs.dtype)
    m = torch.sparse_coo_tensor(idx, vals, size=h.shape, check_invariants=False).to(device)
    cnt = torch.from_numpy(np.diff(history.indptr).astype(np.float32)).to(device)
    return torch.sparse.mm(m, vecs), cnt.to(vecs.dtype)


# torch says so once per process, on the first CSR tensor: not news for the user
warnings.filterwarnings(
    "ignore", message="Sparse CSR tensor support is in beta", category=UserWarning
)


class _HistoryPool(torch.autograd.Function):
    """Sum of each row's history vectors weighted 0/1: ``out[b] = sum_l w[b, l] *
    V[idx[b, l]]``; the forward is ``F.embedding_bag``, the backward a sparse product.

    embedding_bag's dense backward on a CPU sorts the B x L indices and scatters one row
    at a time: 10.5 ms a step at B = 4,096, L = 32, d = 64, which made it a sixth of a
    two-tower step (twice per step in adapt). The gradient of V is ``A @ grad`` with A
    the (n_items, B) matrix of the weights, built in CSR from one stable sort of the
    indices; MKL's sparse product then takes 5.7 ms (3.7 ms against 9.3 at d = 16),
    bench in issue 13. CPU only: on a GPU the loop keeps embedding_bag.

    Shapes: idx int64 (B, L), V float32 (n_items, d), w float32 (B, L). Returns (B, d).
    """

    @staticmethod
    def forward(ctx, idx: torch.Tensor, V: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        B, L = idx.shape
        offsets = torch.arange(0, B * L, L, device=idx.device)
        ctx.save_for_backward(idx, w)
        ctx.n_items = len(V)
        return F.embedding_bag(
            idx.reshape(-1), V, offsets, mode="sum", per_sample_weights=w.reshape(-1)
        )

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if not ctx.needs_input_grad[1]:
            return None, None, None
        idx, w = ctx.saved_tensors
        B, L = idx.shape
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)  # CSR rows = items; columns = batch rows
        counts = torch.bincount(flat, minlength=ctx.n_items)
        crow = torch.zeros(ctx.n_items + 1, dtype=torch.int64, device=idx.device)
        torch.cumsum(counts, 0, out=crow[1:])
        A = torch.sparse_csr_tensor(
            crow,
            torch.div(order, L, rounding_mode="floor"),
            w.reshape(-1).index_select(0, order),
            size=(ctx.n_items, B),
            check_invariants=False,
        )
        return None, A @ grad.contiguous(), None
