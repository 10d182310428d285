"""Full-catalogue ranking evaluation: metrics, segments, bootstrap intervals.

Entry points: :func:`evaluate` (a model on a split's test rows, per segment),
:func:`validation_metric` (early stopping on valid rows only), :func:`evaluate_topk` and
:func:`evaluate_recommendations` (ready-made lists through the same code path).
Definitions of every metric are in docs/metrics.md.
"""

from recsys_core.evaluation.bootstrap import (
    bootstrap_ci,
    bootstrap_ci_columns,
    paired_bootstrap_delta,
)
from recsys_core.evaluation.evaluate import (
    EvalConfig,
    EvalResult,
    RankingTask,
    Scorer,
    evaluate,
    evaluate_recommendations,
    evaluate_topk,
    ranking_tasks,
    recommendations_to_topk,
    validation_metric,
)
from recsys_core.evaluation.metrics import (
    METRICS,
    average_popularity,
    coverage,
    ranking_metrics,
)
from recsys_core.evaluation.ranking import topk_from_scores, topk_full_ranking

__all__ = [
    "METRICS",
    "EvalConfig",
    "EvalResult",
    "RankingTask",
    "Scorer",
    "average_popularity",
    "bootstrap_ci",
    "bootstrap_ci_columns",
    "coverage",
    "evaluate",
    "evaluate_recommendations",
    "evaluate_topk",
    "paired_bootstrap_delta",
    "ranking_metrics",
    "ranking_tasks",
    "recommendations_to_topk",
    "topk_from_scores",
    "topk_full_ranking",
    "validation_metric",
]
