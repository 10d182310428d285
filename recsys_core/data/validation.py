"""Checks that turn raw columns into canonical ones, and the warnings a domain carries.

Every problem a user can fix is raised as one :class:`~recsys_core.errors.DataError`
naming the file, the column and the first offending lines (1-based, header = line 1),
with a hint. Oddities that do not stop a run (duplicates, singletons, unknown items) are
returned as :class:`~recsys_core.errors.DataWarning` records instead.

The column functions take pyarrow arrays of any type (all strings for CSV, typed columns
for Parquet) and a ``lines`` callable that maps 0-based row positions to file lines, so
that the same checks serve every format and only the error path pays for line counting.
Everything is vectorised: no Python loop runs per row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys_core.data.schema import ITEM, RATING, TIME, USER
from recsys_core.data.sources import limit_hint
from recsys_core.data.summary import count_noun
from recsys_core.errors import DataError, DataWarning

RowLines = Callable[[np.ndarray], list[int]]
"""Maps 0-based data-row positions (int array) to 1-based file line numbers."""

MAX_OFFENDERS = 10
"""How many offending lines an error names: enough to spot a pattern, short to read."""

# Epoch seconds that pandas can still turn into a datetime64[ns] (years 1677..2262):
# anything outside is a unit mix-up or garbage, and would crash later code.
_MAX_ABS_SECONDS = 9_200_000_000

# Unit detection for numeric timestamps, by magnitude: 1e11 s is the year 5138, so
# larger values cannot be seconds of real events.
_UNIT_THRESHOLDS = (
    (1e17, 10**9, "nanoseconds"),
    (1e14, 10**6, "microseconds"),
    (1e11, 10**3, "milliseconds"),
)

_NUMERIC_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"

# First bytes of formats people upload by mistake, and what to tell them.
_BINARY_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (
        b"PK\x03\x04",
        "a ZIP archive (an Excel .xlsx workbook is one too)",
        "unzip it, or save the sheet as CSV",
    ),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file (.xls)", "save the sheet as CSV"),
    (b"%PDF", "a PDF document", "export the table as CSV"),
    (b"\x89PNG", "a PNG image", "upload the data file, not a picture of it"),
    (b"\xff\xd8\xff", "a JPEG image", "upload the data file, not a picture of it"),
    (b"GIF8", "a GIF image", "upload the data file, not a picture of it"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV or Parquet"),
    (
        b"\x93NUMPY",
        "a NumPy array file",
        "save the array as a CSV or Parquet table with column names",
    ),
    (b"ARROW1", "an Arrow IPC / Feather file", "save it as Parquet instead"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "decompress it, or compress with gzip instead"),
    (b"7z\xbc\xaf", "a 7-Zip archive", "extract it first"),
    (b"Rar!", "a RAR archive", "extract it first"),
    (b"Obj\x01", "an Avro file", "save it as Parquet instead"),
)
# Pickles start with PROTO (0x80) and a protocol number; they are never unpickled here.
_PICKLE_RE = re.compile(rb"^\x80[\x02-\x05]")


# --------------------------------------------------------------------------- content


def check_raw_bytes(data: bytes, *, file: str | None) -> None:
    """Reject content that is not a text table before any parser sees it.

    Args:
        data: the (already decompressed) file content.
        file: the file name as the user knows it.

    Raises:
        DataError: empty file, a known binary format, or binary-looking bytes
            (NUL bytes or many control characters in the first 64 KiB).
    """
    if re.search(rb"\S", data) is None:
        raise DataError(
            "the file is empty", file=file, hint="Choose a file with a header line and data rows"
        )
    for magic, what, hint in _BINARY_MAGIC:
        if data.startswith(magic):
            raise DataError(f"this is {what}, not a table", file=file, hint=hint)
    if _PICKLE_RE.match(data):
        raise DataError(
            "this looks like a Python pickle, which is never loaded (it can run code)",
            file=file,
            hint="Save the table as CSV or Parquet",
        )
    sample = np.frombuffer(data[:65536], dtype=np.uint8)
    # Control bytes other than tab, LF, FF, CR and ESC do not occur in text tables; random
    # or compressed bytes have ~11% of them.
    ctrl = (sample < 0x20) & ~np.isin(sample, (0x09, 0x0A, 0x0C, 0x0D, 0x1B))
    # A few NUL bytes are a stray mistake (named by line below); many are binary data.
    if int((sample == 0).sum()) > max(8, len(sample) // 1000) or ctrl.mean() > 0.05:
        raise DataError(
            "the file holds binary data, not text",
            file=file,
            hint="Upload a CSV, TSV, Parquet or RecBole atomic file (optionally gzip-compressed)",
        )
    check_nul_bytes(data, file=file)


def check_nul_bytes(data: bytes | bytearray, *, file: str | None) -> None:
    """Reject a NUL (zero) byte anywhere in the text, naming its line.

    A NUL is never part of a text table: it comes from a broken export or binary data
    pasted into a field, and it would end up inside an id or title (two ids that look
    the same on screen but never match). The whole file is searched (``bytes.find`` is a
    memchr, about a millisecond per 10 MB), not only the start that is sniffed for binary
    content (issue 12).
    """
    pos = data.find(b"\x00")
    if pos < 0:
        return
    line = data.count(b"\n", 0, pos) + 1
    n = data.count(b"\x00")
    raise DataError(
        f"the file holds {count_noun(n, 'NUL (zero) byte')}, first on line {line:,}; "
        "text tables never contain them",
        file=file,
        rows=[line],
        hint="Remove the zero bytes (they come from binary data or a broken export), or "
        "export the table again",
    )


def check_text_start(head: str, *, file: str | None) -> None:
    """Reject HTML, XML and JSON, which parse as garbage tables otherwise.

    Args:
        head: the first few KiB of the decoded text.
    """
    start = head.lstrip()[:200].lower()
    if start.startswith("<"):
        kind = (
            "HTML" if ("html" in start or "<head" in start or "<body" in start) else "HTML or XML"
        )
        raise DataError(
            f"the file is {kind}, not a table",
            file=file,
            rows=[1],
            hint="A web page may have been saved instead of the data; download the raw CSV",
        )
    if start.startswith("{") or re.match(r"^\[\s*[\[{\"\d\]-]", start):
        raise DataError(
            "the file is JSON, not a table",
            file=file,
            rows=[1],
            hint="Convert it to CSV or Parquet with one row per interaction (e.g. pandas.read_json(...).to_csv(...))",
        )


def check_header(names: Sequence[str], *, file: str | None) -> list[str]:
    """Clean column names and reject headers that cannot be used.

    Blank names become ``column_<n>`` (1-based position), surrounding spaces are removed.

    Args:
        names: the raw column names, in file order.

    Returns:
        The cleaned names, same length.

    Raises:
        DataError: repeated column names, or a first line that is data, not names.
    """
    clean = [(n or "").strip() or f"column_{i + 1}" for i, n in enumerate(names)]
    seen: dict[str, int] = {}
    dups: list[str] = []
    for n in clean:
        seen[n] = seen.get(n, 0) + 1
        if seen[n] == 2:
            dups.append(n)
    if dups:
        raise DataError(
            "column names must be unique, but "
            + ", ".join(f"'{d}' appears {seen[d]} times" for d in dups),
            file=file,
            rows=[1],
            hint="Rename the repeated columns in the header line",
        )
    if clean and all(re.match(_NUMERIC_RE, n) for n in clean):
        raise DataError(
            "the first line looks like data, not column names (" + ", ".join(clean[:4]) + ")",
            file=file,
            rows=[1],
            hint="Add a header line such as user_id,item_id,rating,timestamp",
        )
    return clean


def check_row_count(n_rows: int, *, max_rows: int, file: str | None) -> None:
    """Reject header-only files and files over the row limit."""
    if n_rows == 0:
        raise DataError(
            "the file has a header but no data rows",
            file=file,
            hint="Add at least one data row below the header",
        )
    if n_rows > max_rows:
        raise DataError(
            f"the file has {n_rows:,} rows, more than the limit of {max_rows:,}",
            file=file,
            hint=f"Sample the data, or raise the limit: {limit_hint('max_rows')}",
        )


def check_column_count(n_columns: int, *, max_columns: int, file: str | None) -> None:
    """Reject tables with more columns than ``max_columns`` (before their values are read)."""
    if n_columns > max_columns:
        raise DataError(
            f"the file has {n_columns:,} columns, more than the limit of {max_columns:,}",
            file=file,
            rows=[1],
            hint=f"Keep the columns you need, or raise the limit: {limit_hint('max_columns')}",
        )


def check_field_sizes(
    columns: Sequence[pa.ChunkedArray],
    names: Sequence[str],
    *,
    max_field_bytes: int,
    file: str | None,
    lines: RowLines,
) -> None:
    """Reject any text field longer than ``max_field_bytes`` (UTF-8 bytes).

    Args:
        columns: the raw columns; only string and binary ones are measured.
        names: their names, same order.
    """
    for name in names:
        if len(name.encode("utf-8", "surrogatepass")) > max_field_bytes:
            raise DataError(
                f"a column name is longer than {max_field_bytes:,} bytes",
                file=file,
                rows=[1],
                hint="Check the delimiter and the header line",
            )
    for col, name in zip(columns, names):
        t = col.type
        if not (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
        ):
            continue
        if len(col) == 0:
            continue
        lengths = pc.binary_length(col)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > max_field_bytes:
            idx = _first_true(pc.greater(lengths, max_field_bytes))
            raise DataError(
                f"a field is {longest:,} bytes long, more than the limit of {max_field_bytes:,}",
                file=file,
                column=name,
                rows=lines(idx),
                hint="An unclosed quote can swallow the rest of the file; otherwise shorten the field or raise Limits.max_field_bytes",
            )


# --------------------------------------------------------------------------- columns


def as_text(col: pa.ChunkedArray | pa.Array, *, file: str | None, column: str) -> pa.ChunkedArray:
    """Any arrow column -> UTF-8 strings, missing values as "".

    Integer-valued floats print without a decimal point (1.0 -> "1", so ids written by
    pandas as float64 because of a missing value keep their form); lists are joined
    with spaces (the RecBole ``token_seq`` form); dates print as ISO strings.

    Raises:
        DataError: binary or nested (struct, map) columns.
    """
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col], type=col.type)
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_string(t):
        out = col
    elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
        out = col.cast(pa.string())
    elif pa.types.is_null(t):
        out = pa.chunked_array([pa.nulls(len(col), pa.string())])
    elif pa.types.is_boolean(t) or pa.types.is_integer(t):
        out = col.cast(pa.string())
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        out = _float_text(col.cast(pa.float64()))
    elif pa.types.is_temporal(t):
        out = col.cast(pa.string())
    elif (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        try:
            out = col.cast(pa.binary()).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DataError(
                "the column holds binary data that is not UTF-8 text",
                file=file,
                column=column,
                hint="Store text columns as strings",
            ) from e
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        try:
            lists = col.cast(pa.list_(pa.string()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DataError(
                "the column holds nested lists that cannot be read as text",
                file=file,
                column=column,
                hint="Store it as a space-separated string",
            ) from e
        out = pc.binary_join(lists, " ")
    else:
        raise DataError(
            f"the column holds nested values ({t}) that cannot be read as text",
            file=file,
            column=column,
            hint="Flatten it into plain columns",
        )
    return pc.fill_null(out, "")


def _float_text(f: pa.ChunkedArray) -> pa.ChunkedArray:
    """float64 -> text, integer-valued numbers without ".0" or exponent; NaN -> null."""
    f = pc.if_else(pc.is_nan(f), pa.scalar(None, pa.float64()), f)
    # Below 2**53 every integer-valued float is exact, so the int64 text is the value.
    integral = pc.and_(pc.equal(pc.floor(f), f), pc.less_equal(pc.abs(f), float(2**53)))
    as_int = pc.cast(pc.if_else(integral, f, 0.0), pa.int64()).cast(pa.string())
    return pc.if_else(integral, as_int, pc.cast(f, pa.string()))


def clean_ids(
    col: pa.ChunkedArray, *, file: str | None, column: str, lines: RowLines, twins: bool = False
) -> Any:
    """Ids as trimmed strings ("001" stays "001", 1.0 becomes "1").

    Surrounding spaces are removed because "1, 2, 5" style files would otherwise make
    " 2" and "2" different items.

    Args:
        twins: also look for ids written in two Unicode forms
            (:func:`unicode_twin_ids`).

    Returns:
        Series of dtype str, shape (n_rows,); with ``twins``, (that Series, the
        ``unicode_twin_ids`` warning or None).

    Raises:
        DataError: naming the lines with blank or missing ids.
    """
    raw = as_text(col, file=file, column=column)
    # One pass tells whether every id is ASCII (almost always): then the cheaper ASCII
    # trim gives the same result, and no id can have a Unicode twin.
    ascii_only = len(raw) == 0 or bool(pc.all(pc.string_is_ascii(raw)).as_py())
    text = pc.ascii_trim_whitespace(raw) if ascii_only else pc.utf8_trim_whitespace(raw)
    del raw
    blank = pc.equal(pc.binary_length(text), 0)
    if pc.any(blank).as_py():
        idx = _first_true(blank)
        n = pc.sum(blank).as_py()
        raise DataError(
            f"{n:,} row{'s have' if n > 1 else ' has'} a blank id",
            file=file,
            column=column,
            rows=lines(idx),
            hint="Every row needs an id; fill in or delete these rows",
        )
    out = text.to_pandas().astype("str")
    if twins:
        twin = None if ascii_only else unicode_twin_ids(text, file=file, column=column, lines=lines)
        return out, twin
    return out


def unicode_twin_ids(
    ids: pa.ChunkedArray, *, file: str | None, column: str, lines: RowLines
) -> DataWarning | None:
    """A warning when one id is written in two Unicode forms (NFC and NFD), else None.

    "José" typed on one system (é as one code point, NFC) and exported by another (e +
    combining accent, NFD) look identical but are different strings, so they become two
    users or items. Ids are **kept as given**, not normalised: an id is a key into the
    user's own systems, and recommendations, split folders and exports must give back
    exactly the bytes that came in; and two spellings may be two real entities in a
    system that does not normalise. The analyst is told instead, with both spellings
    (escaped, so the difference is visible) and the line of each, and fixes the export.

    Cost: one pass to find non-ASCII ids (almost always none); the Unicode work runs only
    on distinct non-ASCII ids.

    Args:
        ids: the trimmed id column (UTF-8 strings), one value per data row.
        lines: maps 0-based rows to file lines.

    Returns:
        ``DataWarning("unicode_twin_ids", ...)`` with up to five "'a' = 'b'" examples.
    """
    import unicodedata

    if len(ids) == 0 or pc.all(pc.string_is_ascii(ids)).as_py() is not False:
        return None
    distinct = pc.unique(pc.filter(ids, pc.invert(pc.string_is_ascii(ids)))).to_pylist()
    by_nfc: dict[str, list[str]] = {}
    for v in distinct:
        by_nfc.setdefault(unicodedata.normalize("NFC", v), []).append(v)
    groups = [g for g in by_nfc.values() if len(g) > 1]
    if not groups:
        return None
    first = groups[0]
    rows = [pc.index(ids, v).as_py() for v in first[:2]]
    where = [lines(np.array([r]))[0] for r in rows]

    def shown(v: str) -> str:
        return f"'{v}' ({ascii(v)[1:-1]})"

    n = sum(len(g) for g in groups)
    loc = f" of '{file}'" if file else ""
    return DataWarning(
        "unicode_twin_ids",
        f"{count_noun(len(groups), 'id')} in column '{column}'{loc} "
        f"{'is' if len(groups) == 1 else 'are'} written in more than one Unicode form "
        f"(NFC and NFD) and count{'s' if len(groups) == 1 else ''} as {n} different ids: "
        f"{shown(first[0])} on line {where[0]:,} and {shown(first[1])} on line {where[1]:,} "
        "look the same but are different text. Ids are kept as given; normalise them to "
        "NFC in the export if they are the same",
        len(groups),
        tuple(" = ".join(ascii(v) for v in g[:2]) for g in groups[:5]),
    )


def parse_ratings(
    col: pa.ChunkedArray,
    *,
    file: str | None,
    column: str,
    lines: RowLines,
    decimal_comma: bool = False,
) -> np.ndarray:
    """Ratings as finite float64 numbers.

    Args:
        decimal_comma: also accept "4,5" (files with ';' or tab delimiters written with
            a European locale).

    Returns:
        float64 array of shape (n_rows,).

    Raises:
        DataError: naming the lines whose rating is blank, not a number, NaN or infinite.
    """
    t = col.type
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
    ):
        values = col.cast(pa.float64()).to_numpy()
        raw = None
    else:
        raw = pc.utf8_trim_whitespace(as_text(col, file=file, column=column))
        try:
            values = pc.cast(raw, pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            # Slow path, only when something is not a number: find which.
            s = pd.Series(raw.to_pandas(), dtype=object)
            values = np.array(pd.to_numeric(s, errors="coerce"), dtype=np.float64)
            if decimal_comma:
                comma = np.isnan(values) & s.str.fullmatch(r"[+-]?\d+,\d+").fillna(False).to_numpy(
                    dtype=bool
                )
                if comma.any():
                    values[comma] = pd.to_numeric(
                        s[comma].str.replace(",", ".", regex=False)
                    ).to_numpy()
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        idx = np.flatnonzero(bad)
        n = len(idx)
        shown = _examples(raw, idx) if raw is not None else ["missing"]
        raise DataError(
            f"{n:,} rating{'s are' if n > 1 else ' is'} not a finite number (found {', '.join(shown)})",
            file=file,
            column=column,
            rows=lines(idx[:MAX_OFFENDERS]),
            hint="Ratings must be numbers such as 4 or 3.5; fix these rows, or map no rating column to treat the data as implicit feedback",
        )
    return values


def parse_timestamps(
    col: pa.ChunkedArray, *, file: str | None, column: str, lines: RowLines
) -> np.ndarray:
    """Timestamps as int64 seconds since the epoch (UTC).

    Accepts date/time columns, numeric epoch values and ISO-like date strings; dates
    without a zone are taken as UTC; sub-second parts are dropped. Numbers are seconds,
    except that each value above 1e11 (the year 5138 in seconds, so no real event) is
    read as milliseconds, above 1e14 as microseconds and above 1e17 as nanoseconds.
    The unit is decided per value, not per column, so that one typo with extra digits
    cannot silently shift a whole column of seconds back to 1970.

    Returns:
        int64 array of shape (n_rows,).

    Raises:
        DataError: naming the lines whose timestamp is blank, unparseable or out of range.
    """
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        ts = col.cast(pa.timestamp("s", tz=getattr(t, "tz", None)), safe=False)
        secs = ts.cast(pa.int64())
        bad = pc.is_null(secs).to_numpy(zero_copy_only=False)
        return _finish_seconds(
            secs.fill_null(0).to_numpy().astype(np.int64), bad, None, file, column, lines
        )
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = col.cast(pa.float64()).to_numpy() if not pa.types.is_integer(t) else None
        if values is None:
            ints = col.cast(pa.int64())
            bad = pc.is_null(ints).to_numpy(zero_copy_only=False)
            return _finish_seconds(
                _scale_ints(ints.fill_null(0).to_numpy()), bad, None, file, column, lines
            )
        secs, bad = _scale_floats(values)
        return _finish_seconds(secs, bad, None, file, column, lines)

    # Integers first, as they are and then trimmed: a trimmed copy of a column that
    # needs none was a column-sized copy for nothing (issue 13).
    text = as_text(col, file=file, column=column)
    ints = _cast_int64(text)
    raw = text if ints is not None else pc.utf8_trim_whitespace(text)
    if ints is None:
        ints = _cast_int64(raw)
    if ints is not None:
        return _finish_seconds(
            _scale_ints(ints), np.zeros(len(ints), bool), raw, file, column, lines
        )
    s = pd.Series(raw.to_pandas(), dtype=object)
    numbers = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    nonblank = (s.str.len() > 0).to_numpy(dtype=bool)
    numeric = ~np.isnan(numbers)
    if nonblank.any() and numeric.sum() * 2 >= nonblank.sum():
        # Mostly numbers: an epoch column with some garbage; the garbage is the error.
        secs, bad = _scale_floats(numbers)
        return _finish_seconds(secs, bad, raw, file, column, lines)
    dt = pd.to_datetime(s, format="ISO8601", utc=True, errors="coerce")
    left = dt.isna().to_numpy() & nonblank & ~numeric
    if left.any():
        # Other date layouts ("2001/03/05", "March 5, 2001") through dateutil, but only
        # strings with a four-digit year: dateutil gives a bare time ("10:00") today's
        # date, which would load the same file differently on every day.
        cand = left & s.str.contains(r"\d{4}", regex=True).fillna(False).to_numpy(dtype=bool)
        if cand.any():
            dt[cand] = pd.to_datetime(s[cand], format="mixed", utc=True, errors="coerce")
    bad = dt.isna().to_numpy()
    secs = np.zeros(len(s), dtype=np.int64)
    ok = ~bad
    if ok.any():
        secs[ok] = ((dt[ok] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "s")).to_numpy(
            dtype=np.int64
        )
    return _finish_seconds(secs, bad, raw, file, column, lines)


def _divisors(magnitude: np.ndarray) -> np.ndarray:
    """Per value: 1 for seconds, 10**3 / 10**6 / 10**9 for milli-, micro-, nanoseconds."""
    div = np.ones(len(magnitude), dtype=np.int64)
    # Smallest threshold first, so that larger magnitudes overwrite with larger divisors.
    for threshold, d, _ in reversed(_UNIT_THRESHOLDS):
        div[magnitude > threshold] = d
    return div


def _cast_int64(text: pa.ChunkedArray) -> np.ndarray | None:
    """The column as int64, chunk by chunk into one array (no joined copy); None when a
    value is not an integer."""
    out = np.empty(len(text), dtype=np.int64)
    at = 0
    try:
        for chunk in text.chunks:
            out[at : at + len(chunk)] = pc.cast(chunk, pa.int64()).to_numpy()
            at += len(chunk)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return out


def _scale_ints(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64, copy=False)
    if len(v) and -_UNIT_THRESHOLDS[-1][0] <= v.min() and v.max() <= _UNIT_THRESHOLDS[-1][0]:
        # Every value is seconds (the usual column): no divisor and none of the
        # column-sized temporaries below, which were most of a big file's peak while
        # its timestamps were read (issue 13).
        return v
    # abs() of int64 min overflows; as float it is only a magnitude, which is all we need.
    return np.floor_divide(v, _divisors(np.abs(v.astype(np.float64))))


def _scale_floats(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float epoch values -> (int64 seconds, bad mask). Non-finite values are bad."""
    v = np.asarray(v, dtype=np.float64)
    finite = np.isfinite(v)
    safe = np.where(finite, v, 0.0)
    safe = safe / _divisors(np.abs(safe))
    in_range = finite & (np.abs(safe) <= _MAX_ABS_SECONDS)
    secs = np.zeros(len(v), dtype=np.int64)
    secs[in_range] = np.floor(safe[in_range]).astype(np.int64)
    return secs, ~in_range


def _finish_seconds(
    secs: np.ndarray,
    bad: np.ndarray,
    raw: pa.ChunkedArray | None,
    file: str | None,
    column: str,
    lines: RowLines,
) -> np.ndarray:
    if len(secs) and not (-_MAX_ABS_SECONDS <= secs.min() and secs.max() <= _MAX_ABS_SECONDS):
        bad = bad | (np.abs(secs) > _MAX_ABS_SECONDS)
    if bad.any():
        idx = np.flatnonzero(bad)
        n = len(idx)
        shown = _examples(raw, idx) if raw is not None else ["missing"]
        raise DataError(
            f"{n:,} timestamp{'s' if n > 1 else ''} could not be read (found {', '.join(shown)})",
            file=file,
            column=column,
            rows=lines(idx[:MAX_OFFENDERS]),
            hint="Use epoch seconds (or milliseconds) or ISO dates such as 2021-03-05 or 2021-03-05T14:30:00",
        )
    return secs.astype(np.int64, copy=False)


# --------------------------------------------------------------------------- domain level


def factorize_ids(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(integer codes, distinct ids) in first-appearance order, like ``pd.factorize``
    (int32 codes from Arrow: half the memory of int64).

    Arrow's hash kernel on the column's own buffers: about 5x faster than
    ``pd.factorize`` on pandas' Arrow-backed strings, and without its copies.
    """
    try:
        arr = pa.array(ids)
        if arr.null_count:
            raise ValueError("missing ids")
        # Chunks share the final dictionary (one memo table across chunks): no copy of
        # the ids into one chunk is needed.
        enc = pc.dictionary_encode(arr)
        if isinstance(enc, pa.ChunkedArray):
            chunks = enc.chunks
            if not chunks:
                return np.zeros(0, np.int32), pd.Index([], dtype=ids.dtype)
            codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
            dictionary = chunks[-1].dictionary
        else:
            codes = enc.indices.to_numpy(zero_copy_only=False)
            dictionary = enc.dictionary
        return codes, pd.Index(dictionary.to_pandas(), dtype=ids.dtype)
    except (pa.ArrowException, TypeError, ValueError):
        c, u = pd.factorize(ids)
        return c, pd.Index(u)


@dataclass(frozen=True)
class IdCodes:
    """Each interaction's user and item as a dense code (first-appearance order), made
    once per domain and reused by the merge, the warnings and the summary: hashing
    millions of string ids is most of what loading a big file costs (issue 13).

    Attributes:
        user, item: integer arrays of shape (n_rows,), codes into ``users`` / ``items``.
        users, items: the distinct ids, in first-appearance order.
    """

    user: np.ndarray
    item: np.ndarray
    users: pd.Index
    items: pd.Index

    @classmethod
    def of(cls, df: pd.DataFrame) -> IdCodes:
        u, users = factorize_ids(df[USER])
        i, items = factorize_ids(df[ITEM])
        return cls(u, i, users, items)

    def take(self, rows: np.ndarray) -> IdCodes:
        """The codes of a subset of rows that still holds every id (e.g. after merging)."""
        return IdCodes(self.user[rows], self.item[rows], self.users, self.items)


def take_sorted_rows(col: pd.Series, rows: np.ndarray) -> pd.Series:
    """``col.take(rows)`` with a fresh RangeIndex, for ascending ``rows``.

    A column backed by a chunked Arrow array (the reader's text ids: one chunk per
    16 MiB parse block) is taken chunk by chunk. pandas' ``take`` joins the chunks into
    one array first and then takes from it, two copies of the column at once: +418 MiB
    for the user ids of a 250 MB file, against +213 MiB here, and 0.8 s against 0.09 s
    (issue 13).
    """
    to_arrow = getattr(col.array, "__arrow_array__", None)
    chunked = to_arrow() if to_arrow is not None else None
    if not isinstance(chunked, pa.ChunkedArray) or chunked.num_chunks < 2:
        return col.take(rows).reset_index(drop=True)
    bounds = np.cumsum([0, *(len(c) for c in chunked.chunks)])
    cuts = np.searchsorted(rows, bounds)
    pieces = [
        chunk.take(pa.array(rows[cuts[k] : cuts[k + 1]] - bounds[k]))
        for k, chunk in enumerate(chunked.chunks)
    ]
    values = pd.array(pa.chunked_array(pieces, type=chunked.type), dtype=col.dtype)
    return pd.Series(values, name=col.name)


def merge_duplicates(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Merge repeated (user_id, item_id) interactions into one row each.

    The merged row keeps the **highest rating** and the **earliest timestamp**:

    * earliest time, because from that moment on the user knew the item; a later copy
      would let a temporal split put the item in test although the user met it in the
      training period (leakage), and would move the user's history forward in time;
    * highest rating, because repeats are re-consumption or re-rating, and (on data
      keyed by title) distinct items that collide; the strongest stated preference keeps
      a positive a positive under ``min_rating`` thresholds, and the choice does not
      depend on row order.

    Row order: each pair stays where it first appeared.

    Args:
        df: canonical interactions (user_id, item_id, rating, optional timestamp).

    Returns:
        (merged frame with a fresh RangeIndex, number of rows merged away).
    """
    out, n, _, _ = merge_with_codes(df)
    return out, n


def merge_with_codes(
    df: pd.DataFrame, codes: IdCodes | None = None, k_examples: int = 5, consume: bool = False
) -> tuple[pd.DataFrame, int, list[str], IdCodes]:
    """:func:`merge_duplicates` on the ids' codes, hashing each id column once.

    Args:
        consume: the caller hands ``df`` over: its columns are removed as the merged
            frame is built (less memory; ``df`` is left without columns when rows were
            merged).

    Returns:
        (merged frame, rows merged away, up to ``k_examples`` repeated pairs as
        "user -> item" strings, the merged frame's :class:`IdCodes`).
    """
    if codes is None:
        codes = (
            IdCodes.of(df)
            if len(df)
            else IdCodes(np.zeros(0, np.int64), np.zeros(0, np.int64), pd.Index([]), pd.Index([]))
        )
    if len(df) == 0:
        return df, 0, [], codes
    import scipy.sparse as sp  # here: reading a table without merging never pays for it

    n_rows = len(df)
    n_items = max(len(codes.items), 1)
    # Repeated pairs found without hashing every pair: a sparse count matrix (a counting
    # sort by user, then each user's few items sorted) sums repeats into one entry. On
    # 10 M rows this is 4x faster than pd.factorize of the pair keys and needs a fraction
    # of its memory (issue 13).
    counts = sp.csr_matrix(
        (np.ones(n_rows, np.int32), (codes.user, codes.item)),
        shape=(max(len(codes.users), 1), n_items),
    )
    n = n_rows - counts.nnz
    if n == 0:
        return df, 0, [], codes
    rep = np.flatnonzero(counts.data > 1)
    rep_users = np.repeat(np.arange(counts.shape[0], dtype=np.int64), np.diff(counts.indptr))[rep]
    rep_keys = rep_users * n_items + counts.indices[rep]
    del counts, rep_users
    key = codes.user.astype(np.int64) * n_items + codes.item
    # Only the rows of repeated pairs take part in what follows.
    involved = np.flatnonzero(pd.Series(key).isin(rep_keys).to_numpy())
    sub_key = key[involved]
    del key
    sub_first = ~pd.Series(sub_key).duplicated(keep="first").to_numpy()
    keep = np.ones(n_rows, dtype=bool)
    keep[involved[~sub_first]] = False
    first = np.flatnonzero(keep)
    del keep
    # Examples in the order their first repeat appears in the file.
    shown = pd.unique(sub_key[~sub_first])[:k_examples]
    examples = [f"{codes.users[k // n_items]} -> {codes.items[k % n_items]}" for k in shown]
    kept_key = sub_key[sub_first]  # one per repeated pair, at its first row
    kept_involved = np.searchsorted(first, involved[sub_first])
    # The aggregates come from the original rows, read before the columns are taken.
    best = earliest = None
    if RATING in df.columns:
        r = df[RATING].to_numpy(dtype=np.float64)[involved]
        best = pd.Series(r).groupby(sub_key, sort=False).max().reindex(kept_key)
    if TIME in df.columns:
        t = df[TIME].to_numpy(dtype=np.int64)[involved]
        earliest = pd.Series(t).groupby(sub_key, sort=False).min().reindex(kept_key)
    # Column by column; with ``consume`` each original column is dropped once taken, so
    # the peak holds one column twice, not the whole frame (issue 13).
    taken: dict[str, Any] = {}
    for c in list(df.columns):
        col = df.pop(c) if consume else df[c]
        taken[c] = take_sorted_rows(col, first)
        del col
        if consume:
            # A text column's old buffers go back to Arrow's pool, which keeps them;
            # handed back to the system here, the next column's copy does not stack on
            # them (validate 250 MB: peak 1,251 -> 1,091 MiB; issue 13).
            pa.default_memory_pool().release_unused()
    out = pd.DataFrame(taken, copy=False)
    out.attrs = dict(df.attrs)
    del taken
    if best is not None:
        col = out[RATING].to_numpy(dtype=np.float64, copy=True)
        col[kept_involved] = best.to_numpy(dtype=np.float64)
        out[RATING] = col
    if earliest is not None:
        col = out[TIME].to_numpy(dtype=np.int64, copy=True)
        col[kept_involved] = earliest.to_numpy(dtype=np.int64)
        out[TIME] = col
    return out, n, examples, codes.take(first)


def duplicate_pairs(df: pd.DataFrame, k: int = 5) -> list[str]:
    """Up to k repeated (user, item) pairs as "user -> item" strings, for messages."""
    dup = df.duplicated([USER, ITEM], keep="first")
    if not dup.any():
        return []
    pairs = df.loc[dup, [USER, ITEM]].drop_duplicates().head(k)
    return [f"{u} -> {i}" for u, i in zip(pairs[USER], pairs[ITEM])]


def drop_duplicate_keys(
    df: pd.DataFrame, key: str, *, file: str | None, what: str
) -> tuple[pd.DataFrame, DataWarning | None]:
    """Keep the first row per ``key`` in an item or user table (schema: one row per id).

    Returns:
        (table, warning or None).
    """
    dup = df[key].duplicated(keep="first")
    n = int(dup.sum())
    if n == 0:
        return df, None
    examples = tuple(pd.unique(df.loc[dup, key])[:5].tolist())
    where = f" in '{file}'" if file else ""
    w = DataWarning(
        code=f"duplicate_{what}_rows",
        message=f"{count_noun(n, f'repeated {what} id')}{where}: kept the first row of each",
        count=n,
        examples=examples,
    )
    return df.loc[~dup].reset_index(drop=True), w


def interaction_warnings(
    df: pd.DataFrame,
    *,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    n_merged: int = 0,
    merged_examples: Sequence[str] = (),
    codes: IdCodes | None = None,
) -> list[DataWarning]:
    """What is odd but usable in a domain's interactions.

    Args:
        df: canonical interactions, duplicates already merged.
        items, users: the optional side tables (one row per id).
        n_merged: rows removed by :func:`merge_duplicates`.
        merged_examples: a few "user -> item" strings for the duplicate warning.
        codes: ``df``'s :class:`IdCodes` when the caller has them (saves hashing the ids).

    Returns:
        Warnings with codes ``implausible_ratings``, ``duplicate_interactions``,
        ``single_interaction_users``,
        ``single_interaction_items``, ``items_missing_from_item_table`` and
        ``users_missing_from_user_table``, only those that apply.
    """
    out: list[DataWarning] = []
    if codes is None:
        codes = IdCodes.of(df)
    ratings = implausible_ratings(df)
    if ratings is not None:
        out.append(ratings)
    if n_merged:
        out.append(
            DataWarning(
                "duplicate_interactions",
                f"{count_noun(n_merged, 'repeated (user, item) interaction')} "
                f"{'was' if n_merged == 1 else 'were'} merged, keeping the "
                "highest rating and the earliest timestamp",
                n_merged,
                tuple(merged_examples[:5]),
            )
        )
    for c, uniques, what in (
        (codes.user, codes.users, "users"),
        (codes.item, codes.items, "items"),
    ):
        counts = pd.Series(np.bincount(c, minlength=len(uniques)), index=uniques)
        single = counts.index[counts.to_numpy() == 1]
        if len(single):
            out.append(
                DataWarning(
                    f"single_interaction_{what}",
                    f"{len(single):,} of {count_noun(len(counts), what[:-1])} "
                    f"{'has' if len(single) == 1 else 'have'} a single interaction "
                    "(too few to both train and test on)",
                    len(single),
                    tuple(map(str, single[:5])),
                )
            )
    for table, col, what in ((items, ITEM, "item"), (users, USER, "user")):
        if table is None:
            continue
        ids = np.asarray(codes.users if col == USER else codes.items, dtype=object)
        missing = ids[~pd.Series(ids).isin(table[col]).to_numpy()]
        if len(missing):
            out.append(
                DataWarning(
                    f"{what}s_missing_from_{what}_table",
                    f"{len(missing):,} of {count_noun(len(ids), what)} in the interactions "
                    f"{'has' if len(missing) == 1 else 'have'} no row in the {what} table"
                    + (" (they get their id as text)" if what == "item" else ""),
                    len(missing),
                    tuple(map(str, missing[:5])),
                )
            )
    return out


RATING_MAX_PLAUSIBLE = 1e6
"""Ratings above this are flagged: no rating scale or count of plays reaches it, while
unit mix-ups (prices in cents, timestamps in the rating column) and 1e308 do."""


def implausible_ratings(df: pd.DataFrame, *, row_numbers: bool = False) -> DataWarning | None:
    """A warning naming the rows whose rating is negative, above
    :data:`RATING_MAX_PLAUSIBLE` or infinite; None when every rating is plausible.

    Blank (NaN) ratings are implicit feedback, not flagged. Such ratings parse and train,
    but a single 1e308 dominates every rating-weighted loss and every mean: they are
    almost always a mistake in the export.

    Args:
        df: canonical interactions (user_id, item_id, rating).
        row_numbers: ``df`` is in file order (one row per data row, as read, before
            duplicates are merged): name the rows by number too ("row 3", header not
            counted).

    Returns:
        ``DataWarning("implausible_ratings", ...)`` with up to five examples such as
        "row 3: u1 -> i9 = -3".
    """
    if RATING not in df.columns or len(df) == 0:
        return None
    r = df[RATING].to_numpy(dtype=np.float64)
    bad = (r < 0) | (r > RATING_MAX_PLAUSIBLE) | np.isinf(r)
    idx = np.flatnonzero(bad)
    if len(idx) == 0:
        return None
    n = len(idx)
    shown = idx[:5]
    examples = tuple(
        ("row " + f"{int(i) + 1:,}: " if row_numbers else "")
        + f"{df[USER].iloc[i]} -> {df[ITEM].iloc[i]} = {r[i]:g}"
        for i in shown
    )
    where = ""
    if row_numbers:
        rows = ", ".join(f"{int(i) + 1:,}" for i in idx[:MAX_OFFENDERS])
        more = f" and {n - MAX_OFFENDERS:,} more" if n > MAX_OFFENDERS else ""
        where = f" (data row{'s' if n > 1 else ''} {rows}{more})"
    return DataWarning(
        "implausible_ratings",
        f"{n:,} rating{'s are' if n > 1 else ' is'} outside the plausible range 0 to "
        f"{RATING_MAX_PLAUSIBLE:,.0f}{where}; check the rating column",
        n,
        examples,
    )


# --------------------------------------------------------------------------- helpers


def _first_true(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """0-based positions of the first MAX_OFFENDERS true values of a boolean array."""
    arr = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return np.flatnonzero(arr)[:MAX_OFFENDERS]


def _examples(raw: pa.ChunkedArray | None, idx: np.ndarray, k: int = 3) -> list[str]:
    """Up to k distinct offending values, quoted and shortened, for the message."""
    if raw is None:
        return []
    vals = raw.take(pa.array(idx[:50])).to_pylist()
    seen: list[str] = []
    for v in vals:
        r = repr(v if len(v) <= 30 else v[:27] + "...") if v else "a blank"
        if r not in seen:
            seen.append(r)
        if len(seen) == k:
            break
    return seen
