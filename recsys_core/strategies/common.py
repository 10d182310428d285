"""The training helpers strategies share: the target and source training data, the
joint history, the two-tower scorer, early-stopping checks, stage vectors, and the
source pre-training cached across strategies. Re-exported from
:mod:`recsys_core.strategies.base` (their old import path)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.data.scenario import Scenario
from recsys_core.models.two_tower import TwoTower
from recsys_core.training.loop import DomainData, TrainResult, train
from recsys_core.training.rng import seeded

if TYPE_CHECKING:
    from recsys_core.strategies.base import Context


def target_matrix(scn: Scenario, with_valid: bool = False) -> sp.csr_matrix:
    """(n_joint_users, n_joint_items) binary csr of target training (+valid) pairs."""
    parts = [scn.split.train[["user", "item"]]]
    if with_valid:
        parts.append(scn.split.valid[["user", "item"]])
    u = np.concatenate([p["user"].to_numpy() for p in parts])
    i = np.concatenate([p["item"].to_numpy() for p in parts])
    m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(scn.n_users, scn.n_items))
    m.data[:] = 1.0
    return m


def target_data(
    scn: Scenario, history: sp.csr_matrix | None = None, weight: float = 1.0
) -> DomainData:
    tr = scn.split.train
    return DomainData(
        name="target",
        users=tr["user"].to_numpy(),
        items=tr["item"].to_numpy(),
        pool=np.arange(scn.n_target_items),
        history=history if history is not None else target_matrix(scn),
        weight=weight,
    )


def source_data(
    scn: Scenario,
    history: sp.csr_matrix | None = None,
    weight: float = 1.0,
    loss: str | None = None,
) -> DomainData:
    """Source training pairs in joint indices; ``loss`` overrides the run's loss."""
    st = scn.source_train
    return DomainData(
        name="source",
        users=st["user"].to_numpy(),
        items=st["item"].to_numpy(),
        pool=np.flatnonzero(scn.item_domain >= 1),
        history=history if history is not None else scn.source_matrix(),
        weight=weight,
        loss=loss,
    )


def joint_history(scn: Scenario) -> sp.csr_matrix:
    """Target train plus usable source interactions: all a user is known to have done."""
    m = (target_matrix(scn) + scn.source_matrix()).tocsr()
    m.data[:] = 1.0
    return m


class TwoTowerScorer:
    """Adapts a TwoTower to the evaluation's Scorer protocol over the target catalogue.

    With ``source_history`` a shared user's usable source interactions are pooled into
    their vector too (the scenario already cut them at the honest moment).

    With ``calibrate_cold`` (the default) target items without a target training
    interaction are scored by their content path put on the trained items' scale
    (:meth:`TwoTower._calibrate_untrained`). Validation sees this too: its rows include
    the validation cold items (``SplitConfig.valid_cold_item_frac``). :meth:`raw` is the
    same scorer without it, which a distillation teacher uses for its logits.
    """

    def __init__(
        self,
        model: TwoTower,
        scn: Scenario,
        source_history: bool,
        device: torch.device,
        calibrate_cold: bool = True,
    ):
        self.model, self.scn, self.device = model, scn, device
        self.source = scn.source_matrix() if (source_history and scn.has_source) else None
        self.calibrate_cold = calibrate_cold
        self.untrained = untrained_target_items(scn) if calibrate_cold else None
        self.anonymous = False

    def raw(self) -> TwoTowerScorer:
        """This scorer without the cold-item calibration (shares the model)."""
        out = copy.copy(self)
        out.calibrate_cold, out.untrained = False, None
        return out

    def as_cold(self) -> TwoTowerScorer:
        """This scorer treating every user as never trained: no id vector, no source
        history, only the target history it is given (shares the model)."""
        out = copy.copy(self)
        out.anonymous, out.source = True, None
        return out

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        extra = self.source[users] if self.source is not None else None
        return self.model.score_users(
            users,
            history,
            self.scn.n_target_items,
            extra,
            self.device,
            self.untrained,
            anonymous=self.anonymous,
        )


def untrained_target_items(scn: Scenario) -> torch.Tensor:
    """bool (n_target_items,): target items with no target training interaction."""
    return torch.from_numpy(~scn.split.trained_items()[: scn.n_target_items])


def make_validate(scorer: Any, scn: Scenario, device: torch.device):
    """A closure returning validation NDCG@10 (warm users, valid items; never test)."""
    from recsys_core.evaluation.evaluate import ValidationSet

    # Early stopping looks at the validation rows of trained items only: with the
    # validation cold items in, the curve follows how the text tower happens to place
    # new items, which swings from epoch to epoch (on the demo it stopped fine-tuning
    # at its second epoch and lost 0.04 NDCG@10 on test). How new items are scored is
    # judged afterwards, on all rows (pipeline: cold_item_scores="auto").
    check = ValidationSet(scn.split, metric="ndcg", k=10, device=str(device), rows="warm-items")

    def _validate() -> float:
        return check(scorer)

    return _validate


def stage_vectors(model: TwoTower, scn: Scenario, history: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Item vectors (n_joint_items, d) and user vectors (n_joint_users, d) of a model."""
    model.eval()
    with torch.no_grad():
        items = model.item_vectors()
        users = torch.arange(scn.n_users, device=items.device)
        hs = hc = None
        if model.config.use_history:
            from recsys_core.models.two_tower import _pool

            hs, hc = _pool(history, items, items.device)
        uv = model.user_vectors_from_sum(users, hs, hc)
        bias = model.item_biases()
        out = {
            "items": items.float().cpu().numpy(),
            "users": uv.float().cpu().numpy(),
            "item_bias": bias.float().cpu().numpy(),
        }
        if model.use_text:
            # the content path alone, so a saved run can score new items as it was
            # evaluated (cold-item calibration; recommend.recommend_for_history)
            out["content"] = model.text_proj(model.text).float().cpu().numpy()
            out["content_bias"] = model.text_bias(model.text).squeeze(1).float().cpu().numpy()
    return out


def new_model(ctx: Context, dim: int | None = None) -> TwoTower:
    s = ctx.scenario
    with seeded(ctx.settings.seed):  # parallel runs: seed and draw as one step
        return TwoTower(s.n_users, s.n_items, ctx.settings.tower(dim), ctx.text)


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pretrain_source(ctx: Context, dim: int | None = None) -> tuple[TwoTower, TrainResult]:
    """Train the two-tower on the source domain alone (shared across strategies).

    Validated on the target's valid split through the shared items and text: it tells
    how well the source model transfers, and picks the source epoch to carry over.
    Returns a fresh copy each call so a strategy may modify it.
    """
    scn = ctx.scenario
    if not scn.has_source:
        raise ValueError(
            f"strategy needs a source domain, but scenario '{scn.name}' has none; "
            "pick a two-domain scenario (e.g. demo:ml1m-to-ml100k) or upload a source"
        )
    key = cache_key("source", asdict(ctx.settings), dim, scn.fingerprint(), str(ctx.device))

    def fit_source() -> tuple[TwoTower, TrainResult]:
        model = new_model(ctx, dim)
        scorer = ctx.scorer(model, source_history=True)
        res = train(
            model,
            [source_data(scn)],
            ctx.settings.train_config(
                epochs=ctx.settings.source_epochs,
                max_per_epoch=max(ctx.settings.source_per_epoch, ctx.settings.batch_size),
                loss=ctx.settings.source_loss,
            ),
            validate=make_validate(scorer, scn, ctx.device),
            callbacks=ctx.callbacks,
            stage="pretrain source",
            device=ctx.device,
        )
        return model, res

    model, res = ctx.cache.get_or_compute(key, fit_source, step="pretrain_source")
    return copy.deepcopy(model), res


def with_stage(history: list[dict], stage: str) -> list[dict]:
    return [{**row, "stage": stage} for row in history]
