"""Content map: iALS for the items people used, a ridge map from text to factors for the
items nobody used yet.

The classic content-to-factor regression for new items (van den Oord et al., NeurIPS
2013, "Deep content-based music recommendation"; Gantner et al., ICDM 2010, "Learning
attribute-to-feature mappings for cold-start recommendations"): fit iALS on the target
(tuned on validation, shared with the ``ials`` baseline through the run's cache), then
learn ``W = argmin ||T_trained W - V_trained||^2 + lambda ||W||^2`` from the frozen text
vectors T of the trained items to their item factors V, and give every untrained item
the factor ``t_i W``. Users are scored as by iALS (a cold user folded in from their
support items). lambda is chosen on validation, whose rows include validation cold items.

A target-only model (it reads the pretrained text, as the two-tower target-only does),
so a baseline: a transfer strategy's gain on new items must beat it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
)


class ContentMapScorer:
    """iALS user vectors against item factors whose untrained rows come from text."""

    def __init__(self, ials, item_factors: torch.Tensor, anonymous: bool = False) -> None:
        self.ials, self.V, self.anonymous = ials, item_factors, anonymous

    def as_cold(self) -> ContentMapScorer:
        return ContentMapScorer(self.ials, self.V, anonymous=True)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        users = np.asarray(users, dtype=np.int64)
        if self.anonymous:  # index -1 is never a known user: every user is folded in
            users = np.full(len(users), -1, dtype=np.int64)
        u = self.ials.user_vectors(users, history)
        return (u @ self.V.T.to(u.dtype)).to(torch.float32)


def ridge_map(text: torch.Tensor, factors: torch.Tensor, lam: float) -> torch.Tensor:
    """W (text_dim, f) minimising ||text W - factors||^2 + lam ||W||^2 (float64 solve)."""
    t = text.double()
    a = t.T @ t + lam * torch.eye(t.shape[1], dtype=torch.float64, device=t.device)
    return torch.linalg.solve(a, t.T @ factors.double())


@dataclass(frozen=True)
class ContentMapConfig(StrategyConfig):
    ridge: tuple[float, ...] = field(
        default=(1.0, 10.0, 100.0),
        metadata={"help": "ridge penalties of the text-to-factor map tried on validation"},
    )

    def __post_init__(self) -> None:
        vals = tuple(
            float(x)
            for x in (self.ridge if isinstance(self.ridge, list | tuple) else (self.ridge,))
        )
        object.__setattr__(self, "ridge", vals)
        if not vals or any(not 0 < v <= 1e6 for v in vals):
            raise ValueError(f"ridge must be numbers in (0, 1e6], got {self.ridge}")


class ContentMapStrategy(Strategy):
    name = "content-map"
    Config = ContentMapConfig
    kind = "baseline"
    requires_text = True
    cost_hint = 14.0
    summary = "iALS plus a ridge map from item text to item factors, for items nobody used yet."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        return frozenset({"id_only:ials"})

    def fit(self, ctx: Context) -> Fitted:
        from recsys_core.evaluation.validation import ValidationSet
        from recsys_core.strategies.baselines import fit_id_only

        self.check(ctx)
        cfg: ContentMapConfig = self.config  # type: ignore[assignment]
        s = ctx.scenario
        ials = fit_id_only(ctx, "ials").scorer
        n = s.n_target_items
        trained = torch.from_numpy(s.split.trained_items()[:n])
        text = ctx.text[:n].to(ials.V.device)
        check = ValidationSet(s.split, metric="ndcg", k=10, device=str(ctx.device))
        table, best = [], None
        for lam in cfg.ridge:
            W = ridge_map(text[trained], ials.V[trained], lam)
            V = ials.V.clone()
            V[~trained] = (text[~trained].double() @ W).to(V.dtype)
            scorer = ContentMapScorer(ials, V)
            val = check(scorer)
            table.append({"ridge": lam, "val_ndcg@10": val})
            if best is None or val > best[0]:
                best = (val, lam, scorer)
        return Fitted(
            scorer=best[2],
            n_parameters=int(ials.V.numel() + ials.U.numel() + text.shape[1] * ials.V.shape[1]),
            info={"chosen": {"ridge": best[1]}, "grid": table},
        )
