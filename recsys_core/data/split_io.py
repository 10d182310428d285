"""Split folders: a target split as plain CSV files with original ids, and back again.

A split folder lets any other library train and score on exactly the split our runs
use (``transfer-lab split export``), and lets a split made elsewhere drive our runs
(``transfer-lab run --split DIR``). The format is described for humans in
docs/split_format.md; in short::

    split.json          format and version, scenario, fingerprints, SplitConfig, counts, files
    train.csv           user_id,item_id,timestamp    warm users' training interactions
    valid.csv           user_id,item_id              warm users' validation interactions
    test.csv            user_id,item_id,cold_user,cold_item   (flags 0/1)
    support_k{K}.csv    user_id,item_id              cold users' first K interactions
    cold_users.csv      user_id                      users held out of training
    cold_items.csv      item_id                      items without training interactions
    users.csv           user_id,first_timestamp      every user of the split (index order)
    items.csv           item_id                      the catalogue every list ranks over

Only ``train.csv`` and ``test.csv`` are required in a folder made by another tool.

Indices are never written: :func:`import_split` rebuilds the id maps with
:meth:`IdMap.from_values` over every id in the files (sorted original ids), which is how
:func:`recsys_core.data.splits.make_split` built them, so export then import gives an
identical :class:`Split` (same maps, frames, segments and config).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from recsys_core.data.loaders import Limits, read_table
from recsys_core.data.scenario import Scenario, build_scenario
from recsys_core.data.schema import ITEM, TIME, USER, IdMap
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.errors import DataError

FORMAT = "recsys-transfer-lab split"
FORMAT_VERSION = 1
"""Version of the folder layout; import refuses folders written by a newer version."""

META_FILE = "split.json"
_SUPPORT_RE = re.compile(r"^support_k(\d+)\.csv$")
_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})


# --------------------------------------------------------------------------- fingerprint


def split_fingerprint(split: Split) -> str:
    """16 hex digits of sha256 over everything a :class:`Split` holds.

    Ids, frames (in row order), support sets, cold lists, first times and the config:
    two splits have the same fingerprint exactly when evaluating on them is the same
    thing. Deterministic across processes and machines (no Python ``hash``).
    """
    h = hashlib.sha256()

    def ints(a: Any) -> None:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes())
        h.update(b"|")

    h.update(json.dumps([str(x) for x in split.user_map.ids]).encode())
    h.update(json.dumps([str(x) for x in split.item_map.ids]).encode())
    for f in (split.train, split.valid, split.test):
        ints(f["user"] if len(f) else [])
        ints(f["item"] if len(f) else [])
    ints(split.train[TIME] if TIME in split.train.columns else [])
    for col in ("cold_user", "cold_item"):
        ints(split.test[col].to_numpy(dtype=bool) if col in split.test.columns else [])
    for k in sorted(split.support):
        s = split.support[k]
        h.update(f"k{k}".encode())
        ints(s["user"] if len(s) else [])
        ints(s["item"] if len(s) else [])
    ints(split.cold_users)
    ints(split.cold_items)
    ints(split.first_time)
    h.update(json.dumps(split.config.to_dict(), sort_keys=True, default=list).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- export


INFERRED_NOTE = (
    "imported from a folder without split.json: the protocol and the support sizes were "
    "read from its files; the settings that made it (fractions, seed) are unknown"
)


def split_settings(split: Split) -> dict[str, Any]:
    """The settings that made ``split``, as split.json and stored runs record them: all of
    them for our own splits; for a split imported from another tool's folder only those
    its files show (protocol, cold_ks), never defaults passed off as its settings."""
    cfg = {**split.config.to_dict(), "cold_ks": list(split.config.cold_ks)}
    if split.config_inferred:
        cfg = {k: cfg[k] for k in ("protocol", "cold_ks")}
    return cfg


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    # "\n" line ends on every platform: other tools split on them, and the files hash
    # the same everywhere.
    df.to_csv(path, index=False, lineterminator="\n")
    return path


def export_split(
    split: Split,
    out_dir: Path | str,
    scenario_name: str = "",
    scenario_fingerprint: str | None = None,
) -> list[Path]:
    """Write ``split`` to ``out_dir`` as plain CSV files with original ids.

    Args:
        split: the split to write (any protocol).
        out_dir: folder to write into (created if missing; our file names are
            overwritten, other files are left alone).
        scenario_name: recorded in split.json, so a stored evaluation can name it.
        scenario_fingerprint: the data fingerprint of the scenario the split belongs to
            (``Scenario.fingerprint()``), recorded so that recommendations evaluated on
            this folder can be compared with that scenario's runs.

    Returns:
        The paths written, split.json last (it is written last, so a folder with a
        split.json is complete).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    uid, iid = split.user_map.ids, split.item_map.ids

    def ids(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {
            USER: uid[frame["user"].to_numpy(dtype=np.int64)],
            ITEM: iid[frame["item"].to_numpy(dtype=np.int64)],
        }

    t = split.train
    times = t[TIME].to_numpy(dtype=np.int64) if TIME in t.columns else np.zeros(len(t), np.int64)
    test = split.test

    def flag(col: str) -> np.ndarray:
        if col not in test.columns:
            return np.zeros(len(test), np.int64)
        return test[col].to_numpy(dtype=bool).astype(np.int64)

    files: dict[str, Any] = {
        "train": "train.csv",
        "valid": "valid.csv",
        "test": "test.csv",
        "support": {},
        "cold_users": "cold_users.csv",
        "cold_items": "cold_items.csv",
        "users": "users.csv",
        "items": "items.csv",
    }
    paths = [
        _write_csv(pd.DataFrame({**ids(t), TIME: times}), out / "train.csv"),
        _write_csv(pd.DataFrame(ids(split.valid)), out / "valid.csv"),
        _write_csv(
            pd.DataFrame(
                {**ids(test), "cold_user": flag("cold_user"), "cold_item": flag("cold_item")}
            ),
            out / "test.csv",
        ),
    ]
    for k in sorted(split.support):
        name = f"support_k{k}.csv"
        files["support"][str(k)] = name
        s = split.support[k]
        frame = pd.DataFrame(ids(s)) if len(s) else pd.DataFrame({USER: [], ITEM: []})
        paths.append(_write_csv(frame, out / name))
    paths.append(_write_csv(pd.DataFrame({USER: uid[split.cold_users]}), out / "cold_users.csv"))
    paths.append(_write_csv(pd.DataFrame({ITEM: iid[split.cold_items]}), out / "cold_items.csv"))
    first = np.full(split.n_users, -1, np.int64)
    if len(split.first_time) == split.n_users:
        first = np.asarray(split.first_time, dtype=np.int64)
    # Unknown first times (-1) are written as empty cells: other tools read "no value".
    first_col = pd.array(np.where(first >= 0, first, 0), dtype="Int64")
    first_col[first < 0] = pd.NA
    paths.append(
        _write_csv(pd.DataFrame({USER: uid, "first_timestamp": first_col}), out / "users.csv")
    )
    paths.append(_write_csv(pd.DataFrame({ITEM: iid}), out / "items.csv"))

    cold_user = flag("cold_user").astype(bool)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scenario": scenario_name,
        "scenario_fingerprint": scenario_fingerprint,
        "fingerprint": split_fingerprint(split),
        "config": split_settings(split),
        "counts": {
            "users": split.n_users,
            "items": split.n_items,
            "train": len(t),
            "valid": len(split.valid),
            "test": len(test),
            "test_warm_users": int(test.loc[~cold_user, "user"].nunique()),
            "test_cold_users": int(test.loc[cold_user, "user"].nunique()),
            "cold_users": len(split.cold_users),
            "cold_items": len(split.cold_items),
            "support": {str(k): len(split.support[k]) for k in sorted(split.support)},
        },
        "files": files,
    }
    if split.config_inferred:
        meta["settings_inferred"] = True
        meta["settings_note"] = INFERRED_NOTE
    meta_path = out / META_FILE
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    paths.append(meta_path)
    return paths


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


def import_split(folder: Path | str, limits: Limits = Limits()) -> Split:
    """Read a split folder (ours, or one made by another tool) into a :class:`Split`.

    Ids are read as strings. The id maps are :meth:`IdMap.from_values` over every id in
    the files, so a folder written by :func:`export_split` comes back identical.

    A folder without split.json needs only train.csv and test.csv; then:

    * the protocol is "cold-start" when test.csv flags a cold user or a cold item,
      support_k{K}.csv files exist, or cold_users.csv / cold_items.csv list anything;
      otherwise "temporal" (no cold segments);
    * without a cold_user column, the users of the support files and of cold_users.csv
      are the cold users;
    * cold_ks are the K of the support files found; cold users with no support file at
      all are evaluated at K = 0 (an empty support set);
    * a missing cold_item column is computed as "item has no row in train.csv" (the
      definition our own splits use); without cold_users.csv, cold users are the users
      flagged cold in test.csv plus those of the support files; without cold_items.csv,
      cold items are the items flagged cold in test.csv (or, with no cold_item column,
      the items without training rows);
    * first target times come from the timestamp columns the files carry (train.csv,
      and any file with a timestamp column); unknown times are -1.

    Args:
        folder: the split folder. File entries of its split.json must be file names
            inside it (no paths, no links that lead outside).
        limits: size limits for every file (as for uploaded tables).

    Raises:
        DataError: a missing file or column, a bad value (naming file, column and
            lines), a file over a limit or outside the folder, or a leak: a cold user with training rows, a cold item with training
            rows, a user flagged both cold and warm.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            "split folder not found",
            file=str(folder),
            hint="Give a folder written by 'transfer-lab split export' or holding train.csv and test.csv",
        )
    info = read_split_info(folder)
    f = _read_files(folder, info, limits)

    train_u, train_i = _ids(f.train, USER, "train.csv"), _ids(f.train, ITEM, "train.csv")
    has_time = TIME in f.train.columns
    train_t = (
        _int_column(f.train, TIME, "train.csv", hint="Timestamps are whole seconds since the epoch")
        if has_time
        else np.zeros(len(f.train), np.int64)
    )
    valid = f.valid if f.valid is not None else pd.DataFrame({USER: [], ITEM: []}, dtype=str)
    valid_u, valid_i = _ids(valid, USER, "valid.csv"), _ids(valid, ITEM, "valid.csv")
    test_u, test_i = _ids(f.test, USER, "test.csv"), _ids(f.test, ITEM, "test.csv")
    has_cu, has_ci = "cold_user" in f.test.columns, "cold_item" in f.test.columns
    cu = _flag_column(f.test, "cold_user", "test.csv") if has_cu else np.zeros(len(f.test), bool)
    ci = _flag_column(f.test, "cold_item", "test.csv") if has_ci else np.zeros(len(f.test), bool)
    sup = {
        k: (_ids(s, USER, f"support_k{k}.csv"), _ids(s, ITEM, f"support_k{k}.csv"))
        for k, s in f.support.items()
    }

    if info:
        config = _config_from_info(info)
        if config.has_cold_segments and set(sup) != set(config.cold_ks):
            raise DataError(
                f"split.json lists support sizes {list(config.cold_ks)} but the folder has "
                f"support files for {sorted(sup)}",
                file=META_FILE,
                column="cold_ks",
                hint="Export the split again",
            )
    else:
        listed = any(d is not None and len(d) for d in (f.cold_users, f.cold_items))
        cold = bool(cu.any() or ci.any() or sup or listed)
        if cold and not sup:  # cold users without a support file: K = 0, no history
            sup = {0: (np.zeros(0, object), np.zeros(0, object))}
        try:
            config = SplitConfig(
                protocol="cold-start" if cold else "temporal",
                cold_ks=tuple(sorted(sup)) if sup else (0,),
            )
        except ValueError as exc:
            raise DataError(str(exc), file="support_k*.csv") from exc
    if not config.has_cold_segments:
        if cu.any():
            raise DataError(
                f"{config.protocol} splits have no cold users, but {int(cu.sum())} row(s) are "
                "flagged cold_user",
                file="test.csv",
                column="cold_user",
                rows=_lines(cu, f.test),
            )
        sup, ci = {}, np.zeros(len(f.test), bool)

    def listed_ids(df: pd.DataFrame | None, c: str, file: str) -> np.ndarray | None:
        return None if df is None else _ids(df, c, file)

    cold_u_ids = listed_ids(f.cold_users, USER, "cold_users.csv")
    cold_i_ids = listed_ids(f.cold_items, ITEM, "cold_items.csv")
    every_user = listed_ids(f.users, USER, "users.csv")
    every_item = listed_ids(f.items, ITEM, "items.csv")
    all_users = [train_u, valid_u, test_u, *(u for u, _ in sup.values())]
    all_items = [train_i, valid_i, test_i, *(i for _, i in sup.values())]
    for extra, into in ((every_user, all_users), (every_item, all_items)):
        if extra is not None:
            into.append(extra)
    if cold_u_ids is not None:
        all_users.append(cold_u_ids)
    if cold_i_ids is not None:
        all_items.append(cold_i_ids)
    user_map = IdMap.from_values(np.concatenate(all_users))
    item_map = IdMap.from_values(np.concatenate(all_items))
    n_users, n_items = len(user_map), len(item_map)
    if n_users == 0 or n_items == 0 or len(f.test) == 0:
        raise DataError(
            "the split has no test rows" if len(f.test) == 0 else "the split has no users or items",
            file="test.csv" if len(f.test) == 0 else "train.csv",
        )

    def frame(u: np.ndarray, i: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"user": user_map.encode(u), "item": item_map.encode(i)})

    train = frame(train_u, train_i)
    train[TIME] = train_t
    valid_f = frame(valid_u, valid_i)
    notes: tuple[str, ...] = ()
    if len(valid_f) == 0:
        # Every choice (early stopping, EASE's l2, fusion's weight, how new items are
        # scored, the popularity prior) is made on validation; a peer's train/test folder
        # has none, so carve it out of train rather than choose on nothing (issue 10).
        train, valid_f, n_carved = carve_validation(
            train, frac=config.valid_frac, seed=config.seed, by_time=has_time
        )
        notes = (
            (
                f"no valid.csv: validation carved out of train.csv, {n_carved:,} rows "
                f"({config.valid_frac:.0%} of each user with 3 or more rows, "
                + ("their latest)" if has_time else f"drawn with seed {config.seed})")
            )
            if n_carved
            else "no valid.csv, and no user has 3 or more rows in train.csv to carve "
            "validation from: every choice made on validation falls back to its default",
        )
    test = frame(test_u, test_i)
    support = {k: frame(u, i) for k, (u, i) in sorted(sup.items())}

    if config.has_cold_segments and not has_cu:
        # No flags: the users of the support files and cold_users.csv are the cold ones.
        listed_cold = [s["user"].to_numpy() for s in support.values()]
        if cold_u_ids is not None:
            listed_cold.append(user_map.encode(cold_u_ids))
        cu = np.isin(test["user"].to_numpy(), np.concatenate([np.zeros(0, np.int64), *listed_cold]))
    trained_item = np.zeros(n_items, bool)
    trained_item[train["item"].to_numpy()] = True
    if config.has_cold_segments and not has_ci:
        ci = ~trained_item[test["item"].to_numpy()]
    test["cold_user"] = cu
    test["cold_item"] = ci

    # Leak checks: what our own splits guarantee, checked on any folder.
    known_user = np.zeros(n_users, bool)
    known_user[train["user"].to_numpy()] = True
    known_user[valid_f["user"].to_numpy()] = True
    leak = cu & known_user[test["user"].to_numpy()]
    if leak.any():
        raise DataError(
            f"{int(leak.sum())} test row(s) flag a cold user who has rows in train.csv or valid.csv",
            file="test.csv",
            column="cold_user",
            rows=_lines(leak, f.test),
            hint="A cold user must be absent from train.csv and valid.csv",
        )
    leak = ci & trained_item[test["item"].to_numpy()]
    if leak.any():
        raise DataError(
            f"{int(leak.sum())} test row(s) flag a cold item that has rows in train.csv",
            file="test.csv",
            column="cold_item",
            rows=_lines(leak, f.test),
            hint="A cold item must be absent from train.csv",
        )
    warm_test_user = np.zeros(n_users, bool)
    warm_test_user[test.loc[~cu, "user"].to_numpy()] = True
    both = cu & warm_test_user[test["user"].to_numpy()]
    if both.any():
        raise DataError(
            "some users have test rows flagged cold_user = 1 and others flagged 0",
            file="test.csv",
            column="cold_user",
            rows=_lines(both, f.test),
            hint="Flag every test row of a user the same way",
        )

    if not config.has_cold_segments:
        cold_users = np.zeros(0, np.int64)
    elif cold_u_ids is not None:
        cold_users = np.unique(user_map.encode(cold_u_ids))
        leak = known_user[cold_users]
        if leak.any():
            bad = user_map.ids[cold_users[leak]][:5]
            raise DataError(
                f"cold users with rows in train.csv or valid.csv ({', '.join(map(str, bad))})",
                file="cold_users.csv",
                column=USER,
                hint="A cold user must be absent from train.csv and valid.csv",
            )
    else:
        parts = [test.loc[cu, "user"].to_numpy(), *(s["user"].to_numpy() for s in support.values())]
        cold_users = np.unique(np.concatenate(parts)).astype(np.int64)
    if not config.has_cold_segments:
        cold_items = np.zeros(0, np.int64)
    elif cold_i_ids is not None:
        cold_items = np.unique(item_map.encode(cold_i_ids))
    elif has_ci:  # the file's own flags say which items it holds cold
        cold_items = np.unique(test.loc[ci, "item"].to_numpy()).astype(np.int64)
    else:
        cold_items = np.flatnonzero(~trained_item)

    first_time = _first_times(f, user_map, train, has_time)
    return Split(
        config_inferred=not info or bool(info.get("settings_inferred")),
        config=config,
        user_map=user_map,
        item_map=item_map,
        train=train.astype({"user": np.int64, "item": np.int64, TIME: np.int64}),
        valid=valid_f.astype(np.int64),
        test=test.astype({"user": np.int64, "item": np.int64}),
        support={k: s.astype(np.int64) for k, s in support.items()},
        cold_users=cold_users.astype(np.int64),
        cold_items=cold_items.astype(np.int64),
        first_time=first_time,
        notes=notes,
    )


def carve_validation(
    train: pd.DataFrame, frac: float, seed: int, by_time: bool
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Move a per-user share of ``train`` into a validation frame.

    Each user with at least 3 training rows gives ``max(1, round(frac * n))`` of them:
    the latest by timestamp when ``by_time``, else a seeded random draw. Returns
    (train, valid (user, item), rows moved).
    """
    rng = np.random.default_rng(seed)
    t = train.reset_index(drop=True)
    key = t[TIME].to_numpy() if by_time else rng.random(len(t))
    order = np.lexsort((np.arange(len(t)), key, t["user"].to_numpy()))
    users = t["user"].to_numpy()[order]
    n = pd.Series(users).groupby(users).transform("size").to_numpy()
    pos = pd.Series(users).groupby(users).cumcount().to_numpy()
    take = np.maximum(1, np.round(frac * n)).astype(np.int64)
    to_valid = np.zeros(len(t), bool)
    to_valid[order] = (n >= 3) & (pos >= n - take)  # back in the file's row order
    valid = t.loc[to_valid, ["user", "item"]].reset_index(drop=True)
    return t.loc[~to_valid].reset_index(drop=True), valid, int(to_valid.sum())


def _first_times(f: _Files, user_map: IdMap, train: pd.DataFrame, has_time: bool) -> np.ndarray:
    """int64 (n_users,) first target timestamp per user, -1 when unknown.

    users.csv gives them exactly (our exports); otherwise the minimum over every file
    that carries a timestamp column.
    """
    n = len(user_map)
    if f.users is not None and "first_timestamp" in f.users.columns:
        u = f.users
        filled = u["first_timestamp"].str.strip() != ""
        out = np.full(n, -1, np.int64)
        if filled.any():
            rows = u[filled.to_numpy()]
            t = _int_column(rows, "first_timestamp", "users.csv")
            out[user_map.encode(rows[USER].to_numpy(dtype=object))] = t
        return out
    out = np.full(n, np.iinfo(np.int64).max, np.int64)
    if has_time:
        np.minimum.at(out, train["user"].to_numpy(), train[TIME].to_numpy(np.int64))
    extra = [("valid.csv", f.valid), ("test.csv", f.test)]
    extra += [(f"support_k{k}.csv", s) for k, s in f.support.items()]
    for name, df in extra:
        if df is not None and len(df) and TIME in df.columns:
            t = _int_column(df, TIME, name, hint="Timestamps are whole seconds since the epoch")
            np.minimum.at(out, user_map.encode(df[USER].to_numpy(dtype=object)), t)
    out[out == np.iinfo(np.int64).max] = -1
    return out


def folder_fingerprint(folder: Path | str, split: Split | None = None) -> str:
    """The data fingerprint of runs evaluated on this folder's split.

    The fingerprint of the scenario the folder was exported from when split.json
    records one and the files still hold that split (so an external system's run
    compares with the scenario's own runs); else the split's own fingerprint.
    """
    split = split if split is not None else import_split(folder)
    info = read_split_info(folder)
    own = split_fingerprint(split)
    if info.get("scenario_fingerprint") and info.get("fingerprint") == own:
        return str(info["scenario_fingerprint"])
    return own


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class ImportedSplitScenario(Scenario):
    """A :class:`Scenario` whose target split was read from a split folder.

    ``Scenario.fingerprint`` hashes the data and the split *settings*, which no longer
    describe an imported split; this one reports ``data_fingerprint`` instead (see
    :func:`scenario_with_split`), so runs on the imported split are compared only with
    runs evaluated on the same split.
    """

    data_fingerprint: str = ""

    def fingerprint(self) -> str:
        return self.data_fingerprint


def scenario_with_split(scn: Scenario, split: Split, fingerprint: str | None = None) -> Scenario:
    """``scn`` with its target split replaced by ``split`` (for ``run --split DIR``).

    The joint indexing is rebuilt the way :func:`recsys_core.data.scenario.build_scenario`
    builds it, with ``split``'s maps as the target part: target items first (linked to
    source items by id, then by normalised title), then source-only items; target users
    first, then source-only users. The source history cut (``scn.source_history``) is
    recomputed from ``split``'s train times and first times; a split without any time
    (all first times unknown) keeps the whole source history, as build_scenario does for
    data without timestamps.

    Args:
        scn: the scenario (data, source, text) to run on.
        split: the imported split; its ids should be the target domain's ids (ids the
            target does not know get their id as text and no source link).
        fingerprint: the data fingerprint runs on it should carry (``folder_fingerprint``);
            default: ``scn``'s own when ``split`` is exactly ``scn.split``, else
            ``split_fingerprint(split)``.

    Returns:
        ``scn`` itself when nothing changes; else an :class:`ImportedSplitScenario`.
    """
    _check_shared_ids(scn, split)
    same = split_fingerprint(split) == split_fingerprint(scn.split)
    if fingerprint is None:
        fingerprint = scn.fingerprint() if same else split_fingerprint(split)
    if same and fingerprint == scn.fingerprint():
        return scn
    return _rebuild(scn, split, fingerprint)


def _check_shared_ids(scn: Scenario, split: Split) -> None:
    """Refuse a split whose users or items are none of the scenario's target ones: its
    results would be stored under the scenario's name while measuring something else
    (every id would get its id as text and no source link)."""
    users = pd.Index(pd.unique(scn.target.interactions[USER]))
    items = pd.Index(pd.unique(scn.target.interactions[ITEM]))
    for what, ids, known, file in (
        ("users", split.user_map.ids, users, "train.csv"),
        ("items", split.item_map.ids, items, "items.csv"),
    ):
        if len(ids) and not known.isin(ids).any():
            raise DataError(
                f"none of the split folder's {len(ids):,} {what} is among the {len(known):,} "
                f"{what} of the scenario '{scn.name}' (e.g. {_shown(str(ids[0]), 30)} in the "
                f"folder, {_shown(str(known[0]), 30)} in the data)",
                file=file,
                hint="Give the split folder exported from this scenario's data "
                "(transfer-lab split export), with the same ids",
            )


def _rebuild(scn: Scenario, split: Split, fingerprint: str) -> ImportedSplitScenario:
    """Joint indexing of ``scn``'s domains around ``split`` (build_scenario does the work)."""
    built = build_scenario(
        scn.target,
        scn.source,
        split.config,
        source_history=scn.source_history,
        name=scn.name,
        description=scn.description,
        constructed=scn.constructed,
        split=split,
    )
    values = {f.name: getattr(built, f.name) for f in fields(Scenario)}
    values["meta"] = dict(scn.meta)
    return ImportedSplitScenario(**values, data_fingerprint=fingerprint)


def scenario_with_split_folder(scn: Scenario, folder: Path | str) -> Scenario:
    """``scenario_with_split(scn, import_split(folder), folder_fingerprint(folder))``."""
    split = import_split(folder)
    return scenario_with_split(scn, split, fingerprint=folder_fingerprint(folder, split))


__all__ = [
    "FORMAT_VERSION",
    "ImportedSplitScenario",
    "export_split",
    "folder_fingerprint",
    "import_split",
    "read_csv_cells",
    "read_split_info",
    "scenario_with_split",
    "scenario_with_split_folder",
    "split_fingerprint",
]
