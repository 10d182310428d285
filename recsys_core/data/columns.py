"""Column roles: which column of a table is the user, the item, the rating, the time,
and which item columns hold the text the encoder reads.

:class:`ColumnMapping` says it explicitly (the Data page, ``ScenarioSpec.columns``);
:func:`detect_columns` guesses it from the header names; :func:`resolve_roles` and
:func:`canonical_frame` apply it to a parsed table to give the canonical frames of
:mod:`recsys_core.data.schema`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys_core.data import validation as V
from recsys_core.data.parsing import RECBOLE_SUFFIX, Parsed
from recsys_core.data.schema import ITEM, RATING, TIME, USER
from recsys_core.data.sources import name_list, release_arrow_memory
from recsys_core.errors import DataError

Kind = Literal["interactions", "items", "users", "table"]

KINDS: tuple[str, ...] = ("interactions", "items", "users")
"""The tables of a domain. ``read_table`` also reads ``kind="table"``: every column as
text, no roles (split folders and recommendation files, which have their own columns)."""
TEXT_FIELDS: tuple[str, ...] = ("title", "genres", "year", "description")
"""Canonical item text columns, in the order they are joined for the text encoder."""


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


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def strip_suffix(name: str) -> str:
    m = RECBOLE_SUFFIX.match(name.strip())
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
    names = [strip_suffix(str(n)) for n in df_header]
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


def resolve_roles(
    names: list[str], kind: str, columns: ColumnMapping | None, file: str, strict: bool
) -> dict[str, Any]:
    """role -> column name (or None), plus "text_fields" -> source names or None."""
    by_name = {n: n for n in names}
    # Accept the RecBole-suffixed spelling of a name, and the displayed one.
    for n in names:
        by_name.setdefault(strip_suffix(n), n)
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
            col = by_name.get(want.strip()) or by_name.get(strip_suffix(want))
            if col is None:
                if not strict and role in ("user", "item"):
                    continue  # a mapping made for another file: detect here instead
                raise DataError(
                    f"the {role} column is mapped to '{want}', which is not in the file; the file has "
                    f"columns {name_list(names)}",
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
                f"no {role} id column was found among the columns {name_list(names)}",
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
                col = by_name.get(want.strip()) or by_name.get(strip_suffix(want))
                if col is None and want in TEXT_FIELDS and roles.get(want):
                    col = roles[want]
                if col is None:
                    raise DataError(
                        f"the text field '{want}' is not in the file; the file has columns {name_list(names)}",
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


def canonical_frame(
    parsed: Parsed, names: list[str], kind: str, roles: dict[str, Any], file: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = parsed.table
    n_rows = table.num_rows
    col_of = {n: table.column(i) for i, n in enumerate(names)}
    # The raw text columns are released one by one as they are converted (the parsed
    # table is not used after this), so the peak holds one raw column, not all of them.
    parsed.table = pa.table({})
    del table
    release_arrow_memory()  # the parser's working memory
    lines = parsed.lines
    extra: dict[str, Any] = {}

    def ids(src: str) -> pd.Series:
        col, twins = V.clean_ids(col_of.pop(src), file=file, column=src, lines=lines, twins=True)
        if twins is not None:
            parsed.warnings.append(twins)
        release_arrow_memory()  # the raw column, back to the system before the next
        return col

    if kind == "interactions":
        data: dict[str, Any] = {USER: ids(roles["user"]), ITEM: ids(roles["item"])}
        if roles.get("rating"):
            data[RATING] = V.parse_ratings(
                col_of.pop(roles["rating"]),
                file=file,
                column=roles["rating"],
                lines=lines,
                decimal_comma=parsed.decimal_comma,
            )
            release_arrow_memory()
        else:
            data[RATING] = np.full(n_rows, np.nan)
        if roles.get("timestamp"):
            data[TIME] = V.parse_timestamps(
                col_of.pop(roles["timestamp"]), file=file, column=roles["timestamp"], lines=lines
            )
            release_arrow_memory()
        df = pd.DataFrame(data, copy=False)
        extra["columns"] = {
            c: roles[r]
            for c, r in ((USER, "user"), (ITEM, "item"), (RATING, "rating"), (TIME, "timestamp"))
            if roles.get(r)
        }
        return df, extra

    key, canon = ("item", ITEM) if kind == "items" else ("user", USER)
    src_key = roles[key]
    out: dict[str, Any] = {canon: ids(src_key)}
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
        out[new] = V.as_text(col_of.pop(n), file=file, column=n).to_pandas().astype("str")
    df = pd.DataFrame(out)
    extra["columns"] = {canon: src_key, **{v: k for k, v in rename.items()}}
    extra["rename"] = rename
    if kind == "items":
        src_text = roles["text_fields"]
        if src_text is None:
            src_text = tuple(roles[r] for r in TEXT_FIELDS if roles.get(r))
        extra["text_fields"] = [rename.get(s, s) for s in src_text if s != src_key]
    return df, extra


def resolve_text_fields(
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
        col = rename.get(w, rename.get(strip_suffix(w), w))
        if col not in items.columns or col == ITEM:
            raise DataError(
                f"the text field '{w}' is not a column of the item table, which has "
                f"{name_list([c for c in items.columns if c != ITEM])}",
                file=file,
                column=w,
                rows=[1],
                hint="Choose text fields among these columns",
            )
        if col not in out:
            out.append(col)
    return tuple(out)


def split_mapping(columns: Any) -> dict[str, ColumnMapping | None]:
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
