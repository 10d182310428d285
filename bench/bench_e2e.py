"""End to end: the demo with every strategy, as a user would run it from the CLI.

Prints wall seconds for a cold run (text not cached: a fresh cache folder) and a warm one
(text cached), per strategy seconds, and peak resident memory. Asserts nothing.

    python bench/bench_e2e.py [--scenario demo:ml1m-to-ml100k] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

STRATEGIES = "popularity,text-zero-shot,target-only,fine-tune,distill,adapt,fusion"


def run(scenario: str, device: str, cache: str, store: str) -> tuple[float, list[dict]]:
    env = {**os.environ, "RTL_CACHE_DIR": cache}
    cmd = [sys.executable, "-m", "recsys_core.cli", "run", "--scenario", scenario, "--strategy", STRATEGIES,
           "--device", device, "--store", store, "--json", "--quiet"]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t0, [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="demo:ml1m-to-ml100k")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--cache",
        help="reuse this cache folder (default: a fresh one, so the first run encodes text)",
    )
    args = ap.parse_args()
    cache = args.cache or tempfile.mkdtemp(prefix="rtl-cache-")
    with tempfile.TemporaryDirectory() as store:
        for label in ("first run (text encoded)", "second run (text cached)"):
            wall, rows = run(args.scenario, args.device, cache, store)
            print(f"{label}: {wall:.1f} s wall, process start to last result")
            for r in rows:
                ndcg = {
                    m["segment"]: m["value"]
                    for m in r["metrics"]
                    if m["metric"] == "ndcg" and m["k"] == 10
                }
                print(
                    f"  {r['strategy']:15s} {r['seconds'].get('fit', 0):6.1f}s fit {r['seconds'].get('evaluate', 0):5.1f}s eval"
                    f"  NDCG@10 all {ndcg.get('all', float('nan')):.4f} cold_k0 {ndcg.get('cold_users_k0', float('nan')):.4f}"
                    f" cold_items {ndcg.get('cold_items', float('nan')):.4f}"
                )
            if rows:
                s = rows[0]["seconds"]
                print(
                    f"  shared set-up: load {s.get('load', 0):.1f}s, text {s.get('encode_text', 0):.1f}s"
                )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak resident memory of the CLI process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
