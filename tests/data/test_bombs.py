"""Decompression bombs: a small compressed file that expands hundreds of times is
refused while it is being read, within seconds and a few hundred MB, by the one reader
every input path uses (uploads, the CLI, split folders, recommendation files)."""

from __future__ import annotations

import bz2
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys_core.data.loaders import Limits, MiB, read_table
from recsys_core.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def write_bomb(path: Path, expanded_bytes: int) -> int:
    """A gzip file of ``user_id,item_id`` rows that expands to ``expanded_bytes``.

    Written as gzip members (a gzip file may hold several, read as one stream): one
    64 MiB block is compressed once and repeated, so making a 2 GB bomb takes a
    fraction of a second and never holds 2 GB. Returns the compressed size.
    """
    block = b"u1,i1\n" * (64 * MiB // 6)
    member = gzip.compress(block, 9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(b"user_id,item_id\n", 9))
        for _ in range(expanded_bytes // len(block)):
            fh.write(member)
    return path.stat().st_size


PROBE = """
import sys, time
from recsys_core.data.loaders import read_table
from recsys_core.errors import DataError
t = time.perf_counter()
try:
    read_table(sys.argv[1])
    print("ACCEPTED")
except DataError as e:
    # VmHWM: this process's own peak (ru_maxrss would carry the forking parent's peak).
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    peak_mb = int(hwm.split()[1]) / 1024
    print(f"REFUSED {time.perf_counter() - t:.2f} {peak_mb:.0f} {e}")
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
def test_a_2_gb_gzip_bomb_is_refused_in_seconds_and_little_memory(tmp_path):
    path = tmp_path / "bomb.csv.gz"
    size = write_bomb(path, 2_000_000_000)
    assert size < 4 * MiB  # ~500-700 fold
    # A fresh process, so that the peak memory it reports is the read's alone (plus
    # the imports, ~150 MB), not that of the test session.
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    ).stdout
    seconds = time.perf_counter() - t0
    assert out.startswith("REFUSED"), out
    assert "expands more than 100 fold" in out and "bomb.csv.gz" in out
    assert "max_compression_ratio" in out and "TRANSFER_LAB_MAX_COMPRESSION_RATIO" in out
    read_seconds, peak_mb = float(out.split()[1]), float(out.split()[2])
    assert read_seconds < 2.0 and seconds < 10.0
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"


def test_decompressed_bytes_limit_stops_the_read_at_the_limit(monkeypatch):
    # Varied rows (compress ~3 fold): the ratio check passes, the byte limit stops it.
    rows = b"".join(b"u%d,i%d,%d\n" % (i, i * 7919 % 10007, i % 5) for i in range(20000))
    body = b"user_id,item_id,rating\n" + rows
    data = gzip.compress(body)
    limit = 100_000
    read_sizes: list[int] = []
    real = gzip.GzipFile.read

    def spy(self, size=-1):
        out = real(self, size)
        read_sizes.append(len(out))
        return out

    monkeypatch.setattr(gzip.GzipFile, "read", spy)
    with pytest.raises(DataError) as e:
        read_table(data, name="big.csv.gz", limits=Limits(max_decompressed_bytes=limit))
    msg = str(e.value)
    assert "more than the limit of 97.7 KiB when decompressed" in msg
    assert "max_decompressed_bytes" in msg and "TRANSFER_LAB_MAX_DECOMPRESSED_MB" in msg
    assert sum(read_sizes) == limit + 1  # stopped one byte past the limit, not at the end
    assert len(body) > 2 * limit
    monkeypatch.undo()
    # under the limit the same file reads in full
    df = read_table(data, name="big.csv.gz", limits=Limits(max_decompressed_bytes=len(body)))
    assert len(df) == 20000 and df["item_id"].iloc[3] == f"i{3 * 7919 % 10007}"


def test_ratio_is_judged_only_past_16_mib_and_for_every_codec():
    # 8 MiB of one repeated row (1000 fold) is a plain small table: accepted
    small = b"user_id,item_id\n" + b"u1,i1\n" * (8 * MiB // 6)
    assert len(read_table(gzip.compress(small))) == 8 * MiB // 6
    # past 16 MiB the same kind of content is refused, with bz2 as with gzip
    big = b"user_id,item_id\n" + b"u1,i1\n" * (40 * MiB // 6)
    with pytest.raises(DataError, match="expands more than 100 fold"):
        read_table(bz2.compress(big), name="x.csv.bz2")
    # and a genuine, very repetitive file reads when the operator raises the ratio
    df = read_table(gzip.compress(big), limits=Limits(max_compression_ratio=10_000))
    assert len(df) == 40 * MiB // 6


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"max_decompressed_bytes": 0}, "max_decompressed_bytes must be a positive whole number"),
        ({"max_compression_ratio": 1.5}, "max_compression_ratio must be a positive whole number"),
    ],
)
def test_limits_are_checked(kw, needle):
    with pytest.raises(ValueError, match=needle):
        Limits(**kw)
