"""What-if curves: when does transfer pay? Re-run a comparison while varying one factor.

For each value of the factor, every strategy and every target-only baseline is trained
and evaluated on the same (modified) split, ``draws`` times, and the gain of each
strategy over the best baseline is reported per segment with a 95% paired interval.

Factors:

* ``warm_users``: how many warm target users are kept in *training*. A draw keeps a
  random subset of the warm users (nested across sizes: the 30 users of a draw include
  its 10) and drops every train and valid row of the others. **A subsampled-out warm
  user is dropped from evaluation entirely** (its test rows go too): it is neither a
  training user nor a fair cold user (the cold protocol reveals the *first* k
  interactions, and its test rows are its *last* ones). Nothing is ever added: cold
  users, their support sets and test rows stay exactly as in the full split, and no test
  row of anyone enters training. Items left without a training row become cold items,
  by the split's own rule.
* ``source_interactions``: how many source interactions each cold user brings: the most
  recent ``cap`` of those the scenario's ``source_history`` allows (under
  ``before-target``: those before the user's first target interaction), random ones
  when the source has no timestamps. Warm users keep their source history, so the map
  or the pre-training is learned as before; only what cold users bring changes. The
  scenario is rebuilt through :func:`recsys_core.data.scenario.build_scenario`, whose
  split is deterministic, and the rebuilt split is checked to be the same.

Baseline per point and segment: the best of the given target-only baselines. For
``all``, ``warm_users`` and ``cold_items`` it is chosen on validation (the curve's
metric at K on the valid rows, mean over draws). Cold users have no validation rows, so
for ``cold_users_k*`` it is the baseline with the best mean on the segment itself; that
choice can only favour the baseline, so the reported gain is conservative
(``baseline_rule`` says which rule applied).

Pooling draws: a user evaluated in several draws is one unit of the bootstrap, not
several: each user's paired difference (strategy minus baseline) is averaged over the
draws that evaluated them, then users are resampled
(:func:`recsys_core.evaluation.bootstrap.paired_bootstrap_delta`). Counting a cold user
three times would narrow the interval without adding information.

Many comparisons: a curve tests every (strategy, segment, value) point, dozens of
them, so some 95% intervals exclude zero by chance alone. As on the Compare page
(:mod:`recsys_core.compare`), each point also gets a paired t-test p-value (not floored
by the number of bootstrap draws), the family of all the curve's points is corrected
with Holm's step-down method (Holm 1979), and a point counts as a gain or a loss
(``significant``) only when its interval excludes zero *and* its Holm-adjusted p-value
is at most :data:`~recsys_core.compare.FAMILY_ALPHA`. A partial curve (``on_point``) is
corrected over the points it holds so far.

Caching: each (value, draw) gets a fresh :class:`~recsys_core.strategies.base.Context`,
because ``Scenario.fingerprint()`` does not see the subsampling and several strategies
cache by it. Only cache entries whose key starts with ``"content:"`` (keyed by a hash of
the data itself, e.g. the mapping strategy's factorisations) are carried between points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch

from recsys_core.compare import FAMILY_ALPHA
from recsys_core.data.scenario import Scenario, SourceHistory, build_scenario
from recsys_core.data.schema import TIME, USER
from recsys_core.data.split_types import SplitConfig
from recsys_core.evaluation.bootstrap import holm_adjust, paired_bootstrap_delta, paired_t_pvalue
from recsys_core.evaluation.metrics import METRICS, metric_column
from recsys_core.strategies.base import Context, ModelSettings
from recsys_core.training.callbacks import Callbacks, Cancelled, ProgressEvent

Factor = Literal["warm_users", "source_interactions"]

CURVE_COLUMNS: list[str] = [
    "factor",
    "value",
    "strategy",
    "segment",
    "metric",
    "k",
    "delta",
    "ci_low",
    "ci_high",
    "baseline",
]
"""The documented columns, in order (the CLI's ``--json`` keys)."""

EXTRA_COLUMNS: list[str] = [
    "baseline_rule",
    "x",
    "n_users",
    "draws",
    "strategy_value",
    "baseline_value",
    "p_value",
    "p_t",
    "p_holm",
    "significant",
    "source_history",
    "scenario",
    "note",
]
"""Columns after the documented ones: how the baseline was chosen ("validation" or
"best-on-segment"), the factor's effective number x (warm users kept; mean source
interactions per cold user), users in the pooled segment, successful draws, the mean
metric of strategy and baseline over the pooled users, the bootstrap p-value, the paired
t-test p-value and its Holm adjustment over all the curve's points, whether the point
counts as a gain or loss after that correction, the scenario's source history setting and
name, and why a point has no estimate (a strategy or every baseline failed there), else
""."""

VALIDATION_SEGMENTS = ("all", "warm_users", "cold_items")
"""Segments whose baseline is chosen on validation; cold_users_k* use the segment."""


@dataclass(frozen=True)
class CurveConfig:
    """What a what-if curve varies and how it measures. Validates itself."""

    factor: Factor = "warm_users"
    """warm_users: warm target users kept in training; source_interactions: source
    interactions each cold user brings."""
    values: tuple[int | None, ...] = (10, 30, 100, 300, None)
    """the factor's values; None means all (no subsampling or cap)."""
    draws: int = 3
    """repetitions per value (new subsample and model seed each), pooled."""
    seed: int = 0
    """seed of the subsamples, the model seeds (settings.seed + draw) and the bootstrap."""
    metric: str = "ndcg"
    """per-user metric of the gains: recall, ndcg, hit, mrr, precision."""
    k: int = 10
    """cut-off of the metric."""
    n_boot: int = 1000
    """bootstrap replicates of each paired interval."""

    def __post_init__(self) -> None:
        if self.factor not in ("warm_users", "source_interactions"):
            raise ValueError(
                f"factor must be 'warm_users' or 'source_interactions', not {self.factor!r}"
            )
        vals = tuple(self.values)
        if not vals:
            raise ValueError("give at least one value for the curve, e.g. 10,30,100,all")
        low = 1 if self.factor == "warm_users" else 0
        for v in vals:
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise ValueError(
                    f"{self.factor} values must be integers >= {low} or 'all', got {v!r}"
                )
        if len(set(vals)) != len(vals):
            raise ValueError(f"values has repeats: {vals}")
        object.__setattr__(self, "values", vals)
        if (
            isinstance(self.draws, bool)
            or not isinstance(self.draws, int)
            or not 1 <= self.draws <= 50
        ):
            raise ValueError(f"draws must be an integer between 1 and 50, got {self.draws!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= 1000:
            raise ValueError(f"k must be an integer between 1 and 1000, got {self.k!r}")
        if not 1 <= self.n_boot <= 100_000:
            raise ValueError(f"n_boot must be between 1 and 100000, got {self.n_boot}")


def value_label(value: int | None) -> int | str:
    """The value as shown and printed: the integer, or "all" for None."""
    return "all" if value is None else int(value)


def parse_values(text: str) -> tuple[int | None, ...]:
    """'10,30,100,all' -> (10, 30, 100, None); raises ValueError on anything else."""
    out: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.lower() == "all":
            out.append(None)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise ValueError(
                f"curve values must be integers or 'all', separated by commas; got {part!r}"
            ) from None
    if not out:
        raise ValueError("give at least one value for the curve, e.g. 10,30,100,all")
    return tuple(out)


# ------------------------------------------------------------------------ the factors
def subsample_warm_users(scn: Scenario, n: int | None, seed: int | Sequence[int] = 0) -> Scenario:
    """The scenario with only ``n`` warm users kept (all when None or n >= their number).

    Kept users are the first ``n`` of a seeded permutation of the warm users, so for one
    seed smaller sizes are subsets of larger ones. Unkept warm users lose their train,
    valid *and* test rows (they leave the evaluation); cold users, support sets and all
    other test rows are untouched; cold-item flags follow the new training rows.

    Args:
        scn: the full scenario.
        n: warm users to keep, >= 1, or None for all.
        seed: seed (or seed sequence) of the permutation.
    """
    split = scn.split
    warm = np.unique(split.train["user"].to_numpy(np.int64))
    if n is None or n >= len(warm):
        return scn
    if n < 1:
        raise ValueError(f"keep at least one warm user, got {n}")
    keep = np.zeros(split.n_users, dtype=bool)
    keep[np.random.default_rng(seed).permutation(warm)[:n]] = True
    train = split.train[keep[split.train["user"].to_numpy()]].reset_index(drop=True)
    valid = split.valid[keep[split.valid["user"].to_numpy()]].reset_index(drop=True)
    test = split.test
    cold_user = (
        test["cold_user"].to_numpy(bool) if "cold_user" in test else np.zeros(len(test), bool)
    )
    test = test[cold_user | keep[test["user"].to_numpy()]].reset_index(drop=True)
    cold_items = split.cold_items
    if split.config.has_cold_segments:
        warm_item = np.zeros(split.n_items, dtype=bool)
        warm_item[train["item"].to_numpy()] = True
        test = test.assign(cold_item=~warm_item[test["item"].to_numpy()])
        cold_items = np.flatnonzero(~warm_item).astype(np.int64)
    new_split = replace(split, train=train, valid=valid, test=test, cold_items=cold_items)
    meta = {**scn.meta, "what_if": {"factor": "warm_users", "value": int(n)}}
    return replace(scn, split=new_split, meta=meta)


def cap_source_interactions(
    scn: Scenario, cap: int | None, seed: int | Sequence[int] = 0
) -> Scenario:
    """The scenario rebuilt with each cold user's source history cut to ``cap`` rows.

    A cold user keeps the ``cap`` most recent source interactions among those that
    ``scn.source_history`` allows (before their first target interaction under
    ``before-target``); random ones (seeded) when the source has no timestamps. Other
    users' source rows are untouched. The target split is rebuilt by the same
    deterministic code and checked to be identical.

    Args:
        scn: the full scenario (with a source domain).
        cap: interactions per cold user, >= 0, or None for all.
        seed: seed for the no-timestamp case.
    """
    if scn.source is None:
        raise ValueError(
            f"scenario '{scn.name}' has no source domain: the source_interactions curve needs one"
        )
    if cap is None:
        return scn
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    split = scn.split
    raw = scn.source.interactions
    cold_ids = split.user_map.decode(split.cold_users)
    first = pd.Series(split.first_time[split.cold_users], index=pd.Index(cold_ids, dtype=object))
    is_cold = raw[USER].isin(cold_ids).to_numpy()
    has_time = TIME in raw.columns
    cold_rows = raw[is_cold]
    if has_time and scn.source_history == "before-target" and scn.target.has_time:
        cut = first.reindex(cold_rows[USER].to_numpy()).to_numpy()
        cold_rows = cold_rows[cold_rows[TIME].to_numpy(np.int64) < cut]
    if has_time:
        # Most recent first; ties broken by the row order (stable sort) for determinism.
        order = cold_rows.sort_values([USER, TIME], ascending=[True, False], kind="stable")
    else:
        rnd = np.random.default_rng(seed).permutation(len(cold_rows))
        order = cold_rows.iloc[np.argsort(rnd, kind="stable")].sort_values(USER, kind="stable")
    kept = order[order.groupby(USER, sort=False).cumcount().to_numpy() < cap]
    capped = pd.concat([raw[~is_cold], kept]).sort_index(kind="stable")
    source = replace(scn.source, interactions=capped.reset_index(drop=True))
    rebuilt = build_scenario(
        scn.target,
        source,
        split.config,
        source_history=scn.source_history,
        name=scn.name,
        description=scn.description,
        constructed=scn.constructed,
    )
    s2 = rebuilt.split
    if not (
        s2.n_users == split.n_users
        and np.array_equal(s2.cold_users, split.cold_users)
        and s2.train[["user", "item"]].equals(split.train[["user", "item"]])
        and s2.test[["user", "item"]].equals(split.test[["user", "item"]])
    ):
        raise RuntimeError(
            "rebuilding the scenario with capped source histories changed the target split; "
            "the what-if curve cannot compare the points"
        )
    # The rebuilt joint index numbers source-only items and users by first appearance,
    # which the removed rows can change: carry the new source rows back into the original
    # index space, so text vectors and every other per-item array still line up.
    items = pd.Index(scn.item_ids).get_indexer(rebuilt.item_ids)
    users = pd.Index(scn.user_ids).get_indexer(rebuilt.user_ids)
    same_domain = items >= 0
    same_domain[same_domain] = (
        scn.item_domain[items[same_domain]] == rebuilt.item_domain[same_domain]
    )
    if (items < 0).any() or (users < 0).any() or not same_domain.all():
        raise RuntimeError(
            "capping source histories changed how source items link to target items; "
            "the what-if curve cannot compare the points"
        )
    st = rebuilt.source_train
    source_train = pd.DataFrame(
        {"user": users[st["user"].to_numpy()], "item": items[st["item"].to_numpy()]}
    ).astype(np.int64)
    meta = {**scn.meta, "what_if": {"factor": "source_interactions", "value": int(cap)}}
    return replace(scn, source=source, source_train=source_train, meta=meta)


def _effective_x(scn: Scenario, factor: Factor) -> float:
    """Warm users kept, or mean usable source interactions per cold user."""
    if factor == "warm_users":
        return float(len(np.unique(scn.split.train["user"].to_numpy())))
    cold = scn.split.cold_users
    if len(cold) == 0:
        return 0.0
    cnt = np.bincount(scn.source_train["user"].to_numpy(), minlength=scn.n_users)
    return float(cnt[cold].mean())


# ------------------------------------------------------------------------- the curve
@dataclass
class _Fit:
    """One strategy at one (value, draw): validation score and per-user test metric."""

    val: float
    per_user: pd.DataFrame  # [segment, user, value]


@dataclass
class _Point:
    scn_x: list[float] = field(default_factory=list)
    fits: dict[str, list[_Fit]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def what_if_curve(
    spec_or_scenario,
    factor: Factor,
    values: Sequence[int | None],
    strategies: Sequence[str],
    baselines: Sequence[str],
    settings: ModelSettings | None = None,
    draws: int = 3,
    seed: int = 0,
    metric: str = "ndcg",
    k: int = 10,
    callbacks: Callbacks | None = None,
    *,
    options: Mapping[str, dict] | None = None,
    split: SplitConfig | None = None,
    source_history: SourceHistory = "before-target",
    text: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    n_boot: int = 1000,
    on_fit: Callable[[dict], None] | None = None,
    on_point: Callable[[pd.DataFrame], None] | None = None,
    executor=None,
) -> pd.DataFrame:
    """Gain of each strategy over the best target-only baseline while one factor varies.

    Args:
        spec_or_scenario: a :class:`~recsys_core.data.scenario.Scenario`, or a
            :class:`~recsys_core.pipeline.ScenarioSpec` loaded with ``split`` and
            ``source_history``.
        factor: "warm_users" or "source_interactions" (module docstring).
        values: the factor's values; None = all.
        strategies: strategy names whose gains are plotted (registry names).
        baselines: target-only strategy names; the best one per point and segment is
            the reference.
        settings: shared model settings (seed of draw d: settings.seed + d).
        draws: repetitions per value, pooled by user.
        seed: seed of the subsamples and the bootstrap.
        metric, k: the per-user metric of the gains (e.g. ndcg, 10).
        callbacks: progress (one stage "what-if curve", fraction over all fits),
            cancellation, and a log line per fit.
        options: strategy name -> options (validated by the strategy's config).
        split, source_history: used only when a spec is given.
        text: (n_joint_items, d) frozen text vectors for the strategies that read text.
        device: torch device of training and evaluation.
        n_boot: bootstrap replicates per interval.
        on_fit: called before each fit with {"strategy", "value" (int or "all"),
            "draw" (1-based), "draws", "done" (fits finished), "total"}: what a progress
            line names while a long fit runs.
        on_point: called after each value with the curve so far (the rows of every
            finished value, same columns as the result), so a caller that stops the
            curve (``Cancelled``) still holds the points already computed.
        executor: a :class:`~recsys_core.runs.executor.Executor` that runs the
            (value, draw) cells; None: in this process, one after another (issue 14).

    Returns:
        DataFrame, one row per (value, strategy, segment), columns
        :data:`CURVE_COLUMNS` then :data:`EXTRA_COLUMNS`.
    """
    from recsys_core.evaluation.evaluate import EvalConfig
    from recsys_core.strategies.registry import STRATEGIES, get_strategy

    cfg = CurveConfig(factor, tuple(values), draws, seed, metric, k, n_boot)
    strategies, baselines = list(dict.fromkeys(strategies)), list(dict.fromkeys(baselines))
    if not strategies:
        raise ValueError("choose at least one strategy to draw a curve for")
    if not baselines:
        raise ValueError("choose at least one target-only baseline (e.g. popularity,target-only)")
    options = dict(options or {})
    for name in [*strategies, *baselines]:
        get_strategy(name, options.get(name))  # unknown names and bad options fail now
    for name in baselines:
        if STRATEGIES[name].kind != "baseline":
            raise ValueError(
                f"{name!r} is a transfer strategy; baselines must be target-only "
                f"({', '.join(n for n, c in STRATEGIES.items() if c.kind == 'baseline')})"
            )
    settings = settings or ModelSettings()
    cb = callbacks or Callbacks()
    if isinstance(spec_or_scenario, Scenario):
        scn = spec_or_scenario
    else:
        from recsys_core.pipeline import load_scenario

        scn = load_scenario(spec_or_scenario, split or SplitConfig(), source_history)
    if cfg.factor == "source_interactions" and scn.source is None:
        raise ValueError(
            f"scenario '{scn.name}' has no source domain: vary warm_users instead, or pick a "
            "two-domain scenario"
        )
    dev = torch.device(device) if isinstance(device, str) else device
    names = list(dict.fromkeys([*baselines, *strategies]))
    col = metric_column(cfg.metric, cfg.k)
    eval_cfg = EvalConfig(ks=(cfg.k,), n_boot=0, seed=cfg.seed, device=str(dev))
    total = len(cfg.values) * cfg.draws * len(names)
    t0 = time.perf_counter()
    # One cell per (value, draw): the subsample and a fresh Context, every name fitted
    # in it. The executor runs the cells here one after another (sharing the
    # "content:" cache through ``shared``, as before issue 14) or as Ray tasks.
    items = [
        {"vi": vi, "value": value, "draw": d, "names": names}
        for vi, value in enumerate(cfg.values)
        for d in range(cfg.draws)
    ]
    shared = {
        "scenario": scn,
        "text": text,
        "cache": {},
        "job": {
            "cfg": cfg,
            "settings": settings,
            "options": options,
            "device": str(dev),
            "eval_cfg": eval_cfg,
            "col": col,
        },
    }
    cells: dict[int, dict] = {}
    rows: list[dict] = []
    progress = {"done": 0, "emitted": 0}

    def on_event(i: int, kind: str, p: dict) -> None:
        if kind == "log":
            cb.info(p["line"])
        elif kind == "fit" and on_fit is not None:
            on_fit({**p, "done": progress["done"], "total": total})
        elif kind == "fitted":
            progress["done"] += 1
            cb.info(
                f"{cfg.factor}={p['value']} draw {p['draw']}/{cfg.draws}: {p['strategy']} "
                f"in {p['seconds']:.1f}s"
            )
            cb.progress(
                ProgressEvent(
                    stage="what-if curve",
                    step=progress["done"],
                    seconds=time.perf_counter() - t0,
                    fraction=progress["done"] / total,
                )
            )

    def on_result(o) -> None:
        if o.status == "done":
            cells[o.index] = o.value
        elif o.status == "failed":  # the whole cell (a dead worker): every name misses it
            cells[o.index] = {"x": None, "fits": {}, "errors": dict.fromkeys(names, o.error)}
        # the finished values, in order, as soon as every draw of each is in
        while progress["emitted"] < len(cfg.values):
            vi = progress["emitted"]
            mine = [j for j, it in enumerate(items) if it["vi"] == vi]
            if not all(j in cells for j in mine):
                break
            point = _Point()
            for j in mine:  # draw order: pooled draws are paired by position
                c = cells[j]
                if c["x"] is not None:
                    point.scn_x.append(c["x"])
                for n, (val, pu) in c["fits"].items():
                    point.fits.setdefault(n, []).append(_Fit(val, pu))
                point.errors.update(c["errors"])
            rows.extend(_point_rows(cfg, cfg.values[vi], point, strategies, baselines, scn))
            progress["emitted"] += 1
            if on_point is not None:
                on_point(curve_frame(rows))

    from recsys_core.runs.executor import LocalExecutor

    outcomes = (executor or LocalExecutor()).map(
        curve_cell,
        shared,
        items,
        on_event=on_event,
        on_result=on_result,
        should_cancel=cb.should_cancel,
        resources={"num_gpus": 1.0} if dev.type == "cuda" else None,
    )
    if any(o.status == "cancelled" for o in outcomes):
        raise Cancelled("cancelled by the user")
    return curve_frame(rows)


def curve_cell(shared: dict, item: dict, reporter) -> dict:
    """One (value, draw) of a curve: subsample, then fit and evaluate every name.

    Runs wherever the executor puts it (this process or a Ray worker). Reports a "fit"
    event before each fit and a "fitted" one after; a strategy's ValueError or
    RuntimeError is that strategy's error at this point, not the cell's.

    Returns:
        {"x": effective factor value, "fits": name -> (validation metric, per-user
        DataFrame [segment, user, value]), "errors": name -> message}.
    """
    from recsys_core.evaluation.evaluate import evaluate, validation_metric
    from recsys_core.strategies.registry import get_strategy

    job, scn, cache = shared["job"], shared["scenario"], shared["cache"]
    cfg: CurveConfig = job["cfg"]
    vi, value, d = item["vi"], item["value"], item["draw"]
    dev = torch.device(job["device"])
    if cfg.factor == "warm_users":
        scn_p = subsample_warm_users(scn, value, seed=[cfg.seed, d])
    else:
        has_time = scn.source is not None and TIME in scn.source.interactions.columns
        # with timestamps the cap keeps the most recent rows: every draw has the same
        scn_p = cap_source_interactions(scn, value, seed=[cfg.seed, vi, d if not has_time else 0])
    should_cancel = reporter.should_cancel
    ctx = Context(
        scenario=scn_p,
        text=shared["text"],
        settings=replace(job["settings"], seed=job["settings"].seed + d),
        device=dev,
        # inner stages would restart the CLI's bar for every fit: only cancel and log pass
        callbacks=Callbacks(
            should_cancel=should_cancel,
            log=lambda line: reporter.event("log", {"line": str(line)}),
        ),
        cache=dict(cache),
    )
    fits: dict[str, tuple[float, pd.DataFrame]] = {}
    errors: dict[str, str] = {}
    for name in item["names"]:
        if should_cancel():
            raise Cancelled("cancelled by the user")
        label = value_label(value)
        reporter.event("fit", {"strategy": name, "value": label, "draw": d + 1,
                               "draws": cfg.draws})  # fmt: skip
        t1 = time.perf_counter()
        try:
            fitted = get_strategy(name, job["options"].get(name)).fit(ctx)
            val = validation_metric(
                fitted.scorer, scn_p.split, metric=cfg.metric, k=cfg.k, device=str(dev)
            )
            res = evaluate(fitted.scorer, scn_p.split, job["eval_cfg"])
            col = job["col"]
            fits[name] = (
                val,
                res.per_user[["segment", "user", col]].rename(columns={col: "value"}),
            )
        except (ValueError, RuntimeError) as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
        reporter.event("fitted", {"strategy": name, "value": label, "draw": d + 1,
                                  "seconds": time.perf_counter() - t1})  # fmt: skip
    # carried to the next cells when they run in this process (the "content:" keys are
    # keyed by the data itself); a Ray worker's copy is simply dropped
    cache.update({k: v for k, v in ctx.cache.items() if str(k).startswith("content:")})
    return {"x": _effective_x(scn_p, cfg.factor), "fits": fits, "errors": errors}


def _pooled(fits: list[_Fit], segment: str) -> pd.Series:
    """Per-user mean over draws of one strategy's metric in one segment (index: user)."""
    parts = [f.per_user[f.per_user["segment"] == segment][["user", "value"]] for f in fits]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.Series(dtype=np.float64)
    return pd.concat(parts).groupby("user")["value"].mean()


def _paired_by_draw(a: list[_Fit], b: list[_Fit], segment: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-user mean over draws of (strategy, baseline) values, pairing within each draw.

    Draws are paired by position; a user counts in a draw only if both were evaluated
    on it there. Returns aligned float arrays (n_users,).
    """
    frames = []
    for fa, fb in zip(a, b):
        xa = fa.per_user[fa.per_user["segment"] == segment].set_index("user")["value"]
        xb = fb.per_user[fb.per_user["segment"] == segment].set_index("user")["value"]
        both = xa.index.intersection(xb.index)
        frames.append(
            pd.DataFrame({"user": both, "a": xa.loc[both].to_numpy(), "b": xb.loc[both].to_numpy()})
        )
    if not frames:
        return np.zeros(0), np.zeros(0)
    g = pd.concat(frames).groupby("user")[["a", "b"]].mean().sort_index()
    return g["a"].to_numpy(), g["b"].to_numpy()


def _point_rows(
    cfg: CurveConfig,
    value: int | None,
    point: _Point,
    strategies: list[str],
    baselines: list[str],
    scn: Scenario,
) -> list[dict]:
    """Rows of one value: best baseline per segment, pooled paired delta per strategy."""
    ok_base = [b for b in baselines if len(point.fits.get(b, [])) == cfg.draws]
    segments: list[str] = []
    for fits in point.fits.values():
        for f in fits:
            segments += [s for s in f.per_user["segment"].unique() if s not in segments]
    if not segments:  # nothing was evaluated at this value: one row per strategy says why
        segments = ["all"]
    x = float(np.mean(point.scn_x)) if point.scn_x else math.nan
    rows = []
    for seg in segments:
        if not ok_base:
            base, rule = None, "none"
        elif seg in VALIDATION_SEGMENTS:
            vals = {b: np.nanmean([f.val for f in point.fits[b]]) for b in ok_base}
            vals = {b: (v if np.isfinite(v) else -np.inf) for b, v in vals.items()}
            base, rule = max(ok_base, key=lambda b: vals[b]), "validation"
        else:
            means = {b: _pooled(point.fits[b], seg).mean() for b in ok_base}
            means = {b: (v if np.isfinite(v) else -np.inf) for b, v in means.items()}
            base, rule = max(ok_base, key=lambda b: means[b]), "best-on-segment"
        for name in strategies:
            row = {
                "factor": cfg.factor,
                "value": value_label(value),
                "strategy": name,
                "segment": seg,
                "metric": cfg.metric,
                "k": cfg.k,
                "delta": math.nan,
                "ci_low": math.nan,
                "ci_high": math.nan,
                "baseline": base,
                "baseline_rule": rule,
                "x": x,
                "n_users": 0,
                "draws": len(point.fits.get(name, [])),
                "strategy_value": math.nan,
                "baseline_value": math.nan,
                "p_value": math.nan,
                "p_t": math.nan,
                "source_history": scn.source_history,
                "scenario": scn.name,
                "note": point.errors.get(name, "")
                or (
                    "; ".join(f"{b}: {point.errors[b]}" for b in baselines if b in point.errors)
                    if base is None
                    else ""
                ),
            }
            fits = point.fits.get(name, [])
            if base is not None and len(fits) == cfg.draws:
                a, b = _paired_by_draw(fits, point.fits[base], seg)
                if len(a):
                    delta, lo, hi, p = paired_bootstrap_delta(
                        a, b, n_boot=cfg.n_boot, seed=cfg.seed
                    )
                    row.update(
                        delta=delta,
                        ci_low=lo,
                        ci_high=hi,
                        p_value=p,
                        p_t=paired_t_pvalue(a, b),
                        n_users=len(a),
                        strategy_value=float(a.mean()),
                        baseline_value=float(b.mean()),
                    )
            rows.append(row)
    return rows


@dataclass(frozen=True)
class CurveEstimate:
    """How long a curve should take, from the runs already in the store.

    Attributes:
        fits: fits the curve makes (values x draws x distinct names).
        per_fit: name -> median seconds of that strategy's finished runs in the store
            (a full run: fitting plus a bootstrapped evaluation), None when it has none.
        seconds: the sum over the names with a figure of per_fit x values x draws (the
            whole estimate when ``missing`` is empty, a lower bound otherwise).
        missing: names never trained with this store.
    """

    fits: int
    per_fit: dict[str, float | None]
    seconds: float
    missing: tuple[str, ...]


def estimate_curve_seconds(
    store, strategies: Sequence[str], baselines: Sequence[str], n_values: int, draws: int
) -> CurveEstimate:
    """Seconds a curve should take: each strategy's typical full run
    (:func:`recsys_core.pipeline.typical_seconds`) times the fits it makes.

    An upper bound more often than not: a what-if fit trains on fewer warm users (or the
    same data) and evaluates without the bootstrap, while text encoding is not counted.
    """
    from recsys_core.pipeline import typical_seconds

    names = list(dict.fromkeys([*baselines, *strategies]))
    per_fit = typical_seconds(store, names)
    missing = tuple(n for n in names if per_fit[n] is None)
    each = n_values * draws
    total = float(sum(s * each for s in per_fit.values() if s is not None))
    return CurveEstimate(len(names) * each, per_fit, total, missing)


def curve_frame(rows: Sequence[Mapping]) -> pd.DataFrame:
    """The curve's points as a DataFrame in column order, corrected for their number."""
    return adjust_for_family(pd.DataFrame(list(rows), columns=CURVE_COLUMNS + EXTRA_COLUMNS))


def adjust_for_family(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``p_holm`` and ``significant`` filled from its ``p_t`` column.

    The family is every point with a p-value: all strategies, segments and values in
    ``df``. ``significant``: the 95% interval excludes zero and the Holm-adjusted p-value
    is at most FAMILY_ALPHA (gain or loss by the sign of ``delta``). ``attrs["family_size"]``
    holds the number of comparisons. Returns a copy.
    """
    p_holm = holm_adjust(df["p_t"].to_numpy(dtype=np.float64))
    outside = (df["ci_low"].to_numpy(np.float64) > 0) | (df["ci_high"].to_numpy(np.float64) < 0)
    out = df.assign(p_holm=p_holm, significant=outside & (p_holm <= FAMILY_ALPHA))
    out.attrs["family_size"] = family_size(df)
    return out


def with_family(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as it is when it already holds ``significant`` (what_if_curve's output),
    else :func:`adjust_for_family` of it (a frame built elsewhere, from ``p_t``)."""
    return df if "significant" in df.columns else adjust_for_family(df)


def family_size(df: pd.DataFrame) -> int:
    """Comparisons in a curve's family: its points with a p-value. Read from the column,
    because ``attrs`` do not survive every copy of a frame."""
    return int(np.isfinite(pd.to_numeric(df["p_t"], errors="coerce")).sum())


def curve_errors(df: pd.DataFrame) -> list[str]:
    """Plain lines for points without an estimate (a failed strategy, or no users)."""
    bad = df[df["delta"].isna()]
    return [
        f"{r.factor}={r.value} {r.strategy} [{r.segment}]: no estimate"
        + (f" ({r.note})" if r.note else f" ({r.draws} draws succeeded)")
        for r in bad.itertuples(index=False)
    ]
