"""File writes that never leave a half-written file behind, and CSV exports that a
spreadsheet cannot run as formulas."""

from __future__ import annotations

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
