"""The TOML config of ``run``, ``curve`` and ``split export``, checked before anything runs
(:func:`recsys_core.cli.common.load_toml` reads the file and calls :func:`check_config`).

A config file holds the same settings as the flags (see ``transfer-lab run --help``)::

    scenario = "demo:ml1m-to-ml100k"        # or target files given as flags
    strategies = ["fine-tune", "mapping"]   # or "fine-tune,mapping"
    baselines = "suite"                     # "none", or a list of baseline names
    device = "cpu"
    n_boot = 1000
    source_history = "before-target"
    [settings]                              # ModelSettings: dim, epochs, lr, seed, ...
    [split]                                 # SplitConfig: protocol, cold_ks, seed, ...
    [options.fine-tune]                     # a strategy's options: l2sp, freeze, ...

Every key and every value's type is checked against the dataclass the value ends up in
(its type hints), so a typo (``[settings] foo = 1``) or a wrong type (``dim = "abc"``)
is a :class:`~recsys_core.errors.DataError` naming the file, the table and the key,
never a traceback from deep inside a constructor. Ranges stay the dataclasses' own
business (their ``__post_init__`` messages).
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

from recsys_core.errors import DataError

SEED_MAX = 2**32 - 1
"""Largest seed accepted (numpy's and torch's generators all take 0 .. 2**32 - 1)."""

DEVICES = ("auto", "cpu", "cuda", "mps")
SOURCE_HISTORIES = ("before-target", "all")


def describe(value: Any) -> str:
    """A value as the user wrote it, with its TOML type: '"abc" (text)', '1 (integer)'."""
    kind = {
        bool: "true/false",
        int: "integer",
        float: "number",
        str: "text",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, dict) else "a table"
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{shown} ({kind})"


def _expected(hint: Any) -> str:
    """The type a hint asks for, in words."""
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in get_args(hint) if a is not type(None))
    if origin is tuple:
        inner = get_args(hint)[0]
        plural = {int: "whole numbers", float: "finite numbers", str: "texts"}
        return f"an array of {plural.get(inner, _expected(inner))}"
    return {
        int: "a whole number",
        float: "a finite number",
        bool: "true or false",
        str: "text in quotes",
    }.get(hint, str(hint))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a dataclass field's type hint (unknown hints: yes)."""
    origin = get_origin(hint)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in get_args(hint) if a is not type(None))
    if origin is tuple:
        args = get_args(hint)
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is str:
        return isinstance(value, str)
    return True


def check_table(cls: type, table: Any, where: str, file: str) -> None:
    """Every key of ``table`` is a field of dataclass ``cls`` and its value fits the
    field's type; raises DataError naming ``where`` ("[settings]") otherwise."""
    if not isinstance(table, dict):
        raise DataError(
            f"{where} must be a table, not {describe(table)}",
            file=file,
            hint=f"Write it as a {where} section with key = value lines",
        )
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    for key, value in table.items():
        if key not in names:
            raise DataError(
                f"{where} has an unknown key '{key}'",
                file=file,
                hint=f"Known keys of {where}: {', '.join(names) or 'none'}",
            )
        if not _fits(value, hints[key]):
            raise DataError(
                f"{where} {key} must be {_expected(hints[key])}, not {describe(value)}",
                file=file,
            )
        if key == "seed" and not 0 <= value <= SEED_MAX:
            raise DataError(
                f"{where} seed must be a whole number from 0 to {SEED_MAX}, not {value}",
                file=file,
            )


def _names(value: Any, key: str, file: str) -> list[str]:
    """A list of names given as "a,b" or ["a", "b"]."""
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise DataError(
        f"{key} must be a name, a comma-separated list of names, or an array of names, "
        f"not {describe(value)}",
        file=file,
    )


def _one_of(value: Any, key: str, choices: tuple[str, ...], file: str) -> None:
    if not (isinstance(value, str) and value in choices):
        raise DataError(
            f"{key} must be one of {', '.join(repr(c) for c in choices)}, not {describe(value)}",
            file=file,
        )


def check_config(conf: dict, file: str) -> None:
    """Check a parsed TOML config (see the module docstring); raises DataError."""
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.strategies.base import ModelSettings
    from recsys_core.strategies.registry import STRATEGIES

    known = (
        "scenario",
        "strategies",
        "strategy",
        "baselines",
        "device",
        "n_boot",
        "workers",
        "source_history",
        "settings",
        "split",
        "options",
    )
    for key, value in conf.items():
        if key not in known:
            raise DataError(
                f"unknown key '{key}' at the top of the config",
                file=file,
                hint=f"Known keys: {', '.join(known)} (see transfer-lab run --help)",
            )
        if key == "scenario" and not isinstance(value, str):
            raise DataError(
                f'scenario must be text such as "demo:ml100k" or a folder, not {describe(value)}',
                file=file,
            )
        if key in ("strategies", "strategy", "baselines"):
            names = _names(value, key, file)
            allowed = (
                [n for n, c in STRATEGIES.items() if c.kind == "baseline"]
                if key == "baselines"
                else list(STRATEGIES)
            )
            if key == "baselines" and isinstance(value, str) and value in ("suite", "none"):
                continue
            bad = [n for n in names if n not in allowed]
            if bad:
                raise DataError(
                    f"{key} names an unknown {'baseline' if key == 'baselines' else 'strategy'} "
                    f"'{bad[0]}'",
                    file=file,
                    hint="Choose from: "
                    + ", ".join((["suite", "none"] if key == "baselines" else []) + allowed),
                )
        if key == "device":
            _one_of(value, key, DEVICES, file)
        if key == "source_history":
            _one_of(value, key, SOURCE_HISTORIES, file)
        if key in ("n_boot", "workers") and not (
            isinstance(value, int) and not isinstance(value, bool)
        ):
            raise DataError(f"{key} must be a whole number, not {describe(value)}", file=file)
    check_table(ModelSettings, conf.get("settings", {}), "[settings]", file)
    check_table(SplitConfig, conf.get("split", {}), "[split]", file)
    options = conf.get("options", {})
    if not isinstance(options, dict):
        raise DataError(
            f"options must be tables such as [options.fine-tune], not {describe(options)}",
            file=file,
        )
    for name, table in options.items():
        if name not in STRATEGIES:
            raise DataError(
                f"[options.{name}] names an unknown strategy",
                file=file,
                hint=f"Strategies: {', '.join(STRATEGIES)}",
            )
        check_table(STRATEGIES[name].Config, table, f"[options.{name}]", file)
