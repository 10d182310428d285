"""Synthetic scale run: how split, training and evaluation time and memory grow.

Power-law users and items (a catalogue of 50k items), sizes up to 10 million
interactions and 1 million users. BPR-MF (ids only) so the figure is about the engine,
not the text model. One training epoch with dense Adam (RecBole's) and with lazy
row-wise Adam (``TrainConfig.sparse_adam``), evaluation of a 20k-user sample. Asserts
nothing.

    python bench/bench_scale.py [--sizes 1e6,3e6,1e7] [--device cpu] [--adam dense,lazy]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
import torch

from recsys_core.data.schema import Domain
from recsys_core.data.split_types import SplitConfig
from recsys_core.data.splits import make_split
from recsys_core.evaluation.ranking import topk_full_ranking
from recsys_core.models.two_tower import TwoTower, TwoTowerConfig
from recsys_core.training.loop import DomainData, TrainConfig, train


def synthetic(n: int, n_users: int, n_items: int, seed: int = 0) -> Domain:
    rng = np.random.default_rng(seed)
    users = np.minimum((rng.pareto(1.2, n) * n_users / 20).astype(np.int64), n_users - 1)
    items = np.minimum((rng.pareto(1.0, n) * n_items / 50).astype(np.int64), n_items - 1)
    df = pd.DataFrame({"user_id": users.astype(str), "item_id": items.astype(str), "rating": 1.0,
                       "timestamp": rng.integers(0, 10**9, n)})  # fmt: skip
    return Domain("synthetic", df.drop_duplicates(["user_id", "item_id"]))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1e6,3e6,1e7")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--adam", default="dense,lazy", help="optimisers to time: dense, lazy")
    args = ap.parse_args()
    adams = [a.strip() for a in args.adam.split(",") if a.strip()]
    dev = torch.device(args.device)
    print(
        f"{'adam':>5s} {'interactions':>12s} {'users':>9s} {'items':>7s} {'split s':>8s} {'epoch s':>8s} {'inter/s':>10s} {'eval users/s':>12s} {'peak MiB':>9s}"
    )
    for size in [int(float(s)) for s in args.sizes.split(",")]:
        n_users = max(1000, size // 10)
        dom = synthetic(size, n_users, 50_000)
        t0 = time.perf_counter()
        split = make_split(dom, SplitConfig(protocol="recbole"))
        t_split = time.perf_counter() - t0
        tr = split.train
        import scipy.sparse as sp

        hist = sp.csr_matrix(
            (np.ones(len(tr), np.float32), (tr.user, tr.item)), shape=(split.n_users, split.n_items)
        )
        for adam in adams:
            model = TwoTower(
                split.n_users,
                split.n_items,
                TwoTowerConfig(dim=64, use_text=False, use_history=False),
            )
            data = DomainData(
                "t", tr.user.to_numpy(), tr.item.to_numpy(), np.arange(split.n_items), hist
            )
            res = train(
                model,
                [data],
                TrainConfig(
                    epochs=1,
                    batch_size=65536,
                    loss="bpr",
                    lr=0.01,
                    patience=0,
                    sparse_adam=adam == "lazy",
                ),
                device=dev,
            )

            class S:
                def __init__(self, model, n_items):
                    self.model, self.n_items = model, n_items

                def score(self, users, history):
                    return self.model.score_users(users, history, self.n_items, device=dev)

            users = np.random.default_rng(0).choice(
                split.n_users, min(20_000, split.n_users), replace=False
            )
            t1 = time.perf_counter()
            topk_full_ranking(
                S(model, split.n_items),
                users,
                hist[users],
                hist[users],
                k=20,
                batch_size=2048,
                device=dev,
            )
            t_eval = time.perf_counter() - t1
            print(f"{adam:>5s} {len(dom.interactions):12,d} {split.n_users:9,d} {split.n_items:7,d} {t_split:8.1f} {res.seconds:8.1f} "
                  f"{len(tr) / res.seconds:10,.0f} {len(users) / t_eval:12,.0f} {rss_mib():9,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
