"""Does numba's on-disk cache (NUMBA_CACHE_DIR) shorten UMAP's first fit in a new process?

Runs fresh Python processes one after another, each importing umap-learn and fitting
a 200-point map and then a 4,500-point map (pynndescent's path) with the settings of
``recsys_core.embeddings.projection``: first with an empty cache folder, then with the
same folder (filled by the first), then ``--runs - 2`` more times. Prints seconds per
step and the load average (figures from a loaded machine are only an order of
magnitude). Never asserted in tests; see ``docs/projection_cache.md``.

    PYTHONPATH=. python bench/bench_numba_cache.py [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import numpy as np
import umap
t1 = time.perf_counter()
def fit(n, epochs=None):
    X = np.random.default_rng(n).normal(size=(n, 32)).astype(np.float32)
    umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, metric="cosine",
              random_state=0, n_epochs=epochs).fit_transform(X)
fit(200)
t2 = time.perf_counter()
fit(4500, epochs=50)
t3 = time.perf_counter()
print(f"{t1 - t0:.1f} {t2 - t1:.1f} {t3 - t2:.1f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print(f"{'process':<28} {'import umap s':>13} {'200-pt fit s':>13} {'4500-pt fit s':>14}")
    with tempfile.TemporaryDirectory() as cache:
        for i in range(args.runs):
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run(
                [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
            )
            imp, small, big = out.stdout.split()[-3:]
            label = "empty cache folder" if i == 0 else f"cache filled, process {i + 1}"
            print(f"{label:<28} {imp:>13} {small:>13} {big:>14}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
