"""Compare: metrics with 95% intervals, paired deltas against a baseline, verdict, charts,
CSV and standalone HTML export. Widget keys start with ``compare_``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from recsys_core.compare import default_runs
from recsys_core.io_utils import csv_for_spreadsheets
from recsys_core.report import comparison_view, report_provenance
from ui import charts, state
from ui.components import (
    done_runs,
    empty_state,
    html_report,
    offer_reload,
    page_header,
    run_names,
    run_table,
    show_error,
    show_flash,
)
from ui.text import md_escape

METRICS = {
    "ndcg": "NDCG",
    "recall": "Recall",
    "hit": "Hit rate",
    "mrr": "MRR",
    "precision": "Precision",
}


def pick_runs(store):
    """Scenario filter, data-version filter, run multiselect, metric, K, baseline."""
    runs = done_runs(store)
    if runs.empty:
        empty_state("No runs yet: train a few strategies first.", "train", "Go to Train")
        return None
    scn = state.scenario()
    scenarios = list(dict.fromkeys(runs["scenario"]))
    default_scn = scn.name if scn is not None and scn.name in scenarios else scenarios[0]
    c = st.columns([2, 2, 1, 1])
    chosen = c[0].selectbox(
        "scenario", scenarios, index=scenarios.index(default_scn), key="compare_scenario"
    )
    only_mine = c[1].toggle(
        "only this session's runs",
        value=False,
        key="compare_mine",
        help="Hide runs other sessions put in the store.",
    )
    metric = c[2].selectbox("metric", list(METRICS), format_func=METRICS.get, key="compare_metric")
    k = c[3].selectbox("K", [5, 10, 20], index=1, key="compare_k")
    rs = runs[runs["scenario"] == chosen]
    if only_mine:
        rs = rs[rs["run_id"].isin(state.jobs().run_ids())]
    if rs.empty:
        empty_state(
            "No finished runs of this session on this scenario yet.", "train", "Go to Train"
        )
        return None
    # Runs are comparable only on one data version and split (same fingerprint).
    fps = list(dict.fromkeys(rs["data_fingerprint"]))
    if len(fps) > 1:
        fp_active = scn.fingerprint() if scn is not None else None
        counts = rs["data_fingerprint"].value_counts()
        fp = st.radio(
            "data version (runs of different splits or data are not comparable)",
            fps,
            index=fps.index(fp_active) if fp_active in fps else 0,
            format_func=lambda f: (
                f"{f} · {counts[f]} run(s)" + (" · loaded now" if f == fp_active else "")
            ),
            horizontal=True,
            key="compare_fp",
        )
        rs = rs[rs["data_fingerprint"] == fp]
    else:
        fp = fps[0]
    pool = runs[(runs["scenario"] == chosen) & (runs["data_fingerprint"] == fp)]
    new_id = external_box(store, pool, chosen, fp)
    if new_id is not None:
        # Select the new run beside the ones already chosen (set before the widget exists).
        current = st.session_state.get("compare_runs") or default_runs(rs.to_dict("records"))
        st.session_state["compare_runs"] = [*current, new_id]
        st.rerun()
    records = rs.to_dict("records")
    names = run_names(records)
    ids = st.multiselect(
        "runs",
        list(rs["run_id"]),
        default=default_runs(records),
        format_func=lambda r: f"{names[r]}  ({r})",
        key="compare_runs",
    )
    if not ids:
        st.info("Choose at least one run.")
        return None
    full = [store.get_run(r) for r in ids]
    per_segment = "best baseline of each segment"
    baseline = st.selectbox(
        "baseline",
        [per_segment, *ids],
        format_func=lambda r: r if r == per_segment else names[r],
        key="compare_baseline",
        help="Deltas are paired bootstrap differences against this. The default measures "
        "each segment against its own best baseline, as the verdict does.",
    )
    return full, names, None if baseline == per_segment else baseline, metric, int(k)


EXTERNAL_HELP = (
    "A CSV (comma, tab or semicolon separated; gzip allowed) with one row per recommended "
    "item: `user_id,item_id,rank` (1 = best) or `user_id,item_id,score` (higher is better), "
    "and optionally `k`, the support size a cold user's list was made with. Ids are the "
    "original ids of the data. It is scored exactly like our own runs (same users, segments, "
    "masking of known items, intervals). To train another library on exactly the same data, "
    "`transfer-lab split export --scenario ... --out DIR` writes this split (train, valid, "
    "test, cold users' support sets, cold items) as plain CSV with the original ids."
)


def external_box(store, pool: pd.DataFrame, scenario_name: str, fp: str) -> str | None:
    """Upload box: score another system's recommendations on these runs' split and add
    them as a run. Returns the new run id, or None (nothing new, or an error shown)."""
    with st.expander(
        "Add recommendations from another system",
        icon=":material/upload_file:",
        key="compare_upload_box",  # keyed: stays open across reruns (its messages show)
    ):
        st.caption(EXTERNAL_HELP)
        scn = state.scenario()
        if scn is None or scn.fingerprint() != fp:
            # The file is scored on the runs' own split: it must be the loaded one.
            with_spec = [
                run
                for run in (store.get_run(r) for r in pool["run_id"])
                if (run.get("config") or {}).get("spec")
            ]
            # another session's uploads are never offered (offer_reload says so)
            mine = [r for r in with_spec if state.may_load_spec(r["config"]["spec"])]
            if with_spec:
                offer_reload((mine or with_spec)[0], "compare_reload")
            else:
                st.info(
                    "Load the data and split these runs were made on (Data page) to add "
                    "recommendations from another system."
                )
            return None
        c = st.columns([3, 2])
        up = c[0].file_uploader(
            "recommendation file",
            type=["csv", "tsv", "txt", "gz"],
            key="compare_upload",
            help=EXTERNAL_HELP,
        )
        label = c[1].text_input(
            "name in the comparison",
            key="compare_upload_label",
            placeholder=Path(up.name).stem if up is not None else "the file name",
            help="How the run is shown in the table and charts.",
        )
        if up is None:
            return None
        data = up.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        for rid in pool.loc[pool["strategy"] == "external", "run_id"]:
            if (store.get_run(rid).get("config") or {}).get("file_sha256") == sha:
                st.caption(
                    f":material/check_circle: {md_escape(up.name)} is in the comparison as run `{rid}`. "
                    "Upload another file to add it too."
                )
                return None
        from recsys_core.errors import DataError
        from recsys_core.external import add_external_run

        name = label.strip() or Path(up.name).stem
        try:
            with st.spinner(f"Scoring {md_escape(up.name)}…"):
                rid = add_external_run(
                    store, scn.split, scenario_name, fp, data, label=name, name=up.name
                )
        except (DataError, ValueError) as exc:
            show_error(exc)
            return None
        info = (store.get_run(rid).get("extra") or {}).get("info", {})
        notes = "".join(f"\n- {md_escape(w)}" for w in info.get("warnings", []))
        state.flash(
            "success",
            f"Added **{md_escape(name)}** (run `{rid}`) from {md_escape(up.name)}: "
            f"{info.get('stats', {}).get('rows_scored', 0):,} rows scored."
            + (f"\n\nNotes:{notes}" if notes else ""),
        )
        return rid


def compare_usable(store, full: list[dict], baseline: str | None, metric: str, k: int):
    """compare_runs over the chosen runs, leaving out each run whose per-user table is
    missing or unreadable (one broken run must not take the comparison down).

    Returns:
        (table, broken): the comparison of the other runs (None when none is left) and
        run id -> the ArtifactError that says what is wrong with it.
    """
    from recsys_core.compare import compare_runs
    from recsys_core.runs.store import ArtifactError

    ids = [r["run_id"] for r in full]
    broken: dict[str, ArtifactError] = {}
    while True:
        usable = [r for r in ids if r not in broken]
        if not usable:
            return None, broken
        base = baseline if baseline in usable else None
        try:
            return compare_runs(store, usable, baseline=base, metric=metric, k=k), broken
        except ArtifactError as exc:
            if exc.run_id not in usable:
                raise
            broken[exc.run_id] = exc


def seed_box(table: pd.DataFrame) -> None:
    """Runs repeated over seeds, pooled (issue 14): the mean, how much it moves with the
    seed, and how much with the users."""
    from recsys_core.compare import seed_pool
    from recsys_core.report import segment_name

    pooled = seed_pool(table)
    if pooled.empty:
        return

    def iv(lo, hi) -> str:
        return f"[{lo:.4f}, {hi:.4f}]" if pd.notna(lo) and pd.notna(hi) else "–"

    st.subheader("Over seeds")
    view = pd.DataFrame(
        {
            "Strategy": pooled["strategy"],
            "Label": pooled["label"].fillna(""),
            "Segment": [segment_name(x) for x in pooled["segment"]],
            "Seeds": pooled["seed_list"],
            "Mean": pooled["value"].round(4),
            "95% between seeds": [iv(a, b) for a, b in zip(pooled["seed_low"], pooled["seed_high"])],
            "95% bootstrap (mean)": [iv(a, b) for a, b in zip(pooled["boot_low"], pooled["boot_high"])],
            "Gain over best baseline": [
                "" if pd.isna(d) else f"{d:+.4f} {iv(a, b)}"
                for d, a, b in zip(pooled["seg_delta"], pooled["seg_delta_low"], pooled["seg_delta_high"])
            ],
        }
    )  # fmt: skip
    st.dataframe(view, hide_index=True, width="stretch", key="compare_seeds")
    st.caption(
        "Runs that differ only in their model seed, pooled. Between seeds: a t-interval over "
        "the seeds' values (how much the answer moves with the seed); bootstrap: the seeds' "
        "intervals over users, averaged. A gain that does not survive another seed is not a gain."
    )


def pretty_verdict(line: str) -> str:
    """'cold users, k = 3: ...' -> '**cold users, k = 3**: ...' (the engine's sentence)."""
    seg, sep, rest = line.partition(": ")
    return f"**{seg}**: {rest}" if sep else line


def stacked_metrics(full: list[dict]) -> pd.DataFrame:
    frames = []
    for r in full:
        m = pd.DataFrame(r.get("metrics") or [])
        if len(m):
            frames.append(m.assign(run_id=r["run_id"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def curves(full: list[dict]) -> pd.DataFrame:
    from recsys_core.runs.store import ArtifactError

    root = st.session_state[state.STORE_ROOT]
    frames = []
    for r in full:
        try:
            c = run_table(root, r["run_id"], "curve")
        except ArtifactError as exc:  # this run's curve is left out, the others drawn
            st.warning(md_escape(exc), icon=":material/broken_image:")
            continue
        if c is not None and len(c):
            frames.append(
                c.assign(run_id=r["run_id"], stage=c["stage"] if "stage" in c else "target")
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def time_size(full: list[dict], names: dict) -> pd.DataFrame:
    rows = []
    for r in full:
        s = r.get("seconds") or {}
        info = (r.get("extra") or {}).get("info", {})
        rows.append(
            {
                "name": names[r["run_id"]],
                # shared steps appear on the run that paid for them (pipeline docs)
                "encode_text": float(s.get("encode_text", 0.0)),
                "pretrain_source": float(s.get("pretrain_source", 0.0)),
                "fit": float(s.get("fit", 0.0)),
                "evaluate": float(s.get("evaluate", 0.0)),
                "n_parameters": int(info.get("n_parameters") or 0),
            }
        )
    return pd.DataFrame(rows)


page_header(
    "Compare",
    "Metrics per segment with 95% bootstrap intervals, and paired deltas against a baseline. "
    "A gain counts only when it holds after correcting for the number of comparisons made, "
    "not merely when one interval excludes zero.",
)
show_flash()
store = state.store()
picked = pick_runs(store)
if picked is not None:
    full, names, baseline, metric, k = picked
    from recsys_core.compare import verdict_context, verdict_lines

    try:
        with st.spinner("Bootstrapping the deltas…"):
            table, broken = compare_usable(store, full, baseline, metric, k)
    except Exception as exc:
        show_error(exc, "comparison")
        table, broken = None, {}
    for rid, exc in broken.items():
        st.warning(
            f"**{md_escape(names[rid])}** is left out of the comparison: {md_escape(exc)}",
            icon=":material/broken_image:",
        )
    full = [r for r in full if r["run_id"] not in broken]
    if baseline in broken:
        baseline = None
    if table is not None and not table.empty:
        lines = verdict_lines(table)
        st.subheader("Verdict")
        if lines:
            wins = [pretty_verdict(v.text) for v in lines if v.kind == "gain"]
            rest = [pretty_verdict(v.text) for v in lines if v.kind != "gain"]
            if wins:
                st.success("\n".join(f"- {x}" for x in wins), icon=":material/trending_up:")
            if rest:
                st.info("\n".join(f"- {x}" for x in rest), icon=":material/trending_flat:")
            st.caption("  \n".join(verdict_context(table)))
        else:
            st.info(
                "No transfer strategy among the chosen runs: add one to get a verdict.",
                icon=":material/info:",
            )
        st.subheader("Metrics table")
        view = comparison_view(table, names)
        st.container(key="compare_table_box").dataframe(
            view.style.apply(
                lambda col: [
                    "color: #1a7f37; font-weight: 600" if v.startswith("▲")
                    else "color: #cf222e; font-weight: 600" if v.startswith("▼")
                    else "color: #6b6f7b" if v == "baseline" else ""
                    for v in col
                ],
                subset=["Significant"],
            ).format({"Value": "{:.4f}"}),
            hide_index=True,
            width="stretch",
            height=min(38 + 35 * len(view), 800),
            key="compare_table",
        )  # fmt: skip
        st.caption(
            f"{METRICS[metric]}@{k}. ▲/▼: the paired 95% interval of the delta excludes zero "
            "in a test of its own; the verdict above corrects for the number of comparisons. "
            + (
                f"Baseline: {md_escape(names[baseline])}, in every segment."
                if baseline
                else "Baseline: the best baseline of each segment (marked)."
            )
        )
        seed_box(table)
        metrics_all = stacked_metrics(full)
        figs = [("Metric by segment", charts.metric_by_segment(table, names))]
        t1, t2, t3, t4, t5 = st.tabs(
            [
                "By segment",
                "Few-shot (cold users)",
                "Cold items",
                "Training curves",
                "Time and size",
            ]
        )
        with t1:
            st.plotly_chart(figs[0][1], theme=None, key="compare_fig_segment")
        with t2:
            if len(metrics_all) and metrics_all["segment"].str.startswith("cold_users_k").any():
                f = charts.few_shot_curve(metrics_all, names, metric, k)
                figs.append(("Few-shot curve", f))
                st.plotly_chart(f, theme=None, key="compare_fig_fewshot")
                st.caption(
                    "Each cold user reveals k interactions; every k is scored on the same test items."
                )
            else:
                st.info(
                    "This split has no cold users (choose the cold-start protocol on the Data page)."
                )
        with t3:
            if len(metrics_all) and (metrics_all["segment"] == "cold_items").any():
                f = charts.cold_items(metrics_all, names, k)
                figs.append(("Cold items", f))
                st.plotly_chart(f, theme=None, key="compare_fig_cold")
                st.caption(
                    "Id-only models cannot score items they never saw; text-aware models can."
                )
                ef = charts.exposure_curves(full, names)
                if ef is not None:
                    figs.append(("New-item exposure", ef))
                    st.plotly_chart(ef, theme=None, key="compare_fig_exposure")
                    st.caption(
                        "Moving right keeps warm-item accuracy, moving up shows more new items; "
                        "the star is the point each run keeps (best validation NDCG@10). "
                        "Measured on validation rows only. Try another offset for one user on "
                        "the Users page."
                    )
                from recsys_core.compare import cold_item_table

                ct = cold_item_table(full)
                if len(ct):
                    ct.insert(0, "Run", ct.pop("run_id").map(names))
                    st.dataframe(
                        ct.drop(columns="strategy"), hide_index=True, key="compare_cold_table"
                    )
                    st.caption(
                        "Full catalogue: new items must win a place among all items (ranking "
                        "and exposure together). Among cold items: each user's new items "
                        "ranked against the other new items only (ranking alone); AUC counts "
                        "ties as one half (the LightFM paper's setting)."
                    )
            else:
                st.info("This split has no cold items.")
        with t4:
            cv = curves(full)
            if len(cv):
                f = charts.training_curves(cv, names)
                figs.append(("Training curves", f))
                st.plotly_chart(f, theme=None, key="compare_fig_curves")
                st.caption("Dashed: pre-training on the source. Validation never looks at test.")
            else:
                st.info(
                    "None of these runs has a training curve (popularity, EASE and iALS do not train by epochs)."
                )
        with t5:
            ts = time_size(full, names)
            f = charts.time_and_size(ts)
            figs.append(("Time and size", f))
            st.plotly_chart(f, theme=None, key="compare_fig_time")
            st.caption(
                "Text encoding and source pre-training are shared by the runs of one batch: "
                "each shows on the run that paid for it, and the others reused it."
            )
        st.subheader("Export")
        c = st.columns(3)
        c[0].download_button(
            "Metrics table (CSV)",
            csv_for_spreadsheets(table.assign(run_name=table["run_id"].map(names))).encode(),
            file_name=f"comparison_{metric}{k}.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/table:",
            key="compare_csv",
        )
        c[1].download_button(
            "All metrics of these runs (CSV)",
            csv_for_spreadsheets(
                metrics_all.assign(run_name=metrics_all["run_id"].map(names))
            ).encode()
            if len(metrics_all)
            else b"",
            file_name="all_metrics.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/dataset:",
            key="compare_csv_all",
        )
        scenario_name = full[0].get("scenario", "")
        against = names[baseline] if baseline else "best baseline of each segment"
        subtitle = f"{METRICS[metric]}@{k} · baseline {against} · {len(full)} runs"
        report_lines = [v.text for v in lines] + verdict_context(table)

        def report(
            title=f"Transfer report: {scenario_name}",
            sub=subtitle,
            v=view,
            ls=report_lines,
            fs=figs,
        ) -> bytes:
            # Built on click, in Streamlit's download thread (plotly.js is inlined: ~5 MB);
            # dated then, with the runs' ids, settings, split and data fingerprint.
            prov = report_provenance(full, names, baseline=baseline)
            return html_report(title, sub, v, ls, fs, prov).encode()

        c[2].download_button(
            "Report (standalone HTML)",
            report,
            on_click="ignore",
            file_name=f"transfer_report_{scenario_name.replace(':', '_')}.html",
            mime="text/html",
            icon=":material/description:",
            key="compare_html",
        )
    elif table is not None:
        st.info("These runs have no metrics to compare.")
