"""Text zero-shot: no training at all (docs/design.md, "Strategies").

A user is the mean of the frozen text vectors of their history; an item is its text
vector; the score is the cosine. An empty history (a cold user at k = 0) gives the text
model nothing to read: it falls back to training popularity so the figure is a real
ranking rather than an arbitrary tie order, and the run says so.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class TextZeroShot:
    """Scorer over the first ``n_items`` rows of ``text`` (the target catalogue).

    Args:
        text: float32 (n_items_or_more, text_dim) L2-normalised text vectors.
        popularity: float32 (n_items,) training counts for the empty-history fallback.
    """

    def __init__(self, text: torch.Tensor, n_items: int, popularity: np.ndarray, device="cpu"):
        self.device = torch.device(device)
        self.items = torch.nn.functional.normalize(text[:n_items].float(), dim=1).to(self.device)
        pop = torch.as_tensor(popularity, dtype=torch.float32, device=self.device)
        # Scaled into [0, 1e-3): breaks ties among equal cosines, never outranks text.
        self.pop_prior = pop / (pop.max().clamp(min=1) * 1000)

    @torch.no_grad()
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        h = history.tocoo()
        idx = torch.from_numpy(np.vstack([h.row, h.col]).astype(np.int64))
        m = torch.sparse_coo_tensor(
            idx, torch.ones(h.nnz), size=h.shape, check_invariants=False
        ).to(self.device)
        u = torch.sparse.mm(m, self.items)
        u = torch.nn.functional.normalize(u, dim=1)
        empty = torch.from_numpy(np.diff(history.indptr) == 0).to(self.device)
        s = u @ self.items.T
        s = torch.where(empty.unsqueeze(1), self.pop_prior.unsqueeze(0) * 1000, s + self.pop_prior)
        return s
