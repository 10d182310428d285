"""Finished runs as the pages read them: names, cached artifacts and vectors (through
``st.cache_data`` with bounded ``max_entries``), and reloading the data a run was
trained on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ui import state
from ui.messages import show_error
from ui.text import md_escape


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


def run_table(store_root: str, run_id: str, name: str) -> pd.DataFrame | None:
    """A finished run's table artifact (immutable once the run is done), or None when the
    run has none or this browser user may not read it (another user's private run). A
    truncated or corrupted file raises ArtifactError (its message names the run and the
    file): the page shows it where the table would be."""
    return _run_table(store_root, run_id, name, state.viewer())


def run_vectors(store_root: str, run_id: str, stage: str) -> dict[str, np.ndarray] | None:
    """A finished run's stage vectors ({"items": (n_joint_items, d), "users"?: ...}) or None
    when it keeps none (or the user may not read it); ArtifactError as run_table."""
    return _run_vectors(store_root, run_id, stage, state.viewer())


# The viewer is part of the cache key: a table cached for one user is never served to
# another who may not read the run (st.cache_data is shared by every session).
@st.cache_data(max_entries=64, show_spinner=False)
def _run_table(store_root: str, run_id: str, name: str, viewer: str | None) -> pd.DataFrame | None:
    from recsys_core.runs.store import MissingArtifactError, RunStore

    try:
        return RunStore(store_root, viewer=viewer).load_table(run_id, name)
    except (MissingArtifactError, KeyError):
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def _run_vectors(
    store_root: str, run_id: str, stage: str, viewer: str | None
) -> dict[str, np.ndarray] | None:
    from recsys_core.runs.store import MissingArtifactError, RunStore

    try:
        return RunStore(store_root, viewer=viewer).load_tensors(run_id, f"vectors_{stage}")
    except (MissingArtifactError, KeyError):
        return None


def run_stages(store, run_id: str) -> list[str]:
    """Stage names with stored vectors, e.g. ["source", "final"] (the engine's order,
    the one the cached maps are built in)."""
    from recsys_core.embeddings.maps import stored_stages

    return stored_stages(store, run_id)


def done_runs(store, scenario: str | None = None) -> pd.DataFrame:
    try:
        return store.list_runs(scenario=scenario, status="done")
    except Exception as exc:  # an unreadable store must not take the page down
        show_error(exc, "the run store could not be read")
        return pd.DataFrame(
            columns=["run_id", "strategy", "label", "scenario", "data_fingerprint", "created_at"]
        )


def scenario_for_runs(runs: Sequence[Mapping[str, Any]]):
    """The loaded scenario when the runs were made on exactly its data and split, else None."""
    scn = state.scenario()
    if scn is None or not runs:
        return None
    fp = scn.fingerprint()
    return scn if all(r.get("data_fingerprint") == fp for r in runs) else None


PRIVATE_UPLOADS = (
    "These runs were trained on files uploaded in another browser session. Uploads stay "
    "private to the session that made them: upload the same files on the Data page to "
    "work with these runs' data here."
)


def offer_reload(run: Mapping[str, Any], key: str) -> None:
    """Offer to rebuild the scenario a run was trained on, from the spec in its config."""
    cfg = run.get("config", {})
    spec_d = cfg.get("spec")
    if not spec_d:
        st.info("Load the data these runs were trained on (Data page) to see users and titles.")
        return
    if not state.may_load_spec(spec_d):
        st.info(PRIVATE_UPLOADS, icon=":material/lock:")
        return
    st.info(
        f"These runs were trained on **{md_escape(run.get('scenario'))}** with a different split or data than "
        "the one loaded now. Load it to see users, histories and titles."
    )
    if st.button(
        f"Load {md_escape(run.get('scenario'))} with the runs' split",
        key=key,
        icon=":material/download:",
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
