"""Read user files into the canonical frames of :mod:`recsys_core.data.schema`.

Formats, recognised by content first and by name second:

* delimited text: comma, tab, semicolon or pipe (sniffed), quoted fields with
  delimiters and newlines inside, UTF-8 with or without BOM, UTF-16 with BOM, and a
  Windows-1252 / Latin-1 fallback for anything that is not valid UTF-8;
* RecBole atomic files (``.inter``, ``.item``, ``.user``): tab-separated with typed
  headers such as ``user_id:token``; the ``:type`` suffix is dropped, ``token_seq``
  fields stay one space-separated string;
* Parquet (magic bytes ``PAR1``);
* any of these compressed with gzip (also bz2, xz), recognised by magic bytes;
* an in-memory ``pandas.DataFrame`` (used by the demo-data builders), checked the same way.

Parsing is pyarrow's C++ CSV reader with every column read as text; the checks in
:mod:`recsys_core.data.validation` are vectorised, and 1-based line numbers for error
messages are only computed when an error is raised. Nothing the user gave is modified.
Any failure is raised as :class:`~recsys_core.errors.DataError`; no other exception
type leaves :func:`read_table`, :func:`read_header` or :func:`load_domain`.

This module is the public face of reading; the work is done, in order, by
:mod:`~recsys_core.data.sources` (paths, uploads, size limits, bounded decompression),
:mod:`~recsys_core.data.encoding` (which text encoding), :mod:`~recsys_core.data.parsing`
(Parquet and delimited text to a raw table) and :mod:`~recsys_core.data.columns`
(column roles and canonical frames). Their public names are importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from recsys_core.data import validation as V
from recsys_core.data.columns import (
    KINDS,
    TEXT_FIELDS,
    ColumnMapping,
    Kind,
    canonical_frame,
    detect_columns,
    resolve_roles,
    resolve_text_fields,
    split_mapping,
    strip_suffix,
)
from recsys_core.data.parsing import (
    RECBOLE_SUFFIX,
    Parsed,
    parse_bytes,
    parse_dataframe,
    parse_header,
)
from recsys_core.data.schema import ITEM, USER, Domain
from recsys_core.data.sources import (
    DECOMPRESSED_ENV,
    RATIO_ENV,
    GiB,
    Limits,
    MiB,
    as_data_error,
    display_name,
    load_bytes,
    release_arrow_memory,
)
from recsys_core.errors import DataError, DataWarning

__all__ = [
    "DECOMPRESSED_ENV",
    "KINDS",
    "RATIO_ENV",
    "TEXT_FIELDS",
    "ColumnMapping",
    "GiB",
    "Kind",
    "Limits",
    "MiB",
    "Source",
    "detect_columns",
    "load_domain",
    "read_header",
    "read_table",
]

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | pd.DataFrame


def read_table(
    source: Source,
    *,
    name: str | None = None,
    kind: Kind = "interactions",
    columns: ColumnMapping | None = None,
    limits: Limits = Limits(),
) -> pd.DataFrame:
    """Read one table and return it in canonical form.

    Args:
        source: a path, the file's bytes (uploads), a binary file object, or a DataFrame.
        name: the file name as the user knows it, used in messages (default: the path's
            base name, the file object's ``name``, or the kind).
        kind: "interactions", "items", "users" or "table".
        columns: explicit column roles; unset roles are detected (see
            :func:`detect_columns`).
        limits: size limits.

    Returns:
        interactions: ``user_id`` (str), ``item_id`` (str), ``rating`` (float64, NaN when
        there is no rating column) and ``timestamp`` (int64 epoch seconds, only when a time
        column exists), one row per file row in file order.
        items: ``item_id`` then every other column as str (missing values ""); detected
        text columns are renamed to ``title``, ``genres``, ``year``, ``description``.
        users: ``user_id`` then every other column as str.
        table: every column as str under its header name, rows that are wholly empty
        dropped, index = the row's 1-based line in the file minus 2 (header = line 1),
        so ``index + 2`` names the line in messages; a header without rows is allowed.
        ``df.attrs["read_info"]`` holds a JSON-able dict: file, format, compression,
        encoding, delimiter, columns (canonical -> source name), text_fields, warnings.

    Raises:
        DataError: for every problem, naming the file, column and first lines.
    """
    file = display_name(source, name, kind)
    with as_data_error(file):
        df, _ = _read(source, file=file, kind=kind, columns=columns, limits=limits, strict=True)
        return df


def read_header(
    source: Source,
    *,
    name: str | None = None,
    limits: Limits = Limits(),
) -> list[str]:
    """The column names of a table as the user sees them (for column-mapping widgets).

    Reads the file the way :func:`read_table` does (every format, compression, encoding
    and limit), so a header listed here is the header ``read_table`` will match a
    :class:`ColumnMapping` against; RecBole ``:type`` suffixes and surrounding spaces are
    removed. No role is resolved and no value is checked. Only the start of a big file
    is parsed (Parquet: the footer), unless only the whole file can tell
    (:func:`recsys_core.data.parsing.parse_header`; docs/reader_limits.md, "Text").

    Args:
        source: a path, the file's bytes (uploads), a binary file object, or a DataFrame.
        name: the file name as the user knows it, used in messages.
        limits: size limits.

    Returns:
        list of column names, in file order.

    Raises:
        DataError: for every problem, naming the file.
    """
    file = display_name(source, name, "table")
    with as_data_error(file):
        if isinstance(source, pd.DataFrame):
            names = parse_dataframe(source, file).names
        else:
            raw, ext = load_bytes(source, file, limits)
            names = parse_header(raw, file=file, ext=ext, limits=limits)
        return [strip_suffix(str(n)) for n in names]


def load_domain(
    interactions: Source,
    items: Source | None = None,
    users: Source | None = None,
    *,
    name: str = "domain",
    columns: ColumnMapping | Mapping[str, ColumnMapping] | None = None,
    text_fields: Sequence[str] | None = None,
    limits: Limits = Limits(),
) -> Domain:
    """Read, validate and assemble one domain.

    Duplicate (user, item) interactions are merged (highest rating, earliest time: see
    :func:`recsys_core.data.validation.merge_duplicates`); repeated ids in the item and
    user tables keep their first row. What is odd but usable is attached as warnings.

    Args:
        interactions, items, users: sources as for :func:`read_table`.
        name: the domain's label.
        columns: one ColumnMapping for the interactions file (its ``text_fields`` apply
            to the item table, and its ``item``/``user`` names are used in the side tables
            when those tables have such a column), or a dict keyed by
            "interactions"/"items"/"users".
        text_fields: item-table columns joined into the encoder text, in order (names as
            in the file, or the canonical ``title``/``genres``/``year``/``description``).
            Default: whichever of title, genres, year, description exist, in that order.
        limits: size limits for every file.

    Returns:
        A :class:`~recsys_core.data.schema.Domain`; ``meta`` holds each file's
        ``read_info`` and ``n_merged``.

    Raises:
        DataError: for every problem in any of the files.
    """
    file = display_name(interactions, None, "interactions")
    with as_data_error(file):
        if not isinstance(name, str) or not name.strip():
            raise DataError(
                "the domain name must be a non-empty text",
                hint="Use a short label such as 'target'",
            )
        maps = split_mapping(columns)
        strict_items = isinstance(columns, Mapping)
        inter, info = _read(
            interactions,
            file=file,
            kind="interactions",
            columns=maps["interactions"],
            limits=limits,
            strict=True,
        )
        warnings: list[DataWarning] = [*info.pop("_warnings")]
        read_infos = {"interactions": info}
        sources = [file]

        # One factorisation of the ids serves the merge and the warnings (issue 13).
        inter, n_merged, merged_examples, codes = V.merge_with_codes(inter, consume=True)
        release_arrow_memory()
        item_df = user_df = None
        resolved_text: tuple[str, ...] = ()

        def side_table(src, kind: str, key: str, what: str):
            """An item or user table: read, warnings collected, one row per id."""
            file = display_name(src, None, kind)
            df, info = _read(
                src, file=file, kind=kind, columns=maps[kind], limits=limits, strict=strict_items
            )
            warnings.extend(info.pop("_warnings"))
            df, w = V.drop_duplicate_keys(df, key, file=file, what=what)
            if w:
                warnings.append(w)
            read_infos[kind] = info
            sources.append(file)
            return df, info, file

        if items is not None:
            with as_data_error(display_name(items, None, "items")):
                item_df, iinfo, ifile = side_table(items, "items", ITEM, "item")
                resolved_text = resolve_text_fields(text_fields, item_df, iinfo, ifile)
                iinfo["text_fields"] = list(resolved_text)
        elif text_fields:
            raise DataError(
                "text fields were chosen but no item table was given",
                hint="Add the item table, or leave the text fields empty",
            )
        if users is not None:
            with as_data_error(display_name(users, None, "users")):
                user_df, _, _ = side_table(users, "users", USER, "user")

        warnings += V.interaction_warnings(
            inter,
            items=item_df,
            users=user_df,
            n_merged=n_merged,
            merged_examples=merged_examples,
            codes=codes,
        )
        del codes
        for df in (inter, item_df, user_df):
            if df is not None:
                df.attrs.pop("read_info", None)
        return Domain(
            name=name.strip(),
            interactions=inter,
            items=item_df,
            users=user_df,
            text_fields=resolved_text,
            warnings=tuple(warnings),
            source_files=tuple(sources),
            meta={"read_info": read_infos, "n_merged": n_merged},
        )


def _read(
    source: Source,
    *,
    file: str,
    kind: str,
    columns: ColumnMapping | None,
    limits: Limits,
    strict: bool,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    if kind not in (*KINDS, "table"):
        raise DataError(
            f"unknown table kind {kind!r}",
            hint="Use 'interactions', 'items', 'users' or 'table'",
        )
    if columns is not None and not isinstance(columns, ColumnMapping):
        raise DataError(
            f"columns must be a ColumnMapping, not {type(columns).__name__}",
            file=file,
            hint="Build it with ColumnMapping(user=..., item=...)",
        )
    if not isinstance(limits, Limits):
        raise DataError(f"limits must be a Limits, not {type(limits).__name__}", file=file)

    if isinstance(source, pd.DataFrame):
        parsed = parse_dataframe(source, file)
    else:
        data, ext = load_bytes(source, file, limits)
        parsed = parse_bytes(data, file=file, ext=ext, limits=limits, depth=0)
        del data  # the table has it now; the line mapper keeps the bytes only if it must

    names = V.check_header(parsed.names, file=file)
    if parsed.info.get("format") == "recbole" or any(RECBOLE_SUFFIX.match(n) for n in names):
        names = V.check_header([strip_suffix(n) for n in names], file=file)
    if kind != "table" or parsed.table.num_rows:  # a plain table may be header-only
        V.check_row_count(parsed.table.num_rows, max_rows=limits.max_rows, file=file)
    V.check_field_sizes(
        parsed.table.columns,
        names,
        max_field_bytes=limits.max_field_bytes,
        file=file,
        lines=parsed.lines,
    )
    if kind == "table":
        df = _text_table(parsed, names, file)
        df.attrs["read_info"] = {"file": file, **parsed.info, "warnings": []}
        return df, {**df.attrs["read_info"], "_warnings": list(parsed.warnings)}
    roles = resolve_roles(names, kind, columns, file, strict)
    df, extra = canonical_frame(parsed, names, kind, roles, file)
    release_arrow_memory()
    info = {
        "file": file,
        **parsed.info,
        "columns": {canon: src for canon, src in extra["columns"].items()},
        "text_fields": extra.get("text_fields", []),
        "rename": extra.get("rename", {}),
        "warnings": [str(w) for w in parsed.warnings],
    }
    df.attrs["read_info"] = {k: v for k, v in info.items() if k != "rename"}
    info["_warnings"] = list(parsed.warnings)
    return df, info


def _text_table(parsed: Parsed, names: list[str], file: str) -> pd.DataFrame:
    """Every column as str, wholly empty rows dropped, index = line - 2 (see read_table)."""
    table = parsed.table
    df = pd.DataFrame(
        {
            n: V.as_text(table.column(i), file=file, column=n).to_pandas().astype("str")
            for i, n in enumerate(names)
        }
    )
    if len(df) == 0:
        return df
    df.index = np.asarray(parsed.lines(np.arange(len(df))), dtype=np.int64) - 2
    return df[(df != "").any(axis=1)]
