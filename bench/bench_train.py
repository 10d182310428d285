"""Training throughput: interactions per second and epoch time, per model and loss.

Prints figures, asserts nothing. Run: python bench/bench_train.py [--device cpu|cuda]
Uses the demo data (ML-1M source, ML-100K target) with cached text vectors.
"""

from __future__ import annotations

import argparse
import time

import torch

from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import ScenarioSpec, encode_scenario_text, load_scenario
from recsys_core.strategies.base import Context, ModelSettings, new_model, source_data, target_data
from recsys_core.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    dev = torch.device(args.device)
    scn = load_scenario(ScenarioSpec(demo="demo:ml1m-to-ml100k"), SplitConfig())
    t0 = time.perf_counter()
    text = encode_scenario_text(scn, device=dev.type)
    print(
        f"text vectors: {tuple(text.shape)} in {time.perf_counter() - t0:.1f}s (cached after the first run)"
    )
    print(f"device: {dev}, torch threads: {torch.get_num_threads()}")
    print(
        f"{'model':10s} {'loss':8s} {'domain':7s} {'batch':>6s} {'interactions':>12s} {'s/epoch':>8s} {'inter/s':>10s}"
    )
    for model, loss, dom, bs in [
        ("bpr-mf", "bpr", "target", 2048),
        ("bpr-mf", "bpr", "source", 8192),
        ("two-tower", "bpr", "target", 4096),
        ("two-tower", "softmax", "target", 4096),
        ("two-tower", "full-softmax", "target", 4096),
        ("two-tower", "softmax", "source", 4096),
        ("two-tower", "softmax", "source", 16384),
    ]:
        settings = ModelSettings(
            model=model, loss=loss, batch_size=bs, epochs=args.epochs, patience=0
        )
        ctx = Context(scn, text if model == "two-tower" else None, settings, device=dev)
        m = new_model(ctx)
        data = target_data(scn) if dom == "target" else source_data(scn)
        res = train(m, [data], settings.train_config(), device=dev)
        per_epoch = res.seconds / res.epochs_run
        print(
            f"{model:10s} {loss:8s} {dom:7s} {bs:6d} {len(data):12,d} {per_epoch:8.2f} {len(data) / per_epoch:10,.0f}"
        )


if __name__ == "__main__":
    main()
