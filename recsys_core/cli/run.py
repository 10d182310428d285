"""``transfer-lab run``: train and evaluate strategies on one scenario, store the runs.

The settings come from the flags over a TOML config (:func:`common.build_request`);
results print as one line per run, or as JSON Lines with ``--json`` (stdout stays JSON:
warnings and notes go to stderr).
"""

from __future__ import annotations

import argparse
import sys
import time

from recsys_core.cli.common import (
    PROCESS_START,
    ProgressBar,
    add_data_flags,
    add_model_flags,
    add_split_flags,
    add_strategy_flags,
    build_request,
)
from recsys_core.cli.executing import add_executor_flags, executor_config, parse_seeds
from recsys_core.io_utils import json_line


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``run`` command to ``transfer-lab``'s subparsers; returns its parser."""
    from recsys_core.strategies.registry import STRATEGIES

    r = subparsers.add_parser("run", help="train and evaluate strategies")
    r.add_argument("--config", help="TOML file with the same settings (flags win)")
    r.add_argument(
        "--split",
        help="split folder (from 'split export', or train.csv + test.csv): run on it instead of making a split",
    )
    add_data_flags(r)
    add_split_flags(r)
    r.add_argument(
        "--strategy",
        help="one name or a comma-separated list of: "
        + ", ".join(f"{n} ({c.kind})" for n, c in STRATEGIES.items()),
    )
    r.add_argument(
        "--baselines",
        help="suite (the default): with any transfer strategy, also train (or reuse from "
        "the store) every strong target-only baseline the verdict needs; none: only what "
        "--strategy names; or a comma-separated list of baseline names",
    )
    add_model_flags(r)
    add_strategy_flags(r)
    r.add_argument(
        "--n-boot", type=int, help="bootstrap resamples for the intervals (default 1000)"
    )
    r.add_argument(
        "--workers",
        type=int,
        help="runs fitted side by side (default 0: one per CPU core up to four, one on a "
        "GPU; 1: one after the other)",
    )
    r.add_argument("--label", help="a label stored with the runs")
    r.add_argument(
        "--seeds",
        help="repeat every strategy once per model seed, e.g. 0,1,2 (the split keeps "
        "--seed); compare pools the repeats",
    )
    add_executor_flags(r)
    r.add_argument(
        "--store", help="run store folder (default ./transfer_lab_runs or $RTL_RUN_STORE)"
    )
    r.add_argument("--json", action="store_true", help="print one JSON object per run (JSON Lines)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)
    return r


def cmd_run(args: argparse.Namespace) -> int:
    from recsys_core.data.scenario import SPLIT_WARNING_CODES, scenario_warnings
    from recsys_core.pipeline import (
        load_scenario,
        plan_request,
    )
    from recsys_core.runs.executor import make_executor
    from recsys_core.runs.seeds import create_runs, repeat_over_seeds
    from recsys_core.runs.store import RunStore
    from recsys_core.strategies.registry import needs_text
    from recsys_core.training.callbacks import Callbacks

    t0 = time.perf_counter()
    spec, split, history, request = build_request(args)
    seeds = parse_seeds(args.seeds)
    exec_config = executor_config(args)
    store = RunStore(args.store)  # a store that cannot be written is refused before any work
    bar = ProgressBar(enabled=not args.quiet)
    cb = Callbacks(on_progress=bar)
    if needs_text(list(request.strategies), request.settings):
        from recsys_core.text.encoder import import_model_code_in_background

        import_model_code_in_background()  # while the data are read and split
    scn = load_scenario(spec, split, history)
    warnings = scenario_warnings(scn)
    if args.split:
        from recsys_core.data.split_io import scenario_with_split_folder

        scn = scenario_with_split_folder(scn, args.split)
        warnings = [w for w in warnings if w.code not in SPLIT_WARNING_CODES]
        for note in scn.split.notes:
            print(f"note: {note}", file=sys.stderr)
    # What `validate` would say, and what the split could not do as asked: before the
    # numbers, so that none of them misleads in silence (stderr: stdout stays JSON Lines).
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    t_load = time.perf_counter() - t0
    # one planned request per seed (each with its suite baselines, or their reused runs)
    requests = [plan_request(r, scn, store) for r in repeat_over_seeds(request, seeds)]
    # Encode only what some strategy reads (the registry's declarations decide), and
    # inside the call: the first run that reads text encodes it as one of its steps while
    # the other workers train the runs that do not (issue 13); a Ray executor encodes it
    # once before the tasks and puts it in the object store.
    trained = {n for r in requests for n in r.strategies if n not in r.reuse}
    encode_text = needs_text(sorted(trained), request.settings)
    batches = [(r, create_runs(store, scn, r)) for r in requests]
    executor = make_executor(exec_config)
    try:
        per_batch = executor.run_batches(
            scn,
            batches,
            store,
            callbacks=cb,
            seconds_so_far={"load": t_load},
            encode_text=encode_text,
        )
    finally:
        executor.close()
    outcomes = [o for batch in per_batch for o in batch]
    bar.close()
    failed = 0
    for o in outcomes:
        o.seconds["process"] = time.perf_counter() - PROCESS_START
        if args.json:
            out = o.to_json()
            out["scenario"] = scn.name
            out["source_history"] = scn.source_history
            out["protocol"] = scn.split.config.protocol
            out["warnings"] = [str(w) for w in warnings]
            print(json_line(out), flush=True)
        else:
            print(outcome_text(o))
        failed += o.status == "failed"
    return 1 if failed else 0


def outcome_text(o) -> str:
    """One line per run: strategy, run id, NDCG@10 per segment, seconds (or the failure)."""
    if o.status != "done":
        return f"{o.strategy:15s} {o.status}: {o.error}"
    by = {(m["segment"], m["metric"], m["k"]): m for m in o.metrics}
    parts = []
    for seg in ("all", "warm_users", "cold_users_k0", "cold_users_k3", "cold_items"):
        m = by.get((seg, "ndcg", 10))
        if m:
            parts.append(f"{seg} {m['value']:.4f}")
    return (
        f"{o.strategy:15s} {o.run_id}  NDCG@10: "
        + ", ".join(parts)
        + f"  ({o.seconds.get('total', 0):.1f}s)"
    )
