"""The GPU path, checked for real in one call (`make gpu-check`; issue 13).

On a machine with a CUDA card, with nothing installed beyond the project, this runs and
times, each with the GPU's name:

1. the tests marked ``gpu`` (``pytest -m gpu``);
2. the seven-strategy demo on ``--device cuda`` (bfloat16 autocast), from an empty cache
   (text model, run store), with its NDCG@10 per segment;
3. BPR-MF under the RecBole protocol on ML-100K, process start to printed result;
4. full-rank evaluation of all 6,040 ML-1M users over the catalogue (top-20 ranking);
5. text encoding of every demo item title with the packaged model.

Each step has a time limit so the whole check stays under 8 minutes; a step that fails
prints why and the check exits 1 at the end. Without CUDA it says so and exits 0: the
CPU path is what the test suite checks.

    python bench/gpu_check.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SEVEN = "popularity,text-zero-shot,target-only,fine-tune,distill,adapt,fusion"
SEGMENTS = ("warm_users", "cold_users_k0", "cold_users_k1", "cold_users_k5", "cold_items", "all")


def _cli(args: list[str], env: dict, timeout: int) -> tuple[float, list[dict], str]:
    """Run the CLI in a fresh process; (wall seconds, JSON lines, stderr tail)."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "recsys_core.cli", *args, "--json", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-800:]}")
    return wall, rows, p.stderr[-400:]


def _ndcg(row: dict, segment: str) -> float | None:
    for m in row.get("metrics", []):
        if m["metric"] == "ndcg" and m["k"] == 10 and m["segment"] == segment:
            return float(m["value"])
    return None


def step_tests(env: dict) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-300:]
    if p.returncode not in (0, 5):
        raise RuntimeError(f"gpu tests failed: {p.stdout[-1500:]}")
    return {"seconds": round(time.perf_counter() - t0, 1), "result": tail}


def step_demo(env: dict) -> dict:
    wall, rows, _ = _cli(
        ["run", "--scenario", "demo:ml1m-to-ml100k", "--strategy", SEVEN, "--device", "cuda"],
        env,
        timeout=300,
    )
    per = {}
    for r in rows:
        if r.get("status") != "done":
            raise RuntimeError(f"{r.get('strategy')}: {r.get('status')} {r.get('error')}")
        per[r["strategy"]] = {
            "seconds": round(float(r["seconds"].get("total", 0.0)), 1),
            "ndcg@10": {s: _ndcg(r, s) for s in SEGMENTS},
        }
    return {"wall_seconds": round(wall, 1), "runs": per}


def step_bpr(env: dict) -> dict:
    wall, rows, _ = _cli(
        [
            "run", "--scenario", "demo:ml100k", "--protocol", "recbole",
            "--strategy", "target-only", "--model", "bpr-mf", "--dim", "64", "--loss", "bpr",
            "--baselines", "none", "--device", "cuda",
        ],
        env,
        timeout=120,
    )  # fmt: skip
    r = rows[-1]
    return {"wall_seconds": round(wall, 1), "ndcg@10": _ndcg(r, "all"), "seconds": r["seconds"]}


def step_full_rank() -> dict:
    """All ML-1M users ranked over the ML-1M catalogue by a dim-64 dot product."""
    sys.path.insert(0, str(ROOT / "bench"))
    import numpy as np
    from bench_eval import N_ITEMS, N_USERS, DotScorer, K, random_history

    from recsys_core.evaluation.ranking import topk_full_ranking

    rng = np.random.default_rng(0)
    hist = random_history(rng)
    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    scorer = DotScorer(torch.randn(N_USERS, 64, generator=g).to(dev),
                       torch.randn(N_ITEMS, 64, generator=g).to(dev))  # fmt: skip
    users = np.arange(N_USERS)
    topk_full_ranking(scorer, users, hist, hist, K, batch_size=4096, device=dev)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    topk_full_ranking(scorer, users, hist, hist, K, batch_size=4096, device=dev)
    torch.cuda.synchronize()
    s = time.perf_counter() - t0
    return {"users": N_USERS, "items": N_ITEMS, "seconds": round(s, 4),
            "users_per_s": round(N_USERS / s)}  # fmt: skip


def step_text() -> dict:
    from recsys_core.data.spec import ScenarioSpec
    from recsys_core.pipeline import load_scenario
    from recsys_core.text.encoder import TextEncoder, TextEncoderConfig

    scn = load_scenario(ScenarioSpec(demo="demo:ml1m-to-ml100k"))
    t0 = time.perf_counter()
    enc = TextEncoder(TextEncoderConfig(device="cuda"))
    load = time.perf_counter() - t0
    enc.encode(scn.texts[:64])  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    vecs = enc.encode(scn.texts)
    torch.cuda.synchronize()
    s = time.perf_counter() - t0
    return {"texts": len(vecs), "load_seconds": round(load, 1), "seconds": round(s, 2),
            "texts_per_s": round(len(vecs) / s), "precision": enc.describe()["precision"]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing to "
              "check. Run it on a machine with an NVIDIA card.")  # fmt: skip
        return 0
    gpu = torch.cuda.get_device_name(0)
    print(f"gpu-check on {gpu} (torch {torch.__version__}, CUDA {torch.version.cuda})")
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    env = {**os.environ, "RTL_CACHE_DIR": str(tmp / "cache"), "RTL_RUN_STORE": str(tmp / "runs")}
    # the demo data is prepared once (not part of the demo's timing: it is the data)
    subprocess.run([sys.executable, "-m", "recsys_core.cli", "demo-data", "--prepare"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)  # fmt: skip
    steps = [
        ("tests marked gpu", lambda: step_tests(env)),
        ("seven-strategy demo, --device cuda, empty cache", lambda: step_demo(env)),
        ("BPR-MF, RecBole protocol, ML-100K", lambda: step_bpr(env)),
        ("full-rank evaluation, all ML-1M users", step_full_rank),
        ("text encoding of the demo titles", step_text),
    ]
    out: dict = {"gpu": gpu, "torch": torch.__version__, "steps": {}}
    failed = 0
    t_all = time.perf_counter()
    for name, fn in steps:
        t0 = time.perf_counter()
        try:
            res = fn()
            out["steps"][name] = res
            print(f"\n== {name} ({time.perf_counter() - t0:.1f} s)\n{json.dumps(res, indent=1)}")
        except Exception as exc:  # report every step, then fail at the end
            failed += 1
            out["steps"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"\n== {name}: FAILED\n{type(exc).__name__}: {exc}")
    out["total_seconds"] = round(time.perf_counter() - t_all, 1)
    print(f"\ngpu-check: {len(steps) - failed}/{len(steps)} steps passed on {gpu} "
          f"in {out['total_seconds']} s")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
