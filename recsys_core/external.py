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
from typing import TYPE_CHECKING

import pandas as pd

from recsys_core.data.loaders import Limits
from recsys_core.data.split_io import split_settings
from recsys_core.data.split_types import Split
from recsys_core.errors import DataError, DataWarning
from recsys_core.evaluation.evaluate import EvalConfig, EvalResult, evaluate_topk

# The row-by-row work (reading, ids, rankings, duplicates, masking) lives beside the
# evaluation it feeds; FORMAT_HINT and Source are importable from here as before.
from recsys_core.evaluation.external_lists import (
    FORMAT_HINT,
    Source,
    assign_rankings,
    build_lists,
    encode_rows,
    merge_duplicates,
    read_recommendations,
    row_order,
)

if TYPE_CHECKING:
    from recsys_core.runs.store import RunStore

STRATEGY = "external"
"""Strategy name of stored external runs."""
DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


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
    df, file = read_recommendations(path_or_bytes, name, limits)
    warnings: list[DataWarning] = []
    n_read = len(df)
    if n_read == 0:
        raise DataError("the file has a header but no rows", file=file, hint=FORMAT_HINT)
    # Each step appends what it noticed to ``warnings``, in the order of the rows' path.
    order, has_k, k = row_order(df, file, warnings)
    rows, n_unknown_users, n_unknown_items = encode_rows(df, split, file, order, k, warnings)
    rows = assign_rankings(rows, split, has_k, file, warnings)
    rows, n_dup = merge_duplicates(rows, warnings)
    lists = build_lists(rows, split, config.k_max, file, warnings)
    result = evaluate_topk(lists.rankings, split, config)
    stats = {
        "rows_read": n_read,
        "rows_scored": lists.n_scored,
        "unknown_user_rows": n_unknown_users,
        "unknown_item_rows": n_unknown_items,
        "duplicate_rows": n_dup,
        "masked_history_rows": lists.n_masked,
        "untested_rows": lists.n_untested,
        "rankings": {k: len(v[0]) for k, v in lists.rankings.items()},
    }
    return ExternalResult(
        summary=result.summary,
        per_user=result.per_user,
        topk=result.topk,
        config=result.config,
        name=file,
        warnings=tuple(warnings),
        stats=stats,
        lists=lists.frame,
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
