"""Embeddings: how item vectors move from the source model to the target-only model to
the model after transfer: one joint 2-D map, and the engine's shift measures.

The map shows PCA at once; UMAP is used when it is cached on disk, or computed in the
background on request (a side task of the user's JobManager) while PCA stays on screen,
with its progress; the page redraws itself with the UMAP map when it is ready. Widget
keys start with ``emb_``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from recsys_core.data.item_table import item_frame, item_frame_from_artifact
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
    default_peer = [p for p in peers if by_id[p]["strategy"] == "target-only"][:1]
    extra = c[1].multiselect(
        "add stages from other runs of the same data",
        peers,
        default=default_peer if run["strategy"] != "target-only" else [],
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


def build_points(picks, meta, vecs, n_max, source_items, users, n_target_users):
    """Rows to project (one X per dimension group) and their labels."""
    rng = np.random.default_rng(0)
    keep = (
        np.flatnonzero(meta["domain"].to_numpy() != "source")
        if not source_items
        else np.arange(len(meta))
    )
    if len(keep) > n_max:
        keep = np.sort(rng.choice(keep, n_max, replace=False))
    blocks, labels = [], []
    for label, _, _ in picks:
        V = vecs[label]
        items = V["items"]
        blocks.append(items[keep])
        lab = meta.iloc[keep].assign(stage=label)
        labels.append(lab)
        if users and "users" in V:
            U = V["users"][:n_target_users]
            u_idx = np.sort(rng.choice(len(U), min(300, len(U)), replace=False))
            blocks.append(U[u_idx])
            labels.append(
                pd.DataFrame(
                    {
                        "title": [f"user {i}" for i in u_idx],
                        "genre": "users",
                        "domain": "users",
                        "popularity": "users",
                        "cold status": "users",
                        "stage": label,
                    }
                )
            )
    return blocks, pd.concat(labels, ignore_index=True)


def projection(blocks, method: str, cache: str):
    """Joint map when every stage has one dimension, else one map per stage."""
    from recsys_core.embeddings.projection import cached_projection, project_2d

    dims = {b.shape[1] for b in blocks}
    groups = [np.vstack(blocks)] if len(dims) == 1 else blocks
    out = []
    for X in groups:
        Y = project_2d(X, "pca", cache) if method == "pca" else cached_projection(X, "umap", cache)
        if Y is None:
            return None, groups
        out.append(Y)
    return np.vstack(out), groups


def umap_key(groups) -> str:
    h = hashlib.sha256()
    for X in groups:
        h.update(np.ascontiguousarray(X).tobytes()[:1_000_000])
        h.update(str(X.shape).encode())
    return "umap-" + h.hexdigest()[:16]


def umap_fit(groups, cache: str):
    """The side task that fits UMAP on each group (stops when asked; reports the graph
    stage, then the layout epochs, with time left from the epochs' pace)."""
    from recsys_core.embeddings.projection import UMAP_LAYOUT_STAGE, project_2d
    from recsys_core.training.callbacks import Callbacks

    def fit(task) -> None:
        n = len(groups)
        for gi, X in enumerate(groups):
            pace: dict = {}

            def on_progress(ev, gi=gi, pace=pace) -> None:
                line = ev.stage + (f" (map {gi + 1} of {n})" if n > 1 else "")
                eta = None
                if ev.stage == UMAP_LAYOUT_STAGE and ev.epochs:
                    line += f" · epoch {ev.epoch}/{ev.epochs}"
                    if "t" not in pace:
                        pace.update(t=ev.seconds, epoch=ev.epoch)
                    elif ev.epoch > pace["epoch"]:
                        per = (ev.seconds - pace["t"]) / (ev.epoch - pace["epoch"])
                        eta = per * (ev.epochs - ev.epoch)
                task.report((gi + ev.fraction) / n, line, eta_s=eta)

            project_2d(
                X,
                "umap",
                cache,
                callbacks=Callbacks(on_progress=on_progress, should_cancel=task.should_cancel),
            )

    return fit


def umap_block(groups, cache: str, have_umap: bool) -> None:
    """Button to compute UMAP in the background; while it runs, its progress and a Stop
    button, polled by a fragment that reruns the page (UMAP map shown) when it ends."""
    jm = state.jobs()
    key = umap_key(groups)
    if have_umap:
        return
    st_, err = jm.task_state(key)
    if st_ == "failed":
        st.error(f"UMAP failed: {err}. The PCA map stays.", icon=":material/error:")
    if st_ != "running":
        if st_ == "cancelled":
            st.caption("UMAP was stopped; the PCA map stays.")
        if st.button(
            "Compute UMAP", key="emb_umap_go", icon=":material/auto_awesome:",
            help="Keeps neighbourhoods better than PCA. The first fit in a fresh server also "
            "compiles UMAP's code (about a minute); then maps are cached on disk. The map "
            "appears by itself when it is ready.",
        ):  # fmt: skip
            jm.discard_task(key)
            jm.start_task(key, umap_fit(groups, cache))
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
            parts.append("the first fit in a server also compiles (about a minute)")
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
        st.caption("PCA is shown meanwhile; the UMAP map replaces it when it is ready.")

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
        blocks, labels = build_points(picks, meta, vecs, n_max, source_items, users, n_target_users)
        cache = str(state.cache_dir() / "projections")
        Y_umap, groups = projection(blocks, "umap", cache)
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
            Y = Y_umap if method == "umap" else projection(blocks, "pca", cache)[0]
        except Exception as exc:
            show_error(exc, "projection")
            Y = None
        if Y is not None:
            pts = labels.assign(x=Y[:, 0], y=Y[:, 1])
            st.plotly_chart(charts.embedding_map(pts, color, method), theme=None, key="emb_map")
            st.caption(
                f"{method.upper()} of {len(pts):,} points, fitted once on all stages shown. "
                "Hover a point for its title."
                + ("" if have_umap else " UMAP is not computed yet for these points.")
            )
        if len({b.shape[1] for b in blocks}) > 1:
            st.caption("The stages have different dimensions, so each has its own map.")
        umap_block(groups, cache, have_umap)
        shift_panel(picks, meta["domain"].to_numpy())
