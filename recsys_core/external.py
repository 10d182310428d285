"""Evaluate anyone's recommendations on a split, exactly as our own runs are evaluated.

A recommendation file is a CSV (comma, tab or semicolon separated; gzip allowed) with
one row per recommended (user, item)::

    user_id,item_id,rank[,k]        rank: 1 = best; only the order matters
    user_id,item_id,score[,k]       score: higher is better

Ids are the original ids of the split folder (user_id of test.csv, item_id of
items.csv). How rows become the top-K lists our evaluation scores
(:func:`recsys_core.evaluation.evaluate.evaluate_topk`, the code path of our own runs):

* order: by rank ascending (or score descending); ties by ascending item index (the
  position of the item in the split's sorted catalogue), as our own ranking breaks them.
  With both columns, rank is used.
* duplicates: a (user, item) listed twice (for one k) keeps its best rank.
* masking: items the user is known to have interacted with at scoring time (train +
  valid items for warm users, the support set for cold users at that k) are removed
  before the list is cut at K, as our own rankings mask them; the result says how many.
* warm users: rows with an empty k. A warm user whose rows all carry a k (a file that
  repeats every user once per k) uses the rows of its largest k.
* cold users: rows with k = K are the list given support set ``support_k{K}.csv``. Rows
  without k (or a file without a k column) are taken as the list for the largest K of
  the split, the one an external system most likely used (it saw the whole support
  set), unless the user also has rows for that K. A support size with no row at all is
  left out of the results (the segment is not shown), like a ranking we did not compute.
* missing users: a test user without any row counts with an empty list (all metrics 0),
  so a system cannot improve its figures by skipping hard users.
* unknown ids: rows whose user or item is not in the split are dropped and reported;
  if no row matches, that is an error.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.loaders import Limits
from recsys_core.data.split_io import read_csv_cells, split_settings
from recsys_core.data.split_types import Split
from recsys_core.errors import DataError, DataWarning
from recsys_core.evaluation.evaluate import (
    WARM_RANKING,
    EvalConfig,
    EvalResult,
    evaluate_topk,
    ranking_tasks,
    recommendations_to_topk,
)

if TYPE_CHECKING:
    from recsys_core.runs.store import RunStore

STRATEGY = "external"
"""Strategy name of stored external runs."""
DEFAULT_KS: tuple[int, ...] = (5, 10, 20)
FORMAT_HINT = (
    "A recommendation file needs the columns user_id, item_id and rank (1 = best) or "
    "score (higher is better), and optionally k for cold users' support size"
)

Source = Path | str | bytes | BinaryIO


@dataclass
class ExternalResult(EvalResult):
    """An :class:`EvalResult` plus what reading the file noticed.

    Attributes:
        name: the file name as the user knows it.
        warnings: rows dropped or interpreted (unknown ids, duplicates, masked history
            items, users without a list...), one :class:`DataWarning` each.
        stats: counts as a JSON-ready dict (rows read, rows used, users ranked...).
        lists: DataFrame [ranking, user, item, rank]: the cleaned lists that were scored
            (target indices, rank 1-based after masking, cut at K), ranking "warm" or
            "cold_k{K}".
    """

    name: str = ""
    warnings: tuple[DataWarning, ...] = ()
    stats: dict = field(default_factory=dict)
    lists: pd.DataFrame | None = None


def _eval_config(k_max: int, n_boot: int, seed: int) -> EvalConfig:
    if isinstance(k_max, bool) or not isinstance(k_max, int) or not 1 <= k_max <= 1000:
        raise ValueError(f"k_max must be a whole number between 1 and 1000, got {k_max!r}")
    ks = tuple(k for k in DEFAULT_KS if k <= k_max) or (k_max,)
    return EvalConfig(ks=ks, n_boot=n_boot, seed=seed)


def _read(source: Source, name: str | None, limits: Limits) -> tuple[pd.DataFrame, str]:
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


def evaluate_recommendation_file(
    path_or_bytes: Source,
    split: Split,
    name: str | None = None,
    k_max: int = 20,
    n_boot: int = 1000,
    seed: int = 0,
    limits: Limits = Limits(),
) -> ExternalResult:
    """Score a recommendation file on ``split`` with the metrics, segments and
    intervals of our own runs (see the module docstring for how rows are read).

    Args:
        path_or_bytes: the file: a path, its bytes (an upload) or a binary file object.
        split: the split the recommendations were made for (``import_split(folder)``).
        name: the file name for messages (default: the path's base name).
        k_max: lists are cut at this length; metrics at K in (5, 10, 20) up to k_max
            (just k_max when it is below 5).
        n_boot: bootstrap replicates of the intervals (0: none).
        seed: bootstrap seed; our runs use their ModelSettings seed (0 by default), so
            the same seed gives the same intervals for the same lists.
        limits: size limits of the reader (bytes, decompressed bytes, rows, fields),
            as for uploaded tables.

    Returns:
        An :class:`ExternalResult`; ``to_records()`` gives the records our runs store.

    Raises:
        DataError: a missing column, a bad value (naming file, column and lines), a k
            that is not a support size of the split, or no row matching the split.
    """
    config = _eval_config(k_max, n_boot, seed)
    df, file = _read(path_or_bytes, name, limits)
    warnings: list[DataWarning] = []
    n_read = len(df)
    if n_read == 0:
        raise DataError("the file has a header but no rows", file=file, hint=FORMAT_HINT)

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
    users_s = df["user_id"].to_numpy(dtype=object)
    items_s = df["item_id"].to_numpy(dtype=object)
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
    rows = pd.DataFrame(
        {"line": df.index.to_numpy() + 2, "user": u, "item": i, "order": order, "k": k}
    )[ok]
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
    rows = pd.concat([warm, cold], ignore_index=True)

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
        rankings[key] = recommendations_to_topk(recs, config.k_max)
        list_frames.append(recs[recs["rank"] <= config.k_max].assign(ranking=key))
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
    result = evaluate_topk(rankings, split, config)
    lists = (
        pd.concat(list_frames, ignore_index=True)[["ranking", "user", "item", "rank"]]
        if list_frames
        else pd.DataFrame(columns=["ranking", "user", "item", "rank"])
    )
    stats = {
        "rows_read": n_read,
        "rows_scored": int(sum(kept)),
        "unknown_user_rows": int(unknown_u.sum()),
        "unknown_item_rows": int(unknown_i.sum()),
        "duplicate_rows": int(dup.sum()),
        "masked_history_rows": n_masked,
        "untested_rows": n_untested,
        "rankings": {k: len(v[0]) for k, v in rankings.items()},
    }
    return ExternalResult(
        summary=result.summary,
        per_user=result.per_user,
        topk=result.topk,
        config=result.config,
        name=file,
        warnings=tuple(warnings),
        stats=stats,
        lists=lists,
    )


def store_external_result(
    store: RunStore,
    result: ExternalResult,
    split: Split,
    scenario_name: str,
    fingerprint: str,
    label: str | None = None,
    file_sha256: str | None = None,
    seconds: float = 0.0,
) -> str:
    """Store an evaluated recommendation file as a finished run; returns its id.

    The run has strategy "external", status done, the metric records of
    ``result.to_records()``, and the artifacts the app's compare page reads from our
    own runs: ``per_user`` and ``topk`` (same columns as :func:`pipeline.save_artifacts`:
    segment, user, rank, item), plus ``lists`` (the scored lists, per ranking).

    Args:
        store: a :class:`recsys_core.runs.store.RunStore`.
        result: from :func:`evaluate_recommendation_file`.
        split: the split it was evaluated on (its config is recorded).
        scenario_name: the scenario name runs of this split carry.
        fingerprint: the data fingerprint runs of this split carry
            (``folder_fingerprint(folder)`` or ``scenario.fingerprint()``); runs with
            the same fingerprint can be compared.
        label: shown in the app (default: the file name).
        file_sha256: hash of the file's bytes, recorded in the config.
        seconds: evaluation time to record.
    """
    config = {
        "strategy": STRATEGY,
        "file": result.name,
        "file_sha256": file_sha256,
        "split": split_settings(split),
        "scenario": scenario_name,
        "n_boot": result.config.n_boot,
        "seed": result.config.seed,
        "ks": list(result.config.ks),
    }
    run_id = store.create_run(
        STRATEGY, scenario_name, config, fingerprint, label=label or result.name
    )
    try:
        store.set_status(run_id, "running")
        store.save_table(run_id, "per_user", result.per_user)
        frames = [
            pd.DataFrame({"segment": seg, "user": users, "rank": r + 1, "item": items[:, r]})
            for seg, (users, items) in result.topk.items()
            for r in range(items.shape[1])
        ]
        if frames:
            store.save_table(run_id, "topk", pd.concat(frames, ignore_index=True))
        if result.lists is not None:
            store.save_table(run_id, "lists", result.lists)
        info = {
            "file": result.name,
            "warnings": [str(w) for w in result.warnings],
            "stats": result.stats,
            "val_ndcg@10": None,  # an external file has no validation score
            "n_parameters": 0,
            "device": "cpu",
        }
        store.finish(
            run_id,
            result.to_records(),
            {"evaluate": float(seconds), "total": float(seconds)},
            extra={"info": info},
        )
    except BaseException as exc:
        store.fail(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return run_id


def add_external_run(
    store: RunStore,
    split: Split,
    scenario_name: str,
    fingerprint: str,
    path: Source,
    label: str | None = None,
    name: str | None = None,
    k_max: int = 20,
    n_boot: int = 1000,
    seed: int = 0,
    limits: Limits = Limits(),
) -> str:
    """Evaluate a recommendation file and store it as a run beside our strategies.

    Nothing is stored when the file cannot be read (the DataError is raised first).
    For the app's compare page: ``fingerprint`` must be the active scenario's
    ``scn.fingerprint()`` so the run sits with that scenario's runs.

    Returns:
        The new run id.
    """
    t0 = time.perf_counter()
    if not isinstance(path, (bytes, bytearray, str, Path)):
        # A file object: read it once, for the hash and the parser, keeping its name.
        name = name or Path(str(getattr(path, "name", "recommendations.csv"))).name
        raw = path.read()
        path = raw.encode("utf-8") if isinstance(raw, str) else raw  # a text-mode file
    data = bytes(path) if isinstance(path, (bytes, bytearray)) else None
    result = evaluate_recommendation_file(
        path, split, name=name, k_max=k_max, n_boot=n_boot, seed=seed, limits=limits
    )
    return store_external_result(
        store,
        result,
        split,
        scenario_name,
        fingerprint,
        label=label,
        file_sha256=hashlib.sha256(data).hexdigest() if data is not None else file_sha256(path),
        seconds=time.perf_counter() - t0,
    )


def file_sha256(path: Path | str) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks (never the whole file at once)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = [
    "STRATEGY",
    "ExternalResult",
    "add_external_run",
    "evaluate_recommendation_file",
    "file_sha256",
    "store_external_result",
]
