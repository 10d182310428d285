"""Property: for any bytes at all, read_table / load_domain return a valid canonical
frame or raise DataError; never another exception type."""

from __future__ import annotations

import bz2
import csv
import gzip
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_core.data.loaders import Limits, load_domain, read_table
from recsys_core.data.schema import ITEM, RATING, TIME, USER, Domain
from recsys_core.errors import DataError

# Slow shared CI boxes: generous deadline, a fixed budget of examples.
FUZZ = settings(
    max_examples=150,
    deadline=5000,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
# Small limits so that the size checks are reachable with tiny inputs.
LIMITS = Limits(max_file_bytes=64 * 1024, max_field_bytes=40, max_rows=50)

NAMES = st.one_of(
    st.sampled_from(
        [
            "user_id",
            "item_id",
            "rating",
            "timestamp",
            "userId",
            "movieId",
            "score",
            "date",
            "title",
            "genres",
            "year",
            "description",
            "uid",
            "iid",
            "user_id:token",
            "rating:float",
            "",
            " ",
            "Rating",
            "x",
            "1",
            "2.5",
        ]
    ),
    st.text(max_size=8),
)
CELLS = st.one_of(
    st.text(max_size=10),
    st.integers(-(10**19), 10**19).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            " ",
            '"',
            '""',
            '"a',
            "nan",
            "inf",
            "NaN",
            "2021-01-01",
            "2021-13-45",
            "1e400",
            "978300760",
            "978300760123",
            "\n",
            "a,b",
            "\t",
            ";",
            "|",
            "\r",
            "\x00",
            "é",
            "ÿþ",
            "March",
            "5",
            "-1",
            "0x1F",
            "4,5",
        ]
    ),
)
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32"]


@st.composite
def delimited_files(draw) -> bytes:
    ncol = draw(st.integers(1, 5))
    header = draw(st.lists(NAMES, min_size=ncol, max_size=ncol))
    nrows = draw(st.integers(0, 6))
    ragged = draw(st.booleans())
    rows = [
        draw(st.lists(CELLS, min_size=max(0, ncol - ragged), max_size=ncol + ragged))
        for _ in range(nrows)
    ]
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if draw(st.booleans()):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=delimiter, lineterminator=terminator)
        w.writerow(header)
        w.writerows(rows)
        text = buf.getvalue()
    else:
        text = terminator.join(delimiter.join(r) for r in [header, *rows])
    data = text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    wrap = draw(st.sampled_from(["none", "none", "none", "gzip", "bz2", "truncated-gzip"]))
    if wrap == "gzip":
        data = gzip.compress(data)
    elif wrap == "bz2":
        data = bz2.compress(data)
    elif wrap == "truncated-gzip":
        data = gzip.compress(data)[: draw(st.integers(0, 30))]
    return data


@st.composite
def parquet_files(draw) -> bytes:
    n = draw(st.integers(0, 5))
    ncol = draw(st.integers(1, 4))
    names = draw(st.lists(NAMES, min_size=ncol, max_size=ncol))
    arrays = []
    for _ in range(ncol):
        kind = draw(
            st.sampled_from(["int", "float", "str", "bool", "ts", "list", "null", "struct"])
        )
        if kind == "int":
            vals = draw(
                st.lists(
                    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=n, max_size=n
                )
            )
            arrays.append(pa.array(vals, pa.int64()))
        elif kind == "float":
            vals = draw(st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n))
            arrays.append(pa.array(vals, pa.float64()))
        elif kind == "str":
            vals = draw(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=n, max_size=n))
            arrays.append(pa.array(vals, pa.string()))
        elif kind == "bool":
            arrays.append(pa.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
        elif kind == "ts":
            vals = draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n))
            arrays.append(pa.array(vals, pa.timestamp("ns")))
        elif kind == "list":
            vals = draw(st.lists(st.lists(st.text(max_size=3), max_size=3), min_size=n, max_size=n))
            arrays.append(pa.array(vals, pa.list_(pa.string())))
        elif kind == "null":
            arrays.append(pa.nulls(n))
        else:
            arrays.append(pa.array([{"a": i} for i in range(n)], pa.struct([("a", pa.int64())])))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), buf)
    data = buf.getvalue()
    if draw(st.booleans()):
        # Corrupt or truncate it.
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) + data[cut + 8 :]
    return data


@st.composite
def mutated_valid(draw) -> bytes:
    base = (
        b"user_id,item_id,rating,timestamp\n"
        b'u1,"Heat, The",4,978300760\nu2,i2,3.5,2001-01-01\nu1,i3,5,978300761\n'
    )
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=3))
        if op == "insert":
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos : pos + len(chunk)]
        else:
            data[pos : pos + len(chunk)] = chunk
    return bytes(data)


@st.composite
def plausible_files(draw) -> bytes:
    """Mostly valid interaction/item files with a sprinkling of bad cells, so that the
    success path (and the checks on it) is exercised as often as the failure paths."""
    optional = draw(
        st.lists(st.sampled_from(["rating", "timestamp", "title", "genres", "extra"]), unique=True)
    )
    header = draw(st.permutations(["user_id", "item_id", *optional]))
    pools = {
        "user_id": st.sampled_from(["u1", "u2", "007", " u3 ", "1.0", "é"]),
        "item_id": st.sampled_from(["i1", "i2", "Heat, The", 'Say "Hi"', "two\nlines", "42"]),
        "rating": st.sampled_from(["1", "4.5", "5", " 3 ", "-2", "1e2"]),
        "timestamp": st.sampled_from(["978300760", "978300760123", "0", "-5", "1e9"])
        if draw(st.booleans())
        else st.sampled_from(
            ["2001-01-01", "2001-01-01T10:00:00Z", "2001/02/03 04:05", "1999-12-31 23:59:59+05:30"]
        ),
    }

    def cell(c: str) -> st.SearchStrategy[str]:
        valid = pools.get(c, st.text(max_size=6))
        return st.one_of(valid, CELLS) if draw(st.integers(0, 9)) == 0 else valid

    rows = [[draw(cell(c)) for c in header] for _ in range(draw(st.integers(1, 8)))]
    buf = io.StringIO()
    csv.writer(
        buf, delimiter=draw(st.sampled_from([",", "\t", ";", "|"])), lineterminator="\n"
    ).writerows([header, *rows])
    data = buf.getvalue().encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    return gzip.compress(data) if draw(st.booleans()) else data


ANY_FILE = st.one_of(
    st.binary(max_size=600), delimited_files(), parquet_files(), mutated_valid(), plausible_files()
)


def assert_canonical(df: pd.DataFrame, kind: str) -> None:
    key = {"interactions": USER, "items": ITEM, "users": USER}[kind]
    assert len(df) > 0 and df.index.equals(pd.RangeIndex(len(df)))
    if kind == "interactions":
        assert list(df.columns) in ([USER, ITEM, RATING], [USER, ITEM, RATING, TIME])
        assert df[RATING].dtype == np.float64
        r = df[RATING].to_numpy()
        assert np.isfinite(r).all() or np.isnan(r).all()
        if TIME in df.columns:
            assert df[TIME].dtype == np.int64
        ids = [USER, ITEM]
    else:
        assert df.columns[0] == key and df.columns.is_unique
        assert all(str(df[c].dtype) == "str" for c in df.columns)
        assert not df.isna().any().any()
        ids = [key]
    for c in ids:
        assert str(df[c].dtype) == "str"
        values = df[c].tolist()
        assert all(isinstance(v, str) and v and v == v.strip() for v in values)


@FUZZ
@given(data=ANY_FILE, kind=st.sampled_from(["interactions", "items", "users"]))
def test_read_table_returns_canonical_or_raises_data_error(data: bytes, kind: str) -> None:
    try:
        df = read_table(data, name="fuzz.csv", kind=kind, limits=LIMITS)
    except DataError as e:
        assert str(e).startswith("File 'fuzz.csv'")  # always names the file
        assert all(isinstance(r, int) and r >= 1 for r in e.rows)
        return
    assert_canonical(df, kind)


@FUZZ
@given(inter=ANY_FILE, items=st.one_of(st.none(), ANY_FILE))
def test_load_domain_returns_domain_or_raises_data_error(inter: bytes, items: bytes | None) -> None:
    try:
        dom = load_domain(inter, items, limits=LIMITS)
    except DataError:
        return
    assert isinstance(dom, Domain)
    assert_canonical(dom.interactions, "interactions")
    assert not dom.interactions.duplicated([USER, ITEM]).any()
    if dom.items is not None:
        assert_canonical(dom.items, "items")
        assert dom.items[ITEM].is_unique
        assert set(dom.text_fields) <= set(dom.items.columns)
