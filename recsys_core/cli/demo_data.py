"""``transfer-lab demo-data``: write the built-in demo scenarios as plain files, or only
build the caches the app opens them from (``--prepare``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recsys_core.cli.common import print_error


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo-data`` command to ``transfer-lab``'s subparsers; returns its parser."""
    d = subparsers.add_parser("demo-data", help="write the built-in demo scenarios as plain files")
    d.add_argument("--out", help="folder to write the scenarios to")
    d.add_argument("--name", action="append", help="only this scenario (repeatable)")
    d.add_argument("--prepare", action="store_true", help="only build the caches the app uses")
    d.set_defaults(func=cmd_demo_data)
    return d


def cmd_demo_data(args: argparse.Namespace) -> int:
    from recsys_core.data.demo import DEMO_SCENARIOS, load_demo, write_demo_data
    from recsys_core.pipeline import cache_root

    names = args.name or list(DEMO_SCENARIOS)
    if args.prepare:
        # Build the Parquet caches (and the text vectors) so the app opens at once.
        for n in names:
            t0 = time.perf_counter()
            d = load_demo(n, cache_dir=cache_root() / "demo")
            print(
                f"{n}: ready in {time.perf_counter() - t0:.1f}s ({d.target.n_users:,} target users)"
            )
        return 0
    if not args.out:
        return print_error("demo-data needs --out DIR (or --prepare to only build the caches)")
    paths = write_demo_data(Path(args.out), names, cache_dir=cache_root() / "demo")
    for p in paths:
        print(p)
    return 0
