"""Train: pick strategies and options, queue background jobs, watch them live, cancel.

The page never trains: it builds a RunRequest and hands it to the browser user's
JobManager (the same one after a reload or in a second tab: ``ui.state``), whose worker
thread writes progress to the run store; the live panel polls the store. Widget keys
start with ``train_``.
"""

from __future__ import annotations

import typing

import pandas as pd
import streamlit as st

from recsys_core.strategies.registry import STRATEGIES
from ui import charts, state
from ui.components import (
    empty_state,
    field_docs,
    option_hints,
    option_widgets,
    page_header,
    parse_values,
    seed,
    show_error,
    show_flash,
)
from ui.progress import duration, time_left
from ui.text import md_escape

GRID_DEFAULTS = {
    "l2sp": "0, 0.001, 0.01",
    "alpha": "0.2, 0.5, 0.8",
    "weight": "0.1, 1, 10",
    "lr_scale": "0.1, 0.5, 1",
}


def has_text(scn) -> bool:
    return bool(scn.target.text_fields) or (scn.source is not None and bool(scn.source.text_fields))


def availability(name: str, scn) -> str | None:
    """Why a strategy cannot run on this scenario (the strategy class says), or None."""
    return STRATEGIES[name].unavailable(scn, has_text(scn))


def strategy_picker(scn) -> tuple[list[str], dict[str, dict]]:
    """Checkboxes per strategy with its one-line summary and its options."""
    picked: list[str] = []
    options: dict[str, dict] = {}
    cols = st.columns(2, gap="large")
    groups = {"baseline": cols[0], "transfer": cols[1]}
    with cols[0]:
        st.markdown("##### Baselines")
        st.caption("Every comparison is made against the best of these.")
        suite = suite_panel(scn)
    with cols[1]:
        st.markdown("##### Transfer strategies")
        st.caption("Use the source domain or the pretrained text model.")
    for name, cls in STRATEGIES.items():
        why = availability(name, scn)
        default = name in ("popularity", "target-only") or (name == "fine-tune" and why is None)
        with groups.get(cls.kind, cols[1]):
            seed(f"train_pick_{name}", default and why is None)
            if why is not None:
                st.session_state[f"train_pick_{name}"] = False
            on = st.checkbox(
                f"**{name}**" + (f"  ·  _{md_escape(why)}_" if why else ""),
                disabled=why is not None,
                key=f"train_pick_{name}",
            )
            st.caption(cls.summary)
            has_opts = any(True for _ in _option_fields(cls))
            if on and why is None:
                picked.append(name)
                if has_opts:
                    with st.expander(f"{name} options"):
                        options[name] = option_widgets(cls.Config, f"train_opt_{name}", columns=2)
    return picked, options, suite


def suite_panel(scn) -> bool:
    """The pre-checked baseline suite: what it adds and roughly how long it takes."""
    from recsys_core.runs.plan import suite_additions

    # the ones the checkboxes below do not already pick (they keep their state)
    picked = [n for n in STRATEGIES if st.session_state.get(f"train_pick_{n}")]
    names = suite_additions(picked, scn, need_transfer=False)
    seed("train_suite", True)
    on = st.checkbox(
        "**strong baselines (recommended)**",
        key="train_suite",
        help="With any transfer strategy, also train (or reuse, when the store already has "
        "them for this data and these settings) every strong target-only baseline, so the "
        "verdict compares against the best of them. Switch off only knowingly.",
    )
    secs = _typical_seconds(st.session_state[state.STORE_ROOT], tuple(names))
    known = [s for s in secs.values() if s is not None]
    eta = f", about {sum(known) / 60:.0f} min on this machine" if known else ""
    if not names:
        st.caption("Every suite baseline is picked below.")
    else:
        st.caption(
            ("With a transfer strategy, adds " if on else "Off: the verdict may lack ")
            + ", ".join(names)
            + (eta if on else "")
            + "; a run the store already has for this data is reused."
        )
    return on


@st.cache_data(ttl=60, max_entries=8, show_spinner=False)
def _typical_seconds(store_root: str, names: tuple[str, ...]) -> dict[str, float | None]:
    """The store's typical run times, read at most once a minute (every rerun of this
    page would otherwise read up to 20 runs per baseline from SQLite)."""
    from recsys_core.pipeline import typical_seconds
    from recsys_core.runs.store import RunStore

    return typical_seconds(RunStore(store_root), list(names))


def _option_fields(cls):
    import dataclasses

    return [f for f in dataclasses.fields(cls.Config) if f.default is not dataclasses.MISSING]


def settings_panel(device_info: dict | None):
    from recsys_core.strategies.base import ModelSettings

    with st.expander("Model and training settings", expanded=False, icon=":material/tune:"):
        values = option_widgets(ModelSettings, "train_set", columns=4)
    c = st.columns([2, 2, 3])
    devices = ["auto", "cpu"] + (["cuda"] if device_info and device_info.get("cuda") else [])
    seed("train_device", "auto")
    if st.session_state["train_device"] not in devices:
        st.session_state["train_device"] = "auto"
    device = c[0].segmented_control(
        "device",
        devices,
        key="train_device",
        help="auto: the GPU when there is one, else the CPU.",
    )
    seed("train_nboot", 1000)
    n_boot = c[1].select_slider(
        "bootstrap samples", [100, 200, 500, 1000, 2000], key="train_nboot",
        help="Resamples of users for the 95% intervals; fewer is faster.",
    )  # fmt: skip
    label = c[2].text_input(
        "label (optional)", key="train_label", placeholder="e.g. quick look, dim 32"
    )
    return values, device or "auto", int(n_boot), label.strip() or None


def where_panel() -> tuple[tuple[int, ...] | None, str]:
    """Seeds to repeat over, and where the runs train (issue 14)."""
    from recsys_core.runs.executor import app_choices

    c = st.columns([3, 2])
    text = c[0].text_input(
        "repeat over seeds (optional)",
        key="train_seeds",
        placeholder="e.g. 0,1,2",
        help="One run per model seed, on the same split; Compare pools them (mean with a "
        "between-seed interval): a gain that does not survive another seed is not a gain.",
    )
    seeds = None
    if text.strip():
        try:
            seeds = tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            c[0].error("Write whole numbers separated by commas, e.g. 0,1,2.")
            seeds = None
    offered, default = app_choices()
    seed("train_executor", default)
    if st.session_state["train_executor"] not in offered:
        st.session_state["train_executor"] = default
    where = c[1].segmented_control(
        "train on",
        offered,
        key="train_executor",
        format_func={"local": "this machine", "ray": "Ray cluster"}.get,
        help="this machine: one run after another in the app's process. Ray cluster: one "
        "Ray task per run, in parallel, on RAY_ADDRESS (or a Ray started here); results "
        "land in the same run store.",
    )
    return seeds, where or default


def build_request(strategies, settings_values, options, device, n_boot, label, suite=True):
    from recsys_core.pipeline import RunRequest
    from recsys_core.strategies.base import ModelSettings

    settings = ModelSettings(**settings_values)
    return RunRequest(
        strategies=tuple(strategies),
        settings=settings,
        options={k: v for k, v in options.items() if k in strategies},
        device=device,
        n_boot=n_boot,
        label=label,
        baselines="suite" if suite else "none",
    )


def submit(requests, where: str = "local", seeds=None) -> None:
    from recsys_core.runs.executor import ExecutorConfig
    from recsys_core.runs.seeds import repeat_over_seeds

    try:
        requests = [r for req in requests for r in repeat_over_seeds(req, seeds)]
        executor = ExecutorConfig(kind=where)  # type: ignore[arg-type]
    except ValueError as exc:
        show_error(exc, "seeds")
        return
    jm = state.jobs()
    spec = st.session_state[state.SPEC]
    split = st.session_state[state.SPLIT]
    sh = st.session_state[state.SOURCE_HISTORY]
    scn = state.scenario()
    root = st.session_state[state.STORE_ROOT]
    n = 0
    for req in requests:
        try:
            jm.submit(
                spec, split or scn.split.config, sh, req, root, scenario=scn, executor=executor
            )
            n += len(req.strategies)
        except Exception as exc:
            show_error(exc, "the job could not be queued")
            return
    state.flash(
        "success",
        f"Queued {n} run(s). They keep running if you switch pages or reload this one.",
    )
    st.rerun()


def grid_panel(scn, settings_values, options, device, n_boot, where="local", seeds=None) -> None:
    """One strategy, one option, several values: one run per value, queued at once."""
    cands = [n for n, c in STRATEGIES.items() if _option_fields(c) and availability(n, scn) is None]
    with st.expander(
        "What-if grid: one option, several values, one click", icon=":material/grid_view:"
    ):
        if not cands:
            st.caption("No strategy with options can run on this scenario.")
            return
        c = st.columns([1, 1, 2])
        if st.session_state.get("train_grid_strategy") not in cands:
            st.session_state["train_grid_strategy"] = (
                "fine-tune" if "fine-tune" in cands else cands[0]
            )
        strat = c[0].selectbox("strategy", cands, key="train_grid_strategy")
        cls = STRATEGIES[strat]
        fields = [f.name for f in _option_fields(cls)]
        hints = option_hints(cls.Config)
        if st.session_state.get("train_grid_option") not in fields:
            st.session_state["train_grid_option"] = fields[0]
        opt = c[1].selectbox(
            "option", fields, key="train_grid_option", help=field_docs(cls.Config).get(fields[0])
        )
        hint = hints.get(opt)
        with c[2]:
            if typing.get_origin(hint) is typing.Literal:
                choices = list(typing.get_args(hint))
                seed(f"train_grid_values_{strat}_{opt}", choices[:3])
                values = st.multiselect("values", choices, key=f"train_grid_values_{strat}_{opt}")
            else:
                seed(f"train_grid_text_{strat}_{opt}", GRID_DEFAULTS.get(opt, ""))
                text = st.text_input(
                    "values (comma separated)", key=f"train_grid_text_{strat}_{opt}"
                )
                try:
                    values = parse_values(text, hint)
                except ValueError:
                    st.error("Write numbers separated by commas.")
                    values = []
        st.caption(
            f"{len(values)} run(s) of **{strat}**, other options as set above (or their defaults)."
        )
        if st.button(
            "Queue the grid",
            key="train_grid_go",
            disabled=not values,
            icon=":material/playlist_add:",
        ):
            try:
                reqs = [
                    build_request(
                        [strat],
                        settings_values,
                        {strat: {**options.get(strat, {}), opt: v}},
                        device,
                        n_boot,
                        f"{strat} · {opt}={v}",
                        # the suite once, with the first value: later jobs reuse its runs
                        suite=bool(st.session_state.get("train_suite", True)) and i == 0,
                    )
                    for i, v in enumerate(values)
                ]
            except Exception as exc:
                show_error(exc, "grid settings")
                return
            submit(reqs, where, seeds)


# --------------------------------------------------------------------------- live panel


def progress_text(p: dict) -> str:
    """One line for a run's latest heartbeat: stage, epoch, loss, time and time left
    (an upper bound while training: early stopping may end it sooner)."""
    stage = str(p.get("stage") or "starting…")
    parts = [stage]
    if stage == "encode text" and not p.get("fraction"):
        parts.append("loading the text model")
    if p.get("epochs"):
        parts.append(f"epoch {p.get('epoch', 0)}/{p['epochs']}")
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4f}")
    if p.get("val_metric") is not None:
        parts.append(f"val NDCG@10 {p['val_metric']:.4f}")
    if p.get("seconds"):
        parts.append(duration(p["seconds"]))
    left = time_left(p.get("seconds"), p.get("fraction"), at_most=bool(p.get("epochs")))
    if left:
        parts.append(left)
    return " · ".join(parts)


STATUS_ICON = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}
STATUS_COLOR = {
    "queued": "gray",
    "running": "blue",
    "done": "green",
    "failed": "red",
    "cancelled": "orange",
}


def run_row(store, run_id: str) -> None:
    try:
        run = store.get_run(run_id)
    except KeyError:
        st.caption(f"{run_id}: deleted from the store")
        return
    status = run["status"]
    name = run.get("label") or run["strategy"]
    head = st.columns([3, 1])
    head[0].markdown(
        f"{STATUS_ICON[status]} **{run['strategy']}**"
        + (f" · {md_escape(name)}" if name != run["strategy"] else "")
    )
    head[1].badge(status, color=STATUS_COLOR[status])
    p = run.get("progress") or {}
    if status == "running":
        frac = float(min(max(p.get("fraction") or 0.0, 0.0), 1.0))
        st.progress(frac, text=progress_text(p))
        hist = store.history(run_id)
        if "val_metric" in hist and hist["val_metric"].notna().sum() >= 2:
            st.plotly_chart(charts.live_curve(hist), theme=None, key=f"train_live_{run_id}")
    elif status == "queued":
        st.progress(0.0, text="waiting for its turn")
    elif status == "done":
        m = pd.DataFrame(run["metrics"])
        sel = m[(m["segment"] == "all") & (m["metric"] == "ndcg") & (m["k"] == 10)] if len(m) else m
        secs = run.get("seconds", {}).get("total")
        if len(sel):
            r = sel.iloc[0]
            st.caption(
                f"NDCG@10 (all users) **{r['value']:.4f}** [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
                + (f" · {secs:.1f}s" if secs else "")
            )
    elif status == "failed":
        st.error(md_escape(run.get("error") or "failed"), icon=":material/error:")
    else:
        st.caption(md_escape(run.get("error") or "cancelled"))


def jobs_panel() -> None:
    jm = state.jobs()
    busy = jm.busy()

    @st.fragment(run_every=1.5 if busy else None)
    def panel() -> None:
        jobs = jm.jobs()
        now_busy = jm.busy()
        st.subheader("Queue and progress")
        if not jobs:
            st.caption(
                "No jobs yet. Jobs train in the background and stay here "
                "when you switch pages or reload."
            )
            return
        store = state.store()
        for job in jobs:
            with st.container(border=True):
                c = st.columns([5, 1])
                c[0].markdown(
                    f"**{md_escape(job.label)}**  \n:gray[{job.job_id} · {len(job.run_ids)} run(s) · {job.state}]"
                )
                if job.active:
                    # on_click: the cancel happens before the rerun that draws the result
                    c[1].button(
                        "Cancel",
                        key=f"train_cancel_{job.job_id}",
                        icon=":material/stop_circle:",
                        width="stretch",
                        on_click=jm.cancel,
                        args=(job.job_id,),
                    )
                for rid in job.run_ids:
                    run_row(store, rid)
        if any(j.state == "done" for j in jobs):
            st.page_link(
                "views/compare.py", label="Compare the finished runs", icon=":material/leaderboard:"
            )
        if busy and not now_busy:
            st.rerun(scope="app")  # stop polling once everything has ended

    panel()


# --------------------------------------------------------------------------- page

page_header(
    "Train",
    "Choose strategies and options; runs train in the background, side by side on this "
    "machine's cores (or on a Ray cluster).",
)
show_flash()
scn = state.scenario()
if scn is None:
    empty_state("No data loaded yet", "data", "Load a demo or your files on the Data page")
    if state.jobs().jobs():
        st.caption("Your jobs are below: they kept running. Load the data again to queue more.")
else:
    st.markdown(
        f"Training on **{md_escape(scn.name)}** · {scn.n_target_users:,} target users · {scn.n_target_items:,} target items"
    )
    picked, options, suite = strategy_picker(scn)
    device_info = state.jobs().device_info()
    settings_values, device, n_boot, label = settings_panel(device_info)
    seeds, where = where_panel()
    from recsys_core.runs.plan import suite_additions

    n_suite = len(suite_additions(picked, scn)) if suite else 0
    go = st.button(
        f"Train {len(picked)} strateg{'y' if len(picked) == 1 else 'ies'}"
        + (f" + up to {n_suite} suite baselines" if n_suite else ""),
        type="primary",
        disabled=not picked,
        key="train_go",
        icon=":material/play_arrow:",
    )
    if go:
        try:
            req = build_request(picked, settings_values, options, device, n_boot, label, suite)
        except Exception as exc:
            show_error(exc, "settings")
        else:
            submit([req], where, seeds)
    grid_panel(scn, settings_values, options, device, n_boot, where, seeds)
st.divider()
jobs_panel()
