"""``transfer-lab compare RUN...``: metrics of stored runs side by side, with paired
deltas against a baseline (:func:`recsys_core.compare.compare_runs`)."""

from __future__ import annotations

import argparse

from recsys_core.cli.common import json_records
from recsys_core.errors import DataError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``compare`` command to ``transfer-lab``'s subparsers; returns its parser."""
    c = subparsers.add_parser("compare", help="metrics of runs side by side, with paired deltas")
    c.add_argument("run_ids", nargs="+")
    c.add_argument(
        "--baseline",
        help="run id to measure every segment against (default: in each segment, the "
        "baseline-kind run with the best value of --metric on that segment; the first run "
        "where none of the runs is a baseline)",
    )
    c.add_argument(
        "--metric",
        default="ndcg",
        help="metric to compare (default ndcg); one the runs hold: recall, ndcg, hit, mrr, "
        "precision, coverage, arp",
    )
    c.add_argument(
        "--k", type=int, default=10, help="cut-off of the metric (default 10; runs hold 5, 10, 20)"
    )
    c.add_argument("--store")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)
    return c


def cmd_compare(args: argparse.Namespace) -> int:
    from recsys_core.compare import compare_runs, format_comparison
    from recsys_core.runs.store import RunNotFoundError, RunStore

    store = RunStore(args.store)
    runs = []
    for rid in args.run_ids:
        try:
            runs.append(store.get_run(rid))
        except RunNotFoundError:
            where = f" --store {args.store}" if args.store else ""
            raise DataError(
                f"no run '{rid}' in the run store at {store.root}",
                hint=f"List the stored runs with: transfer-lab runs{where}",
            ) from None
    for r in runs:
        if r["status"] != "done":
            why = f" ({r['error']})" if r.get("error") else ""
            raise DataError(
                f"run '{r['run_id']}' is {r['status']}{why}; only finished runs have metrics",
                hint="Leave it out of the comparison",
            )
    check_metric_choice(runs, args.metric, args.k)
    if args.baseline is not None and args.baseline not in args.run_ids:
        raise DataError(
            f"--baseline {args.baseline} is not among the runs being compared",
            hint="Name it among the run ids too",
        )
    table = compare_runs(store, args.run_ids, baseline=args.baseline, metric=args.metric, k=args.k)
    if args.json:
        print(json_records(table))
    else:
        print(format_comparison(table))
    return 0


def check_metric_choice(runs: list[dict], metric: str, k: int) -> None:
    """--metric and --k name a metric the runs hold, else a DataError listing those they do
    (a bogus name used to print "nothing to compare" and exit 0)."""
    held = {(m.get("metric"), m.get("k")) for r in runs for m in (r.get("metrics") or [])}
    metrics = sorted({m for m, _ in held if m is not None})
    if metric not in metrics:
        raise DataError(
            f"--metric {metric!r} is not a metric of these runs",
            hint=f"Choose one of: {', '.join(metrics) or 'none (the runs hold no metrics)'}",
        )
    ks = sorted({kk for m, kk in held if m == metric and kk is not None})
    if k not in ks:
        raise DataError(
            f"--k {k} is not a cut-off these runs were evaluated at",
            hint=f"Choose one of: {', '.join(map(str, ks))}",
        )
