"""What-if: when does transfer pay? The gain of each transfer strategy over the best
target-only baseline while one factor varies (warm target users kept in training, or
source interactions a cold user brings), per segment, with 95% paired intervals.

The curve is computed by :func:`recsys_core.curves.what_if_curve` in a side task of the
session's JobManager; the task writes its progress to this session's files
(:func:`ui.components.task_files`), which the page polls, and returns the curve, which
the JobManager keeps in memory (``task_result``; nothing is pickled to disk). Widget keys
start with ``whatif_``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict

import streamlit as st

from recsys_core.io_utils import csv_for_spreadsheets
from recsys_core.strategies.registry import needs_text
from ui import charts, state
from ui.components import (
    curve_verdict,
    empty_state,
    page_header,
    seed,
    show_error,
    show_flash,
    task_files,
)
from ui.text import md_escape

FACTORS = {
    "warm_users": "warm target users",
    "source_interactions": "source interactions per cold user",
}
DEFAULT_VALUES = {
    "warm_users": "10, 30, 100, 300, all",
    "source_interactions": "0, 3, 10, 30, 100, all",
}
METRICS = {"ndcg": "NDCG", "recall": "Recall", "hit": "Hit rate", "mrr": "MRR"}
TARGET_MODELS = {
    "ease": "EASE (closed form)",
    "ials": "iALS",
    "two-tower": "two-tower (as the transfer strategies)",
}


def choices():
    """Factor, values, strategies, baselines, draws, metric, K and model settings."""
    from recsys_core.curves import CurveConfig, parse_values
    from recsys_core.strategies.base import ModelSettings
    from recsys_core.strategies.registry import STRATEGIES

    transfer = [n for n, c in STRATEGIES.items() if c.kind != "baseline"]
    baselines = [n for n, c in STRATEGIES.items() if c.kind == "baseline"]
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
    seed("whatif_strategies", [s for s in ("fine-tune", "mapping") if s in transfer])
    strategies = c[0].multiselect(
        "transfer strategies",
        transfer,
        key="whatif_strategies",
        help="One line each: its gain over the best target-only baseline.",
    )
    seed("whatif_baselines", [b for b in ("popularity", "target-only") if b in baselines])
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
    c = st.columns(4)
    seed("whatif_draws", 3)
    draws = int(
        c[0].number_input(
            "draws per value",
            min_value=1,
            max_value=50,
            step=1,
            key="whatif_draws",
            help="Each draw is a new random subsample and model seed; draws are pooled by user.",
        )
    )
    metric = c[1].selectbox("metric", list(METRICS), format_func=METRICS.get, key="whatif_metric")
    seed("whatif_k", 10)
    k = c[2].selectbox("K", [5, 10, 20], key="whatif_k")
    info = state.jobs().device_info() or {}
    devices = ["auto", "cpu"] + (["cuda"] if info.get("cuda") else [])
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


def start(scn, cfg, strategies, baselines, settings, device, files) -> None:
    """Submit the curve as a side task; it reports through ``files`` only (no st.*)."""
    from recsys_core.curves import what_if_curve
    from recsys_core.training.callbacks import Callbacks

    files.cancel.unlink(missing_ok=True)
    files.write_progress(fraction=0.0, line="waiting to start", started=time.time())
    cancel_flag = files.cancel
    t0 = time.time()

    def compute(task):
        from recsys_core.pipeline import encode_scenario_text
        from recsys_core.training.device import choose_device

        last = {"line": "starting"}

        def on_log(line: str) -> None:
            last["line"] = line

        def on_progress(ev) -> None:
            files.write_progress(
                fraction=float(ev.fraction), line=last["line"], stage=ev.stage, started=t0
            )

        should_cancel = cancel_flag.exists
        dev = choose_device(device)
        text = None
        if needs_text([*strategies, *baselines], settings):
            files.write_progress(fraction=0.0, line="encoding item text", started=t0)
            text = encode_scenario_text(scn, dev.type, Callbacks(should_cancel=should_cancel))
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
            callbacks=Callbacks(on_progress=on_progress, should_cancel=should_cancel, log=on_log),
            text=text,
            device=dev,
            n_boot=cfg.n_boot,
        )
        files.write_progress(fraction=1.0, line="done", started=t0)
        return df

    state.jobs().start_task(files.key, compute)


def progress_block(files) -> None:
    """Progress bar and a stop button while the task runs; the whole page reruns when
    it ends."""

    @st.fragment(run_every=1.0)
    def poll() -> None:
        s, _ = state.jobs().task_state(files.key)
        if s != "running":
            st.rerun(scope="app")
        p = files.read_progress()
        secs = time.time() - float(p.get("started", time.time()))
        st.progress(
            min(max(float(p.get("fraction", 0.0)), 0.0), 1.0),
            text=f"{p.get('line', 'starting')} · {secs:.0f}s",
        )
        if files.cancel.exists():
            st.caption("Stopping at the next fit…")
        elif st.button("Stop", key="whatif_stop", icon=":material/stop_circle:"):
            files.cancel.touch()
            st.rerun(scope="fragment")

    poll()


def show_curve(df, scn) -> None:
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
        f"{str(r0['metric']).upper()}@{int(r0['k'])}, 95% paired bootstrap interval (band); "
        "filled markers: the interval excludes zero. Source history: "
        f"{r0['source_history']}. Hover a point for its baseline and number of users."
    )
    errs = curve_errors(df)
    if errs:
        st.warning("\n".join(f"- {e}" for e in errs), icon=":material/warning:")
    with st.expander("Points (table)", icon=":material/table:"):
        st.dataframe(df, hide_index=True, width="stretch", key="whatif_points")
    st.download_button(
        "Curve points (CSV)",
        csv_for_spreadsheets(df).encode(),
        file_name=f"what_if_{r0['factor']}_{scn.name.replace(':', '_')}.csv",
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
if scn is None:
    empty_state("Load a scenario first.", "data", "Go to Data")
else:
    try:
        cfg, strategies, baselines, settings, device = choices()
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
        key = curve_key(scn, cfg, strategies, baselines, settings, device)
        files = task_files("whatif", key)
        task, err = state.jobs().task_state(key)
        n_fits = len(cfg.values) * cfg.draws * len(dict.fromkeys([*strategies, *baselines]))
        df = state.jobs().task_result(key)
        if task == "running":
            progress_block(files)
        else:
            if task == "failed":
                if files.cancel.exists():
                    st.info("The curve was stopped.", icon=":material/stop_circle:")
                else:
                    st.error(f"The curve could not be computed: {err}", icon=":material/error:")
            n_names = len(dict.fromkeys([*strategies, *baselines]))
            if df is None:
                c = st.columns([1, 3], vertical_alignment="center")
                if c[0].button(
                    "Compute curve", key="whatif_go", type="primary", icon=":material/show_chart:"
                ):
                    start(scn, cfg, strategies, baselines, settings, device, files)
                    st.rerun()
                c[1].caption(
                    f"{n_fits} fits ({len(cfg.values)} values × {cfg.draws} draws × {n_names} "
                    f"strategies) on **{md_escape(scn.name)}**, in the background: you may switch pages."
                )
            else:
                st.caption(
                    f"Computed for these choices on **{md_escape(scn.name)}** ({n_fits} fits). "
                    "Change a choice to compute another curve."
                )
        if df is not None and not df.empty:
            show_curve(df, scn)
        elif df is not None:
            st.info("The curve has no points: nothing was evaluated.")
