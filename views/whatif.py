"""What-if: when does transfer pay? The gain of each transfer strategy over the best
target-only baseline while one factor varies (warm target users kept in training, or
source interactions a cold user brings), per segment, with 95% paired intervals.

The curve is computed by :func:`recsys_core.curves.what_if_curve` in a side task of the
browser user's JobManager: the task reports its progress through its TaskHandle (kept
in memory, so a reload finds it) and returns the curve, which the JobManager keeps in
memory (``task_result``; nothing is pickled to disk). Stopped, it returns the values
already computed. Before starting, the page says how long the curve should take, from
the runs already in the store. Widget keys start with ``whatif_``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import streamlit as st

from recsys_core.io_utils import csv_for_spreadsheets
from recsys_core.strategies.registry import STRATEGIES, needs_text
from ui import charts, state
from ui.components import (
    curve_verdict,
    empty_state,
    family_note,
    page_header,
    seed,
    show_error,
    show_flash,
)
from ui.progress import duration, time_left
from ui.text import md_escape

FACTORS = {
    "warm_users": "warm target users",
    "source_interactions": "source interactions per cold user",
}
# Three values and one draw: a first curve in a few minutes on a 2-core CPU. Measured on
# the ML-1M -> ML-100K demo against EASE, one draw at 30, 300 and all warm users:
# fine-tune 6.1 min, fusion 5.6 min, with the machine shared (load 5-7); 100 instead of
# 300 is quicker. More values and draws when the first look is worth it. (Comments, not
# docstrings: Streamlit's magic would print a bare string in a page script.)
DEFAULT_VALUES = {
    "warm_users": "30, 100, all",
    "source_interactions": "0, 10, all",
}
# The first of these that can run on the scenario is pre-selected (adapt and distill
# train several models per fit).
DEFAULT_TRANSFER = ("fine-tune", "fusion", "mapping", "adapt", "distill")
METRICS = {"ndcg": "NDCG", "recall": "Recall", "hit": "Hit rate", "mrr": "MRR"}
TARGET_MODELS = {
    "ease": "EASE (closed form)",
    "ials": "iALS",
    "two-tower": "two-tower (as the transfer strategies)",
}


def has_text(scn) -> bool:
    return bool(scn.target.text_fields) or (scn.source is not None and bool(scn.source.text_fields))


def offered(scn) -> tuple[list[str], list[str], dict[str, str]]:
    """(transfer strategies, baselines) that can run on ``scn``, and why the others cannot
    (the strategy classes decide: ``Strategy.unavailable``)."""
    why = {n: c.unavailable(scn, has_text(scn)) for n, c in STRATEGIES.items()}
    transfer = [n for n, c in STRATEGIES.items() if c.kind != "baseline" and why[n] is None]
    baselines = [n for n, c in STRATEGIES.items() if c.kind == "baseline" and why[n] is None]
    return transfer, baselines, {n: w for n, w in why.items() if w is not None}


def keep_only(key: str, options: list[str], default: list[str]) -> None:
    """Seed a multiselect, and drop picks that are no longer offered (another scenario)."""
    seed(key, default)
    st.session_state[key] = [x for x in st.session_state[key] if x in options]


def choices(scn):
    """Factor, values, strategies, baselines, draws, metric, K and model settings."""
    from recsys_core.curves import CurveConfig, parse_values
    from recsys_core.strategies.base import ModelSettings

    transfer, baselines, why_not = offered(scn)
    if not transfer:
        raise ValueError(
            "no transfer strategy can run on this scenario: "
            + "; ".join(why_not[n] for n in STRATEGIES if n in why_not)
        )
    c = st.columns([2, 3])
    factor = c[0].radio(
        "what varies",
        list(FACTORS),
        format_func=FACTORS.get,
        key="whatif_factor",
        help="Warm target users: how many target users with a history are kept in training "
        "(a thin market). Source interactions: how much source history each cold user brings.",
    )
    vkey = f"whatif_values_{factor}"
    seed(vkey, DEFAULT_VALUES[factor])
    values_text = c[1].text_input(
        f"values of {FACTORS[factor]}",
        key=vkey,
        help="Comma-separated whole numbers; 'all' keeps everything (no subsampling or cap).",
    )
    c = st.columns([3, 3, 2])
    keep_only("whatif_strategies", transfer, [s for s in DEFAULT_TRANSFER if s in transfer][:1])
    strategies = c[0].multiselect(
        "transfer strategies",
        transfer,
        key="whatif_strategies",
        help="One line each: its gain over the best target-only baseline.",
    )
    keep_only(
        "whatif_baselines", baselines, [b for b in ("popularity", "target-only") if b in baselines]
    )
    base = c[1].multiselect(
        "target-only baselines",
        baselines,
        key="whatif_baselines",
        help="At every point the best of these is the reference (chosen on validation; "
        "for cold users, the best on the segment itself, which can only favour the baseline).",
    )
    seed("whatif_model", "ease")
    model = c[2].selectbox(
        "target-only model",
        list(TARGET_MODELS),
        format_func=TARGET_MODELS.get,
        key="whatif_model",
        help="EASE and iALS are strong id-only target baselines (their regularisation is "
        "tuned on validation); the transfer strategies train the two-tower either way.",
    )
    gone = [n for n in STRATEGIES if n in why_not]
    if gone:
        st.caption(
            "Not offered on this scenario: "
            + "; ".join(f"**{n}** ({md_escape(why_not[n])})" for n in gone)
        )
    c = st.columns(4)
    seed("whatif_draws", 1)
    draws = int(
        c[0].number_input(
            "draws per value",
            min_value=1,
            max_value=50,
            step=1,
            key="whatif_draws",
            help="Each draw is a new random subsample and model seed; draws are pooled by "
            "user. One draw is a quick look; three make a firmer curve (three times longer).",
        )
    )
    metric = c[1].selectbox("metric", list(METRICS), format_func=METRICS.get, key="whatif_metric")
    seed("whatif_k", 10)
    k = c[2].selectbox("K", [5, 10, 20], key="whatif_k")
    info = state.jobs().device_info() or {}
    devices = ["auto", "cpu"] + (["cuda"] if info.get("cuda") else [])
    if st.session_state.get("whatif_device") not in devices:
        st.session_state["whatif_device"] = "auto"
    device = c[3].selectbox("device", devices, key="whatif_device")
    with st.expander("Model and bootstrap settings", icon=":material/tune:"):
        c = st.columns(4)
        seed("whatif_dim", 64)
        dim = int(c[0].number_input("dim", min_value=4, max_value=1024, step=8, key="whatif_dim"))
        seed("whatif_epochs", 0)
        epochs = int(
            c[1].number_input(
                "epochs (0 = model default)", min_value=0, max_value=500, key="whatif_epochs"
            )
        )
        seed("whatif_nboot", 1000)
        n_boot = int(
            c[2].number_input(
                "bootstrap samples", min_value=50, max_value=100_000, step=50, key="whatif_nboot"
            )
        )
        seed("whatif_seed", 0)
        rseed = int(c[3].number_input("seed", min_value=0, step=1, key="whatif_seed"))
    values = parse_values(values_text)
    cfg = CurveConfig(factor, values, draws, rseed, metric, int(k), n_boot)  # validates
    if not strategies:
        raise ValueError("choose at least one transfer strategy")
    if not base:
        raise ValueError("choose at least one target-only baseline (e.g. popularity)")
    settings = ModelSettings(model=model, dim=dim, epochs=epochs or None, seed=rseed)
    return cfg, list(strategies), list(base), settings, device


def curve_key(scn, cfg, strategies, baselines, settings, device) -> str:
    """The same choices on the same data give the same key (and the stored result)."""
    blob = json.dumps(
        [scn.fingerprint(), asdict(cfg), strategies, baselines, asdict(settings), device],
        sort_keys=True,
        default=str,
    )
    return "whatif-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def where_choice() -> str:
    """Where the curve's fits run: this machine, or a Ray cluster (issue 14; offered
    only when Ray is installed, and the default when RAY_ADDRESS is set)."""
    from recsys_core.runs.executor import app_choices

    offered, default = app_choices()
    if len(offered) < 2:
        return default
    seed("whatif_executor", default)
    if st.session_state["whatif_executor"] not in offered:
        st.session_state["whatif_executor"] = default
    where = st.segmented_control(
        "fits run on",
        offered,
        key="whatif_executor",
        format_func={"local": "this machine", "ray": "Ray cluster"}.get,
        help="Ray cluster: one Ray task per value and draw, in parallel; the same points.",
    )
    return where or default


def start(scn, cfg, strategies, baselines, settings, device, key: str, where="local") -> None:
    """Submit the curve as a side task of the user's JobManager. It reports through its
    TaskHandle only (never st.*) and returns {"curve": DataFrame or None, "complete":
    bool, "values_done": int}: stopped, the values already computed."""
    from recsys_core.curves import what_if_curve
    from recsys_core.runs.executor import make_executor
    from recsys_core.training.callbacks import Callbacks, Cancelled

    label = FACTORS[cfg.factor]

    def compute(task):
        from recsys_core.pipeline import encode_scenario_text
        from recsys_core.training.device import choose_device

        task.report(0.0, "starting", scenario=scn.name)
        dev = choose_device(device)
        partial: dict = {"curve": None}

        def on_fit(f: dict) -> None:
            draw = f" (draw {f['draw']}/{f['draws']})" if f["draws"] > 1 else ""
            task.report(
                f["done"] / f["total"],
                f"fit {f['done'] + 1}/{f['total']}: {f['strategy']} at {label} = "
                f"{f['value']}{draw}",
            )

        try:
            text = None
            if needs_text([*strategies, *baselines], settings):

                def on_encode(ev) -> None:
                    task.report(0.0, f"encoding item text ({ev.fraction:.0%})")

                text = encode_scenario_text(
                    scn,
                    dev.type,
                    Callbacks(on_progress=on_encode, should_cancel=task.should_cancel),
                )
            df = what_if_curve(
                scn,
                cfg.factor,
                cfg.values,
                strategies,
                baselines,
                settings,
                draws=cfg.draws,
                seed=cfg.seed,
                metric=cfg.metric,
                k=cfg.k,
                callbacks=Callbacks(
                    on_progress=lambda ev: task.report(ev.fraction),
                    should_cancel=task.should_cancel,
                ),
                text=text,
                device=dev,
                n_boot=cfg.n_boot,
                on_fit=on_fit,
                on_point=lambda d: partial.update(curve=d),
                # a Ray started here stays up for the server's later curves and jobs
                executor=make_executor(where),
            )
        except Cancelled:
            df = partial["curve"]
            done = 0 if df is None else df["value"].nunique()
            task.report(line=f"stopped after {done} of {len(cfg.values)} values")
            return {"curve": df, "complete": False, "values_done": done}
        task.report(1.0, "done")
        return {"curve": df, "complete": True, "values_done": len(cfg.values)}

    jm = state.jobs()
    jm.discard_task(key)  # a stopped or failed curve of the same choices starts afresh
    jm.start_task(key, compute)


def progress_block(key: str, estimate_s: float | None) -> None:
    """Progress bar, time left and a Stop button while the curve computes; the whole
    page reruns when it ends."""
    jm = state.jobs()

    @st.fragment(run_every=1.0)
    def poll() -> None:
        s, _ = jm.task_state(key)
        if s != "running":
            st.rerun(scope="app")
        p = jm.task_progress(key)
        frac = float(p.get("fraction") or 0.0)
        secs = float(p.get("seconds") or 0.0)
        parts = [str(p.get("line") or "starting"), duration(secs)]
        left = time_left(secs, frac)
        if left is None and estimate_s is not None and estimate_s > secs:
            left = f"about {duration(estimate_s - secs)} left (from earlier runs)"
        if left:
            parts.append(left)
        st.progress(min(max(frac, 0.0), 1.0), text=" · ".join(parts))
        if jm.task_cancelling(key):
            st.caption("Stopping… the values already computed will be kept.")
        else:
            st.button(
                "Stop",
                key="whatif_stop",
                icon=":material/stop_circle:",
                help="The values already computed are kept and shown.",
                on_click=jm.cancel_task,
                args=(key,),
            )

    poll()


def estimate_line(est, n_values: int, draws: int) -> str:
    """ "About 4 min on this machine" with the fits behind it; "at least" when some
    strategy was never trained with this store (no figure is made up for it)."""
    parts = [
        f"{n}: {duration(s)} × {n_values * draws}" for n, s in est.per_fit.items() if s is not None
    ]
    basis = (
        f"from the median run of each strategy in the run store ({', '.join(parts)}); "
        "fits on fewer warm users are quicker"
    )
    if not est.missing:
        return f"About **{duration(est.seconds)}** on this machine, {basis}."
    never = ", ".join(f"**{n}**" for n in est.missing)
    if not parts:
        return (
            f"No time estimate yet: {never} never trained with this run store (train them "
            "once on the Train page to get one)."
        )
    return (
        f"At least **{duration(est.seconds)}** on this machine, {basis}; {never} never "
        "trained with this run store, so not counted."
    )


def show_curve(df) -> None:
    from recsys_core.curves import curve_errors

    r0 = df.iloc[0]
    st.subheader("Where does transfer pay?")
    lines = curve_verdict(df)
    gains = [x for x in lines if "gains" in x or "gain is measurable" in x]
    rest = [x for x in lines if x not in gains]
    if gains:
        st.success("\n".join(f"- {x}" for x in gains), icon=":material/trending_up:")
    if rest:
        st.info("\n".join(f"- {x}" for x in rest), icon=":material/trending_flat:")
    st.plotly_chart(charts.what_if_curve(df), theme=None, key="whatif_fig")
    st.caption(
        f"Δ = strategy minus the best target-only baseline at each point, "
        f"{str(r0['metric']).upper()}@{int(r0['k'])}, 95% paired bootstrap interval (band). "
        f"{family_note(df)} Source history: {r0['source_history']}. Hover a point for its "
        "baseline, number of users and adjusted p-value."
    )
    errs = curve_errors(df)
    if errs:
        st.warning("\n".join(f"- {e}" for e in errs), icon=":material/warning:")
    with st.expander("Points (table)", icon=":material/table:"):
        # 'value' mixes integers and "all": shown as text, so Arrow takes it as one type.
        st.dataframe(
            df.assign(value=df["value"].astype(str)),
            hide_index=True,
            width="stretch",
            key="whatif_points",
        )
    st.download_button(
        "Curve points (CSV)",
        csv_for_spreadsheets(df).encode(),
        file_name=f"what_if_{r0['factor']}_{str(r0['scenario']).replace(':', '_')}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/table:",
        key="whatif_csv",
    )


page_header(
    "What-if",
    "When does transfer pay? Re-run the comparison while one factor varies and see where the "
    "gain over the best target-only baseline disappears.",
)
show_flash()
scn = state.scenario()
jm = state.jobs()
if scn is None:
    # After a reload: the data is gone with the page, the user's curves are not.
    running = jm.task_keys("whatif-", state="running")
    finished = jm.task_keys("whatif-", state="done")
    if running:
        p = jm.task_progress(running[-1])
        st.info(
            f"A curve on **{md_escape(p.get('scenario', ''))}** is computing in the background.",
            icon=":material/hourglass_top:",
        )
        progress_block(running[-1], None)
    elif finished and (jm.task_result(finished[-1]) or {}).get("curve") is not None:
        df = jm.task_result(finished[-1])["curve"]
        if len(df):
            st.caption(
                "The last curve computed in this browser. Load its scenario to change the "
                "choices or compute another."
            )
            show_curve(df)
    empty_state("Load a scenario first.", "data", "Go to Data")
else:
    try:
        cfg, strategies, baselines, settings, device = choices(scn)
    except ValueError as exc:
        show_error(exc)
        cfg = None
    if cfg is not None and cfg.factor == "source_interactions" and scn.source is None:
        show_error(
            ValueError(
                f"scenario '{scn.name}' has no source domain: vary the warm target users instead"
            )
        )
        cfg = None
    if cfg is not None:
        from recsys_core.curves import estimate_curve_seconds

        key = curve_key(scn, cfg, strategies, baselines, settings, device)
        task, err = jm.task_state(key)
        result = jm.task_result(key)
        est = estimate_curve_seconds(
            state.store(), strategies, baselines, len(cfg.values), cfg.draws
        )
        n_names = len(dict.fromkeys([*strategies, *baselines]))
        what = (
            f"{est.fits} fits ({len(cfg.values)} values × {cfg.draws} draws × {n_names} "
            f"strategies) on **{md_escape(scn.name)}**"
        )
        if task == "running":
            progress_block(key, None if est.missing else est.seconds)
        else:
            if task == "failed":
                st.error(
                    f"The curve could not be computed: {md_escape(err)}", icon=":material/error:"
                )
            partial = result is not None and not result["complete"]
            if result is None or partial:
                where = where_choice()
                c = st.columns([1, 3], vertical_alignment="center")
                if c[0].button(
                    "Compute the full curve" if partial else "Compute curve",
                    key="whatif_go",
                    type="primary",
                    icon=":material/show_chart:",
                ):
                    start(scn, cfg, strategies, baselines, settings, device, key, where)
                    st.rerun()
                c[1].caption(
                    f"{what}, in the background: you may switch pages or reload.  \n"
                    + estimate_line(est, len(cfg.values), cfg.draws)
                )
            else:
                st.caption(
                    f"Computed for these choices: {what}. Change a choice to compute another curve."
                )
            if partial:
                st.info(
                    f"Stopped after {result['values_done']} of {len(cfg.values)} values: "
                    "the curve below shows those.",
                    icon=":material/stop_circle:",
                )
        df = None if result is None else result["curve"]
        if df is not None and not df.empty:
            show_curve(df)
        elif result is not None and result["complete"]:
            st.info("The curve has no points: nothing was evaluated.")
