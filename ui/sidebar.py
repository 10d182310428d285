"""The sidebar on every page: active scenario, compute device, run store, jobs."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.text import md_escape


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
