"""Distill: a large teacher, a small student trained on the target with its soft labels.

Teacher: a wide two-tower pre-trained on the source and fine-tuned on the target
(``teacher="source+target"``), or trained on the source only. Student: a narrow
two-tower trained on the target with (Hinton et al. 2015; for recommenders Tang & Wang,
Ranking Distillation, KDD 2018)

    (1 - alpha) * rec_loss + alpha * tau^2 * KL(teacher || student)

where the KL is over each batch user's candidate items: the teacher's top
``n_candidates`` plus as many uniform random target items, softmaxed at temperature tau.
The student is what gets served: its size and scoring speed are reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
    TwoTowerScorer,
    joint_history,
    make_validate,
    new_model,
    pretrain_source,
    stage_vectors,
    target_data,
    with_stage,
)
from recsys_core.training.loop import StepContext, train
from recsys_core.training.scores import candidate_scores


@dataclass(frozen=True)
class DistillConfig(StrategyConfig):
    teacher_dim: int | None = field(
        default=None,
        metadata={
            "help": (
                "width of the teacher; None = the run's --dim, which lets the teacher share "
                "its source pre-training with fine-tune when both run in one batch."
            )
        },
    )
    student_dim: int = field(
        default=16,
        metadata={"help": "width of the student that is served."},
    )
    teacher: Literal["source", "source+target"] = field(
        default="source+target",
        metadata={
            "help": (
                "source: the teacher is the source pre-trained model; source+target: that "
                "model fine-tuned on the target too."
            )
        },
    )
    alpha: float = field(
        default=0.5,
        metadata={"help": "weight of the distillation term."},
    )
    temperature: float = field(
        default=2.0,
        metadata={"help": "tau: softens both distributions."},
    )
    n_candidates: int = field(
        default=50,
        metadata={"help": "teacher top items per user in the KL (plus as many random items)."},
    )

    def __post_init__(self) -> None:
        t = self.teacher_dim if self.teacher_dim is not None else 2048
        if not 2 <= self.student_dim <= t <= 2048:
            raise ValueError(
                f"need 2 <= student_dim <= teacher_dim <= 2048, got {self.student_dim} and {self.teacher_dim}"
            )
        if self.teacher not in ("source", "source+target"):
            raise ValueError(f"teacher must be 'source' or 'source+target', not {self.teacher!r}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0 < self.temperature <= 100:
            raise ValueError(f"temperature must be in (0, 100], got {self.temperature}")
        if not 1 <= self.n_candidates <= 10_000:
            raise ValueError(f"n_candidates must be between 1 and 10000, got {self.n_candidates}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(softmax(t/tau) || softmax(s/tau)), mean over rows. Both (B, C)."""
    p_t = F.log_softmax(teacher_logits.float() / tau, dim=1)
    p_s = F.log_softmax(student_logits.float() / tau, dim=1)
    return tau * tau * F.kl_div(p_s, p_t, log_target=True, reduction="batchmean")


class DistillStrategy(Strategy):
    name = "distill"
    Config = DistillConfig
    needs_source = True
    cost_hint = 90.0
    summary = "A wide teacher (source, then target) teaches a small student on the target: smaller, faster to serve."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        cfg: DistillConfig = self.config  # type: ignore[assignment]
        # the default teacher (source+target at the run's width) is fine-tune's model
        if cfg.teacher == "source+target" and cfg.teacher_dim in (None, settings.dim):
            return frozenset({"pretrain_source", "fine_tune"})
        return frozenset({"pretrain_source"})

    def fit(self, ctx: Context) -> Fitted:
        cfg: DistillConfig = self.config  # type: ignore[assignment]
        s = ctx.scenario
        hist = joint_history(s)
        teacher_dim = cfg.teacher_dim or ctx.settings.dim
        if cfg.student_dim > teacher_dim:
            raise ValueError(
                f"student_dim ({cfg.student_dim}) must not exceed the teacher's width ({teacher_dim})"
            )
        if cfg.teacher == "source+target" and teacher_dim == ctx.settings.dim:
            # The default teacher is exactly plain fine-tuning: reuse it (cached when
            # fine-tune ran in the same batch) instead of training it a second time.
            from recsys_core.strategies.fine_tune import FineTuneConfig, fine_tuned

            ft = fine_tuned(ctx, FineTuneConfig())
            teacher = ft.scorer.model
            curves = [{**r, "stage": f"teacher {r['stage']}"} for r in ft.history]
        else:
            teacher, src_res = pretrain_source(
                ctx, dim=None if teacher_dim == ctx.settings.dim else teacher_dim
            )
            curves = with_stage(src_res.history, "teacher source")
            if cfg.teacher == "source+target":
                t_scorer = ctx.scorer(teacher, source_history=True)
                res_t = train(
                    teacher,
                    [target_data(s, history=hist)],
                    ctx.settings.train_config(),
                    validate=make_validate(t_scorer, s, ctx.device),
                    callbacks=ctx.callbacks,
                    stage="teacher target",
                    device=ctx.device,
                )
                curves += with_stage(res_t.history, "teacher target")
        t_scorer = ctx.scorer(teacher, source_history=True)
        teacher_val = make_validate(t_scorer, s, ctx.device)()
        # Teacher's view of every target training user, computed once (frozen teacher).
        n_t = s.n_target_items
        users = np.arange(s.n_target_users)
        with torch.no_grad():
            t_user = []
            for b in range(0, len(users), 2048):
                ub = users[b : b + 2048]
                # raw: the teacher's own scores, not the cold-item calibration
                t_user.append(t_scorer.raw().score(ub, hist[ub][:, :n_t]))
            t_scores = torch.cat(t_user)  # (n_target_users, n_target_items)
        top = torch.topk(t_scores, min(cfg.n_candidates, n_t), dim=1).indices
        gen = torch.Generator().manual_seed(ctx.settings.seed + 29)

        def extra(c: StepContext) -> torch.Tensor:
            u, _ = c.batches["target"]
            cand_rand = torch.randint(n_t, (len(u), top.shape[1]), generator=gen).to(u.device)
            cand = torch.cat([top[u], cand_rand], dim=1)  # (B, 2C)
            student = candidate_scores(
                c.user_vecs["target"], c.item_vecs[:n_t], c.biases[:n_t], cand
            )
            teacher_logits = t_scores[u.unsqueeze(1), cand]
            return cfg.alpha * kd_loss(student, teacher_logits, cfg.temperature)

        student = new_model(ctx, dim=cfg.student_dim)
        s_scorer = ctx.scorer(student, source_history=True)
        res = train(
            student,
            [target_data(s, history=hist, weight=1.0 - cfg.alpha)],
            ctx.settings.train_config(),
            validate=make_validate(s_scorer, s, ctx.device),
            extra_loss=extra if cfg.alpha > 0 else None,
            callbacks=ctx.callbacks,
            stage="student",
            device=ctx.device,
        )
        curves += with_stage(res.history, "student")
        speed = {
            "teacher_users_per_s": _scoring_speed(t_scorer, s, hist),
            "student_users_per_s": _scoring_speed(s_scorer, s, hist),
        }
        return Fitted(
            scorer=s_scorer,
            stages={
                "teacher": stage_vectors(teacher, s, hist),
                "final": stage_vectors(student, s, hist),
            },
            history=curves,
            n_parameters=student.n_parameters(),
            info={
                "teacher_parameters": teacher.n_parameters(),
                "student_parameters": student.n_parameters(),
                "teacher_val_ndcg@10": teacher_val,
                "student_val_ndcg@10": res.best_val,
                "precision": res.precision,
                **speed,
            },
            weights=dict(student.state_dict()),
        )


def _scoring_speed(scorer: TwoTowerScorer, s, hist, n: int = 2048) -> float:
    """Users scored per second over the full target catalogue (median of 3)."""
    users = np.arange(min(n, s.n_target_users))
    h = hist[users][:, : s.n_target_items]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        scorer.score(users, h)
        times.append(time.perf_counter() - t0)
    return float(len(users) / max(np.median(times), 1e-9))
