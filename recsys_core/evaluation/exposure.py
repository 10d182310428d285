"""How much exposure new items get: a business choice, drawn as a curve.

In a full-catalogue ranking a new (cold) item appears only when its score is on the
trained items' scale. Adding an offset to every untrained item's score trades warm-item
accuracy for new-item exposure; where to sit on that curve is the analyst's call, not a
constant. For a range of offsets (in units of each user's score standard deviation over
the catalogue, so the same offset means the same for every model), this module measures
on *validation* rows, never test:

* cold-item Recall@20: the validation rows whose item has no training interaction (the
  validation cold items, ``SplitConfig.valid_cold_item_frac``);
* warm-item Recall@20: the other validation rows;
* NDCG@10 over all validation rows, whose maximum is the operating point the run keeps
  (ties go to the offset nearest 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.split_types import Split
from recsys_core.evaluation.evaluate import rows_csr

OFFSETS: tuple[float, ...] = tuple(round(x, 2) for x in np.arange(-2.0, 3.01, 0.25))
"""Offsets tried, in units of the user's score standard deviation."""


class ColdOffsetScorer:
    """``base`` with ``offset * std_u`` added to the scores of untrained items.

    Args:
        base: a Scorer.
        untrained: bool (n_items,) items without training interactions.
        offset: in units of each user's score standard deviation over the catalogue.
    """

    def __init__(self, base, untrained: np.ndarray, offset: float) -> None:
        self.base, self.offset = base, float(offset)
        self.untrained = torch.as_tensor(np.asarray(untrained, dtype=bool))

    def as_cold(self):
        from recsys_core.strategies.prior import as_cold

        return ColdOffsetScorer(as_cold(self.base), self.untrained.numpy(), self.offset)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        s = self.base.score(users, history)
        return shift_untrained(s, self.untrained.to(s.device), self.offset)


def shift_untrained(scores: torch.Tensor, untrained: torch.Tensor, offset: float) -> torch.Tensor:
    """(B, n) scores with ``offset * std`` of each row added to the untrained columns."""
    if offset == 0 or not bool(untrained.any()):
        return scores
    s = scores.float()
    step = s.std(1, keepdim=True).nan_to_num(0.0) * offset
    return torch.where(untrained.unsqueeze(0), s + step, s)


def exposure_curve(
    scorer,
    split: Split,
    offsets: tuple[float, ...] = OFFSETS,
    max_users: int = 2000,
    seed: int = 0,
    batch_size: int = 1024,
) -> tuple[pd.DataFrame, float | None]:
    """The exposure curve on validation and the offset that validates best.

    Returns:
        (curve, chosen): curve has one row per offset with columns offset,
        cold_recall@20, warm_recall@20, ndcg@10 (all validation rows) and the users
        counted; chosen is the offset with the best ndcg@10 (None when validation has
        no cold item rows, and the curve is then empty).
    """
    from recsys_core.evaluation.metrics import ranking_metrics
    from recsys_core.evaluation.ranking import topk_from_scores

    n_items = split.n_items
    trained = split.trained_items()
    untrained = ~trained
    valid = split.valid
    if not len(valid):
        return pd.DataFrame(), None
    is_cold = untrained[valid["item"].to_numpy(np.int64)]
    if not is_cold.any() or is_cold.all():
        return pd.DataFrame(), None
    users = np.unique(valid["user"].to_numpy(np.int64))
    if max_users and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    hist = rows_csr([split.train], users, n_items)
    truth_all = rows_csr([valid], users, n_items)
    truth_cold = rows_csr([valid[is_cold]], users, n_items)
    truth_warm = rows_csr([valid[~is_cold]], users, n_items)
    mask_u = torch.from_numpy(untrained)
    sums = {k: np.zeros(len(offsets)) for k in ("cold", "warm", "all")}
    counts = {k: 0 for k in sums}
    for start in range(0, len(users), batch_size):
        sl = slice(start, start + batch_size)
        u = users[sl]
        with torch.no_grad():
            base = torch.as_tensor(scorer.score(u, hist[sl])).float().cpu()
        ex = hist[sl].tocoo()
        masked = torch.zeros(base.shape, dtype=torch.bool)
        masked[torch.from_numpy(ex.row).long(), torch.from_numpy(ex.col).long()] = True
        parts = {"cold": truth_cold[sl], "warm": truth_warm[sl], "all": truth_all[sl]}
        for key, t in parts.items():
            counts[key] += int((np.diff(t.indptr) > 0).sum())
        for j, off in enumerate(offsets):
            lists = topk_from_scores(shift_untrained(base, mask_u, off), masked, 20).numpy()
            for key, t in parts.items():
                pu = ranking_metrics(lists, t, (10, 20), users=u)
                col = "ndcg@10" if key == "all" else "recall@20"
                sums[key][j] += float(pu[col].sum())
    curve = pd.DataFrame(
        {
            "offset": offsets,
            "cold_recall@20": sums["cold"] / max(counts["cold"], 1),
            "warm_recall@20": sums["warm"] / max(counts["warm"], 1),
            "ndcg@10": sums["all"] / max(counts["all"], 1),
        }
    )
    curve["cold_users"], curve["warm_users"] = counts["cold"], counts["warm"]
    best = curve["ndcg@10"].max()
    near = curve[curve["ndcg@10"] >= best - 1e-12]
    chosen = float(near.loc[near["offset"].abs().idxmin(), "offset"])
    return curve, chosen
