"""``transfer-lab evaluate --split DIR --recs FILE``: score any system's recommendations.

Scores a recommendation file on a split folder (from ``split export``, or train.csv +
test.csv) with our metrics, segments and intervals, printed as one JSON object in the
shape of ``run --json`` (``--json``) or as a short table; ``--save`` / ``--store`` also
keeps it as a run (strategy "external") for ``compare`` and the app.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from recsys_core.cli.common import PROCESS_START, seed_int
from recsys_core.errors import DataError

if TYPE_CHECKING:
    from recsys_core.external import ExternalResult


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` command to ``transfer-lab``'s subparsers; returns its parser."""
    v = subparsers.add_parser(
        "evaluate",
        help="score a recommendation file (user_id,item_id,rank or score) on a split folder",
        description="Score any system's recommendations with the metrics, segments and intervals "
        "of our own runs. The file has columns user_id, item_id and rank (1 = best) or score "
        "(higher is better), and optionally k (the support size a cold user's list was made with).",
    )
    v.add_argument(
        "--split", required=True, help="split folder (from 'split export', or train.csv + test.csv)"
    )
    v.add_argument("--recs", required=True, help="recommendation file (CSV)")
    v.add_argument(
        "--n-boot",
        type=int,
        default=1000,
        help="bootstrap resamples for the intervals (default 1000)",
    )
    v.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="bootstrap seed (our runs use their --seed; default 0)",
    )
    v.add_argument(
        "--k-max", type=int, default=20, help="lists are cut at this length (default 20)"
    )
    v.add_argument("--label", help="a label for the stored run (default: the file name)")
    v.add_argument(
        "--save", action="store_true", help="store the result as a run (strategy 'external')"
    )
    v.add_argument(
        "--store",
        help="run store folder; implies --save (default ./transfer_lab_runs or $RTL_RUN_STORE)",
    )
    v.add_argument(
        "--json", action="store_true", help="print one JSON object, as 'run --json' does"
    )
    v.set_defaults(func=cmd_evaluate)
    return v


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recsys_core.data.split_io import folder_fingerprint, import_split, read_split_info
    from recsys_core.external import (
        STRATEGY,
        evaluate_recommendation_file,
        file_sha256,
        store_external_result,
    )

    t0 = time.perf_counter()
    store = None
    if args.save or args.store:  # a store that cannot be written is refused before any work
        from recsys_core.runs.store import RunStore

        store = RunStore(args.store)
    folder = Path(args.split)
    split = import_split(folder)
    recs = Path(args.recs)
    if not recs.is_file():
        raise DataError(
            "file not found",
            file=str(recs),
            hint="--recs takes a CSV of user_id,item_id,rank (or score)",
        )
    # The path, not its bytes: the reader checks the size before reading anything.
    result = evaluate_recommendation_file(
        recs, split, name=recs.name, k_max=args.k_max, n_boot=args.n_boot, seed=args.seed
    )
    seconds = time.perf_counter() - t0
    info = read_split_info(folder)
    scenario = str(info.get("scenario") or folder.resolve().name)
    run_id = None
    if store is not None:
        run_id = store_external_result(
            store,
            result,
            split,
            scenario,
            folder_fingerprint(folder, split),
            label=args.label,
            file_sha256=file_sha256(recs),
            seconds=seconds,
        )
    records = result.to_records()
    if args.json:
        out = {
            "run_id": run_id,
            "strategy": STRATEGY,
            "status": "done",
            "device": "cpu",
            "seconds": {
                "evaluate": seconds,
                "total": seconds,
                "process": time.perf_counter() - PROCESS_START,
            },
            "metrics": records,
            "info": {
                "file": result.name,
                "warnings": [str(w) for w in result.warnings],
                "stats": result.stats,
            },
            "error": None,
            "scenario": scenario,
            "source_history": None,
            "protocol": split.config.protocol,
        }
        from recsys_core.io_utils import json_line

        print(json_line(out), flush=True)
    else:
        print(format_result(result, run_id))
    return 0


def format_result(result: ExternalResult, run_id: str | None = None, k: int = 10) -> str:
    """A short text table: per segment, users and each accuracy metric at K (value [CI])."""
    from recsys_core.evaluation.metrics import METRICS

    k = k if k in result.config.ks else max(result.config.ks)
    s = result.summary
    lines = [f"{result.name}  (external, metrics @{k}, 95% CI)"]
    header = f"  {'segment':16s} {'users':>6s}" + "".join(f" {m:>22s}" for m in METRICS)
    lines.append(header)
    for seg in result.segments:
        g = s[(s["segment"] == seg) & (s["k"] == k)].set_index("metric")
        cells = []
        for m in METRICS:
            r = g.loc[m]
            ci = "" if r["ci_low"] != r["ci_low"] else f" [{r['ci_low']:.3f},{r['ci_high']:.3f}]"
            cells.append(f" {r['value']:.4f}{ci:>16s}")
        lines.append(f"  {seg:16s} {int(g['n_users'].iloc[0]):6d}" + "".join(cells))
    for w in result.warnings:
        lines.append(f"note: {w}")
    if run_id:
        lines.append(f"stored as run {run_id}")
    return "\n".join(lines)
