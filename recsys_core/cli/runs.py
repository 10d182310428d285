"""``transfer-lab runs``: list the run store."""

from __future__ import annotations

import argparse

from recsys_core.cli.common import json_records


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``runs`` command to ``transfer-lab``'s subparsers; returns its parser."""
    ls = subparsers.add_parser("runs", help="list the run store")
    ls.add_argument("--scenario")
    ls.add_argument("--store")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs)
    return ls


def cmd_runs(args: argparse.Namespace) -> int:
    from recsys_core.runs.store import RunStore

    df = RunStore(args.store).list_runs(scenario=args.scenario)
    if args.json:
        print(json_records(df))
    elif df.empty:
        print("no runs yet: try  transfer-lab run --scenario demo:ml100k --strategy popularity")
    else:
        cols = [
            c for c in ("run_id", "strategy", "scenario", "status", "created_at") if c in df.columns
        ]
        print(df[cols].to_string(index=False))
    return 0
