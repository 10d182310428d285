"""Side-by-side metrics of stored runs, paired deltas, and the verdict.

A transfer gain only means something against the strongest model a user could train on
the target alone (docs/design.md, "Evaluation"), and only if it survives the number of
comparisons made. So, for one metric:

* each segment has its own baseline: the best baseline-kind run *of that segment*
  (on the segment itself, which can only favour the baseline), unless the caller fixes
  one run for every segment;
* every transfer run gets a paired delta against it: a bootstrap interval over the same
  users, and a paired t-test p-value, which is not floored by the number of bootstrap
  draws (the smallest bootstrap p with 1,000 draws, ~0.002, is above Holm's threshold
  for 35 tests, 0.0014, so no claim could ever pass);
* the family is every (transfer run, segment) pair tested for the metric; the verdict
  claims a gain or a loss only where Holm's step-down correction (Holm 1979) keeps it at
  a 5% family-wise error rate, and says how many comparisons were made.

What is a baseline and what is a transfer strategy is asked of the registry, never of a
list of names: an uploaded external run is neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from recsys_core.evaluation.bootstrap import holm_adjust, paired_bootstrap_delta, paired_t_pvalue
from recsys_core.evaluation.metrics import metric_column
from recsys_core.report import segment_name
from recsys_core.strategies.registry import STRATEGIES, kind_of, suite_names

FAMILY_ALPHA = 0.05
"""Family-wise error rate of the verdict's claims."""

NEAR_ZERO = 0.01
"""Below this baseline value a relative change says nothing (+5675777844572%, issue 15):
the verdict gives the absolute difference only."""


def default_baseline(runs: list[dict]) -> str:
    """Run id of the baseline-kind run with the highest validation NDCG@10 (else the first)."""
    cands = [r for r in runs if kind_of(r.get("strategy", "")) == "baseline"]
    scored = [(r.get("extra", {}).get("info", {}).get("val_ndcg@10"), r) for r in cands]
    scored = [(v, r) for v, r in scored if v is not None and np.isfinite(v)]
    if scored:
        return max(scored, key=lambda t: t[0])[1]["run_id"]
    return runs[0]["run_id"]


def default_runs(runs: list[dict], limit: int = 16) -> list[str]:
    """The runs a comparison starts with: the newest run of each (strategy, label), in
    the order given (newest first), so every baseline of the suite that exists for this
    data is in the verdict, not only the last few runs trained (a default of "the 8
    newest" left popularity and text zero-shot out of the demo's verdict)."""
    seen, out = set(), []
    for r in runs:
        key = (r.get("strategy"), r.get("label"))
        if key not in seen:
            seen.add(key)
            out.append(r["run_id"])
    return out[:limit]


def _paired(per_user: dict, a_id: str, b_id: str, seg: str, col: str, n_boot: int, seed: int):
    """(delta, low, high, p) of run a minus run b on one segment's common users, or None."""
    pa, pb = per_user[a_id], per_user[b_id]
    if col not in pa.columns or col not in pb.columns:
        return None
    # a user without a value (the cold-item AUC of a user whose new items are all the
    # new items) drops out of the pair rather than making the mean NaN
    a = pa[pa["segment"] == seg].set_index("user")[col].dropna()
    b = pb[pb["segment"] == seg].set_index("user")[col].dropna()
    common = a.index.intersection(b.index)
    if not len(common):
        return None
    x, y = a.loc[common].to_numpy(), b.loc[common].to_numpy()
    d, lo, hi, _ = paired_bootstrap_delta(x, y, n_boot=n_boot, seed=seed)
    return d, lo, hi, paired_t_pvalue(x, y)


def compare_runs(
    store,
    run_ids: list[str],
    baseline: str | None = None,
    metric: str = "ndcg",
    k: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (run, segment): value with 95% CI, and paired deltas.

    Args:
        baseline: a run id to measure every segment against; None (the default) takes
            the best baseline-kind run of each segment.

    Returns:
        Columns run_id, strategy, kind, label, segment, metric, k, value, ci_low,
        ci_high, baseline, delta, delta_low, delta_high, p_value, significant (the
        delta's 95% interval excludes 0), and for the verdict seg_baseline, seg_delta,
        seg_low, seg_high, seg_p, seg_p_holm, seg_significant_raw, seg_significant: each
        transfer run against the best baseline of its segment, with the Holm-adjusted
        p-value over the family of all such pairs and the adjusted decision.
        ``attrs["family_size"]`` holds the number of comparisons in the family.
    """
    if not run_ids:
        raise ValueError("choose at least one run to compare")
    runs = [store.get_run(r) for r in run_ids]
    fps = {r.get("data_fingerprint") for r in runs}
    if len(fps) > 1:
        raise ValueError(
            "these runs were evaluated on different data or splits (their fingerprints differ); "
            "compare runs of one scenario and split only"
        )
    if baseline is not None and baseline not in run_ids:
        raise ValueError(f"baseline {baseline!r} is not among the runs being compared")
    col = metric_column(metric, k)
    per_user = {r: store.load_table(r, "per_user") for r in run_ids}
    rows = []
    for run in runs:
        summ = pd.DataFrame(run.get("metrics") or [])
        if summ.empty:
            continue
        sel = summ[(summ["metric"] == metric) & (summ["k"] == k)]
        for _, m in sel.iterrows():
            rows.append(
                {
                    "run_id": run["run_id"],
                    "strategy": run["strategy"],
                    "kind": kind_of(run["strategy"]) or "other",
                    "label": run.get("label"),
                    "segment": m["segment"],
                    "metric": metric,
                    "k": k,
                    "value": m["value"],
                    "ci_low": m["ci_low"],
                    "ci_high": m["ci_high"],
                }
            )
    table = pd.DataFrame(rows)
    table.attrs["runs"] = runs
    if table.empty:
        return table
    out = []
    for seg, g in table.groupby("segment", sort=False):
        g = g.copy()
        bases = g[g["kind"] == "baseline"]
        seg_best = (
            bases.sort_values("value", ascending=False).iloc[0]["run_id"] if len(bases) else None
        )
        base = baseline or seg_best or g.iloc[0]["run_id"]
        g["baseline"], g["seg_baseline"] = base, seg_best
        for c in ("delta", "delta_low", "delta_high", "p_value", "seg_delta", "seg_low",
                  "seg_high", "seg_p"):  # fmt: skip
            g[c] = np.nan
        g["significant"] = False
        for idx, r in g.iterrows():
            rid = r["run_id"]
            if rid == base:
                g.loc[idx, ["delta", "delta_low", "delta_high", "p_value"]] = [0.0, 0.0, 0.0, 1.0]
            else:
                res = _paired(per_user, rid, base, seg, col, n_boot, seed)
                if res is not None:
                    g.loc[idx, ["delta", "delta_low", "delta_high", "p_value"]] = list(res)
                    g.loc[idx, "significant"] = bool(res[1] > 0 or res[2] < 0)
            if r["kind"] == "transfer" and seg_best is not None:
                res = (
                    (g.loc[idx, "delta"], g.loc[idx, "delta_low"], g.loc[idx, "delta_high"],
                     g.loc[idx, "p_value"])
                    if base == seg_best
                    else _paired(per_user, rid, seg_best, seg, col, n_boot, seed)
                )  # fmt: skip
                if res is not None:
                    g.loc[idx, ["seg_delta", "seg_low", "seg_high", "seg_p"]] = list(res)
        out.append(g)
    table = pd.concat(out, ignore_index=True)
    table["seg_p_holm"] = holm_adjust(table["seg_p"].to_numpy(dtype=np.float64))
    table["seg_significant_raw"] = (table["seg_low"] > 0) | (table["seg_high"] < 0)
    table["seg_significant"] = table["seg_p_holm"] <= FAMILY_ALPHA
    table.attrs["family_size"] = int(np.isfinite(table["seg_p"].to_numpy(np.float64)).sum())
    table.attrs["runs"] = runs
    return table


SEED_FREE = ("device", "spec", "n_boot")
"""Config keys that do not make two runs different experiments (besides the seed)."""


def _experiment_key(run: dict) -> str:
    """What a run is apart from its model seed: strategy, label and config without
    settings.seed (and the keys of :data:`SEED_FREE`)."""
    import json

    cfg = {k: v for k, v in (run.get("config") or {}).items() if k not in SEED_FREE}
    cfg["settings"] = {k: v for k, v in (cfg.get("settings") or {}).items() if k != "seed"}
    return json.dumps([run.get("strategy"), run.get("label"), cfg], sort_keys=True, default=str)


def _run_seed(run: dict) -> int | None:
    seed = ((run.get("config") or {}).get("settings") or {}).get("seed")
    return int(seed) if isinstance(seed, int | float) else None


def seed_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of a between-seed t-interval: mean ± t(n-1) · sd / sqrt(n).

    ``values``: shape (n_seeds,), one figure per seed. Low and high are NaN with fewer
    than two seeds (one seed says nothing about the spread between seeds)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    from scipy.special import stdtrit  # Student t quantile: stats.t.ppf without scipy.stats

    half = float(stdtrit(len(v) - 1, 0.5 + level / 2) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def seed_pool(table: pd.DataFrame) -> pd.DataFrame:
    """Runs that differ only in their model seed, pooled (issue 14: a gain that does not
    survive another seed is not a gain).

    Args:
        table: what :func:`compare_runs` returned (its ``attrs["runs"]`` name the runs).

    Returns:
        One row per (experiment, segment) with at least two seeds, columns strategy,
        kind, label, segment, seeds (how many), seed_list ("0,1,2"), value (mean over
        seeds), seed_low/seed_high (95% between-seed t-interval), boot_low/boot_high
        (the per-seed bootstrap intervals, averaged: the spread over users), and for
        transfer runs seg_delta (mean gain over the best baseline of each seed's
        segment) with seg_delta_low/seg_delta_high, its between-seed interval. Empty
        when no experiment was repeated.
    """
    cols = ["strategy", "kind", "label", "segment", "seeds", "seed_list", "value", "seed_low",
            "seed_high", "boot_low", "boot_high", "seg_delta", "seg_delta_low",
            "seg_delta_high"]  # fmt: skip
    runs = {r["run_id"]: r for r in table.attrs.get("runs", [])}
    if table.empty or not runs:
        return pd.DataFrame(columns=cols)
    t = table.assign(
        _exp=[_experiment_key(runs[r]) for r in table["run_id"]],
        _seed=[_run_seed(runs[r]) for r in table["run_id"]],
    )
    rows = []
    for (_, seg), g in t.groupby(["_exp", "segment"], sort=False):
        g = g.drop_duplicates("_seed")
        if g["_seed"].nunique() < 2:
            continue
        m, lo, hi = seed_interval(g["value"].to_numpy())
        d = g["seg_delta"].to_numpy(np.float64) if "seg_delta" in g else np.array([np.nan])
        dm, dlo, dhi = seed_interval(d) if np.isfinite(d).any() else (np.nan,) * 3
        first = g.iloc[0]
        rows.append(
            {
                "strategy": first["strategy"],
                "kind": first["kind"],
                "label": first["label"],
                "segment": seg,
                "seeds": int(g["_seed"].nunique()),
                "seed_list": ",".join(str(x) for x in sorted(g["_seed"])),
                "value": m,
                "seed_low": lo,
                "seed_high": hi,
                "boot_low": float(g["ci_low"].mean()),
                "boot_high": float(g["ci_high"].mean()),
                "seg_delta": dm,
                "seg_delta_low": dlo,
                "seg_delta_high": dhi,
            }
        )
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class VerdictLine:
    """One segment's answer: ``kind`` is gain, loss (the best baseline is better), or
    none (no difference that survives the correction)."""

    segment: str
    kind: Literal["gain", "loss", "none"]
    text: str


def _n(n: int) -> str:
    return f"{n} comparison{'s' if n != 1 else ''}"


def _p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def _rel(delta: float, base: float) -> str:
    return f" ({delta / base:+.0%})" if base >= NEAR_ZERO else ""


def verdict_lines(table: pd.DataFrame) -> list[VerdictLine]:
    """Plain-language answer per segment, from the Holm-adjusted decisions."""
    out: list[VerdictLine] = []
    if table.empty or "seg_baseline" not in table.columns:
        return out
    metric = f"{table['metric'].iloc[0].upper()}@{table['k'].iloc[0]}"
    n = table.attrs.get("family_size", int(table["seg_p"].notna().sum()))
    for seg, g in table.groupby("segment", sort=False):
        t = g[(g["kind"] == "transfer") & g["seg_delta"].notna()]
        if t.empty:
            continue
        base = g[g["run_id"] == g["seg_baseline"].iloc[0]].iloc[0]
        against = f"the best baseline, {base['strategy']} ({base['value']:.4f})"
        name = segment_name(seg)
        wins = t[t["seg_significant"].astype(bool) & (t["seg_delta"] > 0)]
        if len(wins):
            w = wins.sort_values("seg_delta", ascending=False).iloc[0]
            text = (
                f"{name}: {w['strategy']} beats {against} by {w['seg_delta']:+.4f} {metric}"
                f"{_rel(w['seg_delta'], base['value'])}, 95% CI {w['seg_low']:+.4f} to "
                f"{w['seg_high']:+.4f}; it holds after correcting for {_n(n)} "
                f"(Holm-adjusted {_p(w['seg_p_holm'])})."
            )
            out.append(VerdictLine(seg, "gain", text))
            continue
        top = t.sort_values("seg_delta", ascending=False).iloc[0]
        if bool(top["seg_significant"]) and top["seg_delta"] < 0:
            text = (
                f"{name}: no gain from transfer; {base['strategy']} ({base['value']:.4f}) is "
                f"better than every transfer strategy, the closest being {top['strategy']} "
                f"at {top['seg_delta']:+.4f} (Holm-adjusted {_p(top['seg_p_holm'])})."
            )
            out.append(VerdictLine(seg, "loss", text))
        elif bool(top["seg_significant_raw"]) and top["seg_delta"] > 0:
            text = (
                f"{name}: no measurable gain over {against}: {top['strategy']} is ahead by "
                f"{top['seg_delta']:+.4f} (95% CI {top['seg_low']:+.4f} to "
                f"{top['seg_high']:+.4f}), but not after correcting for {_n(n)} "
                f"(Holm-adjusted {_p(top['seg_p_holm'])})."
            )
            out.append(VerdictLine(seg, "none", text))
        else:
            text = (
                f"{name}: no measurable gain from transfer over {against}; the best "
                f"transfer strategy, {top['strategy']}, differs by {top['seg_delta']:+.4f} "
                f"(95% CI {top['seg_low']:+.4f} to {top['seg_high']:+.4f})."
            )
            out.append(VerdictLine(seg, "none", text))
    return out


def verdict(table: pd.DataFrame) -> list[str]:
    """The verdict's sentences (see :func:`verdict_lines`)."""
    return [v.text for v in verdict_lines(table)]


def verdict_context(table: pd.DataFrame) -> list[str]:
    """What the verdict was measured against, how many comparisons it weighed, which
    suite baselines are missing, and why segments must not be compared with each other."""
    if table.empty or "kind" not in table.columns:
        return []
    trained = list(dict.fromkeys(table.loc[table["kind"] == "baseline", "strategy"]))
    n_transfer = table.loc[table["kind"] == "transfer", "run_id"].nunique()
    if not n_transfer:
        return []
    out = [f"Measured against: {', '.join(trained) or 'no baseline'}."]
    runs = table.attrs.get("runs") or []
    links = ((runs[0].get("config") or {}).get("links") or {}) if runs else {}
    has_text = bool(links.get("text_available", True))
    missing = [n for n in suite_names(has_text) if n not in trained]
    if missing:
        names = ", ".join(STRATEGIES[n].name for n in missing)
        out.append(
            f"Not in this comparison: {names}. A gain may not survive a stronger baseline: "
            "add their runs, or train the baseline suite (the default) on the same split."
        )
    n = table.attrs.get("family_size", int(table["seg_p"].notna().sum()))
    n_seg = table.loc[table["seg_p"].notna(), "segment"].nunique()
    out.append(
        f"{n} comparisons ({n_transfer} transfer run{'s' if n_transfer != 1 else ''} x "
        f"{n_seg} segment{'s' if n_seg != 1 else ''}): a gain or loss is claimed only if it "
        f"holds after Holm's correction at a {FAMILY_ALPHA:.0%} family-wise error rate "
        "(paired t-test over users; the intervals are paired bootstraps)."
    )
    out.append(
        "Segments hold different users with different test rows (a cold user is tested on "
        "everything after their support items, a warm user on their last 10%), so compare "
        "strategies within a segment, not values across segments."
    )
    return out


def format_comparison(table: pd.DataFrame) -> str:
    """A text table for the CLI: value [CI] and delta [CI] with * for significant."""
    if table.empty:
        return "nothing to compare (runs without metrics?)"
    fixed = table["baseline"].nunique() == 1 and table["seg_baseline"].ne(table["baseline"]).any()
    lines = [
        f"metric: {table['metric'].iloc[0]}@{table['k'].iloc[0]}   deltas against: "
        + (table["baseline"].iloc[0] if fixed else "the best baseline of each segment")
    ]
    for seg, g in table.groupby("segment", sort=False):
        lines.append(f"\n[{segment_name(seg)}]  baseline: {g['baseline'].iloc[0]}")
        for _, r in g.iterrows():
            d = ""
            if r["run_id"] != r["baseline"] and np.isfinite(r["delta"]):
                star = " *" if r["significant"] else ""
                d = f"  delta {r['delta']:+.4f} [{r['delta_low']:+.4f}, {r['delta_high']:+.4f}]{star}"
            lines.append(
                f"  {r['strategy']:15s} {r['run_id']:34s} {r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]{d}"
            )
    v = verdict(table)
    if v:
        lines.append("\nverdict:")
        lines += [f"  {x}" for x in v]
        lines += [f"  {x}" for x in verdict_context(table)]
    lines.append("\n* the paired 95% interval of the delta excludes 0 (not corrected).")
    lines += seed_pool_lines(seed_pool(table))
    return "\n".join(lines)


def _iv(lo: float, hi: float) -> str:
    return f"[{lo:.4f}, {hi:.4f}]" if np.isfinite(lo) and np.isfinite(hi) else "[n/a]"


def seed_pool_lines(pooled: pd.DataFrame) -> list[str]:
    """The CLI's lines for :func:`seed_pool`: per segment, mean over seeds with the
    between-seed and the (mean) bootstrap interval, and the pooled gain."""
    if pooled.empty:
        return []
    lines = ["\nover seeds (mean, 95% between seeds, 95% bootstrap over users):"]
    for seg, g in pooled.groupby("segment", sort=False):
        lines.append(f"[{segment_name(seg)}]")
        for _, r in g.iterrows():
            gain = ""
            if np.isfinite(r["seg_delta"]):
                gain = (
                    f"  gain {r['seg_delta']:+.4f} {_iv(r['seg_delta_low'], r['seg_delta_high'])}"
                )
            label = f" ({r['label']})" if r["label"] else ""
            lines.append(
                f"  {r['strategy']}{label}, seeds {r['seed_list']}: {r['value']:.4f} "
                f"{_iv(r['seed_low'], r['seed_high'])} {_iv(r['boot_low'], r['boot_high'])}{gain}"
            )
    return lines


COLD_ITEM_FIGURES: tuple[tuple[str, str, int, str], ...] = (
    ("cold_items", "ndcg", 10, "NDCG@10, full catalogue"),
    ("cold_items", "recall", 20, "Recall@20, full catalogue"),
    ("cold_catalogue", "ndcg", 10, "NDCG@10 among cold items"),
    ("cold_catalogue", "recall", 20, "Recall@20 among cold items"),
    ("cold_catalogue", "auc", 0, "cold-item AUC"),
)
"""What the field reports for new items: the full-catalogue figures (exposure and
ranking together) beside the cold-catalogue ones (ranking alone)."""


def cold_item_table(runs: list[dict]) -> pd.DataFrame:
    """One row per run: each figure of :data:`COLD_ITEM_FIGURES` as "value [low, high]".

    Columns: run_id, strategy, then one per figure label. Runs without cold items are
    left out; a figure a run lacks is "".
    """
    rows = []
    for r in runs:
        m = pd.DataFrame(r.get("metrics") or [])
        if m.empty or not (m["segment"] == "cold_items").any():
            continue
        row = {"run_id": r["run_id"], "strategy": r["strategy"]}
        for seg, metric, k, label in COLD_ITEM_FIGURES:
            hit = m[(m["segment"] == seg) & (m["metric"] == metric) & (m["k"] == k)]
            if hit.empty or hit["value"].iloc[0] is None:
                row[label] = ""
                continue
            v, lo, hi = (hit[c].iloc[0] for c in ("value", "ci_low", "ci_high"))
            row[label] = f"{v:.4f}" + (
                f" [{lo:.4f}, {hi:.4f}]" if lo is not None and np.isfinite(lo) else ""
            )
        rows.append(row)
    return pd.DataFrame(rows)
