"""Reading a split folder's files: split.json and its checks, the CSV files as str cells,
and the id, number and flag columns in them (used by :func:`import_split`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from recsys_core.data.loaders import Limits, read_table
from recsys_core.data.schema import ITEM, USER
from recsys_core.data.split_io.export import FORMAT, FORMAT_VERSION, META_FILE
from recsys_core.data.split_types import SplitConfig
from recsys_core.errors import DataError

_SUPPORT_RE = re.compile(r"^support_k(\d+)\.csv$")
_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})


# --------------------------------------------------------------------------- reading


def read_csv_cells(
    source: Path | str | bytes | BinaryIO,
    file: str,
    required: tuple[str, ...],
    hint: str | None = None,
    limits: Limits = Limits(),
) -> pd.DataFrame:
    """A split or recommendation file as str cells, read by the one table reader.

    :func:`recsys_core.data.loaders.read_table` (``kind="table"``) does the reading, so
    these files get the same size, decompression, row and field limits, encodings and
    delimiters as any uploaded table.

    Args:
        source: a path, the file's bytes (an upload) or a binary file object.
        file: the file name as the user knows it, for messages.
        required: columns that must be in the header (after trimming spaces; names are
            matched case-insensitively and returned lower case).
        hint: what the file should look like, added to "missing column" errors.
        limits: size limits of the reader.

    Returns:
        DataFrame of str cells (empty cells are ""), index = line number - 2 (the header
        is line 1), wholly empty lines dropped.

    Raises:
        DataError: unreadable, empty, over a limit, or a required column missing.
    """
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise DataError("file not found", file=file, hint=hint)
    df = read_table(source, name=file, kind="table", limits=limits)
    df.columns = [str(c).strip().lower() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise DataError(
            "two columns have the same name when case is ignored", file=file, rows=[1], hint=hint
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        # Names only, cut short: the header of the folder's own file, never its rows.
        have = ", ".join(c if len(c) <= 40 else c[:37] + "..." for c in df.columns[:12])
        raise DataError(
            f"the column is missing (the header has: {have or 'nothing'})",
            file=file,
            column=missing[0],
            hint=hint or f"The file needs the columns {', '.join(required)}",
        )
    return df


def _lines(mask: np.ndarray | pd.Series, df: pd.DataFrame) -> list[int]:
    """1-based file line numbers (header = 1) of the rows where ``mask`` holds."""
    return (df.index.to_numpy()[np.asarray(mask, dtype=bool)] + 2).tolist()


def _ids(df: pd.DataFrame, col: str, file: str) -> np.ndarray:
    v = df[col].to_numpy(dtype=object)
    empty = df[col].str.strip().eq("").to_numpy()
    if empty.any():
        raise DataError(
            f"{int(empty.sum())} empty id(s)", file=file, column=col, rows=_lines(empty, df)
        )
    return v


def _int_column(df: pd.DataFrame, col: str, file: str, hint: str | None = None) -> np.ndarray:
    """Whole numbers (int64); any other value is a DataError naming its lines."""
    x = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(x) | (np.floor(x) != x)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} value(s) are not whole numbers",
            file=file,
            column=col,
            rows=_lines(bad, df),
            hint=hint,
        )
    return x.astype(np.int64)


def _flag_column(df: pd.DataFrame, col: str, file: str) -> np.ndarray:
    v = df[col].str.strip().str.lower()
    t, f = v.isin(_TRUE).to_numpy(), v.isin(_FALSE).to_numpy()
    bad = ~(t | f)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} value(s) are not flags",
            file=file,
            column=col,
            rows=_lines(bad, df),
            hint="Write 1 or 0 (true/false also work)",
        )
    return t


def read_split_info(folder: Path | str) -> dict:
    """The folder's split.json as a dict, or {} for a folder made by another tool.

    Raises:
        DataError: split.json is not valid JSON, not ours, or from a newer version.
    """
    path = Path(folder) / META_FILE
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"not valid JSON ({exc})",
            file=META_FILE,
            hint="Delete split.json to read the CSV files as a split made by another tool",
        ) from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise DataError(
            f'not a split description of this tool (expected "format": "{FORMAT}")',
            file=META_FILE,
            hint="Delete split.json to read the CSV files as a split made by another tool",
        )
    version = info.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(
            f"written by a newer version of the format ({version!r}; this one reads up to "
            f"{FORMAT_VERSION})",
            file=META_FILE,
            hint="Upgrade recsys-transfer-lab",
        )
    _check_info_types(info)
    return info


_FILE_KEYS = ("train", "valid", "test", "cold_users", "cold_items", "users", "items")


def _check_info_types(info: dict) -> None:
    """Every field import reads has the type export writes (a hand-edited or hostile
    split.json gets a message, not a TypeError deep inside the import)."""

    def bad(field: str, want: str, value: Any) -> DataError:
        return DataError(
            f'"{field}" must be {want}, not {type(value).__name__}',
            file=META_FILE,
            column=field,
            hint="Export the split again, or delete split.json to read the CSV files as a "
            "split made by another tool",
        )

    for key in ("scenario", "scenario_fingerprint", "fingerprint"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise bad(key, "a text", info[key])
    for key in ("config", "files", "counts"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            raise bad(key, "an object", info[key])
    if info.get("settings_inferred") is not None and not isinstance(
        info["settings_inferred"], bool
    ):
        raise bad("settings_inferred", "true or false", info["settings_inferred"])
    files = info.get("files") or {}
    for key in _FILE_KEYS:
        if files.get(key) is not None and not isinstance(files[key], str):
            raise bad(f"files.{key}", "a file name", files[key])
    support = files.get("support")
    if support is None:
        return
    if not isinstance(support, dict):
        raise bad("files.support", 'an object such as {"1": "support_k1.csv"}', support)
    for k, name in support.items():
        if not re.fullmatch(r"\d{1,6}", k):
            raise DataError(
                f"the support size {_shown(k)} is not a whole number",
                file=META_FILE,
                column="files.support",
                hint='Key each support file by its size, e.g. {"1": "support_k1.csv"}',
            )
        if not isinstance(name, str):
            raise bad(f"files.support.{k}", "a file name", name)


def _shown(text: str, n: int = 60) -> str:
    """repr of a name from a file, cut short for messages."""
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def _inside(folder: Path, name: str, entry: str) -> Path:
    """``folder / name``, refused when it can reach anything outside ``folder``.

    A file entry is a bare file name: no absolute path, no folder part, no "..", and no
    link that resolves outside the folder (a split folder is someone else's data; it
    must not make us read /etc/passwd or a colleague's upload).

    Raises:
        DataError: naming the entry (never the content of what it points to).
    """
    hint = "List file names of the split folder itself, such as train.csv"
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or (len(name) > 1 and name[1] == ":")
    ):
        raise DataError(
            f"the file entry {entry} = {_shown(name)} is not a file name inside the split "
            "folder (no paths, drive letters or '..' allowed)",
            file=META_FILE,
            hint=hint,
        )
    root = folder.resolve()
    path = folder / name
    if (path.exists() or path.is_symlink()) and not path.resolve().is_relative_to(root):
        what = f"the file entry {entry} = {_shown(name)}" if entry != name else "the file"
        raise DataError(
            f"{what} is a link to a file outside the split folder, which is not read",
            file=name,
            hint="Copy the file into the folder instead of linking to it",
        )
    return path


def _config_from_info(info: dict) -> SplitConfig:
    raw = dict(info.get("config") or {})
    try:
        if "cold_ks" in raw:
            if not isinstance(raw["cold_ks"], list):
                raise TypeError(f"cold_ks must be a list of whole numbers, not {raw['cold_ks']!r}")
            raw["cold_ks"] = tuple(raw["cold_ks"])
        return SplitConfig(**raw)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"the split settings are invalid: {exc}", file=META_FILE, column="config"
        ) from exc


@dataclass
class _Files:
    """What one folder holds, read but not yet indexed (str ids)."""

    train: pd.DataFrame
    valid: pd.DataFrame | None
    test: pd.DataFrame
    support: dict[int, pd.DataFrame]
    cold_users: pd.DataFrame | None
    cold_items: pd.DataFrame | None
    users: pd.DataFrame | None
    items: pd.DataFrame | None


def _read_files(folder: Path, info: dict, limits: Limits) -> _Files:
    names = dict(info.get("files") or {})

    def read(name: str, entry: str, cols: tuple[str, ...], hint: str | None = None):
        return read_csv_cells(_inside(folder, name, entry), name, cols, hint=hint, limits=limits)

    def opt(key: str, default: str, cols: tuple[str, ...]) -> pd.DataFrame | None:
        name = names.get(key, default)
        if not name:
            return None
        path = _inside(folder, name, f"files.{key}")
        return read(name, f"files.{key}", cols) if path.is_file() else None

    hint = "See docs/split_format.md: train.csv needs user_id,item_id (timestamp optional)"
    train = read("train.csv", "train.csv", (USER, ITEM), hint=hint)
    test = read(
        "test.csv",
        "test.csv",
        (USER, ITEM),
        hint="See docs/split_format.md: test.csv needs user_id,item_id (cold_user, cold_item optional)",
    )
    if info:
        support_names = {int(k): v for k, v in (names.get("support") or {}).items()}
    else:
        support_names = {
            int(m.group(1)): p.name
            for p in folder.iterdir()
            if (m := _SUPPORT_RE.match(p.name)) and p.is_file()
        }
    support = {}
    for k in sorted(support_names):
        name = support_names[k]
        support[k] = read(name, f"files.support.{k}" if info else name, (USER, ITEM))
    return _Files(
        train=train,
        valid=opt("valid", "valid.csv", (USER, ITEM)),
        test=test,
        support=support,
        cold_users=opt("cold_users", "cold_users.csv", (USER,)),
        cold_items=opt("cold_items", "cold_items.csv", (ITEM,)),
        users=opt("users", "users.csv", (USER,)),
        items=opt("items", "items.csv", (ITEM,)),
    )
