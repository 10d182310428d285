"""Encoding speed of the packaged all-MiniLM-L6-v2 on the 3,883 ML-1M item texts.

Prints texts/s on CPU for batch sizes 64 and 256 (length-sorted batching, as the encoder
does), the same in input order for comparison, and the time of a fully cached second call
through :class:`~recsys_core.text.cache.EmbeddingCache`. Never asserted in tests.

    python bench/bench_text.py [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recsys_core.data.demo import load_demo
from recsys_core.text import EmbeddingCache, TextEncoder, TextEncoderConfig


def _unsorted_rate(enc: TextEncoder, texts: list[str], batch_size: int) -> float:
    """texts/s when batches follow input order (what length sorting saves)."""
    t0 = time.perf_counter()
    for s in range(0, len(texts), batch_size):
        enc._forward(texts[s : s + batch_size])
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    ml1m = load_demo("demo:ml1m").target
    texts = ml1m.item_texts(ml1m.items["item_id"].to_numpy())  # all 3,883, rated or not
    print(f"ML-1M item texts: {len(texts):,} (loaded in {time.perf_counter() - t0:.2f} s)")
    print(f"example: {texts[0]!r}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")

    t0 = time.perf_counter()
    enc = TextEncoder(TextEncoderConfig(device=args.device))
    print(f"model load: {time.perf_counter() - t0:.2f} s ({enc.name}, dim {enc.dim})")
    enc.encode(texts[:64])  # warm-up: first forward pass allocates

    ref = None
    for bs in (64, 256):
        e = TextEncoder.from_model(
            enc.model, enc.tokenizer, enc.name, TextEncoderConfig(batch_size=bs, device=args.device)
        )
        t0 = time.perf_counter()
        v = e.encode(texts)
        dt = time.perf_counter() - t0
        print(f"batch {bs:>3}, length-sorted: {len(texts) / dt:8.0f} texts/s ({dt:.2f} s)")
        print(f"batch {bs:>3}, input order:   {_unsorted_rate(e, texts, bs):8.0f} texts/s")
        if ref is not None:
            print(f"  max |diff| vs batch 64: {np.abs(v - ref).max():.2e}")
        ref = v

    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp))
        t0 = time.perf_counter()
        first = cache.get_or_encode(enc, texts)
        t1 = time.perf_counter()
        second = cache.get_or_encode(enc, texts)
        t2 = time.perf_counter()
        print(f"cache, first call (encodes all): {t1 - t0:.2f} s")
        print(
            f"cache, second call (all hits):   {(t2 - t1) * 1000:.0f} ms, identical: {np.array_equal(first, second)}"
        )


if __name__ == "__main__":
    main()
