"""``transfer-lab curve``: what-if curves from the command line (see recsys_core.curves).

    transfer-lab curve --scenario demo:ml1m-genres --factor warm_users \\
        --values 10,30,100,all --strategy fine-tune,mapping \\
        --baseline popularity,target-only [--draws 3] [--json]

The data, split, model and strategy-option flags are the ``run`` command's
(:mod:`recsys_core.cli.common`) and go through the same :func:`~recsys_core.cli.common.build_request`,
so a curve point is exactly what ``run`` would train.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from recsys_core.cli.common import (
    ProgressBar,
    add_data_flags,
    add_model_flags,
    add_split_flags,
    add_strategy_flags,
    build_request,
    names,
)
from recsys_core.cli.executing import add_executor_flags, executor_config

# Flags of ``run`` that build_request reads but a curve does not offer: left at None.
_UNUSED_RUN_FLAGS = ("label",)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``curve`` command to ``transfer-lab``'s subparsers; returns its parser."""
    c = subparsers.add_parser(
        "curve",
        help="what-if curve: gain of transfer over the best baseline as one factor varies",
        description=(
            "Re-run a comparison while varying the number of warm target users kept in "
            "training (warm_users) or the number of source interactions each cold user "
            "brings (source_interactions); print the gain of each strategy over the best "
            "target-only baseline per segment with a 95% paired bootstrap interval."
        ),
    )
    c.add_argument("--config", help="TOML file with the same settings as run (flags win)")
    add_data_flags(c)
    c.add_argument(
        "--factor", required=True, choices=["warm_users", "source_interactions"], help="what varies"
    )
    c.add_argument(
        "--values",
        required=True,
        help="comma-separated values, 'all' for no subsampling or cap (e.g. 10,30,100,300,all)",
    )
    c.add_argument(
        "--strategy",
        required=True,
        help="strategies to draw, comma-separated (e.g. fine-tune,mapping)",
    )
    c.add_argument(
        "--baseline",
        default="popularity,target-only",
        help="target-only baselines, comma-separated; the best per point is the reference "
        "(default popularity,target-only)",
    )
    c.add_argument(
        "--draws", type=int, default=3, help="random draws per value, pooled (default 3)"
    )
    c.add_argument("--metric", default="ndcg", help="per-user metric (default ndcg)")
    c.add_argument("--k", type=int, default=10, help="cut-off of the metric (default 10)")
    add_split_flags(c, seed_help="seed of models, subsamples and bootstrap")
    add_model_flags(c)
    add_strategy_flags(c)
    c.add_argument("--n-boot", type=int, help="bootstrap resamples per interval (default 1000)")
    c.add_argument(
        "--json", action="store_true", help="print one JSON object per point (JSON Lines)"
    )
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    add_executor_flags(c)
    c.set_defaults(func=cmd_curve, **dict.fromkeys(_UNUSED_RUN_FLAGS))
    return c


def point_records(df) -> list[dict]:
    """Curve rows as JSON-ready dicts: the documented keys first, NaN and inf as null."""
    from recsys_core.curves import CURVE_COLUMNS, EXTRA_COLUMNS
    from recsys_core.io_utils import json_safe

    cols = [c for c in CURVE_COLUMNS + EXTRA_COLUMNS if c in df.columns]
    return [json_safe(dict(zip(cols, row))) for row in df[cols].itertuples(index=False)]


def format_curve(df) -> str:
    """A text table per segment: value, strategy, delta [95% CI] against the baseline."""
    from recsys_core.compare import FAMILY_ALPHA
    from recsys_core.curves import curve_errors, family_size, with_family

    if df.empty:
        return "no points (nothing was evaluated)"
    df = with_family(df)
    r0 = df.iloc[0]
    lines = [
        f"what-if curve on {r0['scenario']} (source history: {r0['source_history']}): "
        f"gain in {r0['metric']}@{r0['k']} over the best target-only baseline"
    ]
    for seg, g in df.groupby("segment", sort=False):
        lines.append(f"\n[{seg}]")
        for _, r in g.iterrows():
            if math.isnan(r["delta"]):
                est = "no estimate"
            else:
                star = " *" if r["significant"] else ""
                est = f"{r['delta']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]{star}"
            lines.append(
                f"  {r['factor']}={r['value']!s:>5}  {r['strategy']:12s} {est:34s} "
                f"vs {r['baseline']} ({r['baseline_rule']}), {r['n_users']} users"
            )
    errs = curve_errors(df)
    if errs:
        lines.append("\nmissing points:")
        lines += [f"  {e}" for e in errs]
    lines.append(
        f"\n* the 95% interval excludes zero and the point holds after Holm's correction "
        f"for the {family_size(df)} comparisons above ({FAMILY_ALPHA:.0%} family-wise error "
        "rate)"
    )
    return "\n".join(lines)


def cmd_curve(args: argparse.Namespace) -> int:
    """Run the curve and print it (text table, or JSON Lines with --json)."""
    from recsys_core.curves import parse_values, what_if_curve
    from recsys_core.pipeline import encode_scenario_text, load_scenario
    from recsys_core.training.callbacks import Callbacks
    from recsys_core.training.device import choose_device

    t0 = time.perf_counter()
    strategies, baselines = names(args.strategy), names(args.baseline)
    values = parse_values(args.values)
    # build_request validates names, options and settings exactly as `run` does.
    req_args = argparse.Namespace(**vars(args))
    req_args.strategy = ",".join(dict.fromkeys([*strategies, *baselines]))
    spec, split, history, request = build_request(req_args)
    exec_config = executor_config(args)
    options = {k: dict(v) for k, v in request.options.items()}
    bar = ProgressBar(enabled=not args.quiet)
    cb = Callbacks(on_progress=bar)
    scn = load_scenario(spec, split, history)
    device = choose_device(request.device)
    text = None
    from recsys_core.strategies.registry import needs_text

    if needs_text([*strategies, *baselines], request.settings):
        text = encode_scenario_text(scn, device=device.type, callbacks=cb)
    from recsys_core.runs.executor import make_executor

    executor = make_executor(exec_config)
    try:
        df = what_if_curve(
            scn,
            args.factor,
            values,
            strategies,
            baselines,
            request.settings,
            draws=args.draws,
            seed=request.settings.seed,
            metric=args.metric,
            k=args.k,
            callbacks=cb,
            options=options,
            text=text,
            device=device,
            n_boot=request.n_boot,
            executor=executor,
        )
    finally:
        executor.close()
    bar.close()
    if args.json:
        from recsys_core.io_utils import json_line

        for rec in point_records(df):
            print(json_line(rec), flush=True)
    else:
        print(format_curve(df))
        print(f"\n({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    return 0
