"""Seconds for 2-D projections: PCA and UMAP at 1k and 5k points, first and second call.

The first call fits (UMAP's very first call in a process also pays numba compilation);
the second call with the same input is served from the on-disk cache. A third column
times a fit of fresh data in the same process (UMAP already compiled, cache missed).

    PYTHONPATH=. python bench/bench_projection.py [--dim 64] [--sizes 1000 5000] [--skip-umap]

Prints a table; never asserted in tests.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from recsys_core.embeddings.projection import project_2d


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    """n points in 20 Gaussian clusters, like item embeddings grouped by genre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d)) * 3.0
    return (centres[rng.integers(0, 20, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def _timed(X: np.ndarray, method: str, cache_dir: Path) -> float:
    t0 = time.perf_counter()
    project_2d(X, method=method, cache_dir=cache_dir)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--skip-umap", action="store_true")
    args = parser.parse_args()
    methods = ["pca"] if args.skip_umap else ["pca", "umap"]
    print(f"python {platform.python_version()} on {platform.machine()}, d={args.dim}")
    print(f"{'method':<6} {'n':>6} {'first call s':>13} {'cached s':>9} {'new data s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        for method in methods:
            for n in args.sizes:
                X = _clustered(n, args.dim, seed=n)
                first = _timed(X, method, cache)
                second = _timed(X, method, cache)
                fresh = _timed(_clustered(n, args.dim, seed=n + 1), method, cache)
                print(f"{method:<6} {n:>6} {first:>13.3f} {second:>9.4f} {fresh:>11.3f}")


if __name__ == "__main__":
    main()
