"""Pieces every page shares: sidebar, empty states, errors, option widgets, cached reads.

Rules kept here (see STYLE.md): the engine's errors reach the user as ``st.error`` with
the engine's own message (never a traceback); parsed uploads and finished runs' artifacts
go through ``st.cache_data`` with a bounded ``max_entries``; nothing is cached in a
module-level variable.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import logging
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ui import state
from ui.text import md_escape

log = logging.getLogger(__name__)

PAGES = {
    "data": "views/data.py",
    "train": "views/train.py",
    "compare": "views/compare.py",
    "embeddings": "views/embeddings.py",
    "users": "views/users.py",
    "whatif": "views/whatif.py",
}


# --------------------------------------------------------------------------- messages


def show_error(exc: BaseException, context: str | None = None) -> None:
    """An engine error as a red box with its message; never a traceback.

    DataError and ValueError messages are written for people (file, column, lines, what
    to do); anything else is a bug, shown as one line and logged with its traceback.
    """
    from recsys_core.errors import DataError

    # Messages name files, columns and values from the user's data: shown as text.
    prefix = f"{md_escape(context)}: " if context else ""
    if isinstance(exc, DataError | ValueError | KeyError | FileNotFoundError):
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        st.error(f"{prefix}{md_escape(msg)}", icon=":material/error:")
    else:
        log.exception("unexpected error in the app", exc_info=exc)
        st.error(
            f"{prefix}something went wrong ({type(exc).__name__}: {md_escape(exc)}). "
            "The details are in the server log.",
            icon=":material/error:",
        )


def show_flash() -> None:
    msg = st.session_state.get(state.FLASH)
    if msg:
        kind, text = msg
        getattr(st, kind, st.info)(text)
        st.session_state[state.FLASH] = None


def empty_state(
    text: str, page: str | None = None, label: str | None = None, icon: str = ":material/info:"
) -> None:
    """A friendly "nothing here yet" box with a link to the page that fixes it."""
    with st.container(border=True):
        st.markdown(f"#### {text}")
        if page:
            st.page_link(
                PAGES[page],
                label=label or f"Go to {page.capitalize()}",
                icon=":material/arrow_forward:",
            )


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


# --------------------------------------------------------------------------- sidebar


def sidebar() -> None:
    """Active scenario, compute device and run store, on every page."""
    scn = state.scenario()
    with st.sidebar:
        st.markdown("### Scenario")
        if scn is None:
            st.caption("No data loaded yet.")
        else:
            st.markdown(f"**{md_escape(scn.name)}**")
            if scn.constructed:
                st.badge("constructed scenario", icon=":material/construction:", color="orange")
            tgt = f"target: {scn.n_target_users:,} users, {scn.n_target_items:,} items"
            src = (
                f"source: {scn.source.n_users:,} users, {scn.source.n_items:,} items"
                if scn.source is not None
                else "no source domain"
            )
            st.caption(
                f"{tgt}  \n{src}  \nsplit: {scn.split.config.protocol}, source history: {scn.source_history}"
            )
        st.markdown("### Device")
        _device_label()
        st.markdown("### Run store")
        st.code(st.session_state[state.STORE_ROOT], language=None, wrap_lines=True)
        active = [j for j in state.jobs().jobs() if j.active]
        if active:
            st.caption(f":material/hourglass_top: {len(active)} job(s) queued or running")
        st.divider()
        st.caption(
            ":material/hub: **Recsys Transfer Lab** · does transfer learning help your thin domain?"
        )


def _device_label() -> None:
    info = state.jobs().device_info()
    if info is not None:
        st.markdown(f":material/memory: {info['label']}")
        return

    # torch loads in a background thread; poll until it answers, then stop polling.
    @st.fragment(run_every=1.0)
    def poll() -> None:
        if state.jobs().device_info() is None:
            st.caption("checking…")
        else:
            st.rerun(scope="app")  # once: the next run draws the label and stops polling

    poll()


# --------------------------------------------------------------------------- runs


def run_names(runs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """run_id -> short unique display name: the label, else the strategy, else + id tail."""

    def label(r: Mapping[str, Any]) -> str:
        lab = r.get("label")
        return (
            lab if isinstance(lab, str) and lab.strip() else str(r["strategy"])
        )  # NaN from pandas too

    base = {r["run_id"]: label(r) for r in runs}
    counts = pd.Series(list(base.values())).value_counts()
    return {rid: (n if counts[n] == 1 else f"{n} ·{rid[-4:]}") for rid, n in base.items()}


@st.cache_data(max_entries=64, show_spinner=False)
def run_table(store_root: str, run_id: str, name: str) -> pd.DataFrame | None:
    """A finished run's table artifact (immutable once the run is done), or None."""
    from recsys_core.runs.store import RunStore

    try:
        return RunStore(store_root).load_table(run_id, name)
    except (FileNotFoundError, KeyError):
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def run_vectors(store_root: str, run_id: str, stage: str) -> dict[str, np.ndarray] | None:
    """A finished run's stage vectors ({"items": (n_joint_items, d), "users"?: ...}) or None."""
    from recsys_core.runs.store import RunStore

    try:
        return RunStore(store_root).load_tensors(run_id, f"vectors_{stage}")
    except (FileNotFoundError, KeyError):
        return None


def run_stages(store, run_id: str) -> list[str]:
    """Stage names with stored vectors, e.g. ["source", "final"]."""
    try:
        names = store.list_artifacts(run_id)
    except KeyError:
        return []
    stages = [
        n.removeprefix("vectors_").removesuffix(".safetensors")
        for n in names
        if n.startswith("vectors_")
    ]
    order = {"text": 0, "source": 1, "teacher": 2, "final": 9}
    return sorted(stages, key=lambda s: (order.get(s, 5), s))


def done_runs(store, scenario: str | None = None) -> pd.DataFrame:
    try:
        return store.list_runs(scenario=scenario, status="done")
    except Exception as exc:  # an unreadable store must not take the page down
        show_error(exc, "the run store could not be read")
        return pd.DataFrame(
            columns=["run_id", "strategy", "label", "scenario", "data_fingerprint", "created_at"]
        )


# --------------------------------------------------------------------------- options


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field (the house style), field -> text."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for a, b in itertools.pairwise(body):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
                and isinstance(b.value.value, str)
            ):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


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
    docstring is the widget's help. Returns the chosen values, field -> value, ready for
    ``Config.from_dict`` (which validates them).
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


# --------------------------------------------------------------------------- uploads


@st.cache_data(max_entries=16, show_spinner=False)
def file_columns(data: bytes, name: str) -> tuple[list[str], str | None]:
    """The header of an uploaded file as the user sees it, and an error message or None.

    TODO(lead): recsys_core.data.loaders has no public "read the header" function; this
    uses its private parser so every format the loader takes (CSV/TSV, RecBole, Parquet,
    compressed) lists its columns the same way. A public ``read_header`` would replace it.
    """
    from recsys_core.data import loaders
    from recsys_core.errors import DataError

    try:
        public = getattr(loaders, "read_header", None)
        if public is not None:
            return list(public(data, name=name)), None
        limits = loaders.Limits()
        with loaders._guard(name):
            raw, ext = loaders._load_bytes(data, name, limits)
            parsed = loaders._parse_bytes(raw, file=name, ext=ext, limits=limits, depth=0)
        return [loaders._strip_suffix(str(n)) for n in parsed.names], None
    except DataError as exc:
        return [], str(exc)


@st.cache_data(max_entries=16, show_spinner=False)
def parse_table(
    data: bytes, name: str, kind: str, mapping: tuple | None
) -> tuple[pd.DataFrame | None, dict, str | None]:
    """Read an upload with the loader; (canonical frame, read info, None) or (None, {}, message).

    ``mapping``: ``ColumnMapping`` fields as a tuple of (name, value) pairs (hashable).
    """
    from recsys_core.data.loaders import ColumnMapping, read_table
    from recsys_core.errors import DataError

    try:
        cm = ColumnMapping(**dict(mapping)) if mapping else None
        df = read_table(data, name=name, kind=kind, columns=cm)
    except (DataError, ValueError) as exc:
        return None, {}, str(exc)
    info = dict(df.attrs.get("read_info", {}))
    df.attrs = {}
    return df, info, None


# --------------------------------------------------------------------------- items


def item_frame(scn) -> pd.DataFrame:
    """One row per joint item of a scenario: id, title, first genre, domain, training
    popularity bucket and cold status (for colouring maps and labelling lists).

    Columns: item_id, title, genre, domain (target/source/both), popularity, cold status,
    train_count.
    """
    ids = np.asarray(scn.item_ids, dtype=object)
    n, nt = len(ids), scn.n_target_items
    titles = pd.Series(ids.astype(str), dtype=object)
    genres = pd.Series(["(none)"] * n, dtype=object)
    for dom, sl in ((scn.target, slice(0, nt)), (scn.source, slice(nt, n))):
        if dom is None or dom.items is None:
            continue
        table = dom.items.drop_duplicates("item_id").set_index("item_id")
        part = pd.Index(ids[sl])
        if "title" in table.columns:
            t = table["title"].reindex(part)
            titles.iloc[sl] = np.where(
                t.notna() & (t.astype(str) != ""), t.astype(str), ids[sl].astype(str)
            )
        if "genres" in table.columns:
            g = table["genres"].reindex(part).fillna("").astype(str)
            first = g.str.split(r"[,|]", regex=True).str[0].str.strip()
            genres.iloc[sl] = np.where(first != "", first, "(none)")
    # Source items that are also target items carry the target title; for linked items
    # the target row is the one shown.
    domain = pd.Series(scn.item_domain).map({0: "target", 1: "source", 2: "both"}).to_numpy()
    counts = np.zeros(n, dtype=np.int64)
    tr = scn.split.train["item"].to_numpy()
    np.add.at(counts, tr, 1)
    if scn.has_source:
        np.add.at(counts, scn.source_train["item"].to_numpy(), 1)
    pop = np.full(n, "never in training", dtype=object)
    seen = counts > 0
    if seen.any():
        ranks = pd.Series(counts[seen]).rank(pct=True, ascending=False).to_numpy()
        pop[seen] = np.where(
            ranks <= 0.1, "top 10%", np.where(ranks <= 0.5, "10-50%", "bottom 50%")
        )
    cold = np.where(np.arange(n) < nt, "warm item", "source only").astype(object)
    cold[np.asarray(scn.split.cold_items, dtype=np.int64)] = "cold item"
    return pd.DataFrame(
        {
            "item_id": ids,
            "title": titles.to_numpy(),
            "genre": genres.to_numpy(),
            "domain": domain,
            "popularity": pop,
            "cold status": cold,
            "train_count": counts,
        }
    )


def item_frame_from_artifact(items: pd.DataFrame) -> pd.DataFrame:
    """The same columns from a run's ``items`` artifact when its scenario is not loaded
    (title and genre read from the "title | genres | year" text; no popularity)."""
    parts = items["text"].astype(str).str.split(" | ", regex=False)
    title = parts.str[0]
    genre = parts.str[1].fillna("(none)").str.split(",").str[0].str.strip()
    return pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str).to_numpy(),
            "title": title.to_numpy(),
            "genre": genre.replace("", "(none)").to_numpy(),
            "domain": items["domain"].map({0: "target", 1: "source", 2: "both"}).to_numpy(),
            "popularity": "unknown",
            "cold status": np.where(items["domain"].to_numpy() == 1, "source only", "unknown"),
            "train_count": 0,
        }
    )


def scenario_for_runs(runs: Sequence[Mapping[str, Any]]):
    """The loaded scenario when the runs were made on exactly its data and split, else None."""
    scn = state.scenario()
    if scn is None or not runs:
        return None
    fp = scn.fingerprint()
    return scn if all(r.get("data_fingerprint") == fp for r in runs) else None


def offer_reload(run: Mapping[str, Any], key: str) -> None:
    """Offer to rebuild the scenario a run was trained on, from the spec in its config."""
    cfg = run.get("config", {})
    spec_d = cfg.get("spec")
    if not spec_d:
        st.info("Load the data these runs were trained on (Data page) to see users and titles.")
        return
    st.info(
        f"These runs were trained on **{run.get('scenario')}** with a different split or data than "
        "the one loaded now. Load it to see users, histories and titles."
    )
    if st.button(
        f"Load {run.get('scenario')} with the runs' split", key=key, icon=":material/download:"
    ):
        from recsys_core.data.split_types import SplitConfig
        from recsys_core.pipeline import ScenarioSpec, load_scenario

        try:
            split_d = dict(cfg.get("split") or {})
            if "cold_ks" in split_d:
                split_d["cold_ks"] = tuple(split_d["cold_ks"])
            spec = ScenarioSpec(**spec_d)
            split = SplitConfig(**split_d)
            sh = cfg.get("source_history", "before-target")
            with st.spinner("Loading the data…"):
                scn = load_scenario(spec, split, sh)
        except Exception as exc:
            show_error(exc, "the scenario could not be rebuilt")
            return
        state.set_scenario(scn, spec, split, sh)
        st.rerun()


# --------------------------------------------------------------------------- report


def html_report(
    title: str,
    subtitle: str,
    table: pd.DataFrame,
    verdict: Sequence[str],
    figures: Sequence[tuple[str, Any]],
    provenance: Any = None,
) -> str:
    """A standalone HTML page (:func:`recsys_core.report.render_html_report`) with the
    plotly figures as snippets (plotly.js inlined once, so it opens offline)."""
    from recsys_core.report import render_html_report

    divs = [
        (
            heading,
            fig.to_html(
                full_html=False,
                include_plotlyjs="inline" if n == 0 else False,
                config={"displaylogo": False},
            ),
        )
        for n, (heading, fig) in enumerate(figures)
    ]
    return render_html_report(title, subtitle, table, verdict, divs, provenance)


def canonical_path(folder: Path, role: str) -> Path:
    return folder / f"{role}.parquet"


# --------------------------------------------------------------------------- what-if


def value_phrase(factor: str, value: Any, x: float | None = None) -> str:
    """'30 warm users', 'all 36 warm users', '3 source interactions', 'all (≈2.5)'."""
    if factor == "warm_users":
        if isinstance(value, str):
            return (
                f"all {x:,.0f} warm users" if x is not None and np.isfinite(x) else "all warm users"
            )
        return f"{int(value):,} warm users"
    if isinstance(value, str):
        return (
            f"all source interactions (≈{x:,.1f} per cold user)"
            if x is not None and np.isfinite(x)
            else "all source interactions"
        )
    return f"{int(value):,} source interaction" + ("" if int(value) == 1 else "s")


def curve_verdict(curve: pd.DataFrame) -> list[str]:
    """One plain line per (segment, strategy) of a what-if curve: where the gain over the
    best target-only baseline is measurable (its 95% interval excludes zero) and at which
    value the interval first includes zero. Markdown, segment in bold."""
    from ui.charts import segment_label, segment_order

    out: list[str] = []
    if curve.empty:
        return out
    factor = str(curve["factor"].iloc[0])

    def order(v: Any) -> float:
        return float("inf") if isinstance(v, str) else float(v)

    for seg in segment_order(curve["segment"]):
        gs = curve[curve["segment"] == seg]
        for name in dict.fromkeys(gs["strategy"]):
            g = gs[(gs["strategy"] == name) & gs["delta"].notna()]
            if g.empty:
                continue
            g = g.assign(_o=g["value"].map(order)).sort_values("_o")
            pts = list(g.itertuples(index=False))

            def at(p) -> str:
                return value_phrase(factor, p.value, getattr(p, "x", None))

            def est(p) -> str:
                return f"{p.delta:+.4f} [{p.ci_low:+.4f}, {p.ci_high:+.4f}]"

            gain = [p.ci_low > 0 for p in pts]
            loss = [p.ci_high < 0 for p in pts]
            head = f"**{segment_label(seg)}** · {name}: "
            if all(gain):
                line = (
                    f"gains at every value, {est(pts[0])} at {at(pts[0])} and "
                    f"{est(pts[-1])} at {at(pts[-1])}; the interval never includes zero."
                    if len(pts) > 1
                    else f"gains {est(pts[0])} at {at(pts[0])}."
                )
            elif not any(gain) and not any(loss):
                line = "no measurable gain at any value (every 95% interval includes zero)."
            elif gain[0]:
                first = next(i for i, g_ in enumerate(gain) if not g_)
                line = (
                    f"gains {est(pts[0])} at {at(pts[0])}; the interval first includes zero "
                    f"at {at(pts[first])} ({est(pts[first])})."
                )
            else:
                incl = [not (a or b) for a, b in zip(gain, loss)]
                first_incl = next((i for i, v in enumerate(incl) if v), None)
                first_gain = next((i for i, v in enumerate(gain) if v), None)
                parts = []
                if first_incl is not None:
                    parts.append(
                        f"the interval first includes zero at {at(pts[first_incl])} "
                        f"({est(pts[first_incl])})"
                    )
                if first_gain is not None:
                    parts.append(
                        f"a gain is measurable first at {at(pts[first_gain])} "
                        f"({est(pts[first_gain])})"
                    )
                line = "; ".join(parts) + "." if parts else "no gain at any value."
            if any(loss):
                worse = ", ".join(at(p) for p, lo in zip(pts, loss) if lo)
                line += f" Worse than the baseline at {worse}."
            out.append(head + line)
    return out
