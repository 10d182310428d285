"""Synthetic scale run: how split, training and evaluation time and memory grow.

Power-law users and items (a catalogue of 50k items), sizes up to 10 million
interactions and 1 million users. Two models (``--models``):

* ``bpr-mf``: BPR-MF (ids only), one training epoch with dense Adam (RecBole's) and
  with lazy row-wise Adam (``TrainConfig.sparse_adam``);
* ``two-tower``: the product's two-tower (ids, text projection of random 384-d unit
  "text" vectors, history pooling of 32 items), batch 4,096, ``--tt-loss``: the sampled
  softmax of source pre-training by default, or the full softmax over the catalogue
  (the target default). Its steps cost the same whatever the epoch's position, so the
  epoch is timed on ``--tt-pairs`` pairs and scaled to the whole (marked ``~``; 0 times
  the whole epoch: about 2,400 steps at 10M, tens of minutes on a shared 2-core CPU).

Then ranking of a 20k-user sample. Peak RSS is the process's (``ru_maxrss``), so only
the first model of a process has its own figure: run one per process for clean ones.
Asserts nothing.

    PYTHONPATH=. python bench/bench_scale.py [--sizes 1e6,3e6,1e7] [--device cpu]
        [--models bpr-mf,two-tower] [--adam dense,lazy] [--tt-loss softmax]
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
    ap.add_argument("--models", default="bpr-mf,two-tower", help="bpr-mf, two-tower")
    ap.add_argument("--adam", default="dense,lazy", help="BPR-MF optimisers: dense, lazy")
    ap.add_argument("--tt-loss", default="softmax", help="two-tower loss: softmax, full-softmax")
    ap.add_argument("--tt-pairs", type=int, default=400_000,
                    help="two-tower pairs timed, scaled to the epoch (0: the whole epoch)")  # fmt: skip
    args = ap.parse_args()
    from recsys_core.allocator import tune_allocator

    tune_allocator()  # as the product's entry points do (CLI, run_strategies)
    adams = [a.strip() for a in args.adam.split(",") if a.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    print(
        f"{'model':>22s} {'interactions':>12s} {'users':>9s} {'items':>7s} {'split s':>8s} "
        f"{'epoch s':>9s} {'inter/s':>10s} {'eval users/s':>12s} {'peak MiB':>9s} {'load':>5s}"
    )
    for size in [int(float(s)) for s in args.sizes.split(",")]:
        n_users = max(1000, size // 10)
        dom = synthetic(size, n_users, 50_000)
        t0 = time.perf_counter()
        split = make_split(dom, SplitConfig(protocol="recbole"))
        t_split = time.perf_counter() - t0
        del dom
        tr = split.train
        hist = sp.csr_matrix(
            (np.ones(len(tr), np.float32), (tr.user, tr.item)), shape=(split.n_users, split.n_items)
        )
        # in the order asked: ru_maxrss only grows, so the first model's peak is its own
        runs = []
        for m in models:
            runs += [("bpr-mf", a) for a in adams] if m == "bpr-mf" else [(m, args.tt_loss)]
        for kind, variant in runs:
            if kind == "bpr-mf":
                model = TwoTower(split.n_users, split.n_items,
                                 TwoTowerConfig(dim=64, use_text=False, use_history=False))  # fmt: skip
                cfg = TrainConfig(epochs=1, batch_size=65536, loss="bpr", lr=0.01, patience=0,
                                  sparse_adam=variant == "lazy")  # fmt: skip
            else:
                g = torch.Generator().manual_seed(0)
                text = torch.nn.functional.normalize(torch.randn(split.n_items, 384, generator=g))
                model = TwoTower(split.n_users, split.n_items, TwoTowerConfig(dim=64), text=text)
                # the product's two-tower settings (strategies/base.py), one epoch
                cap = min(args.tt_pairs, len(tr)) if args.tt_pairs else None
                cfg = TrainConfig(epochs=1, batch_size=4096, loss=variant, lr=0.01,
                                  weight_decay=0.01, patience=0, max_per_epoch=cap)  # fmt: skip
            data = DomainData(
                "t", tr.user.to_numpy(), tr.item.to_numpy(), np.arange(split.n_items), hist
            )
            res = train(model, [data], cfg, device=dev)
            visited = min(len(tr), cfg.max_per_epoch or len(tr))
            epoch_s = res.seconds * len(tr) / visited
            mark = "~" if visited < len(tr) else " "

            class S:
                def __init__(self, model, n_items):
                    self.model, self.n_items = model, n_items

                def score(self, users, history):
                    return self.model.score_users(users, history, self.n_items, device=dev)

            users = np.random.default_rng(0).choice(
                split.n_users, min(20_000, split.n_users), replace=False
            )
            model.eval()
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
            label = f"{kind} {variant}"
            print(f"{label:>22s} {len(tr) + len(split.valid) + len(split.test):12,d} {split.n_users:9,d} "
                  f"{split.n_items:7,d} {t_split:8.1f} {mark}{epoch_s:8.1f} {len(tr) / epoch_s:10,.0f} "
                  f"{len(users) / t_eval:12,.0f} {rss_mib():9,.0f} {os.getloadavg()[0]:5.1f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
