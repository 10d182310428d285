"""Benchmark full-catalogue ranking at MovieLens-1M size and the metric/bootstrap steps.

Prints users/s of ``topk_full_ranking`` for 6,040 users x 3,706 items with a dot-product
scorer (dim 64), each user's ~165 history items masked (ML-1M's average), at batch sizes
256 / 1024 / 4096, on CPU (threads = --threads, default 2) and on CUDA when available.
Never asserted in tests.

    python bench/bench_eval.py [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.schema import IdMap
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.evaluation.bootstrap import bootstrap_ci_columns
from recsys_core.evaluation.evaluate import EvalConfig, evaluate
from recsys_core.evaluation.metrics import METRICS, ranking_metrics
from recsys_core.evaluation.ranking import topk_full_ranking

N_USERS, N_ITEMS, DIM, K = 6040, 3706, 64, 20


class DotScorer:
    """score(u, i) = <U[u], V[i]> with both tables already on ``device``."""

    def __init__(self, u: torch.Tensor, v: torch.Tensor) -> None:
        self.u, self.v = u, v

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        idx = torch.from_numpy(users).to(self.u.device)
        return self.u[idx] @ self.v.T


class PopularityScorer:
    """Integer counts, the same for every user: every row has ties (the exact path)."""

    def __init__(self, counts: torch.Tensor) -> None:
        self.counts = counts

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.counts.expand(len(users), -1)


def random_history(rng: np.random.Generator, mean_len: int = 165) -> sp.csr_matrix:
    lengths = np.clip(rng.geometric(1 / mean_len, size=N_USERS), 20, N_ITEMS // 2)
    rows = np.repeat(np.arange(N_USERS), lengths)
    cols = np.concatenate([rng.choice(N_ITEMS, size=n, replace=False) for n in lengths])
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(N_USERS, N_ITEMS))
    m.sum_duplicates()
    return m


def bench_device(device: str, hist: sp.csr_matrix, repeat: int) -> None:
    g = torch.Generator().manual_seed(0)
    scorer = DotScorer(
        torch.randn(N_USERS, DIM, generator=g).to(device),
        torch.randn(N_ITEMS, DIM, generator=g).to(device),
    )
    users = np.arange(N_USERS, dtype=np.int64)
    for bs in (256, 1024, 4096):
        topk_full_ranking(scorer, users[:bs], hist[:bs], hist[:bs], K, bs, device)  # warm-up
        best, best_cpu = float("inf"), float("inf")
        for _ in range(repeat):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            topk_full_ranking(scorer, users, hist, hist, K, batch_size=bs, device=device)
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
        # CPU seconds are reported too: on a shared machine wall time includes waiting
        # for the cores, CPU time does not
        print(
            f"{device:>6}  batch {bs:>5}  full ranking {N_USERS} x {N_ITEMS}: "
            f"{best:6.3f} s wall ({N_USERS / best:,.0f} users/s), {best_cpu:6.3f} CPU-s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per setting (best kept)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    hist = random_history(rng)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, history nnz {hist.nnz:,}")
    bench_device("cpu", hist, args.repeat)
    if torch.cuda.is_available():
        print(f"CUDA: {torch.cuda.get_device_name(0)}")
        bench_device("cuda", hist, args.repeat)

    pop = PopularityScorer(torch.from_numpy(hist.sum(axis=0).A1.astype(np.float32)))
    users = np.arange(N_USERS, dtype=np.int64)
    t, c = time.perf_counter(), time.process_time()
    topk_full_ranking(pop, users, hist, hist, K, batch_size=1024)
    print(
        f"   cpu  batch  1024  popularity scorer (ties in every row): "
        f"{time.perf_counter() - t:6.3f} s wall, {time.process_time() - c:6.3f} CPU-s"
    )

    # the numpy half: per-user metrics and bootstrap intervals for one segment
    topk = np.stack([rng.permutation(N_ITEMS)[:K] for _ in range(N_USERS)])
    truth = random_history(rng, mean_len=20)
    t = time.perf_counter()
    pu = ranking_metrics(topk, truth, ks=(5, 10, 20))
    t_metrics = time.perf_counter() - t
    cols = [f"{m}@{k}" for m in METRICS for k in (5, 10, 20)]
    t = time.perf_counter()
    bootstrap_ci_columns(pu[cols].to_numpy(), n_boot=1000, seed=0)
    t_boot = time.perf_counter() - t
    print(f"ranking_metrics, {N_USERS} users, 15 columns: {t_metrics:.3f} s")
    print(f"bootstrap 1000 replicates x 15 columns, {N_USERS} users: {t_boot:.3f} s")

    split = synthetic_split(rng, hist)
    g = torch.Generator().manual_seed(1)
    scorer = DotScorer(
        torch.randn(N_USERS, DIM, generator=g), torch.randn(N_ITEMS, DIM, generator=g)
    )
    t = time.perf_counter()
    res = evaluate(scorer, split, EvalConfig())
    sizes = res.summary.groupby("segment", sort=False)["n_users"].first().to_dict()
    print(f"evaluate() end to end, cold-start split {sizes}: {time.perf_counter() - t:.2f} s")


def synthetic_split(rng: np.random.Generator, hist: sp.csr_matrix) -> Split:
    """ML-1M-sized cold-start split: 10% cold users (support 0/1/3/5), 5% cold items."""
    coo = hist.tocoo()
    df = pd.DataFrame({"user": coo.row.astype(np.int64), "item": coo.col.astype(np.int64)})
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cold_users = rng.choice(N_USERS, N_USERS // 10, replace=False)
    cold_items = rng.choice(N_ITEMS, N_ITEMS // 20, replace=False)
    is_cu = df.user.isin(cold_users).to_numpy()
    is_ci = df.item.isin(cold_items).to_numpy()
    pos = df.groupby("user").cumcount().to_numpy()
    size = df.groupby("user")["item"].transform("size").to_numpy()
    warm = ~is_cu
    train = df[warm & ~is_ci & (pos < 0.8 * size)].assign(timestamp=0)
    valid = df[warm & ~is_ci & (pos >= 0.8 * size) & (pos < 0.9 * size)]
    test = df[(warm & ((pos >= 0.9 * size) | is_ci)) | (is_cu & (pos >= 5))].copy()
    test["cold_user"] = test.user.isin(cold_users)
    test["cold_item"] = test.item.isin(cold_items)
    support = {k: df[is_cu & (pos < k)] for k in (0, 1, 3, 5)}

    def ids(n: int, prefix: str) -> IdMap:
        return IdMap(np.array([f"{prefix}{i:05d}" for i in range(n)], dtype=object))

    return Split(
        config=SplitConfig(),
        user_map=ids(N_USERS, "u"),
        item_map=ids(N_ITEMS, "i"),
        train=train,
        valid=valid,
        test=test,
        support=support,
        cold_users=np.sort(cold_users),
        cold_items=np.sort(cold_items),
    )


if __name__ == "__main__":
    main()
