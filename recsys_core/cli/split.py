"""``transfer-lab split export``: the common yardstick, written out.

Writes the target split of a scenario as plain CSV files with original ids
(docs/split_format.md), so another library trains and scores on exactly the split our
runs use; ``transfer-lab evaluate`` (:mod:`recsys_core.cli.evaluate`) scores its
recommendations on such a folder. The split flags are ``run``'s: the same flags give
the same split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recsys_core.cli.common import add_data_flags, add_split_flags, data_settings, load_toml


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``split`` command (with ``export``) to ``transfer-lab``; returns its parser."""
    s = subparsers.add_parser("split", help="export a scenario's target split as plain CSV files")
    ssub = s.add_subparsers(dest="split_command", required=True)
    e = ssub.add_parser(
        "export",
        help="write train/valid/test, support sets and cold lists with original ids",
        description="Write the target split of a scenario as plain CSV files (see docs/split_format.md). "
        "The split flags are those of 'run': the same flags give the same split.",
    )
    e.add_argument("--out", required=True, help="folder to write the split to")
    e.add_argument("--config", help="TOML file as for 'run' (its scenario and [split] are read)")
    add_data_flags(e)
    add_split_flags(e, seed_help="split seed (as 'run --seed')")
    e.set_defaults(func=cmd_split_export)
    return s


def cmd_split_export(args: argparse.Namespace) -> int:
    from recsys_core.data.split_io import export_split
    from recsys_core.pipeline import load_scenario

    conf = load_toml(args.config) if args.config else {}
    spec, split_config, history = data_settings(args, conf)
    scn = load_scenario(spec, split_config, history)
    paths = export_split(
        scn.split, Path(args.out), scenario_name=scn.name, scenario_fingerprint=scn.fingerprint()
    )
    s = scn.split
    print(
        f"{scn.name}: {s.config.protocol} split written to {Path(args.out)} "
        f"({len(s.train):,} train, {len(s.valid):,} valid, {len(s.test):,} test rows; "
        f"{s.n_users:,} users, {s.n_items:,} items)"
    )
    print(s.segment_sizes().to_string(index=False))
    for p in paths:
        print(f"  {p.name}")
    return 0
