"""Widgets generated from a frozen config dataclass: one per field, prefilled with
its default, with the help text the field declares (``metadata["help"]``)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import streamlit as st


def field_docs(cls: type) -> dict[str, str]:
    """field -> help text, as the config declares it in ``field(metadata={"help": ...})``
    (:func:`recsys_core.strategies.base.field_help`); no source file is read."""
    from recsys_core.strategies.base import field_help

    return field_help(cls)


def option_widgets(
    cls: type,
    key_prefix: str,
    skip: Sequence[str] = (),
    columns: int = 1,
    helps: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One widget per field of a frozen config dataclass, prefilled with its default.

    Literal -> select box, bool -> checkbox, int/float -> number input, tuple of floats
    -> comma-separated text, ``float | None`` -> text (empty = automatic). The field's
    declared help (``metadata["help"]``) is the widget's help. Returns the chosen
    values, field -> value, ready for ``Config.from_dict`` (which validates them).
    """
    hints = typing.get_type_hints(cls)
    docs = {**field_docs(cls), **(helps or {})}
    fs = [
        f
        for f in dataclasses.fields(cls)
        if f.name not in skip and f.default is not dataclasses.MISSING
    ]
    out: dict[str, Any] = {}
    cols = st.columns(columns) if columns > 1 and len(fs) > 1 else None
    for n, f in enumerate(fs):
        if cols is not None:
            with cols[n % columns]:
                out[f.name] = _widget(
                    f.name, hints.get(f.name), f.default, docs.get(f.name), f"{key_prefix}_{f.name}"
                )
        else:
            out[f.name] = _widget(
                f.name, hints.get(f.name), f.default, docs.get(f.name), f"{key_prefix}_{f.name}"
            )
    return out


def option_hints(cls: type) -> dict[str, Any]:
    """field -> resolved type hint of a config dataclass."""
    return typing.get_type_hints(cls)


def seed(key: str, value: Any) -> None:
    """Give a widget its first value through session state (then the widget is created
    without a default, so values kept across page switches raise no warning)."""
    if key not in st.session_state:
        st.session_state[key] = value


def _widget(name: str, hint: Any, default: Any, doc: str | None, key: str) -> Any:
    label = name.replace("_", " ")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        seed(key, default)
        return st.selectbox(label, list(args), help=doc, key=key)
    if hint is bool:
        seed(key, bool(default))
        return st.checkbox(label, help=doc, key=key)
    if hint is int:
        seed(key, int(default))
        return int(st.number_input(label, step=1, help=doc, key=key))
    if hint is float:
        seed(key, float(default))
        step = (
            0.1
            if abs(default) >= 0.1 or default == 0
            else float(10 ** np.floor(np.log10(abs(default))))
        )
        return float(st.number_input(label, step=step, format="%g", help=doc, key=key))
    if origin is tuple:
        seed(key, ", ".join(f"{v:g}" for v in default))
        text = st.text_input(label, help=doc, key=key)
        return tuple(_parse_numbers(text, label))
    inner_literal = [a for a in args if typing.get_origin(a) is typing.Literal]
    if (origin in (typing.Union, types.UnionType)) and type(None) in args and inner_literal:
        # e.g. loss: None = the model's own default
        auto = "automatic"
        seed(key, auto if default is None else default)
        choice = st.selectbox(
            label,
            [auto, *typing.get_args(inner_literal[0])],
            help=(doc or "") + " Automatic: the model's default.",
            key=key,
        )
        return None if choice == auto else choice
    if (origin in (typing.Union, types.UnionType)) and type(None) in args:
        seed(
            key, "" if default is None else f"{default:g}"
        )  # e.g. teacher_dim: None = the run's dim
        text = st.text_input(
            label,
            help=(doc or "") + " Leave empty for automatic.",
            placeholder="automatic",
            key=key,
        )
        if not text.strip():
            return None
        value = _parse_numbers(text, label)[0]
        inner = next((a for a in args if a is not type(None)), float)
        return int(value) if inner is int else value
    seed(key, str(default))
    text = st.text_input(label, help=doc, key=key)
    return type(default)(text) if default is not None else text


def _parse_numbers(text: str, label: str) -> list[float]:
    try:
        return [float(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{label}: write numbers separated by commas, e.g. 0.1, 0.5") from None


def parse_values(text: str, hint: Any) -> list[Any]:
    """What-if grid values typed as text, converted to the option's type."""
    parts = [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
    if hint is int:
        return [int(float(p)) for p in parts]
    if hint is float:
        return [float(p) for p in parts]
    return parts
