"""Side-by-side metrics of stored runs with paired bootstrap deltas against a baseline.

The default baseline is the best *target-only* run on validation (popularity, text
zero-shot, target-only with any model), not the weakest: a transfer gain only means
something against the strongest model a user could train on the target alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.evaluation.bootstrap import paired_bootstrap_delta
from recsys_core.evaluation.metrics import metric_column

BASELINE_STRATEGIES = ("popularity", "text-zero-shot", "target-only")
TRANSFER_STRATEGIES = ("fine-tune", "distill", "adapt", "fusion", "mapping")
"""What the verdict weighs; an uploaded 'external' run is neither baseline nor transfer."""


def default_baseline(runs: list[dict]) -> str:
    """Run id of the baseline-kind run with the highest validation NDCG@10 (else the first)."""
    cands = [r for r in runs if r.get("strategy") in BASELINE_STRATEGIES]
    scored = [(r.get("extra", {}).get("info", {}).get("val_ndcg@10"), r) for r in cands]
    scored = [(v, r) for v, r in scored if v is not None and np.isfinite(v)]
    if scored:
        return max(scored, key=lambda t: t[0])[1]["run_id"]
    return runs[0]["run_id"]


def compare_runs(
    store,
    run_ids: list[str],
    baseline: str | None = None,
    metric: str = "ndcg",
    k: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (run, segment): value with 95% CI, and the paired delta to the baseline.

    Columns: run_id, strategy, label, segment, metric, k, value, ci_low, ci_high, n_users,
    baseline, delta, delta_low, delta_high, p_value, significant; and, for the verdict,
    seg_baseline, seg_delta, seg_low, seg_high, seg_significant: the paired delta of each
    transfer run against the *best baseline of that segment* (DESIGN.md: a gain counts only
    against the best of the target-only models). Cold segments have no validation rows, so
    that best is picked on the segment itself, which can only favour the baseline.
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
    base_id = baseline or default_baseline(runs)
    if base_id not in run_ids:
        raise ValueError(f"baseline {base_id!r} is not among the runs being compared")
    col = metric_column(metric, k)
    per_user = {r: store.load_table(r, "per_user") for r in run_ids}
    base = per_user[base_id]
    rows = []
    for run in runs:
        rid = run["run_id"]
        summ = pd.DataFrame(run.get("metrics") or [])
        if summ.empty:
            continue
        sel = summ[(summ["metric"] == metric) & (summ["k"] == k)]
        for _, m in sel.iterrows():
            seg = m["segment"]
            row = {
                "run_id": rid,
                "strategy": run["strategy"],
                "label": run.get("label"),
                "segment": seg,
                "metric": metric,
                "k": k,
                "value": m["value"],
                "ci_low": m["ci_low"],
                "ci_high": m["ci_high"],
                "baseline": base_id,
                "delta": np.nan,
                "delta_low": np.nan,
                "delta_high": np.nan,
                "p_value": np.nan,
                "significant": False,
            }
            if rid != base_id and col in per_user[rid].columns:
                a = per_user[rid][per_user[rid]["segment"] == seg].set_index("user")[col]
                b = base[base["segment"] == seg].set_index("user")[col]
                common = a.index.intersection(b.index)
                if len(common):
                    d, lo, hi, p = paired_bootstrap_delta(
                        a.loc[common].to_numpy(), b.loc[common].to_numpy(), n_boot=n_boot, seed=seed
                    )
                    row.update(
                        delta=d,
                        delta_low=lo,
                        delta_high=hi,
                        p_value=p,
                        significant=bool(lo > 0 or hi < 0),
                    )
            elif rid == base_id:
                row.update(delta=0.0, delta_low=0.0, delta_high=0.0, p_value=1.0)
            rows.append(row)
    table = pd.DataFrame(rows)
    return _segment_baselines(table, per_user, col, n_boot, seed)


def _paired(per_user: dict, a_id: str, b_id: str, seg: str, col: str, n_boot: int, seed: int):
    a = per_user[a_id][per_user[a_id]["segment"] == seg].set_index("user")[col]
    b = per_user[b_id][per_user[b_id]["segment"] == seg].set_index("user")[col]
    common = a.index.intersection(b.index)
    if not len(common):
        return None
    return paired_bootstrap_delta(
        a.loc[common].to_numpy(), b.loc[common].to_numpy(), n_boot=n_boot, seed=seed
    )


def _segment_baselines(
    table: pd.DataFrame, per_user: dict, col: str, n_boot: int, seed: int
) -> pd.DataFrame:
    """Add seg_* columns: each transfer run against the best baseline run of its segment."""
    for c in ("seg_baseline", "seg_delta", "seg_low", "seg_high", "seg_significant"):
        table[c] = None if c == "seg_baseline" else (False if c == "seg_significant" else np.nan)
    if table.empty:
        return table
    for seg, g in table.groupby("segment", sort=False):
        bases = g[g["strategy"].isin(BASELINE_STRATEGIES)]
        if bases.empty:
            continue
        best = bases.sort_values("value", ascending=False).iloc[0]["run_id"]
        for idx, r in g.iterrows():
            table.at[idx, "seg_baseline"] = best
            if r["strategy"] not in TRANSFER_STRATEGIES or col not in per_user[r["run_id"]].columns:
                continue
            res = _paired(per_user, r["run_id"], best, seg, col, n_boot, seed)
            if res is None:
                continue
            d, lo, hi, _ = res
            table.at[idx, "seg_delta"], table.at[idx, "seg_low"], table.at[idx, "seg_high"] = (
                d,
                lo,
                hi,
            )
            table.at[idx, "seg_significant"] = bool(lo > 0 or hi < 0)
    return table


def verdict(table: pd.DataFrame) -> list[str]:
    """Plain-language answer per segment: does any transfer strategy beat the best
    baseline *of that segment* beyond its 95% paired interval, and by how much?"""
    out = []
    if table.empty or "seg_baseline" not in table.columns:
        return out
    metric = f"{table['metric'].iloc[0].upper()}@{table['k'].iloc[0]}"
    for seg, g in table.groupby("segment", sort=False):
        t = g[g["strategy"].isin(TRANSFER_STRATEGIES) & g["seg_delta"].notna()]
        if t.empty:
            continue
        base_id = g["seg_baseline"].iloc[0]
        base = g[g["run_id"] == base_id].iloc[0]
        wins = t[t["seg_significant"].astype(bool) & (t["seg_delta"] > 0)]
        if len(wins):
            best = wins.sort_values("seg_delta", ascending=False).iloc[0]
            rel = best["seg_delta"] / max(base["value"], 1e-12)
            out.append(
                f"{seg}: {best['strategy']} beats the best baseline ({base['strategy']}) by "
                f"{best['seg_delta']:+.4f} {metric} ({rel:+.0%}; 95% CI {best['seg_low']:+.4f} "
                f"to {best['seg_high']:+.4f})."
            )
        else:
            top = t.sort_values("value", ascending=False).iloc[0]
            worse = bool(top["seg_significant"]) and top["seg_delta"] < 0
            tail = f"; {base['strategy']} is better here" if worse else ""
            out.append(
                f"{seg}: no measurable gain from transfer over the best baseline ({base['strategy']}){tail}."
            )
    return out


def format_comparison(table: pd.DataFrame) -> str:
    """A text table for the CLI: value [CI] and delta [CI] with * for significant."""
    if table.empty:
        return "nothing to compare (runs without metrics?)"
    lines = [
        f"baseline: {table['baseline'].iloc[0]}   metric: {table['metric'].iloc[0]}@{table['k'].iloc[0]}"
    ]
    for seg, g in table.groupby("segment", sort=False):
        lines.append(f"\n[{seg}]")
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
    return "\n".join(lines)
