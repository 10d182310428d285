"""Every input problem is one DataError naming file, column and lines; oddities are warnings."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_core.data.loaders import Limits, load_domain, read_table
from recsys_core.data.schema import ITEM, RATING, TIME, USER
from recsys_core.data.validation import merge_duplicates
from recsys_core.errors import DataError


def fails(data, name: str = "ratings.csv", **kw) -> DataError:
    with pytest.raises(DataError) as e:
        read_table(data, name=name, **kw)
    return e.value


# --------------------------------------------------------------------------- content


@pytest.mark.parametrize("data", [b"", b"  \n\r\n\t\n"])
def test_empty_file(data: bytes) -> None:
    e = fails(data)
    assert str(e).startswith("File 'ratings.csv': the file is empty")


def test_header_only() -> None:
    e = fails(b"user_id,item_id,rating\n")
    assert "header but no data rows" in str(e) and e.file == "ratings.csv"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (bytes(range(256)) * 4, "binary data"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "PNG image"),
        (b"PK\x03\x04" + b"\x00" * 50, "ZIP archive"),
        # What pickle.dumps({"user": [1]}) writes; nothing here imports pickle.
        (
            b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x04user\x94]\x94K\x01as.",
            "pickle",
        ),
        (b"<!DOCTYPE html>\n<html><body>Not found</body></html>", "HTML"),
        (b'{"user": 1, "item": 2}\n{"user": 3, "item": 4}\n', "JSON"),
        (b'[{"user": 1, "item": 2}]', "JSON"),
        (gzip.compress(b"x")[:12], "damaged or incomplete"),
        (b"PAR1" + b"\x00garbage" * 10, "not a readable Parquet file"),
    ],
)
def test_non_tabular_content(data: bytes, words: str) -> None:
    assert words in str(fails(data))


def test_missing_required_column_lists_columns_and_how_to_map() -> None:
    e = fails(b"customer,product\n1,2\n")
    msg = str(e)
    assert "no user id column" in msg and "'customer', 'product'" in msg
    assert "ColumnMapping(user=" in msg and e.rows == [1]
    e = fails(b"title\nx\n", kind="items")
    assert "no item id column" in str(e)


def test_headerless_file_is_named_as_such() -> None:
    e = fails(b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert "first line looks like data" in str(e) and e.rows == [1]


def test_duplicate_column_names() -> None:
    e = fails(b"user,item,rating,rating\n1,2,3,4\n")
    assert "'rating' appears 2 times" in str(e) and e.rows == [1]


# --------------------------------------------------------------------------- ragged rows


def test_ragged_rows_name_their_lines() -> None:
    e = fails(b"user,item,rating\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    assert e.rows == [3, 4]
    assert "line 3 has 2, line 4 has 4" in str(e) and "header (3)" in str(e)


def test_ragged_line_numbers_count_physical_lines() -> None:
    # A quoted line break, blank lines, a line of spaces and CRLF all shift records
    # against lines; the message must name the line an editor shows.
    data = b'user,item,title\r\n1,2,"two\r\nlines"\r\n\r\n   \r\n3,4\r\n5,6,ok\r\n'
    assert fails(data).rows == [6]


@pytest.mark.parametrize(
    "data, keeps_bytes",
    [
        (b'"user","item","rating"\n1,a,5\n2,b,five\n3,c,4\n', False),  # quoted header only
        (b"user,item,rating\r\n1,a,5\r\n2,b,five\r\n3,c,4\r\n", False),  # CRLF
        (b"user,item,rating\n1,a,5\n\n2,b,five\n3,c,4\n", True),  # an empty line
        (b'user,item,rating\n1,"a",5\n2,b,five\n', True),  # a quote past the header
        (b"user,item,rating\r1,a,5\r2,b,five\r", True),  # lone CR line ends
    ],
)
def test_line_numbers_without_keeping_the_file_when_records_are_lines(data, keeps_bytes):
    """Where every record is one physical line, the reader does not keep the file's bytes
    for its messages (issue 13) and still names the line an editor shows."""
    from recsys_core.data.parsing import _CsvLines

    assert (_CsvLines(data, ",", [])._body is not None) == keeps_bytes
    e = fails(data)
    assert e.column == "rating" and e.rows == [4 if b"\n\n" in data else 3]


def test_unclosed_quote_is_explained() -> None:
    e = fails(b'user,item,title\n1,2,ok\n3,4,"oops\n5,6,fine\n7,8,fine\n')
    assert e.rows == [3] and "never closed" in str(e)
    # A stray quote inside a field is text, not an opening quote.
    assert read_table(b"user,item,height\n1,2,5'7\"\n")["item_id"].tolist() == ["2"]


# --------------------------------------------------------------------------- cells


def test_non_numeric_rating_names_line_column_and_value() -> None:
    e = fails(b"user,item,rating\n1,a,5\n2,b,five\n3,c,4\n4,d,n/a\n")
    assert (e.file, e.column, e.rows) == ("ratings.csv", "rating", [3, 5])
    assert "'five'" in str(e) and "'n/a'" in str(e) and "2 ratings" in str(e)


@pytest.mark.parametrize("bad", ["inf", "NaN", "-Infinity", ""])
def test_non_finite_or_blank_rating(bad: str) -> None:
    e = fails(f"user,item,rating\n1,a,5\n2,b,{bad}\n".encode())
    assert e.column == "rating" and e.rows == [3]


def test_blank_ids_after_quoted_newlines() -> None:
    data = b'user,item,note\n1,a,"multi\nline"\n , b,x\n2,,y\n'
    e = fails(data)
    assert e.column == "user" and e.rows == [4] and "blank id" in str(e)
    e = fails(b'user,item,note\n1,a,"multi\nline"\n3,"",y\n')
    assert e.column == "item" and e.rows == [4]


def test_blank_ids_in_parquet_use_csv_style_lines() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"user": ["a", None, "c"], "item": ["x", "y", "z"]}), buf)
    e = fails(buf.getvalue(), name="log.parquet")
    assert (e.file, e.column, e.rows) == ("log.parquet", "user", [3])


def test_unparseable_timestamps_name_their_lines() -> None:
    e = fails(b"user,item,date\n1,a,2021-01-01\n2,b,yesterday\n3,c,2021-02-30\n4,d,2021-03-01\n")
    assert e.column == "date" and e.rows == [3, 4] and "'yesterday'" in str(e)
    e = fails(b"user,item,timestamp\n1,a,978300760\n2,b,soon\n3,c,\n")
    assert e.rows == [3, 4]
    e = fails(b"user,item,timestamp\n1,a,978300760\n2,b,1e300\n")
    assert e.rows == [3]


# --------------------------------------------------------------------------- limits


def test_field_over_max_field_bytes() -> None:
    data = b"user,item,title\n1,a,short\n2,b," + b"x" * 64 + b"\n"
    e = fails(data, kind="items", limits=Limits(max_field_bytes=32))
    assert e.column == "title" and e.rows == [3] and "64 bytes" in str(e)


def test_file_over_max_file_bytes(tmp_path) -> None:
    body = b"user,item\n" + b"1,2\n" * 100
    p = tmp_path / "big.csv"
    p.write_bytes(body)
    small = Limits(max_file_bytes=200, max_field_bytes=100)
    assert "more than the limit" in str(fails(p, name=None, limits=small))
    assert "larger than the limit" in str(fails(body, limits=small))
    # A small gzip must not expand past the limit either.
    assert "expands to more than" in str(fails(gzip.compress(body), limits=small))


def test_max_rows() -> None:
    e = fails(b"user,item\n1,2\n3,4\n5,6\n", limits=Limits(max_rows=2))
    assert "3 rows, more than the limit of 2" in str(e)


def test_missing_path() -> None:
    e = fails("/no/such/dir/ratings.csv", name=None)
    assert "does not exist" in str(e) and e.file == "ratings.csv"


def test_no_other_exception_type_escapes() -> None:
    for src in (object(), 12, None):
        with pytest.raises(DataError):
            read_table(src)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"(?i)unknown table kind"):
        read_table(b"a,b\n1,2\n", kind="ratings")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- merging


def test_merge_duplicates_keeps_max_rating_and_earliest_time() -> None:
    df = pd.DataFrame(
        {
            USER: pd.Series(["u1", "u2", "u1", "u1", "u2"], dtype="str"),
            ITEM: pd.Series(["a", "a", "a", "b", "a"], dtype="str"),
            RATING: [2.0, np.nan, 5.0, 3.0, np.nan],
            TIME: np.array([300, 50, 100, 400, 40], dtype=np.int64),
        }
    )
    out, n = merge_duplicates(df)
    assert n == 2
    assert out[USER].tolist() == ["u1", "u2", "u1"]  # first-appearance order
    assert out[ITEM].tolist() == ["a", "a", "b"]
    assert out[RATING].tolist()[0] == 5.0 and np.isnan(out[RATING].iloc[1])
    assert out[TIME].tolist() == [100, 40, 400]
    assert out[TIME].dtype == np.int64 and list(out.index) == [0, 1, 2]
    same, zero = merge_duplicates(out)
    assert zero == 0 and same is out


def test_merge_without_timestamps() -> None:
    df = pd.DataFrame({USER: ["u", "u"], ITEM: ["i", "i"], RATING: [1.0, 4.0]})
    out, n = merge_duplicates(df)
    assert n == 1 and out.to_dict("list") == {USER: ["u"], ITEM: ["i"], RATING: [4.0]}


def test_domain_warnings() -> None:
    inter = b"user,item,rating,ts\nu1,a,1,10\nu1,a,4,5\nu1,b,3,20\nu2,a,2,30\nu3,c,5,40\n"
    items = b"item_id,title\na,Alpha\nb,Beta\nb,Beta again\n"
    users = b"user_id,age\nu1,30\nu2,40\n"
    dom = load_domain(inter, items, users)
    by_code = {w.code: w for w in dom.warnings}
    assert by_code["duplicate_interactions"].count == 1
    assert by_code["duplicate_interactions"].examples == ("u1 -> a",)
    assert by_code["single_interaction_users"].count == 2  # u2, u3
    assert set(by_code["single_interaction_users"].examples) == {"u2", "u3"}
    assert by_code["single_interaction_items"].examples == ("b", "c")
    assert by_code["items_missing_from_item_table"].examples == ("c",)
    assert by_code["users_missing_from_user_table"].examples == ("u3",)
    assert by_code["duplicate_item_rows"].count == 1
    assert dom.items["title"].tolist() == ["Alpha", "Beta"]
    merged = dom.interactions.set_index([USER, ITEM])
    assert merged.loc[("u1", "a"), RATING] == 4.0 and merged.loc[("u1", "a"), TIME] == 5
    assert dom.meta["n_merged"] == 1 and len(dom.interactions) == 4


def test_load_domain_names_the_failing_file() -> None:
    with pytest.raises(DataError) as e:
        load_domain(b"user,item\n1,a\n", io.BytesIO(b"item_id,title\n,x\n"))
    assert e.value.file == "items file" and e.value.rows == [2]


def test_implausible_ratings_are_warnings_naming_the_rows():
    import pandas as pd

    from recsys_core.data.validation import implausible_ratings

    df = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e"],
            "item_id": ["x", "y", "z", "x", "y"],
            "rating": [4.0, -3.0, 1e308, float("nan"), 1e6],
        }
    )
    w = implausible_ratings(df, row_numbers=True)
    assert w.code == "implausible_ratings" and w.count == 2
    assert "(data rows 2, 3)" in w.message
    assert w.examples == ("row 2: b -> y = -3", "row 3: c -> z = 1e+308")
    # 1e6 itself, blanks (implicit feedback) and ordinary ratings pass
    assert implausible_ratings(df.iloc[[0, 3, 4]]) is None
    one = implausible_ratings(df.iloc[[1]])
    assert one.message.startswith("1 rating is outside") and "row" not in one.message


def test_load_domain_and_cli_validate_show_implausible_ratings(tmp_path, capsys):
    from recsys_core.cli import main
    from recsys_core.data.loaders import load_domain

    f = tmp_path / "r.csv"
    f.write_text("user_id,item_id,rating\nu1,i1,4\nu1,i2,-3\nu2,i1,5\nu2,i2,2e9\n")
    d = load_domain(str(f), name="r")
    (w,) = [w for w in d.warnings if w.code == "implausible_ratings"]
    assert w.count == 2 and w.examples == ("u1 -> i2 = -3", "u2 -> i2 = 2e+09")
    assert main(["validate", str(f)]) == 0
    out = capsys.readouterr().out
    assert "2 ratings are outside the plausible range 0 to 1,000,000" in out
    assert "u1 -> i2 = -3" in out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_duplicates_matches_a_plain_groupby(seed) -> None:
    """The sparse-count merge (issue 13) against the obvious pandas version: same rows in
    the same order, highest rating (NaN skipped) and earliest time per pair."""
    rng = np.random.default_rng(seed)
    n = 5000
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, 80, n).astype(str),
            "item_id": np.char.add("i", rng.integers(0, 60, n).astype(str)),
            "rating": np.where(rng.random(n) < 0.1, np.nan, rng.integers(1, 6, n).astype(float)),
            "timestamp": rng.integers(0, 10**6, n),
        }
    )
    out, n_merged = merge_duplicates(df)
    g = df.groupby(["user_id", "item_id"], sort=False)
    ref = g.head(1).reset_index(drop=True)
    ref["rating"] = (
        g["rating"].max().reindex(pd.MultiIndex.from_frame(ref[["user_id", "item_id"]])).to_numpy()
    )
    ref["timestamp"] = (
        g["timestamp"]
        .min()
        .reindex(pd.MultiIndex.from_frame(ref[["user_id", "item_id"]]))
        .to_numpy()
    )
    assert n_merged == n - len(ref) > 0
    pd.testing.assert_frame_equal(out, ref, check_dtype=False)


def test_take_sorted_rows_matches_take_on_chunked_text_and_numbers():
    """The chunk-by-chunk take of the merge (issue 13): the same values, dtype and a fresh
    index as pandas' take, for a text column in several Arrow chunks (empty selections in
    some chunks included) and for a numpy column."""
    from recsys_core.data.validation import take_sorted_rows

    text = pd.Series(["a", "b", "c", "d", "e", "f", "g"], dtype="str", name="user_id")
    chunked = pa.chunked_array(
        [pa.array(v, type=pa.large_string()) for v in (["a", "b"], ["c", "d", "e"], ["f", "g"])]
    )
    text = pd.Series(pd.array(chunked, dtype=text.dtype), name="user_id")
    numbers = pd.Series(np.arange(7, dtype=np.float64), name="rating")
    for rows in (np.array([0, 1, 5, 6]), np.array([2, 4]), np.array([], dtype=np.int64)):
        for col in (text, numbers):
            got = take_sorted_rows(col, rows)
            want = col.take(rows).reset_index(drop=True)
            pd.testing.assert_series_equal(got, want)
