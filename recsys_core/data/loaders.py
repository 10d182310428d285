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
type leaves :func:`read_table` or :func:`load_domain`.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import os
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from itertools import islice
from typing import Any, BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recsys_core.data import validation as V
from recsys_core.data.schema import ITEM, RATING, TIME, USER, Domain
from recsys_core.errors import DataError, DataWarning

Kind = Literal["interactions", "items", "users", "table"]
Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | pd.DataFrame

KINDS: tuple[str, ...] = ("interactions", "items", "users")
"""The tables of a domain. ``read_table`` also reads ``kind="table"``: every column as
text, no roles (split folders and recommendation files, which have their own columns)."""
TEXT_FIELDS: tuple[str, ...] = ("title", "genres", "year", "description")
"""Canonical item text columns, in the order they are joined for the text encoder."""

GiB = 1024**3
MiB = 1024**2


def _env_int(name: str, default: int, scale: int = 1) -> int:
    """A positive whole number from the environment (an operator's override), else default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(
            f"the environment variable {name} must be a positive whole number, got {raw!r}"
        )
    return int(raw) * scale


DECOMPRESSED_ENV = "TRANSFER_LAB_MAX_DECOMPRESSED_MB"
RATIO_ENV = "TRANSFER_LAB_MAX_COMPRESSION_RATIO"
RATIO_FLOOR = 16 * MiB
"""The compression ratio is only judged past this much output: small files that compress
very well (a tiny test table, a column of one repeated value) are never refused for it."""


@dataclass(frozen=True)
class Limits:
    """Size limits that protect the process from files it cannot hold.

    Attributes:
        max_file_bytes: largest file accepted (default 2 GiB), also after decompression.
        max_field_bytes: largest single field in UTF-8 bytes (default 1 MiB); a longer
            field almost always means an unclosed quote swallowed the rest of the file.
        max_rows: most data rows accepted (default 200 million).
        max_decompressed_bytes: most bytes a compressed file (gzip, bz2, xz) may expand
            to (default 1 GiB, or ``TRANSFER_LAB_MAX_DECOMPRESSED_MB`` MiB). Checked while
            decompressing: reading stops as soon as it is passed, so a small "bomb"
            never holds more than this much memory.
        max_compression_ratio: most decompressed bytes per compressed byte (default 100,
            or ``TRANSFER_LAB_MAX_COMPRESSION_RATIO``); judged while decompressing, once
            the output passes 16 MiB. Interaction tables compress 3-20 fold; a file that
            expands 500 fold is a bomb, refused after reading a few MiB of it.
    """

    max_file_bytes: int = 2 * GiB
    max_field_bytes: int = 1 * MiB
    max_rows: int = 200_000_000
    max_decompressed_bytes: int = field(
        default_factory=lambda: _env_int(DECOMPRESSED_ENV, 1 * GiB, scale=MiB)
    )
    max_compression_ratio: int = field(default_factory=lambda: _env_int(RATIO_ENV, 100))

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
                raise ValueError(f"Limits.{f.name} must be a positive whole number, got {v!r}")
        if self.max_field_bytes > self.max_file_bytes:
            raise ValueError(
                f"Limits.max_field_bytes ({self.max_field_bytes}) cannot exceed "
                f"Limits.max_file_bytes ({self.max_file_bytes})"
            )


@dataclass(frozen=True)
class ColumnMapping:
    """Which column of a file plays which role; ``None`` means "detect it".

    Names are matched against the header as shown to the user (spaces around names and
    RecBole ``:type`` suffixes removed; the suffixed form is accepted too).

    Attributes:
        user: the user id column.
        item: the item id column.
        rating: the rating column; ``""`` means "no rating column" (implicit feedback)
            even if one would be detected.
        timestamp: the time column; ``""`` means "no time column".
        text_fields: item-table columns whose text the encoder reads, in order
            ("title", "genres", ...); ``()`` means none, ``None`` detect.
    """

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None
    text_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for role in ("user", "item", "rating", "timestamp"):
            v = getattr(self, role)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"ColumnMapping.{role} must be a column name or None, got {v!r}")
        for role in ("user", "item"):
            if getattr(self, role) == "":
                raise ValueError(
                    f"ColumnMapping.{role} cannot be empty: the {role} id is required "
                    "(use None to detect it)"
                )
        if self.text_fields is not None:
            if isinstance(self.text_fields, str) or not isinstance(self.text_fields, Sequence):
                raise ValueError(
                    f"ColumnMapping.text_fields must be a tuple of column names, got {self.text_fields!r}"
                )
            tf = tuple(self.text_fields)
            if any(not isinstance(c, str) or not c.strip() for c in tf):
                raise ValueError(f"ColumnMapping.text_fields must hold non-empty names, got {tf!r}")
            if len(set(tf)) != len(tf):
                raise ValueError(f"ColumnMapping.text_fields has repeated names: {tf!r}")
            object.__setattr__(self, "text_fields", tf)
        used = [v for v in (self.user, self.item, self.rating, self.timestamp) if v]
        if len(set(used)) != len(used):
            raise ValueError(
                f"ColumnMapping maps one column to two roles: {used!r}; each role needs its own column"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for TOML configs and the app's widgets)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if d["text_fields"] is not None:
            d["text_fields"] = list(d["text_fields"])
        return d


# --------------------------------------------------------------------------- detection

# Normalised aliases (lower case, no "_", "-" or spaces), best first.
_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("userid", "user", "uid", "customerid", "reviewerid", "visitorid", "memberid"),
    "item": (
        "itemid",
        "item",
        "iid",
        "movieid",
        "productid",
        "asin",
        "bookid",
        "isbn",
        "trackid",
        "songid",
        "articleid",
        "videoid",
    ),
    "rating": ("rating", "score", "stars", "overall", "bookrating", "ratings"),
    "timestamp": ("timestamp", "unixreviewtime", "time", "ts", "datetime", "date", "eventtime"),
    "title": (
        "title",
        "movietitle",
        "name",
        "booktitle",
        "itemname",
        "producttitle",
        "productname",
    ),
    "genres": ("genres", "genre", "class", "category", "categories"),
    "year": ("year", "releaseyear", "yearofpublication", "publicationyear"),
    "description": ("description", "overview", "plot", "summary", "synopsis"),
}
_ROLES_BY_KIND: dict[str, tuple[str, ...]] = {
    "interactions": ("user", "item", "rating", "timestamp"),
    "items": ("item", "title", "genres", "year", "description"),
    "users": ("user",),
}
_RECBOLE_SUFFIX = re.compile(r"^(.*\S)\s*:\s*(token|token_seq|float|float_seq)$", re.IGNORECASE)
_RECBOLE_EXTS = (".inter", ".item", ".user")


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def _strip_suffix(name: str) -> str:
    m = _RECBOLE_SUFFIX.match(name.strip())
    return m.group(1) if m else name.strip()


def detect_columns(df_header: Sequence[str], kind: Kind = "interactions") -> ColumnMapping:
    """Guess each column's role from the header names (for prefilling mapping widgets).

    Matching ignores case, spaces, "_" and "-", and RecBole ``:type`` suffixes; the best
    alias wins when several columns match (``user_id`` before ``uid``).

    Args:
        df_header: column names as in the file.
        kind: which table this is.

    Returns:
        A ColumnMapping holding the detected names (as cleaned for display); roles that
        were not found are ``None``. For ``kind="items"``, ``text_fields`` lists the
        detected title, genres, year and description columns in that order; for other
        kinds it is ``()``.
    """
    if kind not in KINDS:
        raise DataError(
            f"unknown table kind {kind!r}", hint="Use 'interactions', 'items' or 'users'"
        )
    names = [_strip_suffix(str(n)) for n in df_header]
    found = _detect(names, kind)
    return ColumnMapping(
        user=found.get("user"),
        item=found.get("item"),
        rating=found.get("rating"),
        timestamp=found.get("timestamp"),
        text_fields=tuple(found[r] for r in TEXT_FIELDS if r in found) if kind == "items" else (),
    )


def _detect(names: Sequence[str], kind: str, taken: Sequence[str] = ()) -> dict[str, str]:
    keys: dict[str, str] = {}
    for n in names:
        keys.setdefault(_norm(n), n)
    used = set(taken)
    out: dict[str, str] = {}
    for role in _ROLES_BY_KIND[kind]:
        for alias in _ALIASES[role]:
            col = keys.get(alias)
            if col is not None and col not in used:
                out[role] = col
                used.add(col)
                break
    return out


# --------------------------------------------------------------------------- public API


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
    file = _display_name(source, name, kind)
    with _guard(file):
        df, _ = _read(source, file=file, kind=kind, columns=columns, limits=limits, strict=True)
        return df


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
    file = _display_name(interactions, None, "interactions")
    with _guard(file):
        if not isinstance(name, str) or not name.strip():
            raise DataError(
                "the domain name must be a non-empty text",
                hint="Use a short label such as 'target'",
            )
        maps = _split_mapping(columns)
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

        raw_inter = inter
        inter, n_merged = V.merge_duplicates(inter)
        # Examples for the warning, computed only when there is something to show.
        merged_examples = V.duplicate_pairs(raw_inter) if n_merged else []
        del raw_inter
        item_df = user_df = None
        resolved_text: tuple[str, ...] = ()

        def side_table(src, kind: str, key: str, what: str):
            """An item or user table: read, warnings collected, one row per id."""
            file = _display_name(src, None, kind)
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
            with _guard(_display_name(items, None, "items")):
                item_df, iinfo, ifile = side_table(items, "items", ITEM, "item")
                resolved_text = _resolve_text_fields(text_fields, item_df, iinfo, ifile)
                iinfo["text_fields"] = list(resolved_text)
        elif text_fields:
            raise DataError(
                "text fields were chosen but no item table was given",
                hint="Add the item table, or leave the text fields empty",
            )
        if users is not None:
            with _guard(_display_name(users, None, "users")):
                user_df, _, _ = side_table(users, "users", USER, "user")

        warnings += V.interaction_warnings(
            inter, items=item_df, users=user_df, n_merged=n_merged, merged_examples=merged_examples
        )
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


# --------------------------------------------------------------------------- pipeline


@dataclass
class _Parsed:
    """A raw table before roles are applied: columns c0..cn-1 plus display names."""

    table: pa.Table
    names: list[str]
    lines: V.RowLines
    info: dict[str, Any] = field(default_factory=dict)
    decimal_comma: bool = False
    warnings: list[DataWarning] = field(default_factory=list)


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
        parsed = _parse_dataframe(source, file)
    else:
        data, ext = _load_bytes(source, file, limits)
        parsed = _parse_bytes(data, file=file, ext=ext, limits=limits, depth=0)

    names = V.check_header(parsed.names, file=file)
    if parsed.info.get("format") == "recbole" or any(_RECBOLE_SUFFIX.match(n) for n in names):
        names = V.check_header([_strip_suffix(n) for n in names], file=file)
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
    roles = _resolve_roles(names, kind, columns, file, strict)
    df, extra = _canonical(parsed, names, kind, roles, file)
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


def _text_table(parsed: _Parsed, names: list[str], file: str) -> pd.DataFrame:
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


def _resolve_roles(
    names: list[str], kind: str, columns: ColumnMapping | None, file: str, strict: bool
) -> dict[str, Any]:
    """role -> column name (or None), plus "text_fields" -> source names or None."""
    by_name = {n: n for n in names}
    # Accept the RecBole-suffixed spelling of a name, and the displayed one.
    for n in names:
        by_name.setdefault(_strip_suffix(n), n)
    explicit: dict[str, str | None] = {}
    needed = {
        "interactions": ("user", "item", "rating", "timestamp"),
        "items": ("item",),
        "users": ("user",),
    }[kind]
    if columns is not None:
        for role in needed:
            want = getattr(columns, role)
            if want is None:
                continue
            if want == "":
                explicit[role] = None
                continue
            col = by_name.get(want.strip()) or by_name.get(_strip_suffix(want))
            if col is None:
                if not strict and role in ("user", "item"):
                    continue  # a mapping made for another file: detect here instead
                raise DataError(
                    f"the {role} column is mapped to '{want}', which is not in the file; the file has "
                    f"columns {_list(names)}",
                    file=file,
                    column=want,
                    rows=[1],
                    hint="Pick one of these columns in the mapping",
                )
            explicit[role] = col
    detected = _detect(names, kind, taken=[c for c in explicit.values() if c])
    roles: dict[str, Any] = {}
    for role in _ROLES_BY_KIND[kind]:
        roles[role] = explicit[role] if role in explicit else detected.get(role)
    required = {"interactions": ("user", "item"), "items": ("item",), "users": ("user",)}[kind]
    for role in required:
        if roles.get(role) is None:
            raise DataError(
                f"no {role} id column was found among the columns {_list(names)}",
                file=file,
                rows=[1],
                hint=f"Name the column {role}_id, or map it explicitly (ColumnMapping({role}='...') "
                "or the column mapping box)",
            )
    if kind == "items":
        tf = columns.text_fields if columns is not None else None
        if tf is not None:
            resolved = []
            for want in tf:
                col = by_name.get(want.strip()) or by_name.get(_strip_suffix(want))
                if col is None and want in TEXT_FIELDS and roles.get(want):
                    col = roles[want]
                if col is None:
                    raise DataError(
                        f"the text field '{want}' is not in the file; the file has columns {_list(names)}",
                        file=file,
                        column=want,
                        rows=[1],
                        hint="Choose text fields among these columns",
                    )
                resolved.append(col)
            roles["text_fields"] = tuple(resolved)
        else:
            roles["text_fields"] = None
    return roles


def _canonical(
    parsed: _Parsed, names: list[str], kind: str, roles: dict[str, Any], file: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = parsed.table
    col_of = {n: table.column(i) for i, n in enumerate(names)}
    lines = parsed.lines
    extra: dict[str, Any] = {}
    if kind == "interactions":
        data: dict[str, Any] = {
            USER: V.clean_ids(col_of[roles["user"]], file=file, column=roles["user"], lines=lines),
            ITEM: V.clean_ids(col_of[roles["item"]], file=file, column=roles["item"], lines=lines),
        }
        if roles.get("rating"):
            data[RATING] = V.parse_ratings(
                col_of[roles["rating"]],
                file=file,
                column=roles["rating"],
                lines=lines,
                decimal_comma=parsed.decimal_comma,
            )
        else:
            data[RATING] = np.full(table.num_rows, np.nan)
        if roles.get("timestamp"):
            data[TIME] = V.parse_timestamps(
                col_of[roles["timestamp"]], file=file, column=roles["timestamp"], lines=lines
            )
        df = pd.DataFrame(data)
        extra["columns"] = {
            c: roles[r]
            for c, r in ((USER, "user"), (ITEM, "item"), (RATING, "rating"), (TIME, "timestamp"))
            if roles.get(r)
        }
        return df, extra

    key, canon = ("item", ITEM) if kind == "items" else ("user", USER)
    src_key = roles[key]
    out: dict[str, Any] = {
        canon: V.clean_ids(col_of[src_key], file=file, column=src_key, lines=lines)
    }
    rename: dict[str, str] = {}
    if kind == "items":
        # Detected text aliases take the canonical name, unless that name is taken.
        for role in TEXT_FIELDS:
            src = roles.get(role)
            if src and src != role and role not in names:
                rename[src] = role
    for n in names:
        if n == src_key:
            continue
        new = rename.get(n, n)
        while new == canon or new in out:
            new = f"{new}_original"  # e.g. an "item_id" column that is not the id
            rename[n] = new
        out[new] = V.as_text(col_of[n], file=file, column=n).to_pandas().astype("str")
    df = pd.DataFrame(out)
    extra["columns"] = {canon: src_key, **{v: k for k, v in rename.items()}}
    extra["rename"] = rename
    if kind == "items":
        src_text = roles["text_fields"]
        if src_text is None:
            src_text = tuple(roles[r] for r in TEXT_FIELDS if roles.get(r))
        extra["text_fields"] = [rename.get(s, s) for s in src_text if s != src_key]
    return df, extra


def _resolve_text_fields(
    wanted: Sequence[str] | None, items: pd.DataFrame, info: dict, file: str
) -> tuple[str, ...]:
    if wanted is None:
        return tuple(info.get("text_fields", []))
    if isinstance(wanted, str):
        wanted = [wanted]
    rename: dict[str, str] = info.get("rename", {})
    out: list[str] = []
    for w in wanted:
        w = str(w).strip()
        col = rename.get(w, rename.get(_strip_suffix(w), w))
        if col not in items.columns or col == ITEM:
            raise DataError(
                f"the text field '{w}' is not a column of the item table, which has "
                f"{_list([c for c in items.columns if c != ITEM])}",
                file=file,
                column=w,
                rows=[1],
                hint="Choose text fields among these columns",
            )
        if col not in out:
            out.append(col)
    return tuple(out)


def _split_mapping(columns: Any) -> dict[str, ColumnMapping | None]:
    if columns is None:
        return dict.fromkeys(KINDS)
    if isinstance(columns, ColumnMapping):
        return {
            "interactions": columns,
            "items": ColumnMapping(item=columns.item, text_fields=columns.text_fields),
            "users": ColumnMapping(user=columns.user),
        }
    if isinstance(columns, Mapping):
        unknown = set(columns) - set(KINDS)
        if unknown:
            raise DataError(
                f"column mappings were given for unknown tables {sorted(map(str, unknown))}",
                hint="Use the keys 'interactions', 'items' and 'users'",
            )
        return {k: columns.get(k) for k in KINDS}
    raise DataError(
        f"columns must be a ColumnMapping or a dict of them, not {type(columns).__name__}",
        hint="Build it with ColumnMapping(user=..., item=...)",
    )


# --------------------------------------------------------------------------- bytes


def _display_name(source: Any, name: str | None, kind: str) -> str:
    if name:
        return str(name)
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        return f"{kind} text"
    if isinstance(source, str | os.PathLike):
        try:
            return os.path.basename(os.fspath(source)) or os.fspath(source)
        except TypeError:
            return kind
    n = getattr(source, "name", None)
    if isinstance(n, str) and n:
        return os.path.basename(n)
    if isinstance(source, pd.DataFrame):
        return f"{kind} table"
    return f"{kind} file"


def _load_bytes(source: Any, file: str, limits: Limits) -> tuple[bytes, str]:
    """The raw bytes of a source (at most max_file_bytes) and a lower-case name hint."""
    limit = limits.max_file_bytes
    ext_name = file
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        raise DataError(
            "text with line breaks was given where a file path was expected",
            file=file,
            hint="Pass the file's content as bytes (text.encode()) or its path",
        )
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        ext_name = str(path)
        try:
            if os.path.isdir(path):
                raise DataError(
                    "this is a folder, not a file", file=file, hint="Choose a file inside it"
                )
            size = os.path.getsize(path)
            if not os.path.isfile(path):
                # Devices and pipes have no size and may never end (/dev/zero).
                raise DataError("this is not a regular file", file=file)
            if size > limit:
                raise DataError(
                    f"the file is {_human(size)}, more than the limit of {_human(limit)}",
                    file=file,
                    hint="Sample the data, or raise Limits.max_file_bytes",
                )
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError as e:
            raise DataError(
                "the file does not exist", file=file, hint=f"Check the path {path!r}"
            ) from e
        except PermissionError as e:
            raise DataError("the file cannot be read (permission denied)", file=file) from e
        except IsADirectoryError as e:
            raise DataError("this is a folder, not a file", file=file) from e
        except OSError as e:
            raise DataError(f"the file cannot be read ({e.strerror or e})", file=file) from e
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif hasattr(source, "getvalue") or hasattr(source, "read"):
        try:
            # getvalue() reads an in-memory upload whole even if it was read before.
            data = source.getvalue() if hasattr(source, "getvalue") else source.read(limit + 1)
        except Exception as e:
            raise DataError(f"the upload cannot be read ({type(e).__name__})", file=file) from e
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DataError("the file object did not return bytes", file=file)
        data = bytes(data)
    else:
        raise DataError(
            f"cannot read a {type(source).__name__}",
            file=file,
            hint="Pass a path, the file's bytes, a binary file object or a DataFrame",
        )
    if len(data) > limit:
        raise DataError(
            f"the file is larger than the limit of {_human(limit)}",
            file=file,
            hint="Sample the data, or raise Limits.max_file_bytes",
        )
    return data, ext_name.lower()


def _parse_bytes(data: bytes, *, file: str, ext: str, limits: Limits, depth: int) -> _Parsed:
    compressed = _decompressor(data)
    if compressed is not None:
        kind, opener = compressed
        if depth >= 2:
            raise DataError(
                "the file is compressed more than twice", file=file, hint="Decompress it first"
            )
        inner = _decompress(data, kind, opener, file, limits)
        inner_ext = re.sub(r"\.(gz|gzip|bz2|xz)$", "", ext)
        parsed = _parse_bytes(inner, file=file, ext=inner_ext, limits=limits, depth=depth + 1)
        parsed.info["compression"] = (
            kind if depth == 0 else f"{kind}+{parsed.info.get('compression')}"
        )
        return parsed
    if data[:4] == b"PAR1":
        return _parse_parquet(data, file, limits)
    return _parse_text(data, file, ext, limits)


def _decompressor(data: bytes) -> tuple[str, Any] | None:
    if data[:2] == b"\x1f\x8b":
        return "gzip", lambda fh: gzip.GzipFile(fileobj=fh, mode="rb")
    if data[:3] == b"BZh" and data[3:4].isdigit():
        return "bz2", bz2.BZ2File
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz", lzma.LZMAFile
    return None


def _decompress(data: bytes, kind: str, opener: Any, file: str, limits: Limits) -> bytearray:
    """The decompressed bytes, read in blocks and refused as soon as they pass
    ``limits.max_decompressed_bytes`` or ``limits.max_compression_ratio``: a bomb is
    stopped before it holds more than the limit, never after expanding in full."""
    limit = min(limits.max_decompressed_bytes, limits.max_file_bytes)
    if limit == limits.max_decompressed_bytes:
        how = f"Limits(max_decompressed_bytes=...) or the environment variable {DECOMPRESSED_ENV}"
    else:  # a decompressed file is still a file: max_file_bytes binds when it is lower
        how = "Limits(max_file_bytes=...)"
    raw = io.BytesIO(data)
    out = bytearray()
    try:
        with opener(raw) as fh:
            while True:
                # Never ask for more than one byte past the limit.
                block = fh.read(min(_BLOCK, limit + 1 - len(out)))
                if not block:
                    break
                out += block
                if len(out) > limit:
                    raise DataError(
                        f"the file expands to more than the limit of {_human(limit)} when "
                        f"decompressed (reading stopped there; it is {_human(len(data))} "
                        "compressed)",
                        file=file,
                        hint=f"Sample the data, or raise the limit: {how}",
                    )
                read_in = max(raw.tell(), 1)
                ratio = len(out) / read_in
                if len(out) > RATIO_FLOOR and ratio > limits.max_compression_ratio:
                    raise DataError(
                        f"the file expands more than {limits.max_compression_ratio} fold when "
                        f"decompressed ({_human(read_in)} became {_human(len(out))}, "
                        f"{ratio:.0f} fold, before reading stopped), which is how "
                        "decompression bombs look",
                        file=file,
                        hint="If the data is genuine, decompress it first or raise the limit: "
                        f"Limits(max_compression_ratio=...) or the environment variable {RATIO_ENV}",
                    )
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as e:
        raise DataError(
            f"the {kind} file is damaged or incomplete ({_short(e)})",
            file=file,
            hint="Download or export it again",
        ) from e
    return out


_BLOCK = 4 * MiB


# --------------------------------------------------------------------------- parquet


def _parse_parquet(data: bytes, file: str, limits: Limits) -> _Parsed:
    import pyarrow.parquet as pq  # imported here: only Parquet uploads pay for it

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        n = pf.metadata.num_rows
        if n > limits.max_rows:
            V.check_row_count(n, max_rows=limits.max_rows, file=file)
        table = pf.read()
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError, KeyError) as e:
        raise DataError(
            f"this is not a readable Parquet file; it may be truncated or damaged ({_short(e)})",
            file=file,
            hint="Export it again",
        ) from e
    keep = [
        i for i, n in enumerate(table.column_names) if not re.fullmatch(r"__index_level_\d+__", n)
    ]
    table = table.select(keep)
    names = list(table.column_names)
    table = table.rename_columns([f"c{i}" for i in range(len(names))])
    return _Parsed(table, names, _plain_lines, {"format": "parquet", "compression": None})


def _parse_dataframe(df: pd.DataFrame, file: str) -> _Parsed:
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
    return _Parsed(table, names, _plain_lines, {"format": "dataframe", "compression": None})


def _plain_lines(rows: np.ndarray) -> list[int]:
    """Tables without lines (Parquet, DataFrames): numbered as in a CSV export, header = 1."""
    return [int(r) + 2 for r in np.asarray(rows)]


# --------------------------------------------------------------------------- text


def _parse_text(data: bytes, file: str, ext: str, limits: Limits) -> _Parsed:
    warnings: list[DataWarning] = []
    body, encoding = _decode(data, file)
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
    table, names, lines = _read_delimited(body, file, delimiter, n_fields, limits)
    fmt = "recbole" if recbole else {",": "csv", "\t": "tsv"}.get(delimiter, "delimited")
    info = {"format": fmt, "compression": None, "encoding": encoding, "delimiter": delimiter}
    return _Parsed(
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


def _decode(data: bytes, file: str) -> tuple[bytes, str]:
    """Text bytes -> UTF-8 bytes (no BOM) and the encoding they were read with."""
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"the file starts like {enc.upper()} text but is not valid {enc.upper()}",
                    file=file,
                    hint="Save it as UTF-8",
                ) from e
            out = text.encode("utf-8", "surrogatepass")
            V.check_raw_bytes(out, file=file)
            return out, enc
    utf16 = _utf16_without_bom(data)
    if utf16:
        try:
            out = data.decode(utf16).encode("utf-8", "surrogatepass")
            V.check_raw_bytes(out, file=file)
            return out, utf16
        except UnicodeDecodeError:
            pass
    V.check_raw_bytes(data, file=file)
    encoding = "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
        encoding = "utf-8-sig"
        V.check_raw_bytes(data, file=file)  # a BOM alone is still an empty file
    if _is_utf8(data):
        return data, encoding
    try:
        # Windows-1252 is what "Latin-1" files from Excel usually are (curly quotes at
        # 0x91-0x94); real Latin-1 is the fallback for the five bytes it leaves undefined.
        return data.decode("cp1252").encode("utf-8"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1").encode("utf-8"), "latin-1"


def _is_utf8(data: bytes) -> bool:
    dec = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    step = 16 * MiB  # in chunks: no 2 GiB str just to validate
    try:
        for off in range(0, len(data), step):
            dec.decode(view[off : off + step])
        dec.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' / 'utf-16-be' when every other byte of the start is NUL (ASCII text)."""
    sample = np.frombuffer(data[: 4096 - (min(len(data), 4096) % 2)], dtype=np.uint8)
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if (odd == 0).mean() > 0.9 and (even == 0).mean() < 0.1:
        return "utf-16-le"
    if (even == 0).mean() > 0.9 and (odd == 0).mean() < 0.1:
        return "utf-16-be"
    return None


def _looks_recbole(head: str) -> bool:
    first = head.split("\n", 1)[0].rstrip("\r")
    return "\t" in first and any(_RECBOLE_SUFFIX.match(f) for f in first.split("\t"))


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

    block = int(min(max(len(body) + 1, MiB), 2**31 - 1))
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
            f"the file could not be parsed as a table ({_short(parse_error)})",
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
        self._body = body
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
        starts = self._record_starts()
        return [int(starts[n - 1]) if 0 < n <= len(starts) else int(n) for n in numbers]

    def _record_starts(self) -> np.ndarray:
        if self._starts is None:
            starts = None
            if b'"' in self._body:
                # The csv module reads stray quotes inside fields like pyarrow does.
                starts = _csv_record_starts(self._body, self._delim)
            if starts is None:
                starts = _record_starts_numpy(self._body)
            self._starts = starts
        return self._starts


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


# --------------------------------------------------------------------------- misc


@contextmanager
def _guard(file: str) -> Iterator[None]:
    """Whatever goes wrong inside reaches the caller as a DataError."""
    try:
        yield
    except DataError:
        raise
    except MemoryError as e:
        raise DataError(
            "the file is too large to load in the memory available",
            file=file,
            hint="Sample the data",
        ) from e
    except Exception as e:
        raise DataError(
            f"the file could not be read ({type(e).__name__}: {_short(e)})",
            file=file,
            hint="Check that it is a CSV, TSV, Parquet or RecBole atomic file",
        ) from e


def _short(e: BaseException | None, n: int = 160) -> str:
    s = " ".join(str(e).split()) if e is not None else "unknown error"
    return s if len(s) <= n else s[: n - 3] + "..."


def _list(names: Sequence[str], k: int = 12) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def _human(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _delim_name(d: str) -> str:
    return {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}.get(d, repr(d))
