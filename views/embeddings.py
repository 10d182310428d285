"""Embeddings: how item vectors move from the source model to the target-only model to
the model after transfer: one joint 2-D map, and the engine's shift measures.

The map is UMAP when it is cached (the app computes a run's default map in the
background after its job: ``recsys_core.embeddings.maps``), else PCA at once while the
page starts the UMAP fit itself as a side task of the user's JobManager (nothing cached,
nothing running), with its progress and a Stop button; the page redraws itself with the
UMAP map when it is ready. Widget keys start with ``emb_``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from recsys_core.data.item_table import item_frame, item_frame_from_artifact
from recsys_core.embeddings.maps import (
    MapSettings,
    background_maps_enabled,
    cached_map,
    default_peer,
    map_groups,
    map_task,
    map_task_key,
    projection_dir,
    select_points,
)
from recsys_core.embeddings.projection import project_2d
from recsys_core.strategies.registry import kind_of
from ui import charts, state
from ui.components import (
    done_runs,
    empty_state,
    page_header,
    run_names,
    run_stages,
    run_table,
    run_vectors,
    scenario_for_runs,
    show_error,
    show_flash,
)
from ui.progress import duration

STAGE_LABELS = {"source": "source model", "text": "text encoder", "teacher": "teacher"}


def stage_label(stage: str, run_name: str) -> str:
    return run_name if stage == "final" else f"{STAGE_LABELS.get(stage, stage)} ({run_name})"


@st.cache_data(max_entries=8, show_spinner=False)
def shift_table(
    store_root: str, picks: tuple[tuple[str, str, str], ...], domains: tuple
) -> pd.DataFrame:
    """shift_report over every chosen stage (all joint items), cached per choice."""
    from recsys_core.embeddings.shift import shift_report
    from recsys_core.runs.store import RunStore

    store = RunStore(store_root)
    stages = {}
    for label, run_id, stage in picks:
        X = store.load_tensors(run_id, f"vectors_{stage}")["items"]
        stages[label] = (np.arange(len(X)), X)
    dom = dict(domains) if domains else None
    return shift_report(stages, domains=dom)


@st.cache_data(max_entries=8, show_spinner=False)
def drift_values(store_root: str, a: tuple[str, str], b: tuple[str, str]) -> np.ndarray:
    from recsys_core.embeddings.shift import align_by_ids, procrustes_drift
    from recsys_core.runs.store import RunStore

    store = RunStore(store_root)
    A = store.load_tensors(a[0], f"vectors_{a[1]}")["items"]
    B = store.load_tensors(b[0], f"vectors_{b[1]}")["items"]
    _, A2, B2 = align_by_ids(np.arange(len(A)), A, np.arange(len(B)), B)
    return procrustes_drift(A2, B2)


def choose(store):
    runs = done_runs(store)
    if runs.empty:
        empty_state("No runs yet: train a strategy first.", "train", "Go to Train")
        return None
    runs = runs.assign(stages=[run_stages(store, r) for r in runs["run_id"]])
    runs = runs[runs["stages"].map(len) > 0]
    if runs.empty:
        empty_state(
            "None of the finished runs stored vectors (popularity, EASE and iALS have none). "
            "Train target-only or a transfer strategy with the two-tower model.",
            "train",
            "Go to Train",
        )
        return None
    scn = state.scenario()
    fp = scn.fingerprint() if scn is not None else None
    runs = pd.concat([runs[runs["data_fingerprint"] == fp], runs[runs["data_fingerprint"] != fp]])
    records = runs.to_dict("records")
    names = run_names(records)
    by_id = {r["run_id"]: r for r in records}
    transfer_first = sorted(records, key=lambda r: kind_of(r["strategy"]) == "baseline")
    c = st.columns([2, 2])
    rid = c[0].selectbox(
        "run",
        [r["run_id"] for r in transfer_first],
        format_func=lambda r: f"{names[r]} · {by_id[r]['scenario']} ({r})",
        key="emb_run",
    )
    run = by_id[rid]
    peers = [
        r["run_id"]
        for r in records
        if r["run_id"] != rid and r["data_fingerprint"] == run["data_fingerprint"]
    ]
    peer = default_peer(store, run)
    default = [peer] if peer in peers else []
    extra = c[1].multiselect(
        "add stages from other runs of the same data",
        peers,
        default=default,
        format_func=lambda r: names[r],
        key=f"emb_peers_{rid}",
        help="e.g. the target-only run, to see where the items sit without transfer.",
    )
    picks = [(stage_label(s, names[rid]), rid, s) for s in run["stages"]]
    for p in extra:
        picks += [(stage_label(s, names[p]), p, s) for s in by_id[p]["stages"] if s == "final"]
    return run, picks


def map_controls(meta: pd.DataFrame, has_users: bool):
    c = st.columns([4, 2, 2, 1])
    color = c[0].segmented_control(
        "colour by",
        ["domain", "genre", "popularity", "cold status"],
        default="domain",
        key="emb_color",
    )
    n_max = c[1].select_slider(
        "items per stage", [500, 1000, 2000, 4000, 8000], value=2000, key="emb_npoints"
    )
    source_items = c[2].toggle(
        "include source-only items",
        value=bool((meta["domain"] == "source").any()),
        key="emb_source_items",
        disabled=not (meta["domain"] == "source").any(),
    )
    users = c[3].toggle(
        "users",
        value=False,
        key="emb_users",
        disabled=not has_users,
        help="Add up to 300 target users.",
    )
    return color or "domain", int(n_max), source_items, users


def build_points(picks, meta, vecs, settings: MapSettings, n_target_users: int):
    """The engine's rows of each stage (the same rule the background job caches) and
    their labels (one row per point, in block order)."""
    blocks = select_points(
        [vecs[label] for label, _, _ in picks],
        settings,
        is_source=meta["domain"].to_numpy() == "source",
        n_target_users=n_target_users,
    )
    labels = []
    for b in blocks:
        stage = picks[b.pick][0]
        if b.kind == "items":
            labels.append(meta.iloc[b.rows].assign(stage=stage))
        else:
            labels.append(
                pd.DataFrame(
                    {
                        "title": [f"user {i}" for i in b.rows],
                        "genre": "users",
                        "domain": "users",
                        "popularity": "users",
                        "cold status": "users",
                        "stage": stage,
                    }
                )
            )
    return blocks, pd.concat(labels, ignore_index=True)


def pca_map(groups, cache) -> np.ndarray:
    return np.vstack([project_2d(X, "pca", cache) for X in groups])


# Session key: the map task this page last started by itself (a newer view's map stops
# it: moving the slider must not queue a fit per position). A comment, not a string:
# Streamlit would draw a bare string of a page script.
AUTO_KEY = "emb_umap_auto"


def umap_state(groups, cache, settings: MapSettings):
    """(UMAP map or None, task key, task state, error). Starts the fit in the background
    when nothing is cached and nothing is running (unless stopped, failed, or turned off)."""
    jm = state.jobs()
    key = map_task_key(groups, settings)
    Y = cached_map(groups, cache, settings)
    if Y is None:
        Y = jm.task_result(key)  # done, but its file could not be written or read
    st_, err = jm.task_state(key)
    if Y is None and st_ is None and background_maps_enabled():
        prev = st.session_state.get(AUTO_KEY)
        if prev and prev != key:
            jm.cancel_task(prev)
        if jm.start_task(key, map_task(groups, cache, settings)):
            st.session_state[AUTO_KEY] = key
        st_, err = jm.task_state(key)
    if Y is not None and st_ == "done":
        jm.discard_task(key)  # cached now: keep the manager's memory small
    return Y, key, st_, err


def umap_block(groups, cache, settings: MapSettings, key: str, st_, err) -> None:
    """While the map is computed: its progress and a Stop button, polled by a fragment
    that reruns the page (UMAP map shown) when it ends. Stopped or failed: the PCA map
    stays, with a button to start again."""
    jm = state.jobs()
    if st_ == "failed":
        st.error(f"UMAP failed: {err}. The PCA map stays.", icon=":material/error:")
    if st_ != "running":
        if st_ == "cancelled":
            st.caption("UMAP was stopped; the PCA map stays.")
        if st.button(
            "Compute UMAP", key="emb_umap_go", icon=":material/auto_awesome:",
            help="Keeps neighbourhoods better than PCA. The first fit in a fresh server may "
            "also compile UMAP's code; maps are then cached with the run store. The map "
            "appears by itself when it is ready.",
        ):  # fmt: skip
            jm.discard_task(key)
            jm.start_task(key, map_task(groups, cache, settings))
            st.rerun()
        return

    @st.fragment(run_every=1.0)
    def poll() -> None:
        s, _ = jm.task_state(key)
        if s != "running":
            st.rerun(scope="app")  # the page draws the UMAP map (or says why not)
        p = jm.task_progress(key)
        parts = [str(p.get("line") or "starting"), duration(float(p.get("seconds") or 0.0))]
        if p.get("eta_s"):
            parts.append(f"about {duration(p['eta_s'])} left")
        elif "graph" in str(p.get("line")):
            parts.append("the first fit in a server may also compile (about a minute)")
        c = st.columns([5, 1], vertical_alignment="bottom")
        c[0].progress(min(max(float(p.get("fraction") or 0.0), 0.0), 1.0), text=" · ".join(parts))
        if jm.task_cancelling(key):
            c[1].caption("Stopping…")
        else:
            c[1].button(
                "Stop",
                key="emb_umap_stop",
                icon=":material/stop_circle:",
                on_click=jm.cancel_task,
                args=(key,),
                width="stretch",
            )
        st.caption(
            "UMAP is on its way: PCA is shown meanwhile, and the UMAP map replaces it when it is ready."
        )

    poll()


MEASURE_LABELS = {
    "linear_cka": "CKA",
    "procrustes_drift_mean": "drift (mean)",
    "procrustes_drift_p90": "drift (90th pct)",
    "knn_overlap_mean": "10-NN overlap",
    "alignment": "alignment",
    "uniformity": "uniformity",
    "mmd_source_target": "MMD source↔target",
}


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3f}"


def shift_panel(picks, meta_domain) -> None:
    """The engine's shift measures as cards: one row per pair of stages, one per stage,
    then what each measure means, and the per-item drift of a chosen pair."""
    root = st.session_state[state.STORE_ROOT]
    st.subheader("How far the items moved")
    domains = tuple(
        (i, "source" if d == "source" else "target")
        for i, d in enumerate(meta_domain)
        if d in ("source", "target")
    )
    try:
        with st.spinner("Computing CKA, drift, neighbour overlap, MMD…"):
            rep = shift_table(
                root, tuple(picks), domains if any(d == "source" for _, d in domains) else ()
            )
    except Exception as exc:
        show_error(exc, "shift measures")
        return
    single = rep[rep["stage_b"].isna()]
    pairs = rep[rep["stage_b"].notna()]
    explain = dict(zip(rep["measure"], rep["explanation"]))

    def wide(df: pd.DataFrame, index: list[str]) -> pd.DataFrame:
        w = df.set_index([*index, "measure"])["value"].unstack("measure")
        order = list(dict.fromkeys(map(tuple, df[index].to_numpy())))  # the engine's stage order
        w = w.reindex(
            pd.MultiIndex.from_tuples(order, names=index)
            if len(index) > 1
            else [o[0] for o in order]
        )
        cols = [m for m in MEASURE_LABELS if m in w.columns]
        return w[cols].reset_index()

    def config(df: pd.DataFrame) -> dict:
        return {
            m: st.column_config.NumberColumn(MEASURE_LABELS[m], help=explain.get(m), format="%.3f")
            for m in df.columns
            if m in MEASURE_LABELS
        }

    if len(pairs):
        st.markdown("**Between stages**")
        w = wide(pairs, ["stage_a", "stage_b"]).rename(columns={"stage_a": "from", "stage_b": "to"})
        st.dataframe(w, hide_index=True, width="stretch", column_config=config(w), key="emb_pairs")
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.markdown("**Each stage on its own**")
        w = wide(single, ["stage_a"]).rename(columns={"stage_a": "stage"})
        st.dataframe(w, hide_index=True, width="stretch", column_config=config(w), key="emb_single")
    with right:
        pair_list = [(a, b) for i, a in enumerate(picks) for b in picks[i + 1 :]]
        if pair_list:
            labels = [f"{a[0]} → {b[0]}" for a, b in pair_list]
            j = st.selectbox(
                "per-item drift between",
                range(len(pair_list)),
                format_func=lambda i: labels[i],
                key="emb_drift_pair",
            )
            a, b = pair_list[j]
            try:
                d = drift_values(root, (a[1], a[2]), (b[1], b[2]))
                st.plotly_chart(
                    charts.drift_histogram(d, a[0], b[0]), theme=None, key="emb_drift_fig"
                )
            except Exception as exc:
                show_error(exc, "drift")
        else:
            st.caption("Add a second stage (e.g. the target-only run) to see how far items moved.")
    st.markdown("**What the numbers mean**")
    st.markdown(
        "\n".join(f"- **{MEASURE_LABELS.get(m, m)}**: {text}" for m, text in explain.items())
    )


page_header(
    "Embeddings",
    "Where the items sit in each model: source pre-training, target-only, after transfer. "
    "One joint map, so positions can be compared across stages.",
)
show_flash()
store = state.store()
chosen = choose(store)
if chosen is not None:
    run, picks = chosen
    root = st.session_state[state.STORE_ROOT]
    scn = scenario_for_runs([run])
    if scn is not None:
        meta = item_frame(scn)
    else:
        items = run_table(root, run["run_id"], "items")
        meta = item_frame_from_artifact(items) if items is not None else None
        st.caption(
            "Genre, popularity and cold status need the run's scenario loaded (Data page); domain colours work without it."
        )
    from recsys_core.runs.store import ArtifactError

    try:
        vecs = {label: run_vectors(root, rid, s) for label, rid, s in picks}
    except ArtifactError as exc:  # a truncated file: said here, the measures below still run
        show_error(exc, "map")
        vecs = None
    if vecs is None:
        pass
    elif meta is None or any(v is None for v in vecs.values()):
        st.error("This run's vectors or item table are missing from the store.")
    else:
        n_target_users = int((scn.n_target_users if scn is not None else 0) or 0)
        has_users = n_target_users > 0 and any("users" in v for v in vecs.values())
        color, n_max, source_items, users = map_controls(meta, has_users)
        settings = MapSettings(items_per_stage=n_max, source_items=source_items, users=users)
        blocks, labels = build_points(picks, meta, vecs, settings, n_target_users)
        groups = map_groups(blocks)
        cache = projection_dir(root)
        Y_umap, key, task_st, task_err = umap_state(groups, cache, settings)
        have_umap = Y_umap is not None
        if have_umap:
            method = (
                st.segmented_control(
                    "projection",
                    ["umap", "pca"],
                    default="umap",
                    format_func=str.upper,
                    key="emb_method",
                )
                or "umap"
            )
        else:
            method = "pca"
        try:
            Y = Y_umap if method == "umap" else pca_map(groups, cache)
        except Exception as exc:
            show_error(exc, "projection")
            Y = None
        if Y is not None:
            pts = labels.assign(x=Y[:, 0], y=Y[:, 1])
            st.plotly_chart(charts.embedding_map(pts, color, method), theme=None, key="emb_map")
            st.caption(
                f"{method.upper()} of {len(pts):,} points, fitted once on all stages shown. "
                "Hover a point for its title."
                + (
                    ""
                    if have_umap or task_st == "running"
                    else " UMAP is not computed yet for these points."
                )
            )
        if len({b.X.shape[1] for b in blocks}) > 1:
            st.caption("The stages have different dimensions, so each has its own map.")
        if not have_umap:
            umap_block(groups, cache, settings, key, task_st, task_err)
        shift_panel(picks, meta["domain"].to_numpy())
