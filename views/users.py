"""Users: one user's history, held-out items, and the top-K of several runs side by side,
plus a "new user" box. Widget keys start with ``users_``.

The top-K lists are the ones the evaluation stored (``topk`` artifact), so what is shown
here is exactly what was scored; "because you liked" is the history item closest to the
recommended one by cosine in the run's own item vectors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from recsys_core.data.item_table import item_frame
from recsys_core.strategies.registry import kind_of
from ui import state
from ui.components import (
    done_runs,
    empty_state,
    offer_reload,
    page_header,
    run_names,
    run_table,
    show_error,
    show_flash,
)
from ui.text import md_escape


def pick_runs(store, scn):
    runs = done_runs(store, scenario=scn.name)
    fp = scn.fingerprint()
    same = runs[runs["data_fingerprint"] == fp]
    if same.empty:
        if runs.empty:
            others = done_runs(store)
            if others.empty:
                empty_state("No runs yet: train a few strategies first.", "train", "Go to Train")
            else:
                offer_reload(store.get_run(others["run_id"].iloc[0]), "users_reload")
        else:
            offer_reload(store.get_run(runs["run_id"].iloc[0]), "users_reload")
        return None
    records = same.to_dict("records")
    names = run_names(records)
    ids = list(same["run_id"])
    kinds = same.set_index("run_id")["strategy"].map(kind_of)
    base = [r for r in ids if kinds.loc[r] == "baseline"]
    other = [r for r in ids if r not in base]
    default = (other[:1] + base + other[1:])[
        :2
    ]  # a transfer run next to a baseline when there is one
    chosen = st.multiselect(
        "runs side by side",
        ids,
        default=default,
        format_func=lambda r: f"{names[r]} ({r})",
        key="users_runs",
    )
    return [store.get_run(r) for r in chosen], names


def segment_users(scn) -> dict[str, np.ndarray]:
    """The evaluation's segments (``recsys_core.evaluation.evaluate.segment_users``) under
    the names this page shows; cold users are one choice, their k picked beside it."""
    from recsys_core.evaluation.evaluate import segment_users as engine_segments

    segs = engine_segments(scn.split)
    out = {"warm users": segs["warm_users"]}
    cold = [v for n, v in segs.items() if n.startswith("cold_users_k")]
    if cold and len(cold[0]):
        out["cold users"] = cold[0]
    if "cold_items" in segs:
        out["users touching cold items"] = segs["cold_items"]
    return out


def pick_user(scn) -> tuple[int | None, int | None]:
    """(target user index, k for a cold user or None)."""
    ids = scn.split.user_map.ids
    segs = segment_users(scn)
    c = st.columns([2, 3, 1])
    how = c[0].radio("find a user", ["from a segment", "by id"], horizontal=True, key="users_how")
    k = None
    if how == "from a segment":
        seg = c[1].selectbox(
            "segment",
            list(segs),
            format_func=lambda s: f"{s} ({len(segs[s]):,})",
            key="users_segment",
        )
        users = segs[seg]
        if seg == "cold users":
            ks = sorted(scn.split.support)
            k = c[2].selectbox(
                "k",
                ks,
                index=len(ks) - 1,
                key="users_k",
                help="Interactions the cold user reveals.",
            )
        if not len(users):
            st.info("No users in this segment.")
            return None, None
        u = st.selectbox("user", users, format_func=lambda i: str(ids[i]), key=f"users_pick_{seg}")
        return int(u), k
    text = c[1].text_input("user id", key="users_id", placeholder=f"e.g. {ids[0]}")
    if not text.strip():
        return None, None
    idx = scn.split.user_map.encode(np.array([text.strip()], dtype=object))[0]
    if idx < 0:
        st.warning(f"No target user with id '{md_escape(text.strip())}'.")
        return None, None
    cold = set(np.asarray(scn.split.cold_users).tolist())
    if int(idx) in cold:
        ks = sorted(scn.split.support)
        k = c[2].selectbox("k", ks, index=len(ks) - 1, key="users_k_id")
    return int(idx), k


def user_frames(scn, u: int, k: int | None, meta: pd.DataFrame):
    sp = scn.split
    if k is None:
        hist = pd.concat([sp.train[sp.train["user"] == u], sp.valid[sp.valid["user"] == u]])
    else:
        s = sp.support.get(k)
        hist = s[s["user"] == u] if s is not None else sp.train.iloc[0:0]
    if "timestamp" in hist:
        hist = hist.sort_values("timestamp")
    test = sp.test[sp.test["user"] == u]
    return hist["item"].to_numpy(np.int64), test


def because(
    store, run_id: str, rec_items: np.ndarray, hist_items: np.ndarray, titles: np.ndarray
) -> list[str]:
    """For each recommended item, the history item closest by cosine in the run's own
    item vectors (the engine's ``explain_run``); "—" when the run keeps no vectors."""
    from recsys_core.recommend import explain_run

    ok = rec_items >= 0
    out = ["—"] * len(rec_items)
    if not len(hist_items) or not ok.any():
        return out
    from recsys_core.runs.store import ArtifactError

    try:
        best = explain_run(store, run_id, hist_items, rec_items[ok])
    except ArtifactError as exc:  # broken vectors: the list is still shown, unexplained
        st.warning(md_escape(exc), icon=":material/broken_image:")
        return out
    for j, b in zip(np.flatnonzero(ok), best):
        out[j] = str(titles[b]) if b >= 0 else "—"
    return out


def topk_for(root: str, run_id: str, segment: str, u: int) -> np.ndarray:
    t = run_table(root, run_id, "topk")
    if t is None:
        return np.zeros(0, np.int64)
    r = t[(t["segment"] == segment) & (t["user"] == u)].sort_values("rank")
    return r["item"].to_numpy(np.int64)


def side_by_side(runs, names, scn, u, k, meta, top_n: int) -> None:
    root = st.session_state[state.STORE_ROOT]
    store = state.store()
    titles = meta["title"].to_numpy()
    hist, test = user_frames(scn, u, k, meta)
    test_items = set(test["item"].tolist())
    cold_items = set(np.asarray(scn.split.cold_items).tolist())
    segment = "warm_users" if k is None else f"cold_users_k{k}"
    cols = st.columns(len(runs))
    from recsys_core.runs.store import ArtifactError

    for col, run in zip(cols, runs):
        try:
            items = topk_for(root, run["run_id"], segment, u)[:top_n]
            error = None
        except ArtifactError as exc:  # this column says so; the other runs are shown
            items, error = np.zeros(0, np.int64), exc
        with col:
            st.markdown(f"#### {md_escape(names[run['run_id']])}")
            if error is not None:
                show_error(error)
                continue
            if not len(items):
                st.info("No list stored for this user in this run.")
                continue
            ok = items >= 0
            hits = int(sum(i in test_items for i in items))
            st.caption(f"{hits} hit(s) in the top {top_n} · segment {segment}")
            df = pd.DataFrame(
                {
                    "#": np.arange(1, len(items) + 1),
                    "Recommended": [titles[i] if i >= 0 else "—" for i in items],
                    "Hit": [i in test_items for i in items],
                    "Cold item": ["❄ cold" if i in cold_items else "" for i in items],
                    "Because you liked": because(
                        store, run["run_id"], np.where(ok, items, -1), hist, titles
                    ),
                }
            )
            st.dataframe(
                df.style.apply(
                    lambda r: ["background-color: #e6f4ea" if r["Hit"] else "" for _ in r], axis=1
                ),
                hide_index=True,
                width="stretch",
                height=38 + 35 * len(df),
                column_config={
                    "#": st.column_config.NumberColumn(width=36),
                    "Recommended": st.column_config.TextColumn(width="medium"),
                    "Hit": st.column_config.CheckboxColumn("✓ hit", width=48),
                    "Cold item": st.column_config.TextColumn("cold", width=58),
                    "Because you liked": st.column_config.TextColumn(width="medium"),
                },
                key=f"users_top_{run['run_id']}",
            )


def new_user_box(runs, names, meta, scn) -> None:
    st.subheader("A new user")
    st.caption(
        "Pick a few titles as a made-up history and see what each run recommends, without retraining."
    )
    target = meta.iloc[: scn.n_target_items]
    order = np.argsort(-target["train_count"].to_numpy(), kind="stable")
    labels = _title_labels(target)
    chosen = st.multiselect(
        "titles",
        order.tolist(),
        format_func=lambda i: labels[i],
        key="users_new_items",
        max_selections=20,
        placeholder="type to search titles",
    )
    if not chosen:
        return
    from recsys_core.recommend import NoVectorsError, chosen_offset, recommend_for_history

    override = st.toggle(
        "steer new-item exposure",
        key="users_exposure_on",
        help="Re-rank with another offset on the scores of items nobody interacted with in "
        "training, without retraining. Off: each run's own point, chosen on validation "
        "(the star on the Compare page's exposure curve).",
    )
    offset = None
    if override:
        offset = st.slider(
            "new-item offset (standard deviations of the user's scores)",
            -2.0, 3.0, 0.0, 0.25, key="users_exposure",
        )  # fmt: skip

    store = state.store()
    item_ids = [str(target["item_id"].iloc[i]) for i in chosen]
    cols = st.columns(len(runs))
    for col, run in zip(cols, runs):
        with col:
            st.markdown(f"**{md_escape(names[run['run_id']])}**")
            try:
                recs = recommend_for_history(store, run["run_id"], item_ids, 10, offset)
                if offset is None and chosen_offset(store, run["run_id"]):
                    st.caption(f"new-item offset {chosen_offset(store, run['run_id']):+.2f} sd")
            except NoVectorsError as exc:
                st.info(str(exc), icon=":material/info:")
                continue
            except Exception as exc:
                show_error(exc)
                continue
            st.dataframe(
                _recs_frame(recs, meta),
                hide_index=True,
                width="stretch",
                height=38 + 35 * len(recs),
                key=f"users_new_{run['run_id']}",
            )


def _title_labels(items: pd.DataFrame) -> list[str]:
    """One label per item: its title, told apart by item id where titles repeat (the
    ML-100K demo has films of one title from different years, whose ids are
    "Title (Year)": then the id alone reads best)."""
    titles = items["title"].astype(str).to_numpy()
    ids = items["item_id"].astype(str).to_numpy()
    repeated = pd.Series(titles).duplicated(keep=False).to_numpy()
    return [
        (i if t in i else f"{t} ({i})") if rep else t for t, i, rep in zip(titles, ids, repeated)
    ]


def _recs_frame(recs: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """The engine's new-user list (rank, item_id, score, because_item_id...) with titles."""
    titles = pd.Series(meta["title"].to_numpy(), index=meta["item_id"].astype(str).to_numpy())
    titles = titles[~titles.index.duplicated()]

    def title(i) -> str:
        return (
            "—"
            if i is None or (isinstance(i, float) and np.isnan(i))
            else str(titles.get(str(i), i))
        )

    return pd.DataFrame(
        {
            "#": recs["rank"].to_numpy(),
            "Recommended": [title(i) for i in recs["item_id"]],
            "Because you liked": [title(i) for i in recs["because_item_id"]],
            "Score": recs["score"].round(3).to_numpy(),
        }
    )


page_header(
    "Users", "One user at a time: what they did, what they will do, and what each run recommends."
)
show_flash()
scn = state.scenario()
if scn is None:
    empty_state("No data loaded yet", "data", "Load a demo or your files on the Data page")
else:
    store = state.store()
    picked = pick_runs(store, scn)
    if picked is not None:
        runs, names = picked
        meta = item_frame(scn)
        if not runs:
            st.info("Choose one or more runs.")
        else:
            u, k = pick_user(scn)
            if u is not None:
                titles = meta["title"].to_numpy()
                hist, test = user_frames(scn, u, k, meta)
                uid = scn.split.user_map.ids[u]
                st.markdown(
                    f"### User {md_escape(uid)}  \n"
                    + (
                        f":blue-badge[cold user, reveals k = {k}]"
                        if k is not None
                        else ":green-badge[warm user]"
                    )
                )
                c = st.columns([1, 1, 1])
                c[0].metric("History shown to the models", len(hist), border=True)
                c[1].metric("Held-out test items", len(test), border=True)
                c[2].metric(
                    "Cold items among them",
                    int(test["cold_item"].sum()) if "cold_item" in test else 0,
                    border=True,
                )
                h, t = st.columns(2)
                with h:
                    st.markdown("**History**" + (" (support items)" if k is not None else ""))
                    st.dataframe(
                        pd.DataFrame({"Title": titles[hist[::-1]] if len(hist) else []}),
                        hide_index=True,
                        width="stretch",
                        height=min(38 + 35 * max(len(hist), 1), 250),
                        key="users_hist",
                    )
                with t:
                    st.markdown("**Held out for test**")
                    st.dataframe(
                        pd.DataFrame(
                            {
                                "Title": titles[test["item"].to_numpy(np.int64)],
                                "Cold item": [
                                    "❄ cold" if c else ""
                                    for c in test.get(
                                        "cold_item", pd.Series(False, index=test.index)
                                    )
                                ],
                            }
                        ),
                        hide_index=True,
                        width="stretch",
                        height=min(38 + 35 * max(len(test), 1), 250),
                        key="users_test",
                    )
                top_n = st.select_slider("top K", [5, 10, 20], value=10, key="users_topn")
                side_by_side(runs, names, scn, u, k, meta, int(top_n))
            st.divider()
            new_user_box(runs, names, meta, scn)
