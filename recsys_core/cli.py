"""``transfer-lab``: the same engine as the app, without the app.

Commands: validate, demo-data, run, runs, compare, split export, evaluate, curve. Errors in the user's data or
settings print one clear paragraph and exit 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib
import typing
from pathlib import Path

from recsys_core.errors import DataError
from recsys_core.io_utils import json_line

# When this module loaded: the CLI's first import, before torch and pandas. A run's
# seconds["process"] counts from here, so it includes the ~1.7 s of library imports
# that a wall-clock timer sees (only the interpreter's own start, ~0.05 s, is missing).
PROCESS_START = time.perf_counter()

EXIT_USAGE = 2


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def json_records(df) -> str:
    """A table as a JSON array of records: times as epoch milliseconds (what these
    outputs always held), NaN, NaT and infinities as null (see io_utils.json_safe)."""
    import pandas as pd

    out = df.astype(object).where(df.notna(), None)
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            out[c] = [None if pd.isna(v) else v.value // 1_000_000 for v in df[c]]
    return json_line(out.to_dict(orient="records"))


# --------------------------------------------------------------------------- validate
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


# --------------------------------------------------------------------------- demo-data
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
        return _err("demo-data needs --out DIR (or --prepare to only build the caches)")
    paths = write_demo_data(Path(args.out), names, cache_dir=cache_root() / "demo")
    for p in paths:
        print(p)
    return 0


# --------------------------------------------------------------------------- run
def _load_toml(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DataError("config file not found", file=path, hint="check the path given to --config")
    try:
        conf = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"not valid TOML: {exc}", file=path) from exc
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text", file=path, hint="save the config as UTF-8") from exc
    from recsys_core.cli_config import check_config

    check_config(conf, path)
    return conf


def _coerce(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def data_settings(args: argparse.Namespace, conf: dict):
    """(ScenarioSpec, SplitConfig, source history) from flags and a TOML config; flags win.

    The model seed (--seed or [settings] seed) seeds the split too, unless the TOML's
    [split] table sets its own. Shared by run, split export and curve.
    """
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import ScenarioSpec

    scenario = args.scenario or conf.get("scenario")
    if args.target:
        spec = ScenarioSpec(
            target_interactions=args.target,
            target_items=args.target_items,
            source_interactions=args.source,
            source_items=args.source_items,
        )
    elif scenario:
        spec = ScenarioSpec.parse(scenario)
    else:
        raise DataError(
            "no data given",
            hint="use --scenario demo:ml1m-to-ml100k, or --target FILE [--source FILE]",
        )
    split = dict(conf.get("split", {}))
    if args.protocol:
        split["protocol"] = args.protocol
    if args.cold_ks:
        try:
            split["cold_ks"] = [int(k) for k in args.cold_ks.split(",")]
        except ValueError as exc:
            raise DataError(
                f"--cold-ks must be whole numbers separated by commas, got {args.cold_ks!r}"
            ) from exc
    if args.cold_users is not None:
        split["cold_user_frac"] = args.cold_users
    if args.cold_items is not None:
        split["cold_item_frac"] = args.cold_items
    if args.min_rating is not None:
        split["min_rating"] = args.min_rating
    seed = args.seed if args.seed is not None else conf.get("settings", {}).get("seed")
    if seed is not None and "seed" not in split:
        split["seed"] = seed
    if "cold_ks" in split:
        split["cold_ks"] = tuple(split["cold_ks"])
    history = args.source_history or conf.get("source_history", "before-target")
    return spec, SplitConfig(**split), history


def build_request(args: argparse.Namespace):
    """Merge a TOML config (if any) with the flags; flags win. Returns (spec, split, history, request)."""
    from recsys_core.cli_config import check_table
    from recsys_core.pipeline import RunRequest
    from recsys_core.strategies.base import ModelSettings
    from recsys_core.strategies.registry import STRATEGIES

    conf = _load_toml(args.config) if args.config else {}
    spec, split_config, history = data_settings(args, conf)

    strategies = args.strategy or conf.get("strategies") or conf.get("strategy") or "target-only"
    if isinstance(strategies, str):
        strategies = [s.strip() for s in strategies.split(",") if s.strip()]

    settings = dict(conf.get("settings", {}))
    for key in (
        "model",
        "dim",
        "epochs",
        "seed",
        "loss",
        "batch_size",
        "lr",
        "source_epochs",
        "weight_decay",
        "cold_item_scores",
        "sparse_adam",
    ):
        v = getattr(args, key, None)
        if v is not None:
            settings[key] = v
    options = {k: dict(v) for k, v in conf.get("options", {}).items()}
    flag_opts = {
        "fine-tune": {"freeze": args.freeze, "l2sp": args.l2sp},
        "distill": {
            "alpha": args.alpha,
            "temperature": args.temperature,
            "teacher_dim": args.teacher_dim,
            "student_dim": args.student_dim,
        },
        "adapt": {"method": args.align, "weight": args.align_weight},
        "fusion": {"beta": args.beta},
        "mapping": {"mapper": getattr(args, "mapper", None), "blend": getattr(args, "blend", None)},
    }
    for strat, opts in flag_opts.items():
        for k, v in opts.items():
            if v is not None:
                options.setdefault(strat, {})[k] = v
    for item in args.option or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise DataError(
                f"--option {item!r} must look like strategy.key=value (e.g. fine-tune.l2sp=0.01)"
            )
        key, value = item.split("=", 1)
        strat, opt = key.split(".", 1)
        opt, value = opt.replace("-", "_"), _coerce(value)
        if strat not in STRATEGIES:
            raise DataError(
                f"--option {item!r} names an unknown strategy '{strat}'",
                hint=f"Strategies: {', '.join(STRATEGIES)}",
            )
        check_table(STRATEGIES[strat].Config, {opt: value}, f"--option {strat}", file=None)
        options.setdefault(strat, {})[opt] = value

    baselines = getattr(args, "baselines", None) or conf.get("baselines", "suite")
    if isinstance(baselines, str) and baselines not in ("suite", "none"):
        baselines = tuple(s.strip() for s in baselines.split(",") if s.strip())
    request = RunRequest(
        strategies=tuple(strategies),
        settings=ModelSettings(**settings),
        options=options,
        device=args.device or conf.get("device", "auto"),
        n_boot=args.n_boot if args.n_boot is not None else conf.get("n_boot", 1000),
        label=args.label,
        baselines=baselines,
    )
    return spec, split_config, history, request


class _Bar:
    """tqdm progress on stderr, one bar per stage."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar, self.stage = enabled, None, None

    def __call__(self, ev) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if ev.stage != self.stage:
            self.close()
            self.stage = ev.stage
            self.bar = tqdm(total=100, desc=ev.stage, file=sys.stderr, leave=False, unit="%")
        self.bar.n = round(100 * min(max(ev.fraction, 0.0), 1.0))
        post = {}
        if ev.epoch:
            post["epoch"] = ev.epoch
        if ev.loss is not None:
            post["loss"] = f"{ev.loss:.4f}"
        if ev.val_metric is not None:
            post["val_ndcg@10"] = f"{ev.val_metric:.4f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_run(args: argparse.Namespace) -> int:
    from recsys_core.data.scenario import SPLIT_WARNING_CODES, scenario_warnings
    from recsys_core.pipeline import (
        encode_scenario_text,
        load_scenario,
        plan_request,
        run_strategies,
    )
    from recsys_core.runs.store import RunStore
    from recsys_core.strategies.registry import needs_text
    from recsys_core.training.callbacks import Callbacks
    from recsys_core.training.device import choose_device

    t0 = time.perf_counter()
    spec, split, history, request = build_request(args)
    store = RunStore(args.store)  # a store that cannot be written is refused before any work
    bar = _Bar(enabled=not args.quiet)
    cb = Callbacks(on_progress=bar)
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
    request = plan_request(request, scn, store)
    text = None
    t1 = time.perf_counter()
    # encode only what some strategy reads: the registry's declarations decide
    if needs_text([n for n in request.strategies if n not in request.reuse], request.settings):
        device = choose_device(request.device)
        text = encode_scenario_text(scn, device=device.type, callbacks=cb)
    t_text = time.perf_counter() - t1
    outcomes = run_strategies(
        scn,
        request,
        store,
        text=text,
        callbacks=cb,
        seconds_so_far={"load": t_load, "encode_text": t_text},
    )
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
            print(_outcome_text(o))
        failed += o.status == "failed"
    return 1 if failed else 0


def _outcome_text(o) -> str:
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


# --------------------------------------------------------------------------- runs / compare
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


# --------------------------------------------------------------------------- shared flags
def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` would train for minutes and
    then fail far from the flag that caused it)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def seed_int(text: str) -> int:
    """argparse type: a seed every generator takes (0 .. 2**32 - 1)."""
    from recsys_core.cli_config import SEED_MAX

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 0 to {SEED_MAX}, not {text!r}"
        )
    return value


# One definition per flag, used by run, curve and split export, so the commands cannot drift.
def add_data_flags(p: argparse.ArgumentParser) -> None:
    """Where the data comes from."""
    p.add_argument(
        "--scenario",
        help="demo:ml1m-to-ml100k, demo:ml1m-genres, demo:ml100k, demo:ml1m, or a folder",
    )
    p.add_argument("--target", help="target interactions file")
    p.add_argument("--target-items", help="target item table")
    p.add_argument("--source", help="source interactions file")
    p.add_argument("--source-items", help="source item table")


def add_split_flags(p: argparse.ArgumentParser, seed_help: str | None = None) -> None:
    """How the target is split, and the cross-domain time cut."""
    p.add_argument("--protocol", choices=["cold-start", "recbole", "temporal"])
    p.add_argument("--source-history", choices=["before-target", "all"])
    p.add_argument("--cold-ks", help="support sizes for cold users, e.g. 0,1,3,5")
    p.add_argument("--cold-users", type=finite_float, help="fraction of users held out as cold")
    p.add_argument("--cold-items", type=finite_float, help="fraction of items held out as cold")
    p.add_argument("--min-rating", type=finite_float, help="ratings below this are not positives")
    p.add_argument("--seed", type=seed_int, help=seed_help or "seed of the split and the models")


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """ModelSettings and the device."""
    from typing import get_args

    from recsys_core.strategies.base import ModelName

    p.add_argument("--model", choices=list(get_args(ModelName)))
    p.add_argument("--dim", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--source-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=finite_float)
    p.add_argument(
        "--weight-decay", type=finite_float, help="L2 on the user and item vectors of each batch"
    )
    p.add_argument("--loss", choices=["bpr", "softmax", "full-softmax"])
    p.add_argument(
        "--cold-item-scores",
        choices=["auto", "calibrated", "raw"],
        help="two-tower: rank items without training interactions by their content path "
        "on the trained items' scale (calibrated) or by the raw score; auto (the "
        "default) keeps the better on validation",
    )
    p.add_argument(
        "--sparse-adam",
        action="store_true",
        default=None,
        help="bpr-mf: lazy Adam over the rows each batch touches (large tables)",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])


def add_strategy_flags(p: argparse.ArgumentParser) -> None:
    """The strategies' main options (any other: --option strategy.key=value)."""
    p.add_argument(
        "--freeze",
        choices=["none", "text", "items", "text+items"],
        help="fine-tune: parts kept frozen",
    )
    p.add_argument(
        "--l2sp", type=finite_float, help="fine-tune: L2-SP weight toward the source model"
    )
    p.add_argument("--alpha", type=finite_float, help="distill: weight of the distillation term")
    p.add_argument("--temperature", type=finite_float, help="distill: softmax temperature")
    p.add_argument("--teacher-dim", type=int, help="distill: teacher width")
    p.add_argument("--student-dim", type=int, help="distill: student width")
    p.add_argument("--align", choices=["mmd", "coral", "dann"], help="adapt: alignment loss")
    p.add_argument("--align-weight", type=finite_float, help="adapt: alignment weight")
    p.add_argument(
        "--beta",
        type=finite_float,
        help="fusion: fixed text weight (default: chosen on validation)",
    )
    p.add_argument("--mapper", choices=["linear", "mlp"], help="mapping: the map's form")
    p.add_argument(
        "--blend", choices=["none", "validation"], help="mapping: blending for cold users"
    )
    p.add_argument("--option", action="append", help="any strategy option: strategy.key=value")


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the flag and what is wrong, not 30 lines of usage
    before it (subcommand parsers are of this class too)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="transfer-lab", description="Does transfer learning help a thin domain?")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check a data file and print a summary")
    v.add_argument("file")
    v.add_argument("--kind", choices=["interactions", "items", "users"], default="interactions")
    v.set_defaults(func=cmd_validate)

    d = sub.add_parser("demo-data", help="write the built-in demo scenarios as plain files")
    d.add_argument("--out", help="folder to write the scenarios to")
    d.add_argument("--name", action="append", help="only this scenario (repeatable)")
    d.add_argument("--prepare", action="store_true", help="only build the caches the app uses")
    d.set_defaults(func=cmd_demo_data)

    r = sub.add_parser("run", help="train and evaluate strategies")
    r.add_argument("--config", help="TOML file with the same settings (flags win)")
    r.add_argument(
        "--split",
        help="split folder (from 'split export', or train.csv + test.csv): run on it instead of making a split",
    )
    add_data_flags(r)
    add_split_flags(r)
    from recsys_core.strategies.registry import STRATEGIES

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
    r.add_argument("--label", help="a label stored with the runs")
    r.add_argument(
        "--store", help="run store folder (default ./transfer_lab_runs or $RTL_RUN_STORE)"
    )
    r.add_argument("--json", action="store_true", help="print one JSON object per run (JSON Lines)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("runs", help="list the run store")
    ls.add_argument("--scenario")
    ls.add_argument("--store")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs)

    c = sub.add_parser("compare", help="metrics of runs side by side, with paired deltas")
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

    from recsys_core.cli_curve import add_commands as add_curve_commands
    from recsys_core.cli_split import add_commands as add_split_commands

    add_split_commands(sub)
    add_curve_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except DataError as exc:
        return _err(str(exc))
    except ValueError as exc:
        return _err(str(exc))
    except KeyError as exc:  # RunNotFoundError and its kind carry a message, not a key
        return _err(str(exc.args[0]) if exc.args else "not found")
    except KeyboardInterrupt:
        return _err("interrupted")


EXIT_BROKEN_PIPE = 141
"""What a shell reports for a process killed by SIGPIPE (128 + 13): the reader of our
output (``| head``) stopped reading, which is not an error worth a message."""


def _quiet_broken_pipe() -> int:
    """The reader closed the pipe: no traceback, and none at exit either (Python flushes
    stdout at exit, which would fail again), as the Python docs advise for SIGPIPE."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests capture it)
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
