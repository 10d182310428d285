"""Training steps with glibc's default malloc thresholds against the product's
(recsys_core/allocator.py): seconds per epoch, median of alternating fresh processes.

Prints figures, asserts nothing. Run: python bench/bench_allocator.py [--reps 3]
Uses the demo data (ML-1M source, ML-100K target); the two-tower rows read the cached
text vectors (encoded on the first run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = [  # (model, loss, batch, epochs)
    ("bpr-mf", "bpr", 2048, 20),
    ("two-tower", "full-softmax", 4096, 3),
    ("two-tower", "softmax", 4096, 3),
]


def worker() -> None:
    """One process: tune (or not, per TRANSFER_LAB_MALLOC), train each case, print JSON."""
    from recsys_core.allocator import tune_allocator

    tuned = tune_allocator()
    import torch

    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import ScenarioSpec, encode_scenario_text, load_scenario
    from recsys_core.strategies.base import Context, ModelSettings, new_model, target_data
    from recsys_core.training.loop import train

    scn = load_scenario(ScenarioSpec(demo="demo:ml1m-to-ml100k"), SplitConfig())
    text = encode_scenario_text(scn, device="cpu")
    out = {"tuned": tuned, "threads": torch.get_num_threads()}
    for model, loss, bs, epochs in CASES:
        settings = ModelSettings(model=model, loss=loss, batch_size=bs, epochs=epochs, patience=0)
        ctx = Context(scn, text if model == "two-tower" else None, settings, device="cpu")
        res = train(new_model(ctx), [target_data(scn)], settings.train_config(), device="cpu")
        out[f"{model}/{loss}"] = res.seconds / res.epochs_run
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"default": [], "tuned": []}
    for _ in range(args.reps):
        for mode in ("default", "tuned"):  # alternate, so a change of load hits both
            env = {**os.environ, "TRANSFER_LAB_MALLOC": mode}
            t0 = time.perf_counter()
            p = subprocess.run(
                [sys.executable, __file__, "--worker"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(p.stdout.strip().splitlines()[-1])
            row["wall"] = time.perf_counter() - t0
            runs[mode].append(row)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}; {args.reps} processes each")
    print(f"{'case':26s} {'glibc default':>14s} {'tuned':>10s} {'ratio':>7s}  (s/epoch, median)")
    for model, loss, bs, _ in CASES:
        key = f"{model}/{loss}"
        a = statistics.median(r[key] for r in runs["default"])
        b = statistics.median(r[key] for r in runs["tuned"])
        print(f"{key + f' B={bs}':26s} {a:14.3f} {b:10.3f} {a / b:6.2f}x")
    if not all(r["tuned"] for r in runs["tuned"]):
        print("tune_allocator() did nothing here (not glibc, or MALLOC_*_THRESHOLD_ set)")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        main()
