"""Mapping (EMCDR) on demo:ml1m-genres, and a what-if curve over warm target users.

Usage::

    OMP_NUM_THREADS=1 python bench/bench_curves.py [--mappers linear mlp]
        [--values 10,30,100,300,1000,all] [--draws 3] [--curve-history all]
        [--source-curve] [--quick]

Scenario: ``demo:ml1m-genres`` (constructed: MovieLens-1M cut by genre, Drama as
source, Children's + Animation as target, thousands of shared users), default
cold-start split (10% cold users revealing k = 0, 1, 3, 5 support items, 5% cold items).

Part 1, the issue's "done means": NDCG@10 of cold users at k = 0 for mapping and
popularity (the best a target-only model can do for a user with no target history),
with the paired 95% bootstrap interval of the difference (1000 replicates, users as
the unit), under both ``--source-history all`` and ``before-target``. Target-only iALS
(tuned on validation) and the k >= 1 segments are printed beside them.

Part 2: a what-if curve over the number of warm target users kept in training (the
thin-market version of the demo), mapping against the best of popularity and
target-only iALS, per segment, draws pooled by user (recsys_core.curves).
``--source-curve`` adds the curve over the source interactions a cold user brings.

Figures are printed, never asserted (bench/ is not part of the test suite).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_core.curves import parse_values, what_if_curve
from recsys_core.data.split_types import SplitConfig
from recsys_core.evaluation.evaluate import EvalConfig, evaluate
from recsys_core.pipeline import ScenarioSpec, load_scenario
from recsys_core.strategies.base import Context, ModelSettings
from recsys_core.strategies.registry import get_strategy

SEGMENTS = ("cold_users_k0", "cold_users_k1", "cold_users_k3", "cold_users_k5", "warm_users")


def part1(mappers: list[str], n_boot: int) -> None:
    print("== Part 1: cold users at k = 0, mapping vs popularity (NDCG@10, 95% paired CI)")
    for history in ("all", "before-target"):
        t0 = time.perf_counter()
        scn = load_scenario(
            ScenarioSpec(demo="demo:ml1m-genres"), SplitConfig(), source_history=history
        )
        ctx = Context(scn, None, ModelSettings(model="ials"))
        cfg = EvalConfig(ks=(10,), n_boot=n_boot)
        results = {}
        infos = {}
        for name, opts in [("popularity", {}), ("target-only", {})] + [
            (f"mapping-{m}", {"mapper": m}) for m in mappers
        ]:
            t1 = time.perf_counter()
            fitted = get_strategy(
                name.split("-")[0] if name.startswith("mapping") else name, opts
            ).fit(ctx)
            results[name] = evaluate(fitted.scorer, scn.split, cfg)
            infos[name] = (fitted.info, time.perf_counter() - t1)
        cold = scn.split.cold_users
        cnt = np.bincount(scn.source_train["user"].to_numpy(), minlength=scn.n_users)[cold]
        print(
            f"\n-- source history: {history}  ({len(cold)} cold users, {int((cnt > 0).sum())} with "
            f"usable source history, median {np.median(cnt):.0f} source interactions each; "
            f"{time.perf_counter() - t0:.0f}s)"
        )
        header = "  " + " " * 18 + "".join(f"{s:>16s}" for s in SEGMENTS)
        print(header)
        for name, r in results.items():
            vals = "".join(f"{r.metric(s, 'ndcg', 10):16.4f}" for s in SEGMENTS)
            print(f"  {name:18s}{vals}   (fit {infos[name][1]:.0f}s)")
        for name in results:
            if not name.startswith("mapping"):
                continue
            info = infos[name][0]
            print(
                f"  {name}: blend weights (map, fold-in, popularity) per k {info['blend_weights']}; "
                f"ridge {info.get('ridge')}; simulated cold users: {info['simulated_cold_users']}"
            )
            for seg in SEGMENTS[:4]:
                for base in ("popularity", "target-only"):
                    d = results[name].paired_delta(results[base], seg, "ndcg", 10, n_boot=n_boot)
                    star = " *" if d["significant"] else ""
                    print(
                        f"    {seg:14s} vs {base:11s}: {d['delta']:+.4f} "
                        f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]{star}  ({d['n_users']} users)"
                    )


def part2(factor: str, values, draws: int, history: str, n_boot: int) -> None:
    print(
        f"\n== Part 2: what-if curve over {factor} (source history: {history}; mapping vs best baseline)"
    )
    scn = load_scenario(
        ScenarioSpec(demo="demo:ml1m-genres"), SplitConfig(), source_history=history
    )
    t0 = time.perf_counter()
    df = what_if_curve(
        scn,
        factor,
        values,
        ["mapping"],
        ["popularity", "target-only"],
        ModelSettings(model="ials"),
        draws=draws,
        seed=0,
        n_boot=n_boot,
    )
    print(f"({time.perf_counter() - t0:.0f}s, {draws} draws per value, pooled by user)")
    for seg in ("cold_users_k0", "cold_users_k3", "warm_users", "all"):
        g = df[df["segment"] == seg]
        print(f"  [{seg}]")
        for r in g.itertuples(index=False):
            star = " *" if r.significant else ""  # off zero and after Holm over the curve
            print(
                f"    {factor}={r.value!s:>5} (x={r.x:7.1f})  delta {r.delta:+.4f} "
                f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]{star}  vs {r.baseline:11s} "
                f"({r.baseline_value:.4f}; {r.n_users} users)"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mappers", nargs="+", default=["linear"], choices=["linear", "mlp"])
    p.add_argument("--values", default="10,30,100,300,1000,all")
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--curve-history", default="all", choices=["all", "before-target"])
    p.add_argument("--source-curve", action="store_true", help="also vary source interactions")
    p.add_argument("--skip-part1", action="store_true")
    p.add_argument("--quick", action="store_true", help="fewer values, one draw, 200 replicates")
    args = p.parse_args()
    torch.set_num_threads(1)
    n_boot = 200 if args.quick else 1000
    if not args.skip_part1:
        part1(args.mappers, n_boot)
    values = parse_values("30,300,all" if args.quick else args.values)
    draws = 1 if args.quick else args.draws
    part2("warm_users", values, draws, args.curve_history, n_boot)
    if args.source_curve:
        part2(
            "source_interactions", parse_values("0,3,10,30,100,all"), 1, args.curve_history, n_boot
        )


if __name__ == "__main__":
    main()
