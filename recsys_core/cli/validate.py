"""``transfer-lab validate FILE``: check a data file and print a summary."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``validate`` command to ``transfer-lab``'s subparsers; returns its parser."""
    v = subparsers.add_parser("validate", help="check a data file and print a summary")
    v.add_argument("file")
    v.add_argument("--kind", choices=["interactions", "items", "users"], default="interactions")
    v.set_defaults(func=cmd_validate)
    return v


def cmd_validate(args: argparse.Namespace) -> int:
    from recsys_core.data.loaders import load_domain, read_table
    from recsys_core.data.summary import format_summary, summarize

    path = Path(args.file)
    if args.kind == "interactions":
        dom = load_domain(str(path), name=path.name)
        print(format_summary(summarize(dom)))
    else:
        df = read_table(str(path), name=path.name, kind=args.kind)
        cols = ", ".join(map(str, df.columns))
        print(f"{path.name}: {len(df):,} {args.kind} rows; columns: {cols}")
    return 0
