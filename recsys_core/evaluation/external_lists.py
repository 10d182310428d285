"""How the rows of a recommendation file become the top-K lists our evaluation scores.

The steps of :func:`recsys_core.external.evaluate_recommendation_file`, in order (its
module docstring states the rules): read the cells (:func:`read_recommendations`), the
order of each row (:func:`row_order`), ids to split indices (:func:`encode_rows`), the
ranking each row belongs to, warm or cold at k (:func:`assign_rankings`), duplicates
(:func:`merge_duplicates`), and masking plus cutting into lists (:func:`build_lists`).
Each step appends what it noticed to a shared list of warnings, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.loaders import Limits
from recsys_core.data.split_io import read_csv_cells
from recsys_core.data.split_types import Split
from recsys_core.errors import DataError, DataWarning
from recsys_core.evaluation.evaluate import (
    WARM_RANKING,
    ranking_tasks,
    recommendations_to_topk,
)

FORMAT_HINT = (
    "A recommendation file needs the columns user_id, item_id and rank (1 = best) or "
    "score (higher is better), and optionally k for cold users' support size"
)

Source = Path | str | bytes | BinaryIO


def read_recommendations(
    source: Source, name: str | None, limits: Limits
) -> tuple[pd.DataFrame, str]:
    """The file as str cells (see :func:`read_csv_cells`) and its display name."""
    if isinstance(source, (bytes, bytearray)):
        file = name or "recommendations.csv"
    elif hasattr(source, "read"):
        file = name or Path(str(getattr(source, "name", "recommendations.csv"))).name
    else:
        file = name or Path(source).name
    df = read_csv_cells(source, file, ("user_id", "item_id"), hint=FORMAT_HINT, limits=limits)
    return df, file


def _lines(df: pd.DataFrame, mask: np.ndarray) -> list[int]:
    return (df.index.to_numpy()[mask] + 2).tolist()


def _numbers(df: pd.DataFrame, col: str, file: str) -> np.ndarray:
    x = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(x)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} value(s) are not numbers",
            file=file,
            column=col,
            rows=_lines(df, bad),
        )
    return x


def _in_csr(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """bool (n,): ``m[rows[j], cols[j]] != 0`` for each j, without densifying ``m``."""
    if len(rows) == 0 or m.nnz == 0:
        return np.zeros(len(rows), dtype=bool)
    m = m.tocsr()
    m.sort_indices()
    n_cols = m.shape[1]
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n_cols
    keys += m.indices.astype(np.int64)
    q = rows.astype(np.int64) * n_cols + cols.astype(np.int64)
    pos = np.searchsorted(keys, q).clip(max=len(keys) - 1)
    return keys[pos] == q


def _warn(code: str, message: str, count: int, examples: Any = ()) -> DataWarning:
    return DataWarning(code, message, int(count), tuple(str(x) for x in list(examples)[:5]))


def row_order(
    df: pd.DataFrame, file: str, warnings: list[DataWarning]
) -> tuple[np.ndarray, bool, np.ndarray]:
    """The sort key of each row (rank ascending, or minus the score) and its k.

    Returns:
        order float64 (n_rows,), whether the file has a k column, and k int64
        (n_rows,) with -1 where no k is given.
    """
    n_read = len(df)
    if "rank" in df.columns:
        order = _numbers(df, "rank", file)
        if "score" in df.columns:
            warnings.append(
                _warn("rank_and_score", "the file has rank and score; rank was used", n_read)
            )
    elif "score" in df.columns:
        order = -_numbers(df, "score", file)  # higher score = earlier
    else:
        raise DataError(
            "the file has neither a rank nor a score column",
            file=file,
            column="rank",
            hint=FORMAT_HINT,
        )
    has_k = "k" in df.columns
    k = np.full(n_read, -1, np.int64)  # -1: no k given
    if has_k:
        raw = df["k"].str.strip()
        given = (raw != "").to_numpy()
        kv = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = given & (~np.isfinite(kv) | (np.floor(kv) != kv) | (kv < 0))
        if bad.any():
            raise DataError(
                f"{int(bad.sum())} value(s) are not support sizes (whole numbers >= 0)",
                file=file,
                column="k",
                rows=_lines(df, bad),
                hint="Leave k empty for warm users",
            )
        k[given] = kv[given].astype(np.int64)

    return order, has_k, k


def encode_rows(
    df: pd.DataFrame,
    split: Split,
    file: str,
    order: np.ndarray,
    k: np.ndarray,
    warnings: list[DataWarning],
) -> tuple[pd.DataFrame, int, int]:
    """Rows whose user and item are in the split, in split indices.

    Returns:
        DataFrame [line, user, item, order, k] (line: 1-based line in the file), and the
        numbers of rows dropped for an unknown user and for an unknown item.
    """
    n_read = len(df)
    users_s = df["user_id"].to_numpy(dtype=object)
    items_s = df["item_id"].to_numpy(dtype=object)
    u = split.user_map.encode(users_s)
    i = split.item_map.encode(items_s)
    unknown_u, unknown_i = u < 0, (i < 0) & (u >= 0)
    if unknown_u.any():
        warnings.append(
            _warn(
                "unknown_users",
                f"{int(unknown_u.sum())} row(s) name users that are not in the split; they were dropped",
                unknown_u.sum(),
                pd.unique(users_s[unknown_u]),
            )
        )
    if unknown_i.any():
        warnings.append(
            _warn(
                "unknown_items",
                f"{int(unknown_i.sum())} row(s) name items that are not in the split's catalogue; "
                "they were dropped",
                unknown_i.sum(),
                pd.unique(items_s[unknown_i]),
            )
        )
    ok = (u >= 0) & (i >= 0)
    if not ok.any():
        raise DataError(
            f"none of the {n_read} rows names a user and an item of the split",
            file=file,
            column="user_id" if unknown_u.all() else "item_id",
            rows=_lines(df, np.ones(n_read, bool)),
            hint="Use the original ids of the split folder (user_id of test.csv, item_id of items.csv)",
        )

    rows = pd.DataFrame(
        {"line": df.index.to_numpy() + 2, "user": u, "item": i, "order": order, "k": k}
    )[ok]
    return rows, int(unknown_u.sum()), int(unknown_i.sum())


def assign_rankings(
    rows: pd.DataFrame, split: Split, has_k: bool, file: str, warnings: list[DataWarning]
) -> pd.DataFrame:
    """``rows`` with a ``ranking`` column, "warm" or "cold_k{K}" (module docstring of
    :mod:`recsys_core.external`: warm rows without k, cold rows at their k or the
    largest support size)."""
    # Which ranking each row belongs to: "warm" or "cold_k{K}".
    test = split.test
    cold_flag = (
        test["cold_user"].to_numpy(dtype=bool)
        if "cold_user" in test.columns and split.config.has_cold_segments
        else np.zeros(len(test), bool)
    )
    is_cold = np.zeros(split.n_users, bool)
    if split.config.has_cold_segments:
        is_cold[test.loc[cold_flag, "user"].to_numpy()] = True
        is_cold[split.cold_users] = True
    cold_row = is_cold[rows["user"].to_numpy()]
    warm, cold = rows[~cold_row], rows[cold_row]

    # Warm users: rows without k; a user given only k rows uses its largest k.
    if has_k and len(warm):
        blank = warm["k"] < 0
        has_blank = blank.groupby(warm["user"]).transform("any")
        kmax_u = warm["k"].groupby(warm["user"]).transform("max")
        keep = blank | (~has_blank & (warm["k"] == kmax_u))
        n_k_only = int(warm.loc[~has_blank, "user"].nunique())
        if n_k_only:
            warnings.append(
                _warn(
                    "warm_users_with_k",
                    f"{n_k_only} warm user(s) have rows only with a k value; the rows of their "
                    "largest k were used (warm users have one history: leave k empty for them)",
                    n_k_only,
                    split.user_map.decode(pd.unique(warm.loc[~has_blank, "user"])),
                )
            )
        warm = warm[keep.to_numpy()]
    warm = warm.assign(ranking=WARM_RANKING)

    # Cold users: explicit k, else the largest support size.
    if len(cold):
        ks = sorted(split.support)
        ck = cold["k"].to_numpy()
        bad = (ck >= 0) & ~np.isin(ck, ks)
        if bad.any():
            raise DataError(
                f"{int(bad.sum())} row(s) of cold users give a k that is not a support size "
                f"of this split ({', '.join(map(str, ks))})",
                file=file,
                column="k",
                rows=cold["line"].to_numpy()[bad].tolist(),
                hint="The k value must name one of the split's support_k{K}.csv files",
            )
        top = max(ks)
        blank = ck < 0
        explicit_top = (ck == top) & ~blank
        has_top = (
            pd.Series(explicit_top).groupby(cold["user"].to_numpy()).transform("any").to_numpy()
        )
        drop = blank & has_top
        if blank.any():
            n_blank_users = int(cold.loc[blank & ~has_top, "user"].nunique())
            if n_blank_users:
                warnings.append(
                    _warn(
                        "cold_users_without_k",
                        f"{n_blank_users} cold user(s) have rows without k; they were scored as "
                        f"the list given the largest support set (k = {top})",
                        n_blank_users,
                    )
                )
        cold = cold[~drop].copy()
        cold["k"] = np.where(cold["k"].to_numpy() < 0, top, cold["k"].to_numpy())
        cold["ranking"] = [f"cold_k{x}" for x in cold["k"].to_numpy()]
    else:
        cold = cold.assign(ranking=pd.Series(dtype=object))
    return pd.concat([warm, cold], ignore_index=True)


def merge_duplicates(rows: pd.DataFrame, warnings: list[DataWarning]) -> tuple[pd.DataFrame, int]:
    """Rows sorted by (ranking, user, order, item), a repeated (ranking, user, item)
    keeping its best order; and how many rows were merged."""
    # Duplicates keep their best rank; ties in rank/score go to the lower item index.
    rows = rows.sort_values(["ranking", "user", "order", "item"], kind="stable")
    dup = rows.duplicated(["ranking", "user", "item"])
    if dup.any():
        warnings.append(
            _warn(
                "duplicates",
                f"{int(dup.sum())} repeated (user, item) row(s) were merged, keeping the best rank",
                dup.sum(),
            )
        )
        rows = rows[~dup.to_numpy()]

    return rows, int(dup.sum())


@dataclass
class Lists:
    """What :func:`build_lists` made of the rows.

    Attributes:
        rankings: ranking key -> (users int64 (n,), items int64 (n, k_max)), as
            :func:`~recsys_core.evaluation.evaluate.evaluate_topk` takes them.
        frame: DataFrame [ranking, user, item, rank] of the lists that were scored.
        n_scored: rows kept in a list.
        n_masked: rows removed as items already in the user's known history.
        n_untested: rows for users (or support sizes) the split does not test.
    """

    rankings: dict[str, tuple[np.ndarray, np.ndarray]]
    frame: pd.DataFrame
    n_scored: int
    n_masked: int
    n_untested: int


def build_lists(
    rows: pd.DataFrame, split: Split, k_max: int, file: str, warnings: list[DataWarning]
) -> Lists:
    """Mask each user's known items as our own rankings do, keep tested users, cut at
    ``k_max``; warn about masked rows, untested rows, support sizes without rows and
    users without a list.

    Raises:
        DataError: no row is for a user the split tests.
    """
    # Only users the split tests are ranked; their known items are masked as ours are.
    tasks = ranking_tasks(split)
    kept = []
    n_masked = n_untested = 0
    rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    list_frames = []
    for key, g in rows.groupby("ranking", sort=True):
        task = tasks.get(key)
        gu, gi = g["user"].to_numpy(), g["item"].to_numpy()
        if task is None or len(task.users) == 0:
            n_untested += len(g)
            continue
        pos = np.searchsorted(task.users, gu).clip(max=len(task.users) - 1)
        tested = task.users[pos] == gu
        n_untested += int((~tested).sum())
        masked = np.zeros(len(g), bool)
        masked[tested] = _in_csr(task.exclude, pos[tested], gi[tested])
        n_masked += int(masked.sum())
        g = g[tested & ~masked]
        rank = g.groupby("user", sort=False).cumcount().to_numpy() + 1
        recs = pd.DataFrame(
            {"user": g["user"].to_numpy(), "item": g["item"].to_numpy(), "rank": rank}
        )
        rankings[key] = recommendations_to_topk(recs, k_max)
        list_frames.append(recs[recs["rank"] <= k_max].assign(ranking=key))
        kept.append(len(g))
    if n_masked:
        warnings.append(
            _warn(
                "history_items",
                f"{n_masked} recommended item(s) were already in the user's known history "
                "(train + valid, or the support set) and were removed, as our own rankings mask them",
                n_masked,
            )
        )
    if n_untested:
        warnings.append(
            _warn(
                "untested_users",
                f"{n_untested} row(s) are for users without test items in this split (or for a "
                "support size they are not tested at); they were not scored",
                n_untested,
            )
        )
    for key, task in tasks.items():
        if key.startswith("cold_k") and key not in rankings and len(task.users):
            warnings.append(
                _warn(
                    "missing_support_size",
                    f"no row is for cold users at k = {key.removeprefix('cold_k')}; that "
                    "segment is left out",
                    0,
                )
            )
        elif key in rankings:
            missing = int((~np.isin(task.users, rankings[key][0])).sum())
            if missing:
                what = "warm" if key == WARM_RANKING else f"cold (k = {key.removeprefix('cold_k')})"
                warnings.append(
                    _warn(
                        "users_without_list",
                        f"{missing} {what} test user(s) have no recommendations and count "
                        "with zeros",
                        missing,
                    )
                )
    if not rankings:
        raise DataError(
            "no row is for a user with test items in this split",
            file=file,
            column="user_id",
            hint="Recommend for the users of test.csv",
        )
    frame = (
        pd.concat(list_frames, ignore_index=True)[["ranking", "user", "item", "rank"]]
        if list_frames
        else pd.DataFrame(columns=["ranking", "user", "item", "rank"])
    )
    return Lists(rankings, frame, int(sum(kept)), n_masked, n_untested)
