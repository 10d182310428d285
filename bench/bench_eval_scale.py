"""Evaluation of a large target: a synthetic 200k-user cold-start split, end to end.

Issue 13 point 4: ``run --strategy popularity`` on a 200 MB file spent 176 s in
evaluation. This bench builds a split of the same shape without any file (power-law
users and items, ``--users`` users, ``--interactions`` rows, ``--items`` items, the
default cold-start protocol: 10% cold users with support 0/1/3/5, 5% cold items), then
times :func:`recsys_core.evaluation.evaluate.evaluate` for the popularity scorer (ties
in every row) and for a dot-product scorer (dim 64, no ties), and the steps around it
that ``run`` also pays (the validation metric). Prints seconds per step and peak RSS;
asserts nothing. Profile it with ``py-spy record -o eval.svg -- python
bench/bench_eval_scale.py``.

    python bench/bench_eval_scale.py [--users 200000] [--interactions 8e6] [--items 50000]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.schema import Domain
from recsys_core.data.split_types import SplitConfig
from recsys_core.data.splits import make_split
from recsys_core.evaluation.evaluate import EvalConfig, ValidationSet, evaluate
from recsys_core.models.popularity import Popularity


def synthetic(n: int, n_users: int, n_items: int, seed: int = 0) -> Domain:
    """Power-law users and items with timestamps; every user has at least 5 rows."""
    rng = np.random.default_rng(seed)
    base = np.repeat(np.arange(n_users), 5)  # every user can be split and be cold
    extra = n - len(base)
    users = np.concatenate(
        [base, np.minimum((rng.pareto(1.2, extra) * n_users / 20).astype(np.int64), n_users - 1)]
    )
    items = np.minimum((rng.pareto(1.0, n) * n_items / 50).astype(np.int64), n_items - 1)
    df = pd.DataFrame({"user_id": users.astype(str), "item_id": items.astype(str), "rating": 1.0,
                       "timestamp": rng.integers(0, 10**9, n)})  # fmt: skip
    return Domain("synthetic", df.drop_duplicates(["user_id", "item_id"]))


class DotScorer:
    """score(u, i) = <U[u], V[i]>: real-valued scores, no ties (the common model case)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.u = torch.randn(n_users, dim, generator=g)
        self.v = torch.randn(n_items, dim, generator=g)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.u[torch.from_numpy(np.asarray(users))] @ self.v.T


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--interactions", type=float, default=8e6)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--scorers", default="popularity,dot")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    t = time.perf_counter()
    dom = synthetic(int(args.interactions), args.users, args.items)
    split = make_split(dom, SplitConfig())
    print(
        f"split: {len(dom.interactions):,} rows, {split.n_users:,} users, {split.n_items:,} "
        f"items, test users {split.test['user'].nunique():,}, "
        f"{time.perf_counter() - t:.1f} s, peak {rss_mib():,.0f} MiB"
    )
    tr = split.train
    train = sp.csr_matrix(
        (np.ones(len(tr), np.float32), (tr.user, tr.item)), shape=(split.n_users, split.n_items)
    )
    scorers = {
        "popularity": lambda: Popularity().fit(train),
        "dot": lambda: DotScorer(split.n_users, split.n_items),
    }
    for name in [s.strip() for s in args.scorers.split(",") if s.strip()]:
        scorer = scorers[name]()
        t = time.perf_counter()
        val = ValidationSet(split, metric="ndcg", k=10)(scorer)
        t_val = time.perf_counter() - t
        t = time.perf_counter()
        res = evaluate(scorer, split, EvalConfig(n_boot=args.n_boot))
        t_eval = time.perf_counter() - t
        ndcg = res.metric("all", "ndcg", 10)
        print(
            f"{name:>10s}: validation {t_val:6.1f} s (ndcg@10 {val:.4f}), evaluate "
            f"{t_eval:6.1f} s (all ndcg@10 {ndcg:.4f}, {len(res.per_user):,} per-user rows), "
            f"peak {rss_mib():,.0f} MiB, load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
