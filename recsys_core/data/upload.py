"""What the Data page shows under one uploaded file: a headline, the detected column roles,
a preview of the first parsed rows and the warnings, so the analyst sees what the loader
understood before using the file.

Front-end neutral: the page renders an :class:`UploadCheck`; nothing here draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys_core.data.schema import ITEM, RATING, TIME, USER
from recsys_core.data.summary import count_noun
from recsys_core.data.validation import implausible_ratings

PREVIEW_ROWS = 5

_REQUIRED_ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    "interactions": (("user", "user id"), ("item", "item id")),
    "items": (("item", "item id"),),
    "users": (("user", "user id"),),
}


def undetected_roles(header: Sequence[str], kind: str) -> list[str]:
    """Roles the header names did not reveal, which the analyst must pick by hand.

    Required id columns always count; for an item table, no detected text column counts
    too (the language model would read nothing).

    Returns:
        Readable role names ("user id", "item text"), in form order; [] when every role
        was guessed.
    """
    from recsys_core.data.loaders import detect_columns

    guess = detect_columns(list(header), kind)  # type: ignore[arg-type]
    out = [label for role, label in _REQUIRED_ROLES[kind] if not getattr(guess, role)]
    if kind == "items" and not guess.text_fields:
        out.append("item text")
    return out


@dataclass(frozen=True)
class UploadCheck:
    """One parsed upload, as the page shows it.

    Attributes:
        headline: "ratings.csv: 1 row, 1 user, 1 item" (plurals right).
        mapping: (canonical column, source column) pairs the loader used.
        preview: the first :data:`PREVIEW_ROWS` parsed rows, canonical columns.
        warnings: parse warnings and implausible ratings (naming their data rows).
    """

    headline: str
    mapping: tuple[tuple[str, str], ...]
    preview: pd.DataFrame
    warnings: tuple[str, ...]


def check_upload(df: pd.DataFrame, info: Mapping[str, Any], kind: str, file: str) -> UploadCheck:
    """Describe a table :func:`recsys_core.data.loaders.read_table` returned.

    Args:
        df: the canonical table, one row per file row in file order.
        info: its ``read_info`` (columns, warnings).
        kind: "interactions", "items" or "users".
        file: the name the analyst knows the file by.
    """
    if kind == "interactions":
        headline = (
            f"{file}: {count_noun(len(df), 'row')}, {count_noun(_distinct(df[USER]), 'user')}, "
            f"{count_noun(_distinct(df[ITEM]), 'item')}"
        )
    else:
        headline = f"{file}: {count_noun(len(df), 'row')}"
    columns = dict(info.get("columns") or {})
    if kind == "items":
        for t in info.get("text_fields") or ():
            columns.setdefault(str(t), str(t))
    mapping = tuple((str(k), str(v)) for k, v in columns.items())
    warnings = [str(w) for w in info.get("warnings") or ()]
    if kind == "interactions":
        w = implausible_ratings(df, row_numbers=True)
        if w is not None:
            warnings.append(str(w))
    preview = df.head(PREVIEW_ROWS).copy()
    if kind == "interactions" and RATING in preview and df[RATING].isna().all():
        preview = preview.drop(columns=RATING)  # implicit feedback: nothing to show
    if TIME in preview:  # epoch seconds as the loader understood them, readable
        preview[TIME] = pd.to_datetime(preview[TIME], unit="s", utc=True).dt.strftime(
            "%Y-%m-%d %H:%M:%S"
        )
    return UploadCheck(headline, mapping, preview.reset_index(drop=True), tuple(warnings))


def _distinct(ids: pd.Series) -> int:
    """Number of distinct ids, counted by Arrow on the column's own buffers (several
    times faster than ``nunique`` on millions of ids; issue 13)."""
    try:
        return int(pc.count_distinct(pa.array(ids)).as_py())
    except (pa.ArrowException, TypeError, ValueError):
        return int(ids.nunique())


__all__ = ["PREVIEW_ROWS", "UploadCheck", "check_upload", "undetected_roles"]
