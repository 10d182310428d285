"""Issue 12: an upload belongs to its browser session. Session A uploads files and trains
runs; session B is never offered A's files (their paths are in the runs' config), on the
Compare page or the Users page, and (the run store reads for B's user) never sees the
runs themselves, their labels, recommendations or item tables, unless A shares them."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from tests.app.conftest import APP, SAMPLE, displayed, quick_request
from ui import state

PRIVATE = "uploaded in another browser session"


def new_session(store_root: Path, session_id: str | None = None, owner: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[state.STORE_ROOT] = str(store_root)
    if session_id is not None:
        at.session_state[state.SESSION_ID] = session_id
    if owner is not None:
        at.session_state[state.OWNER] = owner
    return at


def upload_and_load(at, name: str = "a-private") -> None:
    """The Data page: upload target interactions and items, use them."""
    at.run()
    up = {u.label: u for u in at.get("file_uploader")}
    up["Interactions"].set_value(
        ("mine.csv", (SAMPLE / "target_interactions.csv").read_bytes(), "text/csv")
    )
    up["Items (optional)"].set_value(
        ("my_titles.csv", (SAMPLE / "target_items.csv").read_bytes(), "text/csv")
    )
    at.run()
    at.text_input(key="data_up_name").set_value(name)
    at.button(key="data_up_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


LABEL = "a-secret-label"


def store_runs(store_root: Path, scn, spec_dict: dict, owner: str | None = None) -> list[str]:
    """Runs of ``scn`` recorded the way the app's JobManager records them (with the spec
    and the browser user who asked)."""
    from recsys_core.pipeline import run_config, run_strategies
    from recsys_core.runs.store import RunStore

    store = RunStore(store_root)
    req = quick_request("popularity", label=LABEL)
    ids = [
        store.create_run(
            n,
            scn.name,
            {**run_config(scn, req, n), "spec": spec_dict},
            scn.fingerprint(),
            label=req.label,
            owner=owner,
        )
        for n in req.strategies
    ]
    outs = run_strategies(scn, req, store, run_ids=ids)
    assert [o.status for o in outs] == ["done"], [o.error for o in outs]
    return ids


def page_text(at) -> str:
    parts = [displayed(str(e.value)) for kind in ("info", "markdown", "caption", "warning")
             for e in at.get(kind)]  # fmt: skip
    parts += [b.proto.label for b in at.button]
    return "\n".join(parts)


@pytest.fixture()
def session_a(env_dirs, tmp_path):
    """Session A with its uploads loaded and one finished run in a fresh store:
    (store root, spec, session id, run ids, owner token)."""
    store_root = tmp_path / "store"
    a = new_session(store_root)
    upload_and_load(a)
    spec = a.session_state[state.SPEC]
    sid = a.session_state[state.SESSION_ID]
    owner = a.session_state[state.OWNER]
    assert sid in spec.target_interactions  # they live in A's own upload folder
    ids = store_runs(store_root, a.session_state[state.SCENARIO], asdict(spec), owner)
    return store_root, spec, sid, ids, owner


def test_the_store_records_the_owner_of_uploaded_data(session_a) -> None:
    from recsys_core.runs.store import RunStore

    store_root, spec, sid, ids, owner = session_a
    assert spec.owner == sid
    assert RunStore(store_root).get_run(ids[0])["owner"] == owner
    cfg = RunStore(store_root).get_run(ids[0])["config"]
    assert cfg["spec"]["owner"] == sid


@pytest.mark.parametrize("legacy", [False, True], ids=["owner recorded", "path only"])
def test_session_b_is_never_offered_a_s_uploads(session_a, scenario, tmp_path, legacy) -> None:
    store_root, spec, sid, _ids, _owner = session_a
    if legacy:  # a run recorded before specs had an owner: its path still gives it away
        store_root = tmp_path / "legacy_store"
        store_runs(store_root, _scenario_of(spec), {**asdict(spec), "owner": None})
    b = new_session(store_root)
    # B works on other data (the sample scenario), so both pages would offer to load the
    # data of the runs they find: A's.
    scn_b, spec_b, split_b = scenario
    b.session_state[state.SCENARIO] = scn_b
    b.session_state[state.SPEC] = spec_b
    b.session_state[state.SPLIT] = split_b
    for page in ("views/compare.py", "views/users.py"):
        b.run()
        b.switch_page(page).run()
        assert not b.exception, [e.message for e in b.exception]
        text = page_text(b)
        # a legacy run is listed (nothing says whose it is) but its files are refused; a
        # run with its owner recorded is not even listed
        assert (PRIVATE in text) == legacy, page
        assert not any(bt.proto.label.startswith("Load a-private") for bt in b.button), page
        assert spec.target_interactions not in text and sid not in text
        assert not b.get("file_uploader")
    assert b.session_state[state.SCENARIO] is scn_b  # nothing of A's was loaded into B
    assert b.session_state[state.SESSION_ID] != sid


def everything(at) -> str:
    """All a page shows: Markdown, boxes, button labels, widget options, table cells."""
    parts = [page_text(at)]
    for kind in ("selectbox", "multiselect", "radio"):
        parts += [str(o) for w in at.get(kind) for o in w.options]
    parts += [at.get("dataframe")[i].value.to_csv() for i in range(len(at.get("dataframe")))]
    return "\n".join(parts)


def test_session_b_with_the_same_files_sees_none_of_a_s_runs_until_shared(session_a) -> None:
    """B uploads the very same files under the same name (same data, same fingerprint):
    before issue 12's store filter, B's Users page listed A's runs and showed their
    top-K lists. Now no page shows them, until A shares the scenario."""
    from recsys_core.runs.store import RunStore

    store_root, _spec, _sid, ids, owner = session_a
    b = new_session(store_root)
    upload_and_load(b, name="a-private")
    pages = ("views/compare.py", "views/users.py", "views/embeddings.py", "views/whatif.py")
    for page in pages:
        b.switch_page(page).run()
        assert not b.exception, [e.message for e in b.exception]
        shown = everything(b)
        assert LABEL not in shown and not any(r in shown for r in ids), page
    b.switch_page("views/users.py").run()
    assert "No runs yet" in page_text(b)
    assert b.session_state[state.OWNER] != owner

    # A shares the scenario (the Data page's toggle): now B's Users page offers A's run.
    a2 = new_session(store_root, session_id=_sid, owner=owner)
    upload_and_load(a2, name="a-private")
    a2.toggle(key="data_share").set_value(True).run()
    assert not a2.exception
    assert RunStore(store_root).is_shared("a-private", owner)
    b.switch_page("views/users.py").run()
    assert not b.exception
    assert b.multiselect(key="users_runs").value == ids
    assert LABEL in page_text(b)


def test_the_owner_is_still_offered_its_own_data(session_a) -> None:
    """Session A, in a later page run without the data loaded, may reload its files."""
    store_root, _spec, sid, _, owner = session_a
    a2 = new_session(store_root, session_id=sid, owner=owner)
    a2.run()
    a2.switch_page("views/compare.py").run()
    assert PRIVATE not in page_text(a2)
    button = next(bt for bt in a2.button if bt.proto.label.startswith("Load a-private"))
    button.click().run()
    assert not a2.exception
    assert a2.session_state[state.SCENARIO].name == "a-private"


def _scenario_of(spec):
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import load_scenario

    return load_scenario(spec, SplitConfig(), "before-target")
