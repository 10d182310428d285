"""File writes that never leave a half-written file behind, CSV exports that a
spreadsheet cannot run as formulas, and JSON output without NaN."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then move it into
    place with :func:`os.replace` (atomic on POSIX): readers see the old file or the new
    one, never a torn one, even if the process dies mid-write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): it starts with
# one of these. Tab and carriage return count too: some programs strip them first.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralize_cell(value: object) -> object:
    """``value`` with a single quote in front when it is text a spreadsheet would run as
    a formula (``=cmd|' /C calc'!A0``, ``@SUM(...)``, ``-2+3``); numbers, plain numeric
    text such as ``-0.5`` and every other value are returned unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        if not _PLAIN_NUMBER.fullmatch(value):
            return "'" + value
    return value


def csv_for_spreadsheets(df: pd.DataFrame, **to_csv: object) -> str:
    """``df.to_csv(index=False, **to_csv)`` with every text cell and column name that
    could run as a spreadsheet formula neutralised (see :func:`neutralize_cell`).

    For CSV exports people open in Excel or LibreOffice (the app's downloads). Files
    other programs read back as data (split folders, demo data) keep their exact text.
    """
    out = df.copy(deep=False)
    out.columns = [neutralize_cell(str(c)) for c in out.columns]
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            out.isetitem(i, col.map(neutralize_cell))
    return out.to_csv(**{"index": False, **to_csv})


def json_safe(obj: object) -> object:
    """``obj`` with every non-finite float (NaN, inf) replaced by None, recursively
    through dicts, lists and tuples; numpy scalars become Python numbers.

    JSON has no NaN: ``json.dumps`` writes a bare ``NaN`` that strict parsers (``jq``,
    JavaScript's ``JSON.parse``) reject, so every ``--json`` output goes through this
    (a metric with no users to average over has no value: null)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "ndim"):  # numpy scalars and arrays
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_line(obj: object) -> str:
    """One line of strict JSON (no NaN, no Infinity) for ``obj`` (see :func:`json_safe`)."""
    return json.dumps(json_safe(obj), allow_nan=False)
