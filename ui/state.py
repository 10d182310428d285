"""The one home of the app's session state: key names and their defaults.

Everything a browser session owns lives in ``st.session_state`` under these keys, never
in module-level variables (a module is shared by every session of the server):

* the loaded scenario, and the spec, split and source-history setting it was built with;
* the browser user's :class:`~recsys_core.runs.jobs.JobManager` (its background jobs,
  which keep running when the user switches pages, reloads, or opens a second tab);
* a random session id, which names the folder the session's uploads are written to and
  is recorded as the owner of the scenarios built from them (:func:`may_load_spec`).

Jobs belong to the *owner*, not to a page load: a random token kept in the URL's
``?user=`` query parameter, so a reload (F5), a bookmark or a second tab with that URL
is the same user and finds the same queue. The token is the only key to the jobs:
anyone given the URL sees and can cancel them, as with any shared link. The owner's
JobManager comes from :func:`job_registry`, the one object this app keeps in
``st.cache_resource``: it is shared by every session of the server, and safe only
because each session asks it for its own owner's manager.

Widget keys are prefixed per page (``data_``, ``train_``, ``compare_``, ``emb_``,
``users_``) and are not listed here.
"""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

import streamlit as st

from recsys_core.runs.jobs import OWNER_RE, JobManager, JobRegistry

SCENARIO = "scenario"
"""The loaded :class:`~recsys_core.data.scenario.Scenario`, or None."""
SPEC = "scenario_spec"
"""The :class:`~recsys_core.pipeline.ScenarioSpec` the scenario came from, or None."""
SPLIT = "split_config"
"""The :class:`~recsys_core.data.split_types.SplitConfig` of the loaded scenario, or None
(the default split)."""
SOURCE_HISTORY = "source_history"
""""before-target" (honest, the default) or "all"."""
JOBS = "job_manager"
OWNER = "owner"
"""The browser user's token (see the module docstring), also in the URL as ``?user=``."""
OWNER_PARAM = "user"
SESSION_ID = "session_id"
STORE_ROOT = "run_store_root"
SUMMARY = "scenario_summary"
"""(id of the scenario, per-domain summaries and count arrays) for the Data page."""
FLASH = "flash"
"""A one-shot message (kind, text) shown at the top of the next page run."""


def default_store_root() -> str:
    """``$RTL_RUN_STORE`` or ``./transfer_lab_runs`` (the run store's own default)."""
    from recsys_core.runs.store import DEFAULT_DIRNAME, ENV_VAR

    return str(Path(os.environ.get(ENV_VAR) or Path.cwd() / DEFAULT_DIRNAME).expanduser().resolve())


def cache_dir() -> Path:
    """``$RTL_CACHE_DIR`` or ``~/.cache/recsys_transfer_lab`` (same rule as the engine)."""
    root = os.environ.get("RTL_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "recsys_transfer_lab"


@st.cache_resource(show_spinner=False)
def job_registry() -> JobRegistry:
    """The server's one :class:`JobRegistry`, shared by every session on purpose: jobs
    must outlive a page load. Every lookup is keyed by owner (:func:`jobs`), so a
    session only ever reaches its own user's JobManager."""
    return JobRegistry()


def init_owner() -> str:
    """This session's owner: the URL's ``?user=`` token when it is well formed, else a
    new one; written back to the URL on every run (a page switch may drop it), so a
    reload finds the same jobs."""
    if OWNER not in st.session_state:
        given = st.query_params.get(OWNER_PARAM)
        ok = isinstance(given, str) and OWNER_RE.match(given) is not None
        st.session_state[OWNER] = given if ok else secrets.token_urlsafe(12)
    owner = st.session_state[OWNER]
    if st.query_params.get(OWNER_PARAM) != owner:
        st.query_params[OWNER_PARAM] = owner
    return owner


def init_session_state() -> None:
    """Give every key its default once per session (``setdefault``: never overwrites)."""
    owner = init_owner()
    st.session_state.setdefault(SESSION_ID, uuid.uuid4().hex[:12])
    st.session_state.setdefault(SCENARIO, None)
    st.session_state.setdefault(SPEC, None)
    st.session_state.setdefault(SPLIT, None)
    st.session_state.setdefault(SOURCE_HISTORY, "before-target")
    st.session_state.setdefault(STORE_ROOT, default_store_root())
    st.session_state.setdefault(FLASH, None)
    st.session_state.setdefault(SUMMARY, None)
    if JOBS not in st.session_state:
        st.session_state[JOBS] = job_registry().manager(owner)


KEEP_PREFIXES = (
    "train_pick_",
    "train_opt_",
    "train_set_",
    "train_device",
    "train_nboot",
    "train_label",
    "train_grid_",
)
"""Widget keys whose values survive a page switch (Streamlit drops the state of widgets
that a run does not draw; re-assigning a key keeps it). Buttons, uploads and the Data
page's form are left out: they cannot, or need not, be kept."""
KEEP_EXCLUDE = ("train_grid_go",)


def keep_widget_values() -> None:
    """Carry the Train page's choices over page switches (call once per run, early)."""
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(KEEP_PREFIXES) and key not in KEEP_EXCLUDE:
            st.session_state[key] = st.session_state[key]


def jobs() -> JobManager:
    """The JobManager of this browser user (the same one after a reload)."""
    return st.session_state[JOBS]


def scenario():
    """The loaded scenario or None."""
    return st.session_state.get(SCENARIO)


def store():
    """The run store as this browser user may read it (cheap to build: one SQLite file,
    opened per call): runs trained on another user's private uploads, unless shared,
    are not in it (``RunStore(viewer=...)``, issue 12)."""
    from recsys_core.runs.store import RunStore

    return RunStore(st.session_state[STORE_ROOT], viewer=viewer())


def viewer() -> str | None:
    """Whose eyes the run store reads for: this session's owner token."""
    return st.session_state.get(OWNER)


def upload_dir() -> Path:
    """This session's folder for the canonical copies of uploaded files."""
    return cache_dir() / "uploads" / st.session_state[SESSION_ID]


def may_load_spec(spec: dict) -> bool:
    """Whether this session may rebuild a scenario from a run's recorded spec.

    Uploads are private to the session that made them: a spec owned by another session
    is refused, and so is (for runs recorded before specs had an owner) any path inside
    another session's upload folder.
    """
    owner = spec.get("owner")
    if owner is not None:
        return owner == st.session_state[SESSION_ID]
    uploads = (cache_dir() / "uploads").resolve()
    mine = upload_dir().resolve()
    for key, value in spec.items():
        if key in ("demo", "name", "owner") or not value:
            continue
        path = Path(str(value)).resolve()
        if path.is_relative_to(uploads) and not path.is_relative_to(mine):
            return False
    return True


def set_scenario(scn, spec, split, source_history: str) -> None:
    st.session_state[SCENARIO] = scn
    st.session_state[SPEC] = spec
    st.session_state[SPLIT] = split
    st.session_state[SOURCE_HISTORY] = source_history
    st.session_state[SUMMARY] = None


def summaries(scn) -> dict:
    """Per-domain summaries of the loaded scenario (computed once per scenario):
    role -> {"summary": summarize(domain), "per_user", "per_item", "ratings": arrays}."""
    held = st.session_state.get(SUMMARY)
    if held is not None and held[0] == id(scn):
        return held[1]
    from recsys_core.data.summary import summarize

    out = {}
    for role, dom in (("target", scn.target), ("source", scn.source)):
        if dom is None:
            continue
        df = dom.interactions
        out[role] = {
            "summary": summarize(dom),
            "per_user": df["user_id"].value_counts(sort=False).to_numpy(),
            "per_item": df["item_id"].value_counts(sort=False).to_numpy(),
            "ratings": df["rating"].to_numpy() if "rating" in df else None,
        }
    st.session_state[SUMMARY] = (id(scn), out)
    return out


def flash(kind: str, text: str) -> None:
    """Show ``text`` once at the top of the next run (kind: success, info, warning)."""
    st.session_state[FLASH] = (kind, text)
