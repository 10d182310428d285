"""Evaluate a scorer on a split: full ranking, per-segment metrics, bootstrap intervals.

Segments follow :mod:`recsys_core.data.split_types` exactly:

* ``warm_users``: users with test rows where ``cold_user`` is False. History and
  excluded items = the user's train + valid items; truth = those test rows (cold items
  included: the ranking is over the full catalogue).
* ``cold_users_k{K}`` for each K in ``split.support``: users with test rows where
  ``cold_user`` is True. History and excluded items = ``support[K]``; truth = those test
  rows (the same for every K, so the few-shot curve isolates K).
* ``cold_items``: warm users with test rows where ``cold_item`` is True; same ranking as
  ``warm_users``, truth restricted to the cold items.
* ``all``: ``warm_users`` plus ``cold_users_k{max K}``.

For the recbole and temporal protocols there are no cold segments: ``all`` and
``warm_users`` are the same users with the same numbers. A segment without users (no
cold item in any test row, say) is left out rather than shown as NaN.

One top-K ranking is computed per (user, history) and shared: ``warm_users``,
``cold_items`` and ``all`` reuse the warm ranking, ``all`` reuses the largest-K cold
ranking. Rankings come either from a :class:`Scorer` (:func:`evaluate`) or from outside
(:func:`evaluate_topk`, :func:`evaluate_recommendations`); both go through the same code.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.split_types import Split
from recsys_core.evaluation.bootstrap import bootstrap_ci_columns, paired_bootstrap_delta
from recsys_core.evaluation.metrics import (
    METRICS,
    average_popularity,
    coverage,
    metric_column,
    ranking_metrics,
)

# Scorer lives beside the ranking that calls it (no import cycle); imported from here too.
from recsys_core.evaluation.ranking import Scorer, topk_full_ranking
from recsys_core.training.device import check_device_name, choose_device

BEYOND_ACCURACY: tuple[str, ...] = ("coverage", "arp")
"""Metrics computed on the whole segment's lists (no per-user values, no interval)."""

SUMMARY_COLUMNS = ["segment", "metric", "k", "value", "ci_low", "ci_high", "n_users"]
WARM_RANKING = "warm"
"""Ranking key of warm users (history = train + valid); cold rankings are ``cold_k{K}``."""


@dataclass(frozen=True)
class EvalConfig:
    """How evaluation runs. Validates itself on construction."""

    ks: tuple[int, ...] = (5, 10, 20)
    """cut-offs K of every metric; lists are ranked to max(ks)."""
    batch_size: int = 1024
    """users scored at once; lower it if the device runs out of memory."""
    n_boot: int = 1000
    """bootstrap replicates for the intervals; 0 skips intervals (quick looks)."""
    alpha: float = 0.05
    """1 - confidence level of the intervals (0.05: 95%)."""
    seed: int = 0
    """seed of the bootstrap draws (the same seed gives identical intervals)."""
    device: str = "cpu"
    """where scores are masked and ranked: 'cpu', 'cuda', 'cuda:N', 'mps', or 'auto'
    (checked for spelling here, for availability when evaluation starts)."""

    def __post_init__(self) -> None:
        ks = tuple(self.ks)
        if not ks or any(
            isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in ks
        ):
            raise ValueError(f"ks must be positive integers such as (5, 10, 20), got {self.ks}")
        ks = tuple(int(k) for k in ks)
        if len(set(ks)) != len(ks):
            raise ValueError(f"ks has repeated values: {self.ks}")
        if max(ks) > 1000:
            raise ValueError(f"ks must be at most 1000 (lists that long say little), got {self.ks}")
        object.__setattr__(self, "ks", tuple(sorted(ks)))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.n_boot < 0:
            raise ValueError(f"n_boot must be >= 0 (0 skips intervals), got {self.n_boot}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(
                f"alpha must be between 0 and 1 (0.05 for 95% intervals), got {self.alpha}"
            )
        object.__setattr__(self, "device", check_device_name(self.device))

    @property
    def k_max(self) -> int:
        """Length of the ranked lists: the largest cut-off."""
        return max(self.ks)

    def to_dict(self) -> dict:
        """Plain dict (JSON/TOML ready); ``EvalConfig(**d)`` rebuilds it."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["ks"] = list(self.ks)
        return d


@dataclass
class EvalResult:
    """Everything one evaluation produced.

    Attributes:
        summary: DataFrame [segment, metric, k, value, ci_low, ci_high, n_users], one row
            per (segment, metric, k); metrics recall, ndcg, hit, mrr, precision (value =
            mean over the segment's users, with a percentile bootstrap interval) and
            coverage, arp (whole-segment figures, ci_low/ci_high NaN).
        per_user: DataFrame [segment, user, recall@5, recall@10, ...], one row per
            (segment, user with ground truth).
        topk: segment -> (users int64 (n,), items int64 (n, max K)), rows aligned with
            the segment's rows of ``per_user``; -1 pads short lists.
        config: the :class:`EvalConfig` used.
    """

    summary: pd.DataFrame
    per_user: pd.DataFrame
    topk: dict[str, tuple[np.ndarray, np.ndarray]]
    config: EvalConfig = field(default_factory=EvalConfig)

    @property
    def segments(self) -> list[str]:
        """Segment names in display order."""
        return list(dict.fromkeys(self.summary["segment"]))

    def metric(self, segment: str, metric: str, k: int) -> float:
        """The value of one metric, e.g. ``result.metric("warm_users", "ndcg", 10)``."""
        s = self.summary
        row = s[(s["segment"] == segment) & (s["metric"] == metric) & (s["k"] == k)]
        if row.empty:
            raise KeyError(
                f"no {metric}@{k} for segment {segment!r}; segments: {self.segments}, "
                f"metrics: {[*METRICS, *BEYOND_ACCURACY]}, ks: {list(self.config.ks)}"
            )
        return float(row["value"].iloc[0])

    def to_records(self) -> list[dict]:
        """Summary as JSON-ready dicts {segment, metric, k, value, ci_low, ci_high};
        NaN becomes None (JSON has no NaN)."""

        def num(x: float) -> float | None:
            return None if x is None or math.isnan(x) else float(x)

        return [
            {
                "segment": str(r.segment),
                "metric": str(r.metric),
                "k": int(r.k),
                "value": num(r.value),
                "ci_low": num(r.ci_low),
                "ci_high": num(r.ci_high),
            }
            for r in self.summary.itertuples(index=False)
        ]

    def paired_delta(
        self,
        other: EvalResult,
        segment: str,
        metric: str,
        k: int,
        n_boot: int = 1000,
        seed: int = 0,
        alpha: float = 0.05,
    ) -> dict:
        """Paired bootstrap of (this result - other) on one per-user metric.

        Users are aligned by index; both results must cover the same users in the segment
        (the same split), otherwise ValueError.

        Returns:
            dict with delta (mean of per-user differences), ci_low, ci_high, p_value
            (two-sided, see :func:`paired_bootstrap_delta`), significant (the interval
            excludes 0) and n_users.
        """
        if metric not in METRICS:
            raise ValueError(
                f"paired deltas need a per-user metric ({', '.join(METRICS)}), got {metric!r}"
            )
        col = metric_column(metric, k)
        a = self._segment_values(segment, col)
        b = other._segment_values(segment, col)
        if len(a) != len(b) or not np.array_equal(a.index.to_numpy(), b.index.to_numpy()):
            raise ValueError(
                f"the two results cover different users in segment {segment!r} "
                f"({len(a)} vs {len(b)}); compare models evaluated on the same split"
            )
        delta, low, high, p = paired_bootstrap_delta(
            a.to_numpy(),
            b.to_numpy(),
            n_boot=n_boot,
            alpha=alpha,
            seed=seed,
        )
        return {
            "delta": delta,
            "ci_low": low,
            "ci_high": high,
            "p_value": p,
            "significant": bool(low > 0 or high < 0),
            "n_users": len(a),
        }

    def _segment_values(self, segment: str, col: str) -> pd.Series:
        pu = self.per_user
        if col not in pu.columns:
            raise KeyError(f"no column {col!r}; available: {[c for c in pu.columns if '@' in c]}")
        rows = pu[pu["segment"] == segment]
        if rows.empty and segment not in self.segments:
            raise KeyError(f"no segment {segment!r}; segments: {self.segments}")
        return rows.set_index("user")[col].sort_index()


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RankingTask:
    """One ranking to compute: users with the history the scorer sees and what to mask.

    users: int64 (n,) sorted; history, exclude: csr (n, n_items) rows aligned with users.
    """

    users: np.ndarray
    history: sp.csr_matrix
    exclude: sp.csr_matrix


@dataclass(frozen=True)
class _SegmentDef:
    ranking: str  # key of the RankingTask / top-K lists this segment reads
    users: np.ndarray  # int64 (n,) sorted
    truth: sp.csr_matrix  # (n, n_items)


def _flag(frame: pd.DataFrame, col: str) -> np.ndarray:
    """Boolean column, all False where the frame lacks it (recbole/temporal splits)."""
    if col not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[col].to_numpy(dtype=bool)


def rows_csr(frames: list[pd.DataFrame], users: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary csr (len(users), n_items) of the frames' (user, item) rows for ``users``.

    ``users`` must be sorted; rows of other users are ignored.
    """
    frames = [f for f in frames if len(f)]  # an empty support frame may lack columns
    us = [f["user"].to_numpy(dtype=np.int64) for f in frames]
    its = [f["item"].to_numpy(dtype=np.int64) for f in frames]
    u = np.concatenate(us) if us else np.zeros(0, np.int64)
    i = np.concatenate(its) if its else np.zeros(0, np.int64)
    if len(users) == 0:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    pos = np.searchsorted(users, u).clip(max=len(users) - 1)
    ok = users[pos] == u
    m = sp.csr_matrix(
        (np.ones(int(ok.sum()), np.float32), (pos[ok], i[ok])), shape=(len(users), n_items)
    )
    m.sum_duplicates()
    m.data[:] = 1.0  # a repeated interaction is still one known item
    return m


def _segment_defs(split: Split) -> dict[str, _SegmentDef]:
    """Segments present in ``split`` (except ``all``) with their users and truth."""
    test = split.test
    n_items = split.n_items
    cold_user = _flag(test, "cold_user")
    cold_item = _flag(test, "cold_item")
    defs: dict[str, _SegmentDef] = {}
    warm_rows = test[~cold_user]
    warm_users = np.unique(warm_rows["user"].to_numpy(dtype=np.int64))
    defs["warm_users"] = _SegmentDef(
        WARM_RANKING, warm_users, rows_csr([warm_rows], warm_users, n_items)
    )
    if not split.config.has_cold_segments:
        return defs
    cold_rows = test[cold_user]
    cold_users = np.unique(cold_rows["user"].to_numpy(dtype=np.int64))
    if len(np.intersect1d(warm_users, cold_users)):
        raise ValueError(
            "the split's test rows mark some users both cold and warm; rebuild the split"
        )
    if len(cold_users):
        cold_truth = rows_csr([cold_rows], cold_users, n_items)
        for k in sorted(split.support):
            defs[f"cold_users_k{k}"] = _SegmentDef(f"cold_k{k}", cold_users, cold_truth)
    ci_rows = test[~cold_user & cold_item]
    if len(ci_rows):
        ci_users = np.unique(ci_rows["user"].to_numpy(dtype=np.int64))
        defs["cold_items"] = _SegmentDef(
            WARM_RANKING, ci_users, rows_csr([ci_rows], ci_users, n_items)
        )
    return defs


def segment_users(split: Split) -> dict[str, np.ndarray]:
    """Who belongs to each evaluation segment of ``split`` (``all`` left out).

    The same definitions the metrics use (module docstring): ``warm_users``,
    ``cold_users_k{K}`` for each support size K (the same users for every K) and
    ``cold_items`` (warm users with a test row on a cold item); a segment without users
    is absent, as in the results.

    Returns:
        segment name -> int64 array (n_users_in_segment,) of target user indices, sorted.
    """
    return {name: d.users for name, d in _segment_defs(split).items()}


def ranking_tasks(split: Split) -> dict[str, RankingTask]:
    """The rankings evaluation needs: ``"warm"`` and ``"cold_k{K}"`` for each support K.

    Only users with test rows are ranked. Warm: history = exclude = train + valid items.
    Cold at K: history = exclude = ``support[K]`` items.
    """
    defs = _segment_defs(split)
    tasks: dict[str, RankingTask] = {}
    warm = defs["warm_users"].users
    h = rows_csr([split.train, split.valid], warm, split.n_items)
    tasks[WARM_RANKING] = RankingTask(warm, h, h)
    for d in defs.values():
        if d.ranking.startswith("cold_k") and d.ranking not in tasks:
            k = int(d.ranking.removeprefix("cold_k"))
            h = rows_csr([split.support[k]], d.users, split.n_items)
            tasks[d.ranking] = RankingTask(d.users, h, h)
    return tasks


# --------------------------------------------------------------------------- scoring


def _rows_for(
    users: np.ndarray, ranked_users: np.ndarray, items: np.ndarray, k_max: int
) -> np.ndarray:
    """Top-K rows for ``users`` looked up in a ranking; users absent from it get -1 rows
    (no recommendation: all their metrics are 0, they are not dropped)."""
    out = np.full((len(users), k_max), -1, dtype=np.int64)
    if len(ranked_users) == 0 or len(users) == 0:
        return out
    order = np.argsort(ranked_users, kind="stable")
    sorted_users = ranked_users[order]
    pos = np.searchsorted(sorted_users, users).clip(max=len(sorted_users) - 1)
    found = sorted_users[pos] == users
    width = min(k_max, items.shape[1])
    out[found, :width] = items[order[pos[found]], :width]
    return out


def _summarise(
    segment: str,
    per_user: pd.DataFrame,
    lists: np.ndarray,
    config: EvalConfig,
    item_pop: np.ndarray,
    n_items: int,
) -> list[tuple]:
    cols = [metric_column(m, k) for m in METRICS for k in config.ks]
    n = len(per_user)
    values = per_user[cols].to_numpy(dtype=np.float64)
    if config.n_boot > 0:
        mean, low, high = bootstrap_ci_columns(values, config.n_boot, config.alpha, config.seed)
    else:
        mean = values.mean(axis=0) if n else np.full(len(cols), np.nan)
        low = high = np.full(len(cols), np.nan)
    rows = []
    j = 0
    for m in METRICS:
        for k in config.ks:
            rows.append((segment, m, k, float(mean[j]), float(low[j]), float(high[j]), n))
            j += 1
    for k in config.ks:
        rows.append((segment, "coverage", k, coverage(lists, n_items, k), np.nan, np.nan, n))
    for k in config.ks:
        rows.append((segment, "arp", k, average_popularity(lists, item_pop, k), np.nan, np.nan, n))
    return rows


def evaluate_topk(
    rankings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    split: Split,
    config: EvalConfig | None = None,
) -> EvalResult:
    """Score ready-made top-K lists on the split's segments.

    Args:
        rankings: ranking key -> (users int64 (n,), items int64 (n, >= max K)), keys as
            in :func:`ranking_tasks`: ``"warm"`` for warm users and ``"cold_k{K}"`` for
            cold users given ``support[K]``. A segment whose ranking is absent is left
            out (``all`` needs all of its parts). A segment user missing from its ranking
            counts with an empty list (all metrics 0), so a recommender cannot improve
            its figures by skipping hard users. Lists must hold distinct items; -1 pads.
        split: the split whose test rows are the ground truth.
        config: cut-offs and bootstrap settings (device and batch_size are unused).

    Returns:
        An :class:`EvalResult`.
    """
    config = config or EvalConfig()
    k_max = config.k_max
    defs = _segment_defs(split)
    item_pop = np.bincount(split.train["item"].to_numpy(dtype=np.int64), minlength=split.n_items)
    blocks: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
    for name, d in defs.items():
        if d.ranking not in rankings or len(d.users) == 0:
            continue  # an empty segment has no figures: it is left out, not shown as NaN
        r_users, r_items = rankings[d.ranking]
        r_users = np.asarray(r_users, dtype=np.int64)
        r_items = np.asarray(r_items, dtype=np.int64)
        if r_items.ndim != 2 or len(r_users) != len(r_items):
            raise ValueError(
                f"ranking {d.ranking!r} must be (users (n,), items (n, K)), got shapes "
                f"{r_users.shape} and {r_items.shape}"
            )
        lists = _rows_for(d.users, r_users, r_items, k_max)
        pu = ranking_metrics(lists, d.truth, config.ks, users=d.users)
        keep = np.isin(d.users, pu["user"].to_numpy())
        blocks[name] = (pu, d.users[keep], lists[keep])

    cold_names = sorted(
        (n for n in defs if n.startswith("cold_users_k")),
        key=lambda n: int(n.removeprefix("cold_users_k")),
    )
    parts = [p for p in ("warm_users", *cold_names[-1:]) if len(defs[p].users)]
    if parts and all(p in blocks for p in parts):
        pu = pd.concat([blocks[p][0] for p in parts], ignore_index=True)
        us = np.concatenate([blocks[p][1] for p in parts])
        ls = np.concatenate([blocks[p][2] for p in parts])
        order = np.argsort(us, kind="stable")  # warm and cold users are disjoint
        blocks = {"all": (pu.iloc[order].reset_index(drop=True), us[order], ls[order]), **blocks}

    order_names = ["all", "warm_users", *cold_names, "cold_items"]
    summary_rows: list[tuple] = []
    frames = []
    topk: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in order_names:
        if name not in blocks:
            continue
        pu, us, ls = blocks[name]
        summary_rows += _summarise(name, pu, ls, config, item_pop, split.n_items)
        frames.append(pu.assign(segment=name))
        topk[name] = (us, ls)
    summary = pd.DataFrame(summary_rows, columns=SUMMARY_COLUMNS)
    summary["k"] = summary["k"].astype(np.int64)
    summary["n_users"] = summary["n_users"].astype(np.int64)
    metric_cols = [metric_column(m, k) for m in METRICS for k in config.ks]
    if frames:
        per_user = pd.concat(frames, ignore_index=True)[["segment", "user", *metric_cols]]
    else:
        per_user = pd.DataFrame(columns=["segment", "user", *metric_cols])
    return EvalResult(summary=summary, per_user=per_user, topk=topk, config=config)


def evaluate(
    scorer: Scorer,
    split: Split,
    config: EvalConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Full-catalogue evaluation of ``scorer`` on the test rows of ``split``, per segment.

    Args:
        scorer: the model (see :class:`Scorer`); put it in eval mode beforehand.
        split: target-domain split; its ``test`` rows are the ground truth.
        config: cut-offs, batch size, bootstrap, device.
        progress: called as ``progress(users_ranked, users_to_rank)`` after each batch,
            counted over all rankings (warm users, then cold users at each K).

    Returns:
        An :class:`EvalResult` (segments described in the module docstring).
    """
    config = config or EvalConfig()
    device = choose_device(config.device)
    tasks = ranking_tasks(split)
    total = sum(len(t.users) for t in tasks.values())
    done = 0
    rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, task in tasks.items():
        cb = None
        if progress is not None:
            offset = done

            def cb(d: int, _n: int, offset: int = offset) -> None:
                progress(offset + d, total)

        items = topk_full_ranking(
            scorer,
            task.users,
            task.history,
            task.exclude,
            config.k_max,
            batch_size=config.batch_size,
            device=device,
            progress=cb,
        )
        rankings[key] = (task.users, items)
        done += len(task.users)
    return _with_cold_catalogue(evaluate_topk(rankings, split, config), scorer, split, config)


def _with_cold_catalogue(
    result: EvalResult, scorer: Scorer, split: Split, config: EvalConfig
) -> EvalResult:
    """Add the ``cold_catalogue`` segment (cold items ranked among cold items, and the
    cold-item AUC; :mod:`recsys_core.evaluation.cold_items`) when the split has cold items."""
    from recsys_core.evaluation import cold_items as ci

    d = _segment_defs(split).get("cold_items")
    if d is None or not len(d.users):
        return result
    test = split.test
    cold = np.unique(test.loc[_flag(test, "cold_item"), "item"].to_numpy(np.int64))
    if len(cold) < 2:
        return result
    history = rows_csr([split.train, split.valid], d.users, split.n_items)
    pu = ci.cold_catalogue_per_user(
        scorer, d.users, history, d.truth, cold, config.ks, config.batch_size
    )
    rows = ci.summary_rows(pu, config.ks, config.n_boot, config.alpha, config.seed)
    summary = pd.concat(
        [result.summary, pd.DataFrame(rows, columns=SUMMARY_COLUMNS)], ignore_index=True
    )
    per_user = pd.concat([result.per_user, pu.assign(segment=ci.SEGMENT)], ignore_index=True)
    return EvalResult(summary=summary, per_user=per_user, topk=result.topk, config=config)


# Moved out, re-exported here (their old import path). Imported last: both modules import
# from this one, which is complete by now.
from recsys_core.evaluation.recommendations import (  # noqa: E402
    evaluate_recommendations,
    recommendations_to_topk,
)
from recsys_core.evaluation.validation import ValidationSet, validation_metric  # noqa: E402

__all__ = [
    "BEYOND_ACCURACY",
    "SUMMARY_COLUMNS",
    "WARM_RANKING",
    "EvalConfig",
    "EvalResult",
    "RankingTask",
    "Scorer",
    "ValidationSet",
    "evaluate",
    "evaluate_recommendations",
    "evaluate_topk",
    "ranking_tasks",
    "recommendations_to_topk",
    "rows_csr",
    "segment_users",
    "topk_full_ranking",
    "validation_metric",
]
