"""The reader's limits on Parquet (footer checked before reading, decoded size checked
while reading), on columns, NUL bytes anywhere, ids in two Unicode forms, and a header
read without parsing the whole upload (issue 12)."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_core.data import parsing
from recsys_core.data.loaders import Limits, MiB, load_domain, read_header, read_table
from recsys_core.data.schema import USER
from recsys_core.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def parquet_bytes(table: pa.Table, **kw) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def repeated(text: str, n: int) -> pa.DictionaryArray:
    """``text`` n times, as a dictionary array (never expanded in the test itself)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([text]))


@pytest.fixture
def batches_read(monkeypatch):
    """Counts the row batches decoded from any Parquet file."""
    seen: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *a, **kw):
        for b in real(self, *a, **kw):
            seen.append(b.num_rows)
            yield b

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    return seen


def test_parquet_declaring_more_uncompressed_data_than_the_limit_is_refused_unread(batches_read):
    n = 200_000
    t = pa.table({"user_id": repeated("u" * 100, n), "item_id": repeated("i1", n)})
    data = parquet_bytes(t, use_dictionary=False, compression="gzip")
    assert len(data) < 1 * MiB  # ~20 MB of text in ~100 KiB
    with pytest.raises(DataError) as e:
        read_table(data, name="small.parquet", limits=Limits(max_decompressed_bytes=4 * MiB))
    msg = str(e.value)
    assert "small.parquet" in msg and "declares 2" in msg and "limit of 4.0 MiB" in msg
    assert "TRANSFER_LAB_MAX_DECOMPRESSED_MB" in msg and "max_decompressed_bytes" in msg
    assert batches_read == []  # judged on the footer, before any value was decoded


def test_parquet_dictionary_bomb_is_stopped_before_it_expands(batches_read):
    # one 1,000-byte string repeated 2 million times: ~200 KiB on disk, 2 GB as text
    n = 2_000_000
    t = pa.table({"user_id": repeated("u" * 1000, n), "item_id": repeated("i1", n)})
    data = parquet_bytes(t)
    assert len(data) < 512 * 1024
    with pytest.raises(DataError) as e:
        read_table(data, name="bomb.parquet", limits=Limits(max_decompressed_bytes=64 * MiB))
    msg = str(e.value)
    assert "expands to more than the limit of 64.0 MiB when decoded" in msg
    assert "reading stopped there" in msg and "TRANSFER_LAB_MAX_DECOMPRESSED_MB" in msg
    assert sum(batches_read) < n  # stopped while reading, not after
    # within the limit, the same kind of file reads in full, as plain text
    small = parquet_bytes(t.slice(0, 1000))
    df = read_table(small, limits=Limits(max_decompressed_bytes=64 * MiB))
    assert len(df) == 1000 and df[USER].iloc[0] == "u" * 1000


PROBE = """
import sys
from recsys_core.data.loaders import read_table
from recsys_core.errors import DataError
try:
    read_table(sys.argv[1])
    print("ACCEPTED")
except DataError as e:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(f"REFUSED {int(hwm.split()[1]) / 1024:.0f} {e}")
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
def test_a_4_gb_parquet_dictionary_bomb_takes_little_memory(tmp_path):
    n = 4_000_000
    t = pa.table({"user_id": repeated("u" * 1000, n), "item_id": repeated("i1", n)})
    path = tmp_path / "bomb.parquet"
    pq.write_table(t, path)
    assert path.stat().st_size < 1 * MiB
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    ).stdout
    assert out.startswith("REFUSED"), out
    assert "limit of 1.0 GiB when decoded" in out
    assert float(out.split()[1]) < 400, out  # peak RSS in MiB (imports are ~150)


def test_parquet_rows_and_columns_are_judged_on_the_footer(batches_read, monkeypatch):
    t = pa.table({"user_id": [f"u{i}" for i in range(100)], "item_id": ["i"] * 100})
    with pytest.raises(DataError) as e:
        read_table(parquet_bytes(t), name="r.parquet", limits=Limits(max_rows=50))
    assert "100 rows, more than the limit of 50" in str(e.value)
    assert "TRANSFER_LAB_MAX_ROWS" in str(e.value)
    wide = pa.table({f"c{i}": [1] for i in range(30)} | {"user_id": ["u"], "item_id": ["i"]})
    with pytest.raises(DataError) as e:
        read_table(parquet_bytes(wide), name="w.parquet", limits=Limits(max_columns=20))
    assert "32 columns, more than the limit of 20" in str(e.value)
    assert "TRANSFER_LAB_MAX_COLUMNS" in str(e.value)
    assert batches_read == []
    # the environment variables set the defaults
    monkeypatch.setenv("TRANSFER_LAB_MAX_ROWS", "7")
    monkeypatch.setenv("TRANSFER_LAB_MAX_COLUMNS", "3")
    assert Limits().max_rows == 7 and Limits().max_columns == 3
    monkeypatch.setenv("TRANSFER_LAB_MAX_COLUMNS", "many")
    with pytest.raises(ValueError, match="TRANSFER_LAB_MAX_COLUMNS"):
        Limits()


def test_csv_columns_are_limited_by_the_header():
    header = ",".join(["user_id", "item_id"] + [f"x{i}" for i in range(40)])
    data = (header + "\n" + ",".join(["u", "i"] + ["1"] * 40) + "\n").encode()
    with pytest.raises(DataError) as e:
        read_table(data, name="wide.csv", limits=Limits(max_columns=20))
    assert "42 columns, more than the limit of 20" in str(e.value)
    assert "line 1" in str(e.value) and "TRANSFER_LAB_MAX_COLUMNS" in str(e.value)
    assert len(read_table(data, limits=Limits(max_columns=42))) == 1


@pytest.mark.parametrize("compress", [False, True])
def test_a_nul_byte_past_the_first_64_kib_is_found_with_its_line(compress):
    rows = b"".join(b"u%d,i%d\n" % (i, i % 97) for i in range(20_000))  # ~200 KiB
    data = b"user_id,item_id\n" + rows + b"u1,i\x003\n" + b"u2,i2\n"
    assert data.index(b"\x00") > 64 * 1024
    with pytest.raises(DataError) as e:
        read_table(gzip.compress(data) if compress else data, name="n.csv")
    msg = str(e.value)
    assert "1 NUL (zero) byte" in msg and "line 20,002" in msg and "n.csv" in msg


def test_a_stray_nul_near_the_start_is_named_by_line_and_binary_is_still_binary():
    data = b"user_id,item_id\nu1,i1\nu\x002,i2\n"
    with pytest.raises(DataError, match="first on line 3"):
        read_table(data)
    with pytest.raises(DataError, match="binary data"):
        read_table(b"user_id,item_id\n" + b"\x00\x01\x02" * 1000)


def test_one_id_in_nfc_and_nfd_is_kept_as_given_with_a_warning():
    nfc, nfd = (unicodedata.normalize(f, "Zoë") for f in ("NFC", "NFD"))
    assert nfc != nfd
    data = f"user_id,item_id\n{nfc},a\nbob,a\n{nfd},b\n{nfc},c\n".encode()
    dom = load_domain(data, name="t")
    # kept as given: two users, each spelling unchanged
    assert set(dom.interactions[USER]) == {nfc, nfd, "bob"}
    (w,) = [w for w in dom.warnings if w.code == "unicode_twin_ids"]
    msg = str(w)
    assert "column 'user_id'" in msg and "NFC and NFD" in msg
    assert "Zo\\xeb" in msg and "Zoe\\u0308" in msg  # both spellings, escaped
    assert "line 2" in msg and "line 4" in msg  # the first line of each spelling
    # the upload page's warnings (read_info) carry it too; ASCII-only ids do not warn
    df = read_table(data, name="u.csv")
    assert any("Unicode form" in x for x in df.attrs["read_info"]["warnings"])
    plain = load_domain(b"user_id,item_id\nu1,a\nu2,b\n")
    assert not [w for w in plain.warnings if w.code == "unicode_twin_ids"]
    # item tables are checked on their id column too
    items = f"item_id,title\n{nfc},x\n{nfd},y\n".encode()
    df = read_table(items, kind="items")
    assert any("unicode" in x.lower() for x in df.attrs["read_info"]["warnings"])


def _big_csv(header: str, n: int = 200_000) -> bytes:
    return (header + "\n").encode() + b"".join(b"u%d,i%d,4\n" % (i, i % 501) for i in range(n))


@pytest.fixture
def parsed_sizes(monkeypatch):
    """The length of every body handed to the delimited-text parser."""
    seen: list[int] = []
    real = parsing._read_delimited

    def spy(body, *a, **kw):
        seen.append(len(body))
        return real(body, *a, **kw)

    monkeypatch.setattr(parsing, "_read_delimited", spy)
    return seen


@pytest.mark.parametrize("compress", [False, True])
def test_read_header_parses_only_the_start_of_a_big_upload(parsed_sizes, compress):
    data = _big_csv("user_id,item_id,rating")
    assert len(data) > 2 * MiB
    raw = gzip.compress(data) if compress else data
    assert read_header(raw, name="big.csv") == ["user_id", "item_id", "rating"]
    assert parsed_sizes and max(parsed_sizes) < 1.5 * MiB  # not the whole file
    parsed_sizes.clear()
    df = read_table(raw, name="big.csv")
    assert len(df) == 200_000 and parsed_sizes == [len(data)]


def test_read_header_of_parquet_reads_the_footer_only(batches_read):
    t = pa.table({"user_id": [f"u{i}" for i in range(300_000)], "item_id": ["i"] * 300_000})
    data = parquet_bytes(t)
    assert len(data) > 1.5 * MiB
    assert read_header(data) == ["user_id", "item_id"]
    assert batches_read == []


@pytest.mark.parametrize(
    "data",
    [
        # UTF-8 header, valid UTF-8 file: the prefix is enough
        _big_csv("usuário,item_id,nota"),
        # a UTF-8-looking header in a file that is Windows-1252 further down: read as
        # Windows-1252, like read_table does (the whole file decides the encoding)
        _big_csv("usuÃ¡rio,item_id,nota").replace(b"u199999,", b"\xe9199999,"),
        "usuário,item_id,nota\n".encode("cp1252") + _big_csv("x").split(b"\n", 1)[1],
        b"\xef\xbb\xbf"
        + _big_csv("user_id:token\titem_id:token\trating:float").replace(b",", b"\t"),
        # a quoted field with a line break right where the prefix is cut
        b"user_id,item_id,note\n" + b'u1,i1,"a\nb"\n' * 150_000,
    ],
)
def test_read_header_agrees_with_read_table(data):
    df = read_table(data, kind="table")
    assert read_header(data) == [c.split(":")[0] for c in df.columns]
