"""read_table / load_domain: every format gives the same canonical frame."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_core.data.loaders import (
    ColumnMapping,
    Limits,
    detect_columns,
    load_domain,
    read_header,
    read_table,
)
from recsys_core.data.schema import ITEM, RATING, TIME, USER, Domain
from recsys_core.errors import DataError

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"

# The canonical frame every variant below must load to. Ids with leading zeros, a
# comma, a quote, a line break and an accent exercise ids-as-text and quoting.
ROWS = [
    ("001", "Amélie", 5.0, 978300760),
    ("002", "Heat, The", 3.5, 978302109),
    ("002", 'Say "Hi"', 1.0, 978301968),
    ("u4", "two\nlines", 4.0, 978824291),
]
EXPECTED = pd.DataFrame(
    {
        USER: pd.Series([r[0] for r in ROWS], dtype="str"),
        ITEM: pd.Series([r[1] for r in ROWS], dtype="str"),
        RATING: np.array([r[2] for r in ROWS], dtype=np.float64),
        TIME: np.array([r[3] for r in ROWS], dtype=np.int64),
    }
)
HEADER = ["user_id", "item_id", "rating", "timestamp"]


def delimited(delimiter: str = ",", header=HEADER, rows=ROWS, lineterminator: str = "\n") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=lineterminator)
    w.writerow(header)
    for r in rows:
        w.writerow([f"{v:g}" if isinstance(v, float) else v for v in r])
    return buf.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


VARIANTS = {
    "csv": delimited(",").encode(),
    "csv_crlf": delimited(",", lineterminator="\r\n").encode(),
    "tsv": delimited("\t").encode(),
    "semicolon": delimited(";").encode(),
    "pipe": delimited("|").encode(),
    "utf8_bom": b"\xef\xbb\xbf" + delimited(",").encode(),
    "utf16_bom": delimited(",").encode("utf-16"),
    "latin1": delimited(";").encode("latin-1"),
    "gzip_csv": gzip.compress(delimited(",").encode()),
    "gzip_tsv": gzip.compress(delimited("\t").encode()),
    "bz2_csv": bz2.compress(delimited(",").encode()),
    "recbole": delimited(
        "\t", header=["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    ).encode(),
    "parquet": parquet_bytes(pa.table({c: EXPECTED[c].tolist() for c in HEADER})),
    "gzip_parquet": gzip.compress(
        parquet_bytes(pa.table({c: EXPECTED[c].tolist() for c in HEADER}))
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_format_loads_to_the_same_canonical_frame(variant: str) -> None:
    # Names carry no format hint: detection is by content (magic bytes, sniffing).
    df = read_table(VARIANTS[variant], name="upload")
    pd.testing.assert_frame_equal(df, EXPECTED)


def test_formats_are_recognised_by_content_and_reported() -> None:
    info = {v: read_table(VARIANTS[v], name="x").attrs["read_info"] for v in VARIANTS}
    assert info["csv"]["format"] == "csv" and info["csv"]["delimiter"] == ","
    assert info["tsv"]["format"] == "tsv"
    assert info["semicolon"]["delimiter"] == ";"
    assert info["pipe"]["delimiter"] == "|"
    assert info["recbole"]["format"] == "recbole"
    assert info["parquet"]["format"] == "parquet"
    assert info["gzip_csv"]["compression"] == "gzip"
    assert (
        info["gzip_parquet"]["compression"] == "gzip"
        and info["gzip_parquet"]["format"] == "parquet"
    )
    assert info["utf8_bom"]["encoding"] == "utf-8-sig"
    assert info["latin1"]["encoding"] in ("cp1252", "latin-1")
    assert info["csv"]["columns"] == {
        USER: "user_id",
        ITEM: "item_id",
        RATING: "rating",
        TIME: "timestamp",
    }


def test_latin1_fallback_is_a_warning_in_the_domain() -> None:
    dom = load_domain(VARIANTS["latin1"])
    assert "Amélie" in set(dom.interactions[ITEM])
    assert [w.code for w in dom.warnings if w.code == "encoding_fallback"] == ["encoding_fallback"]


def test_paths_streams_and_bytes_agree(tmp_path: Path) -> None:
    p = tmp_path / "ratings.csv.gz"
    p.write_bytes(VARIANTS["gzip_csv"])
    before = p.read_bytes()
    from_path = read_table(p)
    from_str = read_table(str(p))
    from_stream = read_table(io.BytesIO(VARIANTS["gzip_csv"]))
    pd.testing.assert_frame_equal(from_path, EXPECTED)
    pd.testing.assert_frame_equal(from_str, EXPECTED)
    pd.testing.assert_frame_equal(from_stream, EXPECTED)
    assert from_path.attrs["read_info"]["file"] == "ratings.csv.gz"
    assert p.read_bytes() == before  # never modified


def test_recbole_extension_and_token_seq(tmp_path: Path) -> None:
    p = tmp_path / "shop.item"
    p.write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "i1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "i2\tHeat\t1995\tAction Crime\n"
    )
    items = read_table(p, kind="items")
    assert list(items.columns) == [ITEM, "title", "year", "genres"]
    assert items["genres"].tolist() == ["Animation Children's Comedy", "Action Crime"]
    assert items.attrs["read_info"]["text_fields"] == ["title", "genres", "year"]


def test_parquet_numeric_ids_become_text_without_decimals() -> None:
    table = pa.table(
        {
            "userId": pa.array([1, 2, 3], pa.int64()),
            "movieId": pa.array([10.0, 20.0, 2.5]),
            "rating": pa.array([4, 5, 3], pa.int32()),
            "ts": pa.array([978300760000, 978300761000, 978300762000], pa.int64()),  # ms
        }
    )
    df = read_table(parquet_bytes(table))
    assert df[USER].tolist() == ["1", "2", "3"]
    assert df[ITEM].tolist() == ["10", "20", "2.5"]
    assert df[RATING].dtype == np.float64 and df[RATING].tolist() == [4.0, 5.0, 3.0]
    assert df[TIME].tolist() == [978300760, 978300761, 978300762]


def test_parquet_datetime_column_becomes_epoch_seconds() -> None:
    ts = pd.to_datetime(["2001-01-01T00:00:00Z", "2001-01-02T00:00:01.9Z"], format="ISO8601")
    table = pa.table({"user": ["a", "b"], "item": ["x", "y"], "date": pa.array(ts)})
    df = read_table(parquet_bytes(table))
    assert df[TIME].tolist() == [978307200, 978393601]
    assert df[RATING].isna().all()


def test_string_ids_keep_leading_zeros_and_lose_padding() -> None:
    df = read_table(b"user, item\n007 , 0042\n7, 42\n")
    assert df[USER].tolist() == ["007", "7"]
    assert df[ITEM].tolist() == ["0042", "42"]


def test_no_rating_and_no_time_columns() -> None:
    df = read_table(b"uid,iid\n1,2\n3,4\n")
    assert list(df.columns) == [USER, ITEM, RATING]
    assert df[RATING].isna().all() and df[RATING].dtype == np.float64


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["978300760", "978300761"], [978300760, 978300761]),
        (["978300760123", "978300761999"], [978300760, 978300761]),  # milliseconds
        (["978300760.9", "1e9"], [978300760, 1000000000]),
        # Unit per value: a millisecond value does not turn the seconds into 1970.
        (["978300760", "978300761000", "978300762000000"], [978300760, 978300761, 978300762]),
        (["2001-01-01", "2001-01-01T10:00:00+02:00"], [978307200, 978336000]),
        (["2001/01/02", "March 5, 2001"], [978393600, 983750400]),
        # integers padded with spaces: read after trimming, as before the cast-first path
        ([" 978300760", "978300761000 "], [978300760, 978300761]),
        # negative seconds (before 1970), large seconds, and just past the millisecond threshold
        (["-86400", "9000000000", "100000000001"], [-86400, 9000000000, 100000000]),
    ],
)
def test_timestamp_forms(values: list[str], expected: list[int]) -> None:
    body = "user,item,date\n" + "".join(f'u,{i},"{v}"\n' for i, v in enumerate(values))
    assert read_table(body.encode())[TIME].tolist() == expected


def test_decimal_comma_in_semicolon_files() -> None:
    df = read_table(b"user;item;rating\na;b;4,5\nc;d;3\n")
    assert df[RATING].tolist() == [4.5, 3.0]


def test_column_detection_aliases() -> None:
    m = detect_columns(
        ["reviewerID", "asin", "overall", "unixReviewTime", "summary"], "interactions"
    )
    assert (m.user, m.item, m.rating, m.timestamp) == (
        "reviewerID",
        "asin",
        "overall",
        "unixReviewTime",
    )
    m = detect_columns(["Customer ID", "Product_ID", "Stars", "TS"])
    assert (m.user, m.item, m.rating, m.timestamp) == ("Customer ID", "Product_ID", "Stars", "TS")
    # Best alias wins when several columns match.
    m = detect_columns(["uid", "user_id", "movieId", "time", "timestamp"])
    assert (m.user, m.item, m.timestamp) == ("user_id", "movieId", "timestamp")
    m = detect_columns(
        ["movieId", "movie_title", "genre", "release_year", "overview", "budget"], "items"
    )
    assert m.item == "movieId"
    assert m.text_fields == ("movie_title", "genre", "release_year", "overview")
    m = detect_columns(["user_id:token", "age:float"], "users")
    assert m.user == "user_id" and m.text_fields == ()
    assert detect_columns(["a", "b"]).user is None


def test_explicit_mapping_overrides_detection() -> None:
    body = b"user_id,item_id,who,what,rating,stars\n1,2,u9,i9,1,5\n"
    df = read_table(body, columns=ColumnMapping(user="who", item="what", rating="stars"))
    assert df[[USER, ITEM]].values.tolist() == [["u9", "i9"]]
    assert df[RATING].tolist() == [5.0]
    # "" switches a detected optional column off.
    df = read_table(body, columns=ColumnMapping(rating=""))
    assert df[RATING].isna().all() and df[USER].tolist() == ["1"]


def test_mapping_to_a_missing_column_lists_the_columns() -> None:
    with pytest.raises(DataError) as e:
        read_table(b"a,b,c\n1,2,3\n", name="f.csv", columns=ColumnMapping(user="a", item="zzz"))
    msg = str(e.value)
    assert "'zzz'" in msg and "'a', 'b', 'c'" in msg and "f.csv" in msg and e.value.rows == [1]


def test_column_mapping_and_limits_validate_themselves() -> None:
    with pytest.raises(ValueError, match="two roles"):
        ColumnMapping(user="x", item="x")
    with pytest.raises(ValueError, match="required"):
        ColumnMapping(user="")
    with pytest.raises(ValueError, match="repeated"):
        ColumnMapping(text_fields=("title", "title"))
    assert ColumnMapping(text_fields=["a", "b"]).text_fields == ("a", "b")
    with pytest.raises(ValueError, match="max_rows"):
        Limits(max_rows=0)
    with pytest.raises(ValueError, match="max_file_bytes"):
        Limits(max_file_bytes=True)
    with pytest.raises(ValueError, match="cannot exceed"):
        Limits(max_file_bytes=10, max_field_bytes=100)


def test_items_and_users_tables() -> None:
    items = read_table(
        b'movieId,name,category,year,budget\n1,"Heat, The",Crime,1995,60\n2,Up,,2009,175\n',
        kind="items",
    )
    assert list(items.columns) == [ITEM, "title", "genres", "year", "budget"]
    assert items.loc[1].tolist() == ["2", "Up", "", "2009", "175"]
    assert all(str(items[c].dtype) == "str" for c in items.columns)
    users = read_table(b"customer_id,age\nc1,30\nc2,\n", kind="users")
    assert users.to_dict("list") == {USER: ["c1", "c2"], "age": ["30", ""]}


def test_load_domain_on_the_sample_files() -> None:
    dom = load_domain(
        SAMPLES / "target_interactions.csv",
        SAMPLES / "target_items.csv",
        SAMPLES / "users.csv",
        name="target",
    )
    assert isinstance(dom, Domain)
    assert dom.source_files == ("target_interactions.csv", "target_items.csv", "users.csv")
    assert dom.text_fields == ("title", "genres", "year", "description")
    assert dom.has_time and dom.interactions[TIME].dtype == np.int64
    assert len(dom.interactions) == 144 and dom.n_users == 40
    assert dom.interactions[RATING].isin(np.arange(1, 5.5, 0.5)).all()
    text = dom.item_texts(np.array(["ab-001"]))[0]
    assert text.startswith("Salt, Sea and Sky | Biography | 2022 | Salt, Sea and Sky: the life")
    src = load_domain(
        SAMPLES / "source_interactions.csv", SAMPLES / "source_items.csv", name="source"
    )
    shared_users = set(src.interactions[USER]) & set(dom.interactions[USER])
    shared_titles = set(src.items["title"]) & set(dom.items["title"])
    assert len(shared_users) >= 20 and len(shared_titles) == 16


def test_load_domain_text_fields_and_per_table_mappings() -> None:
    inter = b"who,what\nu1,A\nu1,B\nu2,A\n"
    items = b"code,name,blurb\nA,Alpha,first\nB,Beta,second\n"
    maps = {
        "interactions": ColumnMapping(user="who", item="what"),
        "items": ColumnMapping(item="code", text_fields=("blurb", "name")),
    }
    dom = load_domain(inter, items, columns=maps)
    assert dom.text_fields == ("blurb", "title")  # "name" was renamed to its canonical form
    assert dom.item_texts(np.array(["B"])) == ["second | Beta"]
    dom = load_domain(inter, items, columns=maps, text_fields=["name"])
    assert dom.text_fields == ("title",)
    with pytest.raises(DataError, match="'nope' is not a column of the item table"):
        load_domain(inter, items, columns=maps, text_fields=["nope"])
    # One mapping: its item name is used in the item table only where it exists.
    dom = load_domain(
        b"who,sku\nu1,A\n",
        b"item_id,title\nA,Alpha\n",
        columns=ColumnMapping(user="who", item="sku"),
    )
    assert dom.items[ITEM].tolist() == ["A"] and dom.text_fields == ("title",)


def test_dataframe_source_is_checked_like_a_file() -> None:
    df = pd.DataFrame({"user": [1, 2], "item": ["a", None], "rating": [1.0, 2.0]})
    with pytest.raises(DataError) as e:
        read_table(df)
    assert e.value.column == "item" and e.value.rows == [3]
    ok = read_table(pd.DataFrame({"user": [1, 2], "item": [5.0, 6.0]}))
    assert ok[ITEM].tolist() == ["5", "6"]


def test_sample_files_are_what_the_script_makes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in SAMPLES.glob("*.csv"))
    for name in made:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
        assert (SAMPLES / name).stat().st_size < 10_000  # "a few KB"


def test_broken_sample_fails_on_its_stated_line() -> None:
    with pytest.raises(DataError) as e:
        read_table(SAMPLES / "broken_ratings.csv")
    assert (e.value.file, e.value.column, e.value.rows) == ("broken_ratings.csv", "rating", [7])
    assert "line 7" in (SAMPLES / "README.md").read_text()


def test_read_header_lists_columns_as_read_table_matches_them(tmp_path) -> None:
    """The public header reader: every format, suffixes and spaces stripped, nothing
    else resolved; what it lists is what a ColumnMapping may name."""
    csv_bytes = b" uid ;movie;stars\n1;a;4\n"
    assert read_header(csv_bytes, name="r.csv") == ["uid", "movie", "stars"]
    assert read_header(gzip.compress(csv_bytes), name="r.csv.gz") == ["uid", "movie", "stars"]
    atomic = b"user_id:token\titem_id:token\trating:float\n1\t2\t3\n"
    assert read_header(atomic, name="x.inter") == ["user_id", "item_id", "rating"]
    buf = io.BytesIO()
    pq.write_table(pa.table({"u": ["1"], "i": ["2"]}), buf)
    path = tmp_path / "t.parquet"
    path.write_bytes(buf.getvalue())
    assert read_header(path) == ["u", "i"]
    # the names it lists are the ones read_table accepts in a mapping
    df = read_table(csv_bytes, name="r.csv", columns=ColumnMapping(user="uid", item="movie"))
    assert df[USER].tolist() == ["1"] and df[ITEM].tolist() == ["a"]


def test_read_header_refuses_what_read_table_refuses() -> None:
    with pytest.raises(DataError, match="larger than the limit"):
        read_header(
            b"a,b\n" * 100, name="big.csv", limits=Limits(max_file_bytes=64, max_field_bytes=8)
        )


def test_item_texts_join_the_fields_present_and_fall_back_to_the_id() -> None:
    """Empty or missing fields are skipped (no " |  | "), an item without a row or without
    any text gets its id, a numeric field is written as text, and the order is the ids'."""
    from recsys_core.data.schema import Domain

    inter = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["a", "b", "c", "d"], "rating": 1.0})
    items = pd.DataFrame(
        {"item_id": ["b", "a", "c"], "title": ["Beta", "Alpha", None],
         "genres": ["", "Drama", None], "year": [1999, 2001, 2003]}
    )  # fmt: skip
    dom = Domain("t", inter, items, text_fields=("title", "genres", "year"))
    assert dom.item_texts() == ["Alpha | Drama | 2001", "Beta | 1999", "2003", "d"]
    assert dom.item_texts(np.array(["d", "b"], dtype=object)) == ["d", "Beta | 1999"]
    assert Domain("t", inter, items, text_fields=("blurb",)).item_texts() == ["a", "b", "c", "d"]
