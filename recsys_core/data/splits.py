"""Deterministic, leakage-free splits of a target domain (see split_types.py for segments).

Three protocols:

* ``recbole``: RecBole's default "RS" split: each user's interactions in random order,
  8:1:1 with valid and test each ``int(0.1 * n)`` and, for users with fewer than 10
  interactions, one extra valid/test row while train keeps at least 2 (RecBole's
  ``_calcu_split_ids``), so figures compare with its published tables.
* ``temporal``: the same per-user counts, but the latest interactions go to test.
* ``cold-start`` (default): ``temporal`` for warm users plus cold users and cold items.

Without timestamps, "by time" means a random per-user order drawn from the seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.schema import ITEM, RATING, TIME, USER, Domain, IdMap
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.errors import DataError


def k_core(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` interactions."""
    if k <= 1:
        return df
    while True:
        uc = df[USER].map(df[USER].value_counts())
        ic = df[ITEM].map(df[ITEM].value_counts())
        keep = (uc >= k) & (ic >= k)
        if keep.all():
            return df
        df = df[keep]


def _holdout_counts(
    n: np.ndarray, valid_frac: float, test_frac: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (n_valid, n_test) following RecBole's ``_calcu_split_ids``.

    ``int(ratio * n)`` rows each; then, while train keeps more than one row, a user whose
    ``ratio * n`` is in (0, 1) gets one row for test first, then for valid.
    """
    n = n.astype(np.int64)
    v = np.floor(valid_frac * n).astype(np.int64)
    t = np.floor(test_frac * n).astype(np.int64)
    tr = n - v - t
    bump_t = (tr > 1) & (test_frac * n > 0) & (test_frac * n < 1)
    t += bump_t
    tr -= bump_t
    bump_v = (tr > 1) & (valid_frac * n > 0) & (valid_frac * n < 1)
    v += bump_v
    return v, t


def _ordered(df: pd.DataFrame, rng: np.random.Generator, by_time: bool) -> pd.DataFrame:
    """Rows grouped by user, each user's rows in time order (ties and no-time: random).

    The random key makes every row's key unique, so the order does not depend on the
    sort: ``np.lexsort`` and counts by ``bincount`` give what ``sort_values`` and
    ``groupby`` gave, without hashing 10 M rows three times (issue 13).
    """
    r = rng.permutation(len(df))
    user = df["user"].to_numpy()
    keys = (r, df["t"].to_numpy(), user) if by_time else (r, user)
    order = np.lexsort(keys)
    out = df.take(order).reset_index(drop=True)
    out["_r"] = r[order]
    u = user[order]
    counts = np.bincount(u) if len(u) else np.zeros(0, np.int64)
    starts = np.cumsum(counts) - counts
    out["pos"] = np.arange(len(u), dtype=np.int64) - starts[u]
    out["n"] = counts[u].astype(np.int64)
    return out


def make_split(domain: Domain, config: SplitConfig = SplitConfig()) -> Split:
    """Split ``domain`` (the target) into train / valid / test with segment labels.

    Deterministic for a given ``config.seed``. Raises DataError when too little data is
    left (for example after a rating threshold) to build the requested split.
    """
    df = domain.interactions
    # The file the user knows (the domain's name is a role, "target", in the CLI).
    file = domain.source_files[0] if domain.source_files else domain.name
    blame = []
    if config.min_rating is not None:
        if df[RATING].isna().all():
            raise DataError(
                "a rating threshold was set but the data has no ratings",
                file=file,
                column=RATING,
                hint="remove the min-rating setting or upload interactions with a rating column",
            )
        n = len(df)
        df = df[df[RATING] >= config.min_rating]
        if len(df) < n:
            blame.append(f"the rating threshold ({config.min_rating:g})")
    n = len(df)
    df = k_core(df, config.k_core)
    if len(df) < n:
        blame.append(f"the k-core setting ({config.k_core})")
    if df[USER].nunique() < 2 or df[ITEM].nunique() < 2:
        counts = f"{df[USER].nunique()} user(s) and {df[ITEM].nunique()} item(s)"
        if blame:
            raise DataError(
                f"only {len(df)} interactions ({counts}) are left after filtering by "
                f"{' and '.join(blame)}, too few to split",
                file=file,
                hint="Lower " + " or ".join(b.split(" (")[0] for b in blame),
            )
        raise DataError(
            f"the target has {counts}; a split needs at least 2 users and 2 items",
            file=file,
            hint="Add interactions of more users and items",
        )
    user_map = IdMap.from_values(df[USER])
    item_map = IdMap.from_values(df[ITEM])
    has_time = TIME in df.columns
    frame = pd.DataFrame(
        {
            "user": user_map.encode(df[USER]),
            "item": item_map.encode(df[ITEM]),
            "t": df[TIME].to_numpy(np.int64) if has_time else np.zeros(len(df), np.int64),
        }
    )
    rng = np.random.default_rng(config.seed)
    n_users, n_items = len(user_map), len(item_map)
    first_time = np.full(n_users, -1, np.int64)
    if has_time:
        ft = frame.groupby("user")["t"].min()
        first_time[ft.index.to_numpy()] = ft.to_numpy()

    cold_users = np.zeros(0, np.int64)
    cold_items_set = np.zeros(n_items, dtype=bool)
    valid_cold_set = np.zeros(n_items, dtype=bool)
    support: dict[int, pd.DataFrame] = {}
    cold_rows = frame.iloc[:0]
    if config.has_cold_segments:
        # Cold items first: every interaction with them leaves training (DropoutNet-style
        # item cold start, Volkovs et al. 2017); warm users' rows with them become test rows.
        n_cold_items = round(config.cold_item_frac * n_items)
        if n_cold_items:
            cold_items_set[rng.choice(n_items, n_cold_items, replace=False)] = True
        # Cold users need max(k) support rows plus at least one test row.
        kmax = max(config.cold_ks)
        counts = np.bincount(frame["user"].to_numpy(), minlength=n_users)
        eligible = np.flatnonzero(counts >= kmax + 1)
        n_cold = min(round(config.cold_user_frac * n_users), len(eligible))
        if n_cold:
            cold_users = np.sort(rng.choice(eligible, n_cold, replace=False))
        is_cold_user = np.zeros(n_users, dtype=bool)
        is_cold_user[cold_users] = True
        cold_rows = _ordered(frame[is_cold_user[frame["user"].to_numpy()]], rng, by_time=True)
        for k in config.cold_ks:
            support[k] = cold_rows.loc[cold_rows["pos"] < k, ["user", "item"]].reset_index(
                drop=True
            )
        cold_rows = cold_rows[cold_rows["pos"] >= kmax]
        frame = frame[~is_cold_user[frame["user"].to_numpy()]]
        # Validation cold items, from their own random stream so that the test's cold
        # items and cold users are the same with or without them.
        n_vc = round(config.valid_cold_item_frac * n_items)
        if n_vc:
            vrng = np.random.default_rng([config.seed, 1])
            candidates = np.flatnonzero(~cold_items_set)
            valid_cold_set[vrng.choice(candidates, min(n_vc, len(candidates)), replace=False)] = (
                True
            )

    by_time = config.protocol != "recbole"
    item_cold_mask = cold_items_set[frame["item"].to_numpy()]
    item_vcold_mask = valid_cold_set[frame["item"].to_numpy()]
    held_item_rows = frame[item_cold_mask]
    held_valid_rows = frame[item_vcold_mask]
    ordered = _ordered(frame[~item_cold_mask & ~item_vcold_mask], rng, by_time=by_time)
    n_valid, n_test = _holdout_counts(ordered["n"].to_numpy(), config.valid_frac, config.test_frac)
    n_train = ordered["n"].to_numpy() - n_valid - n_test
    pos = ordered["pos"].to_numpy()
    is_train = pos < n_train
    is_valid = (pos >= n_train) & (pos < n_train + n_valid)
    train = ordered.loc[is_train, ["user", "item", "t"]].rename(columns={"t": TIME})
    valid = ordered.loc[is_valid, ["user", "item"]]
    warm_test = ordered.loc[~is_train & ~is_valid, ["user", "item"]]
    # A warm user whose every row was a cold item has no training data: not warm.
    trained_users = np.zeros(n_users, dtype=bool)
    trained_users[train["user"].to_numpy()] = True
    held_item_rows = held_item_rows[trained_users[held_item_rows["user"].to_numpy()]]
    held_valid_rows = held_valid_rows[trained_users[held_valid_rows["user"].to_numpy()]]
    if len(held_valid_rows):
        valid = pd.concat([valid, held_valid_rows[["user", "item"]]], ignore_index=True)

    # Items that no training row touches are cold too, whether held out on purpose or
    # only seen by cold users / in test: no id-based model has learned anything of them.
    warm_item = np.zeros(n_items, dtype=bool)
    warm_item[train["item"].to_numpy()] = True
    cold_items = np.flatnonzero(~warm_item) if config.has_cold_segments else np.zeros(0, np.int64)
    test = pd.concat(
        [
            warm_test.assign(cold_user=False),
            held_item_rows[["user", "item"]].assign(cold_user=False),
            cold_rows[["user", "item"]].assign(cold_user=True),
        ],
        ignore_index=True,
    )
    test["cold_item"] = ~warm_item[test["item"].to_numpy()] if config.has_cold_segments else False
    test = test.astype({"user": np.int64, "item": np.int64})
    if test.empty:
        # Every metric would average over no user: exit with a reason, not with no numbers.
        per_user = np.bincount(user_map.encode(df[USER].to_numpy()), minlength=n_users)
        single = int((per_user == 1).sum())
        what = (
            f"each of the {n_users:,} users has a single interaction"
            if single == n_users
            else f"{single:,} of {n_users:,} users have a single interaction and the longest "
            f"history has {int(per_user.max())}"
        )
        raise DataError(
            f"nothing is left to test on: {what}, and a tested user needs at least 2 "
            "interactions (one to train on, one to test)",
            file=file,
            hint="Use data with longer user histories ('transfer-lab validate' shows them)",
        )
    return Split(
        config=config,
        user_map=user_map,
        item_map=item_map,
        train=train.reset_index(drop=True).astype({"user": np.int64, "item": np.int64}),
        valid=valid.reset_index(drop=True).astype({"user": np.int64, "item": np.int64}),
        test=test,
        support=support,
        cold_users=cold_users.astype(np.int64),
        cold_items=cold_items.astype(np.int64),
        first_time=first_time,
    )
