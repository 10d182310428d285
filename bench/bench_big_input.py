"""Big inputs: time and peak memory of reading a 250 MB and a 200 MB interactions CSV.

Writes synthetic interactions files (``user_id,item_id,rating,timestamp``, 200k users,
40k items, about 26 bytes a row) to a temporary folder, then measures, each probe in
its own process under ``/usr/bin/time -v`` (wall seconds and peak RSS):

* ``validate``: ``transfer-lab validate FILE`` on the 250 MB and the 200 MB file;
* ``upload``: what the Data page does with an upload's bytes, from bytes to summary:
  ``read_header`` (for the column widgets), ``undetected_roles``, ``read_table`` with the
  mapping the widgets hand over, ``check_upload`` (the summary under the uploader);
* ``run``: ``transfer-lab run --strategy popularity --baselines none`` on the 200 MB
  file, with the run's own split of the time (load, fit, evaluate).

``--code DIR`` measures another checkout's code (e.g. ``--code /work/main`` for the
figures before a change); the default is this checkout. The 2-core machine is shared:
each figure is printed with the load average at its start. Asserts nothing.

    python bench/bench_big_input.py [--code DIR] [--probes validate,upload,run] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
SIZES_MB = (250, 200)
N_USERS, N_ITEMS = 200_000, 40_000


def write_interactions(path: Path, target_mb: int, seed: int = 0) -> int:
    """A CSV of about ``target_mb`` MB (10**6 bytes); power-law items, uniform users.

    Returns the number of data rows.
    """
    rng = np.random.default_rng(seed)
    n = int(target_mb * 10**6 / 25.85)
    users = rng.integers(0, N_USERS, n)
    items = np.minimum((rng.pareto(1.0, n) * N_ITEMS / 50).astype(np.int64), N_ITEMS - 1)
    table = pa.table(
        {
            "user_id": pc.binary_join_element_wise("u", pa.array(users).cast(pa.string()), ""),
            "item_id": pc.binary_join_element_wise("i", pa.array(items).cast(pa.string()), ""),
            "rating": pa.array(rng.integers(1, 6, n)),
            "timestamp": pa.array(rng.integers(1_500_000_000, 1_700_000_000, n)),
        }
    )
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))
    return n


UPLOAD = r"""
import sys, time
from pathlib import Path
path = Path(sys.argv[1])
from recsys_core.data.loaders import ColumnMapping, detect_columns, read_header, read_table
from recsys_core.data.upload import check_upload, undetected_roles
data = path.read_bytes()  # what st.file_uploader hands the page (the app has its imports)
t0 = time.perf_counter()
header = read_header(data, name=path.name)  # ui/uploads.file_columns
t1 = time.perf_counter()
missing = undetected_roles(header, "interactions")
g = detect_columns(header, "interactions")  # the mapping widgets' defaults
cm = ColumnMapping(user=g.user, item=g.item, rating=g.rating, timestamp=g.timestamp)
df = read_table(data, name=path.name, kind="interactions", columns=cm)  # ui/uploads.parse_table
t2 = time.perf_counter()
info = dict(df.attrs.get("read_info", {})); df.attrs = {}
chk = check_upload(df, info, "interactions", path.name)
t3 = time.perf_counter()
print(f"UPLOAD header={t1 - t0:.2f} table={t2 - t1:.2f} summary={t3 - t2:.2f} total={t3 - t0:.2f}")
print("HEADLINE", chk.headline)
"""


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(cmd: list[str], code: Path, cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stdout) of one process under /usr/bin/time -v."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    t0 = time.perf_counter()
    p = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-30:])
        print(f"  (exit {p.returncode})\n{tail}", file=sys.stderr)
    return wall, rss, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", default=str(ROOT), help="checkout whose code is measured")
    ap.add_argument("--probes", default="validate,upload,run")
    ap.add_argument("--keep", default=None, help="write the files here and keep them")
    args = ap.parse_args()
    code = Path(args.code).resolve()
    probes = [p.strip() for p in args.probes.split(",") if p.strip()]
    py = sys.executable
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_big_"))
    tmp.mkdir(parents=True, exist_ok=True)
    files = {}
    for mb in SIZES_MB:
        f = tmp / f"interactions_{mb}mb.csv"
        if not f.exists():
            t = time.perf_counter()
            n = write_interactions(f, mb)
            print(f"wrote {f.name}: {f.stat().st_size / 1e6:.0f} MB, {n:,} rows "
                  f"({time.perf_counter() - t:.1f}s)")  # fmt: skip
        files[mb] = f
    print(f"code: {code}")
    print(f"{'probe':<34s} {'wall s':>7s} {'peak MiB':>9s} {'x file':>7s}  load avg (1, 5, 15 min)")

    def row(name: str, wall: float, rss: float, size: int, load: str, extra: str = "") -> None:
        print(
            f"{name:<34s} {wall:7.1f} {rss:9.0f} {rss * MiB_ / size:7.1f}  {load}"
            + (f"  {extra}" if extra else ""),
            flush=True,
        )

    for mb in SIZES_MB:
        f = files[mb]
        size = f.stat().st_size
        if "validate" in probes:
            load = load_average()
            wall, rss, _ = timed([py, "-m", "recsys_core.cli", "validate", str(f)], code, code)
            row(f"validate {mb} MB", wall, rss, size, load)
        if "upload" in probes:
            load = load_average()
            wall, rss, out = timed([py, "-c", UPLOAD, str(f)], code, code)
            m = re.search(r"UPLOAD (.*)", out)
            row(f"upload to summary {mb} MB", wall, rss, size, load, m.group(1) if m else out)
    if "run" in probes:
        f = files[200]
        load = load_average()
        with tempfile.TemporaryDirectory() as store:
            cmd = [py, "-m", "recsys_core.cli", "run", "--target", str(f), "--strategy",
                   "popularity", "--baselines", "none", "--json", "--quiet", "--store", store]  # fmt: skip
            wall, rss, out = timed(cmd, code, code)
        secs = {}
        for line in out.splitlines():
            if line.startswith("{"):
                secs = json.loads(line).get("seconds", {})
        split = " ".join(f"{k}={v:.1f}" for k, v in secs.items() if isinstance(v, int | float))
        row("run popularity 200 MB", wall, rss, f.stat().st_size, load, split)
    if not args.keep:
        for f in files.values():
            f.unlink()
        tmp.rmdir()


MiB_ = 1024**2

if __name__ == "__main__":
    main()
