"""Importing a split folder: :func:`import_split` (our folders and other tools' ones),
:func:`carve_validation` and :func:`folder_fingerprint`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data.loaders import Limits
from recsys_core.data.schema import ITEM, TIME, USER, IdMap
from recsys_core.data.split_io.export import META_FILE, split_fingerprint
from recsys_core.data.split_io.reading import (
    _config_from_info,
    _Files,
    _flag_column,
    _ids,
    _int_column,
    _lines,
    _read_files,
    read_split_info,
)
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.errors import DataError


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
