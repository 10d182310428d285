"""Bytes to a raw table: Parquet, or delimited text (comma, tab, semicolon or pipe,
sniffed; RecBole atomic files), possibly compressed.

The result is a :class:`Parsed`: every column as text, with the display names of the
header and a way to find a row's 1-based line in the file for messages. Which column
plays which role is decided afterwards (:mod:`recsys_core.data.columns`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recsys_core.data import validation as V
from recsys_core.data.encoding import decode_text
from recsys_core.data.sources import (
    Limits,
    MiB,
    compression_of,
    decompress,
    decompressed_limit,
    human_bytes,
    short_text,
)
from recsys_core.errors import DataError, DataWarning

RECBOLE_SUFFIX = re.compile(r"^(.*\S)\s*:\s*(token|token_seq|float|float_seq)$", re.IGNORECASE)
_RECBOLE_EXTS = (".inter", ".item", ".user")


@dataclass
class Parsed:
    """A raw table before roles are applied: columns c0..cn-1 plus display names."""

    table: pa.Table
    names: list[str]
    lines: V.RowLines
    info: dict[str, Any] = field(default_factory=dict)
    decimal_comma: bool = False
    warnings: list[DataWarning] = field(default_factory=list)


def parse_bytes(data: bytes, *, file: str, ext: str, limits: Limits, depth: int) -> Parsed:
    compressed = compression_of(data)
    if compressed is not None:
        kind, opener = compressed
        if depth >= 2:
            raise DataError(
                "the file is compressed more than twice", file=file, hint="Decompress it first"
            )
        inner = decompress(data, kind, opener, file, limits)
        inner_ext = re.sub(r"\.(gz|gzip|bz2|xz)$", "", ext)
        parsed = parse_bytes(inner, file=file, ext=inner_ext, limits=limits, depth=depth + 1)
        parsed.info["compression"] = (
            kind if depth == 0 else f"{kind}+{parsed.info.get('compression')}"
        )
        return parsed
    if data[:4] == b"PAR1":
        return _parse_parquet(data, file, limits)
    return _parse_text(data, file, ext, limits)


def _parse_parquet(data: bytes, file: str, limits: Limits) -> Parsed:
    try:
        table = read_parquet_bounded(data, file, limits)
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError, KeyError) as e:
        raise DataError(
            f"this is not a readable Parquet file; it may be truncated or damaged ({short_text(e)})",
            file=file,
            hint="Export it again",
        ) from e
    keep = [
        i for i, n in enumerate(table.column_names) if not re.fullmatch(r"__index_level_\d+__", n)
    ]
    table = table.select(keep)
    names = list(table.column_names)
    table = table.rename_columns([f"c{i}" for i in range(len(names))])
    return Parsed(table, names, _plain_lines, {"format": "parquet", "compression": None})


_PARQUET_BATCH_ROWS = 256 * 1024
"""Rows decoded at a time: memory is checked after each batch, so one batch is the most
a file can overshoot the limit by (a few MiB for interaction tables)."""


def read_parquet_bounded(data: bytes, file: str, limits: Limits) -> pa.Table:
    """A Parquet file's table, read within ``limits`` (issue 12: a small Parquet file can
    declare or expand to a huge table).

    Before any value is decoded, the footer is checked: the number of rows
    (``max_rows``), of columns (``max_columns``) and the uncompressed size of every row
    group together (``max_decompressed_bytes``, ``max_file_bytes``). The values are then
    decoded row group by row group, in batches, and the decoded size is added up as it
    grows: a file whose footer understates it (a dictionary page of one long string
    repeated by millions of rows) is stopped one batch past the limit, not after
    expanding in full.

    Raises:
        DataError: naming the limit and how to raise it (``Limits`` field and environment
            variable); pyarrow errors of a damaged file are left to the caller.
    """
    import pyarrow.parquet as pq  # imported here: only Parquet uploads pay for it

    pf = pq.ParquetFile(pa.BufferReader(data))
    md = pf.metadata
    V.check_column_count(
        max(md.num_columns, len(pf.schema_arrow)), max_columns=limits.max_columns, file=file
    )
    if md.num_rows > limits.max_rows:
        V.check_row_count(md.num_rows, max_rows=limits.max_rows, file=file)
    limit, how = decompressed_limit(limits)
    declared = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    if declared > limit:
        raise DataError(
            f"the Parquet file declares {human_bytes(declared)} of uncompressed data, more "
            f"than the limit of {human_bytes(limit)} (nothing was read; it is "
            f"{human_bytes(len(data))} on disk)",
            file=file,
            hint=f"Sample the data, or raise the limit: {how}",
        )
    # Text columns are read as dictionary arrays and their decoded size computed from
    # the dictionary's lengths before they are expanded: a dictionary page holding one
    # long string, repeated by run-length encoded indices, is how a few KiB of Parquet
    # become gigabytes of text.
    text = [
        f.name
        for f in pf.schema_arrow
        if pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
        or pa.types.is_binary(f.type)
        or pa.types.is_large_binary(f.type)
    ]
    if text:
        pf = pq.ParquetFile(pa.BufferReader(data), read_dictionary=text)
    batches: list[pa.RecordBatch] = []
    decoded = rows = 0
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS, use_threads=True):
        decoded += _decoded_bytes(batch)
        rows += batch.num_rows
        if decoded > limit:
            raise DataError(
                f"the Parquet file expands to more than the limit of {human_bytes(limit)} when "
                f"decoded (reading stopped there, after {rows:,} rows; it is "
                f"{human_bytes(len(data))} on disk and declared {human_bytes(declared)})",
                file=file,
                hint=f"Sample the data, or raise the limit: {how}",
            )
        if rows > limits.max_rows:  # the footer's count was wrong
            V.check_row_count(rows, max_rows=limits.max_rows, file=file)
        batches.append(batch)
    if not batches:
        return pf.schema_arrow.empty_table()
    table = pa.Table.from_batches(batches)
    del batches
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):  # within the limit: expand
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    return table


def _decoded_bytes(batch: pa.RecordBatch) -> int:
    """Bytes the batch takes once dictionary columns are expanded (plain columns: their
    buffers; dictionary columns: the lengths of the values their indices point to)."""
    total = 0
    for col in batch.columns:
        if pa.types.is_dictionary(col.type):
            lengths = pc.binary_length(col.dictionary).cast(pa.int64())
            n = pc.sum(lengths.take(col.indices)).as_py() or 0
            total += n + 4 * (len(col) + 1) + col.indices.nbytes
        else:
            total += col.get_total_buffer_size()
    return total


def parse_dataframe(df: pd.DataFrame, file: str) -> Parsed:
    names = [str(c) for c in df.columns]
    arrays = []
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        try:
            arrays.append(pa.chunked_array([pa.array(col, from_pandas=True)]))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            # Mixed Python objects in one column: read each as its text.
            text = col.map(
                lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            )
            arrays.append(pa.chunked_array([pa.array(text.tolist(), pa.string())]))
    if not arrays:
        raise DataError("the table has no columns", file=file)
    table = pa.table(arrays, names=[f"c{i}" for i in range(len(names))])
    return Parsed(table, names, _plain_lines, {"format": "dataframe", "compression": None})


def _plain_lines(rows: np.ndarray) -> list[int]:
    """Tables without lines (Parquet, DataFrames): numbered as in a CSV export, header = 1."""
    return [int(r) + 2 for r in np.asarray(rows)]


def _parse_text(data: bytes, file: str, ext: str, limits: Limits) -> Parsed:
    warnings: list[DataWarning] = []
    body, encoding = decode_text(data, file)
    if encoding in ("cp1252", "latin-1"):
        warnings.append(
            DataWarning(
                "encoding_fallback",
                f"'{file}' is not UTF-8; it was read as {'Windows-1252' if encoding == 'cp1252' else 'Latin-1'}",
            )
        )
    # The delimiter is sniffed from the first 64 KiB, or from the whole header line and
    # 64 KiB after it when the header is longer (thousands of columns): a header cut in
    # the middle counts too few fields, and the header is then "a row with too many".
    line_end = _first_line_end(body, file)
    sniff_end = _SNIFF_BYTES if line_end < _SNIFF_BYTES else line_end + 1 + _SNIFF_BYTES
    head = body[:sniff_end].decode("utf-8", errors="ignore")
    V.check_text_start(head, file=file)
    recbole = ext.endswith(_RECBOLE_EXTS) or _looks_recbole(head)
    delimiter, n_fields = _sniff(head, complete=len(body) <= sniff_end, recbole=recbole)
    V.check_column_count(n_fields, max_columns=limits.max_columns, file=file)
    table, names, lines = _read_delimited(body, file, delimiter, n_fields, limits)
    fmt = "recbole" if recbole else {",": "csv", "\t": "tsv"}.get(delimiter, "delimited")
    info = {"format": fmt, "compression": None, "encoding": encoding, "delimiter": delimiter}
    return Parsed(
        table, names, lines, info, decimal_comma=delimiter in (";", "\t", "|"), warnings=warnings
    )


_SNIFF_BYTES = 64 * 1024
MAX_HEADER_BYTES = 1 * MiB
"""Longest header line read: a few thousand column names. Past it, the file is almost
certainly not a table with a header line (one long line of data, binary, or a line
ending this reader does not split on)."""
_LINE_END = re.compile(rb"[\r\n]")


def _first_line_end(body: bytes, file: str) -> int:
    """Offset of the end of the header line (len(body) for a one-line file)."""
    m = _LINE_END.search(body, 0, MAX_HEADER_BYTES + 1)
    if m is not None:
        return m.start()
    if len(body) > MAX_HEADER_BYTES:
        raise DataError(
            f"the first line is longer than {MAX_HEADER_BYTES // MiB} MiB; a table's first "
            "line is a header naming its columns",
            file=file,
            rows=[1],
            hint="Check that the file is a CSV/TSV table with one header line and a line "
            "break after each row",
        )
    return len(body)


def _looks_recbole(head: str) -> bool:
    first = head.split("\n", 1)[0].rstrip("\r")
    return "\t" in first and any(RECBOLE_SUFFIX.match(f) for f in first.split("\t"))


_DELIMITERS = (",", "\t", ";", "|")


def _sniff(head: str, *, complete: bool, recbole: bool) -> tuple[str, int]:
    """(delimiter, number of header fields) from the first 64 KiB of text.

    Each candidate is parsed with the csv module (quotes respected); the winner has at
    least two header fields and the most rows with the header's field count.
    """
    sample = head if complete else head[: head.rfind("\n") + 1] or head
    best: tuple[tuple[bool, float, int], str, int] | None = None
    for d in ("\t",) if recbole else _DELIMITERS:
        try:
            rows = list(islice(csv.reader(io.StringIO(sample, newline=""), delimiter=d), 200))
        except csv.Error:
            continue
        rows = [r for r in rows if r and any(x.strip() for x in r)]
        if not rows:
            continue
        n = len(rows[0])
        body = rows[1:]
        consistency = sum(len(r) == n for r in body) / len(body) if body else 1.0
        score = (n >= 2, consistency, n)
        if best is None or score > best[0]:
            best = (score, d, n)
    if best is None:
        return ("\t" if recbole else ","), 1
    return best[1], best[2]


def _read_delimited(
    body: bytes, file: str, delimiter: str, n_fields: int, limits: Limits
) -> tuple[pa.Table, list[str], V.RowLines]:
    """All fields as text with pyarrow; the header is read as row 0 so that it is
    parsed exactly like the data, and internal names c0.. avoid clashes."""
    names = [f"c{i}" for i in range(n_fields)]
    invalid: list[tuple[int | None, int, bool]] = []
    blank_records: list[int] = []

    def on_invalid(row: Any) -> str:
        text = row.text if isinstance(row.text, str) else str(row.text)
        if not text.strip():
            # A line of spaces: treated like an empty line (pyarrow still counts it).
            if row.number is not None:
                blank_records.append(row.number)
            return "skip"
        invalid.append((row.number, row.actual_columns, text.count('"') % 2 == 1))
        # Enough offenders to report: stop parsing.
        return "skip" if len(invalid) < V.MAX_OFFENDERS else "error"

    # Blocks of 16 MiB: the parser's working memory stays a block, not the whole file
    # (a single block for a 250 MB file doubled the peak; issue 13).
    block = 16 * MiB
    parse_error: Exception | None = None
    table = None
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names, block_size=block),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
            ),
        )
    except (pa.ArrowException, ValueError, OverflowError) as e:
        parse_error = e
    mapper = _CsvLines(body, delimiter, blank_records)
    if invalid:
        _raise_ragged(invalid, n_fields, delimiter, file, mapper)
    if table is None:
        raise DataError(
            f"the file could not be parsed as a table ({short_text(parse_error)})",
            file=file,
            hint="Check that it is a CSV/TSV file with one header line",
        ) from parse_error
    if table.num_rows == 0:
        raise DataError("the file has no header line", file=file)
    if body.count(b'"') % 2 == 1:
        # pyarrow lets a quote opened on the last record run to the end of the file;
        # that is almost always a typo that silently merges rows into one field.
        line = _unclosed_quote_line(body, delimiter)
        if line is not None:
            raise DataError(
                "a quoted field is opened and never closed, so the rest of the file became part of it",
                file=file,
                rows=[line],
                hint='Close the quote (") or remove it',
            )
    header = [table.column(i)[0].as_py() for i in range(n_fields)]
    return table.slice(1), header, mapper


def _unclosed_quote_line(body: bytes, delimiter: str) -> int | None:
    """Start line of a record whose quoted field runs to the end of the file, if any."""
    reader = csv.reader(
        io.StringIO(body.decode("utf-8", "replace"), newline=""), delimiter=delimiter, strict=True
    )
    prev = 0
    try:
        for _ in reader:
            prev = reader.line_num
    except csv.Error as e:
        # Other strict-mode complaints (text after a closing quote) are not this case.
        return prev + 1 if "unexpected end of data" in str(e) else None
    return None


def _raise_ragged(
    invalid: list[tuple[int | None, int, bool]],
    n_fields: int,
    delimiter: str,
    file: str,
    mapper: _CsvLines,
) -> None:
    numbers = [n for n, _, _ in invalid]
    known = [n for n in numbers if n is not None]
    lines = mapper.records(known) if known else []
    if known and known[0] == 1:
        raise DataError(
            "the header line could not be read",
            file=file,
            rows=[1],
            hint="Check the quotes in the header",
        )
    shown = ", ".join(f"line {ln} has {a}" for ln, (_, a, _) in zip(lines, invalid[:4]))
    hint = (
        "A field contains the delimiter or a line break without quotes; quote such fields "
        f"(detected delimiter {_delim_name(delimiter)})"
    )
    if any(odd for _, _, odd in invalid):
        hint = 'A quote (") is opened and never closed; close it or remove it'
    raise DataError(
        f"rows have a different number of fields than the header ({n_fields})"
        + (f": {shown}" if shown else ""),
        file=file,
        rows=lines,
        hint=hint,
    )


class _CsvLines:
    """Maps rows of a parsed delimited file to 1-based physical line numbers.

    pyarrow counts records (header = 1, empty lines skipped, multi-line quoted fields
    are one record); users count lines in an editor. The mapping is computed on first
    use only, so files without errors never pay for it.
    """

    def __init__(self, body: bytes, delimiter: str, blank_records: list[int]) -> None:
        # Where every record is one line, record n is line n and the file's bytes need
        # not be kept: holding them (the size of the file) until the table is converted
        # was the largest part of the reader's peak above the file size (issue 13).
        self._body: bytes | None = None if _one_record_per_line(body) else body
        self._delim = delimiter
        self._blank = np.array(sorted(blank_records), dtype=np.int64)
        self._starts: np.ndarray | None = None

    def __call__(self, rows: np.ndarray) -> list[int]:
        """0-based data rows (as in the parsed table) -> lines."""
        rec = np.asarray(rows, dtype=np.int64) + 2  # header is record 1
        if len(self._blank):
            # Lines of spaces were dropped from the table but are counted records.
            shift = np.zeros_like(rec)
            for _ in range(len(self._blank) + 1):
                new = np.searchsorted(self._blank, rec + shift, side="right")
                if np.array_equal(new, shift):
                    break
                shift = new
            rec = rec + shift
        return self.records(rec.tolist())

    def records(self, numbers: Sequence[int]) -> list[int]:
        """pyarrow 1-based record numbers -> lines."""
        if self._body is None:
            return [int(n) for n in numbers]
        starts = self._record_starts()
        return [int(starts[n - 1]) if 0 < n <= len(starts) else int(n) for n in numbers]

    def _record_starts(self) -> np.ndarray:
        assert self._body is not None  # records() answers one-record-per-line files itself
        if self._starts is None:
            starts = None
            if b'"' in self._body:
                # The csv module reads stray quotes inside fields like pyarrow does.
                starts = _csv_record_starts(self._body, self._delim)
            if starts is None:
                starts = _record_starts_numpy(self._body)
            self._starts = starts
        return self._starts


def _one_record_per_line(body: bytes) -> bool:
    """True when record n of the file is its line n: no quotes past the first line and
    balanced quotes on it (so no field spans lines; writers often quote the header
    only), no empty line (pyarrow skips those) and no lone carriage return (a line end
    to pyarrow). A few byte scans, no copy."""
    first_end = body.find(b"\n")
    if first_end < 0 or body[:1] in (b"\n", b"\r"):
        return False
    if body.find(b'"', first_end) >= 0 or body.count(b'"', 0, first_end) % 2:
        return False
    if b"\n\n" in body or b"\n\r\n" in body or b"\r\r" in body:
        return False
    return b"\r" not in body or body.count(b"\r") == body.count(b"\r\n")


def _csv_record_starts(body: bytes, delimiter: str) -> np.ndarray | None:
    try:
        reader = csv.reader(
            io.StringIO(body.decode("utf-8", "replace"), newline=""), delimiter=delimiter
        )
        starts: list[int] = []
        prev = 0
        for row in reader:
            if row:
                starts.append(prev + 1)
            prev = reader.line_num
        return np.array(starts, dtype=np.int64)
    except (csv.Error, ValueError):
        return None  # e.g. a field over the csv module's size limit


def _record_starts_numpy(body: bytes) -> np.ndarray:
    """Start line of every non-empty record, with RFC 4180 quote parity."""
    a = np.frombuffer(body, dtype=np.uint8)
    n = len(a)
    nl = np.flatnonzero(a == 10)
    cr = np.flatnonzero(a == 13)
    after = np.minimum(cr + 1, max(n - 1, 0))
    lone_cr = cr[(cr + 1 >= n) | (a[after] != 10)] if n else cr
    ends = np.sort(np.concatenate([nl, lone_cr]))  # physical line terminators
    quotes = np.flatnonzero(a == 34)
    inside = (np.searchsorted(quotes, ends) % 2) == 1
    rec_ends = ends[~inside]
    rec_starts = np.concatenate([[0], rec_ends + 1])
    rec_stop = np.concatenate([rec_ends, [n]])
    length = rec_stop - rec_starts
    first = a[np.minimum(rec_starts, max(n - 1, 0))] if n else np.zeros(0, np.uint8)
    nonempty = (length > 0) & ~((length == 1) & (first == 13))
    return np.searchsorted(ends, rec_starts[nonempty], side="left").astype(np.int64) + 1


def _delim_name(d: str) -> str:
    return {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}.get(d, repr(d))


def parse_header(data: bytes, *, file: str, ext: str, limits: Limits) -> list[str]:
    """The header names :func:`parse_bytes` would give, reading as little as possible.

    The Data page lists the header (for the column widgets) before the table is read
    with the chosen mapping; parsing a 250 MB upload in full only for its first line
    took 6.9 s (issue 12). Here Parquet gives its names from the footer, and delimited
    text (also gzip/bz2/xz-compressed: only the start is decompressed) is parsed from
    its first complete lines, with the sniffing, encoding and checks of a full read.
    Whenever a prefix could be read differently from the whole file (a header that is
    not ASCII in a file that may not be UTF-8 throughout, an error in the prefix, a
    header longer than the prefix), the whole file is parsed instead: the answer is
    always the one ``read_table`` matches a mapping against.
    """
    names = _header_from_prefix(data, file=file, ext=ext, limits=limits)
    if names is None:
        names = parse_bytes(data, file=file, ext=ext, limits=limits, depth=0).names
    return names


_PREFIX_BYTES = MAX_HEADER_BYTES + 2 * _SNIFF_BYTES


def _header_from_prefix(data: bytes, *, file: str, ext: str, limits: Limits) -> list[str] | None:
    """Header names from the start of the file, or None when only a full read can tell."""
    compressed = compression_of(data)
    complete_hint = len(data) <= _PREFIX_BYTES
    if compressed is not None:
        _, opener = compressed
        try:
            with opener(io.BytesIO(data)) as fh:
                body = fh.read(_PREFIX_BYTES + 1)
        except Exception:  # damaged: the full read gives the message
            return None
        if compression_of(body) is not None:
            return None
        ext = re.sub(r"\.(gz|gzip|bz2|xz)$", "", ext)
        complete_hint = len(body) <= _PREFIX_BYTES
    else:
        body = data
    if complete_hint:
        return None  # small: the full read is as cheap
    if body[:4] == b"PAR1":
        if compressed is not None:
            return None
        return _parquet_names(data, file, limits)
    body = body[:_PREFIX_BYTES]
    cut = body.rfind(b"\n")
    if cut < 0:
        return None
    prefix = bytes(body[: cut + 1])
    first_end = _LINE_END.search(prefix)
    header_line = prefix[: first_end.start() if first_end else len(prefix)]
    if cut + 1 < _SNIFF_BYTES + len(header_line) + 1:
        return None  # the sniffer would see less than in a full read
    if not header_line.isascii():
        # The encoding is decided on the whole file: a UTF-8 header in a file that is
        # not UTF-8 throughout is read as Windows-1252. Cheap to check uncompressed.
        from recsys_core.data.encoding import is_utf8

        if compressed is not None or not is_utf8(data):
            return None
    try:
        parsed = _parse_text(prefix, file, ext, limits)
    except DataError:
        return None  # perhaps a cut quoted field: let the full read decide
    if parsed.info.get("encoding") not in ("utf-8", "utf-8-sig"):
        return None
    return parsed.names


def _parquet_names(data: bytes, file: str, limits: Limits) -> list[str] | None:
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(pa.BufferReader(data)).schema_arrow
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError, KeyError):
        return None  # the full read gives the message
    V.check_column_count(len(schema), max_columns=limits.max_columns, file=file)
    return [n for n in schema.names if not re.fullmatch(r"__index_level_\d+__", n)]
