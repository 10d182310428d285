"""Evaluation of a large target: a synthetic 200k-user cold-start split, end to end.

Issue 13 point 4: ``run --strategy popularity`` on a 200 MB file spent 176 s in
evaluation. This bench builds a split of the same shape without any file (uniform
users, power-law items, ``--users`` users, ``--interactions`` rows, ``--items`` items, the
default cold-start protocol: 10% cold users with support 0/1/3/5, 5% cold items), then
times :func:`recsys_core.evaluation.evaluate.evaluate` for the popularity scorer (ties
in every row) and for a dot-product scorer (dim 64, no ties), and the steps around it
that ``run`` also pays (the validation metric). Prints seconds per step and peak RSS;
asserts nothing. Profile it with ``py-spy record -o eval.svg -- python
bench/bench_eval_scale.py``.

    PYTHONPATH=. python bench/bench_eval_scale.py [--users 200000] [--interactions 7.7e6]
        [--items 40000] [--scorers popularity,dot]

(``PYTHONPATH=.``: a script's folder, not the repository, is first on its path.)
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
    """Uniform users, power-law items, as bench/bench_big_input.py's 200 MB file (200k
    users, 40k items, about 7.7M rows)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
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
    ap.add_argument("--interactions", type=float, default=7.7e6)
    ap.add_argument("--items", type=int, default=40_000)
    ap.add_argument("--scorers", default="popularity,dot")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--save", default="", help="write each summary to SAVE_<scorer>.csv")
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
        # CPU seconds too: on a shared machine the wall includes waiting for a core
        t, c = time.perf_counter(), time.process_time()
        val = ValidationSet(split, metric="ndcg", k=10)(scorer)
        t_val, c_val = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        res = evaluate(scorer, split, EvalConfig(n_boot=args.n_boot))
        t_eval, c_eval = time.perf_counter() - t, time.process_time() - c
        ndcg = res.metric("all", "ndcg", 10)
        print(
            f"{name:>10s}: validation {t_val:6.1f} s ({c_val:.1f} CPU-s, ndcg@10 {val:.4f}), "
            f"evaluate {t_eval:6.1f} s ({c_eval:.1f} CPU-s, all ndcg@10 {ndcg:.4f}, "
            f"{len(res.per_user):,} per-user rows), peak {rss_mib():,.0f} MiB, "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if args.save:
            res.summary.to_csv(f"{args.save}_{name}.csv", index=False)


if __name__ == "__main__":
    main()
