"""argparse flags generated from a config dataclass's fields.

Every option a strategy or :class:`~recsys_core.strategies.base.ModelSettings` declares,
as ``dataclasses.field(default=..., metadata={"help": ...})`` with a type hint, becomes
a flag with that help, parsed with that type:

==========================  =====================================================
type hint                   flag
==========================  =====================================================
``Literal["a", "b"]``       ``--x {a,b}``
``bool``                    ``--x`` / ``--no-x``
``int``, ``float``          a whole or a finite number
``tuple[int, ...]``         a comma-separated list: ``--x 10,20,50``
``T | None``                as ``T`` (None, the "automatic" default, is left unset)
==========================  =====================================================

Flags default to None ("not given"), so a value only lands in a request when the user
typed it and a TOML config or the dataclass default decides otherwise.
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import Field, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints


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


def whole_number(text: str) -> int:
    """argparse type: a whole number, with the flag's error in words."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def comma_list(item: Callable[[str], Any], what: str) -> Callable[[str], tuple]:
    """argparse type: ``"1,2,3"`` -> ``(item("1"), item("2"), item("3"))``."""

    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"must be {what} separated by commas, not {text!r}")
        try:
            return tuple(item(p) for p in parts)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be {what} separated by commas, not {text!r}"
            ) from None

    parse.__name__ = f"comma_list[{what}]"
    return parse


_SCALARS: dict[Any, tuple[Callable[[str], Any], str]] = {
    int: (whole_number, "whole numbers"),
    float: (finite_float, "finite numbers"),
    str: (str, "texts"),
}


def argument_kwargs(hint: Any) -> dict[str, Any]:
    """``add_argument`` keyword arguments (type, choices, action, metavar) for a field
    whose type hint is ``hint``; raises TypeError for a hint no flag can express."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:  # T | None: None is the default, left to the dataclass
            return argument_kwargs(rest[0])
        raise TypeError(f"no flag for a union of several types: {hint!r}")
    if origin is Literal:
        kinds = {type(a) for a in args}
        return {"type": kinds.pop() if len(kinds) == 1 else str, "choices": list(args)}
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS:
        item, what = _SCALARS[args[0]]
        return {"type": comma_list(item, what), "metavar": "A,B,..."}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint][0]}
    raise TypeError(f"no flag for the type {hint!r}")


def flag_name(name: str) -> str:
    """A field or strategy name as a flag word: underscores become dashes."""
    return name.replace("_", "-")


def add_field_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str = "",
    dest: Callable[[str], str] = lambda name: name,
    aliases: Mapping[str, Sequence[str]] | None = None,
    skip: Iterable[str] = (),
) -> list[str]:
    """One flag per field of dataclass ``cls``: ``--<prefix>-<field>`` (``--<field>``
    without a prefix), with the field's declared help, parsed with its type.

    ``dest`` maps a field name to the Namespace attribute its value lands in;
    ``aliases`` gives extra option strings per field (older short names). Returns the
    field names that got a flag, in declaration order.
    """
    from recsys_core.strategies.base import field_help  # torch: not before the CLI starts

    hints = get_type_hints(cls)
    helps = field_help(cls)
    aliases = aliases or {}
    skip = set(skip)
    added = []
    for f in fields(cls):
        if not f.init or f.name in skip:
            continue
        words = f"{prefix}-{flag_name(f.name)}" if prefix else flag_name(f.name)
        kwargs = argument_kwargs(hints[f.name])
        if "choices" not in kwargs and kwargs.get("action") is None:
            kwargs.setdefault("metavar", f.name.upper())
        parser.add_argument(
            f"--{words}",
            *aliases.get(f.name, ()),
            dest=dest(f.name),
            default=None,
            help=_help(helps.get(f.name, ""), f),
            **kwargs,
        )
        added.append(f.name)
    return added


def _help(text: str, f: Field) -> str:
    # argparse formats help with %-placeholders: a literal % in a declaration must not
    # be read as one.
    return text.replace("%", "%%") or f"({f.name})"
