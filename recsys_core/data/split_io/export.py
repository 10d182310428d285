"""Writing a split folder: the split's fingerprint, the settings split.json records, and
:func:`export_split`. The format: :mod:`recsys_core.data.split_io`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.data.schema import ITEM, TIME, USER
from recsys_core.data.split_types import Split

FORMAT = "recsys-transfer-lab split"
FORMAT_VERSION = 1
"""Version of the folder layout; import refuses folders written by a newer version."""

META_FILE = "split.json"


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
