"""What the ``transfer-lab`` commands share: flags, the progress bar, error and JSON
printing, and reading the settings (flags over a TOML config) into a request.

One definition per flag, used by run, curve and split export, so the commands cannot
drift. The model and strategy flags are generated from the dataclasses that hold the
values (:mod:`recsys_core.cli.fields`): a strategy's new option is a new flag with no
edit here.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from dataclasses import fields
from pathlib import Path

from recsys_core.cli.config import SEED_MAX, check_config, check_table
from recsys_core.cli.fields import add_field_flags, finite_float, flag_name
from recsys_core.errors import DataError
from recsys_core.io_utils import json_line

# When this module loaded: the CLI's first import, before torch and pandas. A run's
# seconds["process"] counts from here, so it includes the ~1.7 s of library imports
# that a wall-clock timer sees (only the interpreter's own start, ~0.05 s, is missing).
PROCESS_START = time.perf_counter()

EXIT_USAGE = 2
"""Exit status of a refusal: bad data, bad settings, bad flags (as argparse's own)."""

__all__ = [
    "EXIT_USAGE",
    "PROCESS_START",
    "SHORT_OPTION_FLAGS",
    "ProgressBar",
    "add_data_flags",
    "add_model_flags",
    "add_split_flags",
    "add_strategy_flags",
    "build_request",
    "data_settings",
    "finite_float",
    "json_records",
    "load_toml",
    "names",
    "option_dest",
    "print_error",
    "seed_int",
]


# --------------------------------------------------------------------------- printing
def print_error(msg: str) -> int:
    """Print ``error: msg`` on stderr (one paragraph, no traceback); returns EXIT_USAGE."""
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


class ProgressBar:
    """tqdm progress on stderr, one bar per stage: an ``on_progress`` callback
    (:class:`~recsys_core.training.callbacks.Callbacks`). Call :meth:`close` at the end.

    Runs fitted side by side (:mod:`recsys_core.runs.parallel`) report from their own
    threads: each thread has its own bar, on its own line."""

    def __init__(self, enabled: bool) -> None:
        import threading

        self.enabled = enabled
        self._lock = threading.Lock()
        self._bars: dict[int, tuple[str, object]] = {}  # thread id -> (stage, bar)

    def __call__(self, ev) -> None:
        if not self.enabled:
            return
        import threading

        from tqdm import tqdm

        me = threading.get_ident()
        with self._lock:
            stage, bar = self._bars.get(me, (None, None))
            if ev.stage != stage:
                if bar is not None:
                    bar.close()
                used = {getattr(b, "pos", 0) for t, (_, b) in self._bars.items() if t != me}
                pos = next(i for i in range(len(used) + 1) if i not in used)
                bar = tqdm(
                    total=100, desc=ev.stage, file=sys.stderr, leave=False, unit="%", position=pos
                )
                self._bars[me] = (ev.stage, bar)
            bar.n = round(100 * min(max(ev.fraction, 0.0), 1.0))
            post = {}
            if ev.epoch:
                post["epoch"] = ev.epoch
            if ev.loss is not None:
                post["loss"] = f"{ev.loss:.4f}"
            if ev.val_metric is not None:
                post["val_ndcg@10"] = f"{ev.val_metric:.4f}"
            bar.set_postfix(post, refresh=False)
            bar.refresh()

    def close(self) -> None:
        with self._lock:
            for _, bar in self._bars.values():
                bar.close()
            self._bars.clear()


def names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: a comma-separated list of names."""
    return [s.strip() for s in text.split(",") if s.strip()]


# --------------------------------------------------------------------------- flags
def seed_int(text: str) -> int:
    """argparse type: a seed every generator takes (0 .. 2**32 - 1)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 0 to {SEED_MAX}, not {text!r}"
        )
    return value


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
    """One flag per :class:`~recsys_core.strategies.base.ModelSettings` field (``--dim``,
    ``--batch-size``, ...; help from the field's metadata), and the device.

    ``seed`` is left out: ``--seed`` is a split flag, and seeds the models too.
    """
    from recsys_core.strategies.base import ModelSettings

    group = p.add_argument_group("model settings (every trained strategy)")
    add_field_flags(group, ModelSettings, skip=("seed",))
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])


SHORT_OPTION_FLAGS: dict[str, tuple[str, str]] = {
    "--freeze": ("fine-tune", "freeze"),
    "--l2sp": ("fine-tune", "l2sp"),
    "--alpha": ("distill", "alpha"),
    "--temperature": ("distill", "temperature"),
    "--teacher-dim": ("distill", "teacher_dim"),
    "--student-dim": ("distill", "student_dim"),
    "--align": ("adapt", "method"),
    "--align-weight": ("adapt", "weight"),
    "--beta": ("fusion", "beta"),
    "--mapper": ("mapping", "mapper"),
    "--blend": ("mapping", "blend"),
}
"""Older short names of some strategy options, kept as aliases of the generated
``--<strategy>-<option>`` flags because the README and scripts use them. New options
get only the generated name."""


def option_dest(strategy: str, option: str) -> str:
    """The Namespace attribute that the flag of ``strategy``'s ``option`` fills."""
    return f"{strategy}.{option}"


def add_strategy_flags(p: argparse.ArgumentParser) -> None:
    """``--<strategy>-<option>`` for every option of every registered strategy, with the
    help its config declares (plus the short aliases above), and ``--option``."""
    from recsys_core.strategies.registry import STRATEGIES

    aliases: dict[str, dict[str, list[str]]] = {}
    for flag, (strategy, option) in SHORT_OPTION_FLAGS.items():
        aliases.setdefault(strategy, {}).setdefault(option, []).append(flag)
    for name, cls in STRATEGIES.items():
        if not fields(cls.Config):
            continue
        group = p.add_argument_group(f"{name} options ({cls.kind})")
        add_field_flags(
            group,
            cls.Config,
            prefix=flag_name(name),
            dest=lambda option, _name=name: option_dest(_name, option),
            aliases=aliases.get(name),
        )
    p.add_argument("--option", action="append", help="any strategy option: strategy.key=value")


# --------------------------------------------------------------------------- settings
def load_toml(path: str) -> dict:
    """A TOML config, parsed and checked (:func:`recsys_core.cli.config.check_config`)."""
    p = Path(path)
    if not p.is_file():
        raise DataError("config file not found", file=path, hint="check the path given to --config")
    try:
        conf = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"not valid TOML: {exc}", file=path) from exc
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text", file=path, hint="save the config as UTF-8") from exc
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
    from recsys_core.data.spec import ScenarioSpec
    from recsys_core.data.split_types import SplitConfig

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
    from recsys_core.runs.plan import RunRequest
    from recsys_core.strategies.base import ModelSettings
    from recsys_core.strategies.registry import STRATEGIES

    conf = load_toml(args.config) if args.config else {}
    spec, split_config, history = data_settings(args, conf)

    strategies = args.strategy or conf.get("strategies") or conf.get("strategy") or "target-only"
    if isinstance(strategies, str):
        strategies = names(strategies)

    settings = dict(conf.get("settings", {}))
    for f in fields(ModelSettings):  # --seed comes from the split flags, same name
        v = getattr(args, f.name, None)
        if v is not None:
            settings[f.name] = v
    options = {k: dict(v) for k, v in conf.get("options", {}).items()}
    for strat, cls in STRATEGIES.items():
        for f in fields(cls.Config):
            v = getattr(args, option_dest(strat, f.name), None)
            if v is not None:
                options.setdefault(strat, {})[f.name] = v
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
        baselines = tuple(names(baselines))
    request = RunRequest(
        strategies=tuple(strategies),
        settings=ModelSettings(**settings),
        options=options,
        device=args.device or conf.get("device", "auto"),
        n_boot=args.n_boot if args.n_boot is not None else conf.get("n_boot", 1000),
        label=args.label,
        baselines=baselines,
        workers=_workers(getattr(args, "workers", None), conf.get("workers", 0)),
    )
    return spec, split_config, history, request


def _workers(flag: int | None, conf_value: int) -> int:
    """--workers (or the config's ``workers``), refused with the flag's name when out
    of range."""
    value = flag if flag is not None else conf_value
    if not 0 <= value <= 64:
        raise DataError(
            f"--workers must be between 0 (choose from the CPU cores) and 64, got {value}",
            hint="1 fits the runs one after the other",
        )
    return value
