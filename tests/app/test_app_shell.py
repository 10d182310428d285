"""The app around the pages: navigation, sidebar, config, lazy imports, shared helpers."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib

import numpy as np
import pytest

from tests.app.conftest import APP, ROOT, displayed, texts
from ui import state
from ui.components import field_docs, item_frame, run_names


def test_streamlit_config_hides_tracebacks_and_the_toolbar() -> None:
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["client"]["toolbarMode"] == "minimal"


def test_streamlit_config_suits_a_deployed_app_that_trains_in_process() -> None:
    """No file watcher and no forced full GC after every (fragment) rerun: both stalled
    the training thread while the Train page polled. Every option is one Streamlit
    knows (a misspelt key would be ignored silently)."""
    from streamlit import config

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["fileWatcherType"] == "none"
    assert cfg["runner"]["postScriptGC"] is False
    known = config.get_config_options()
    unknown = [f"{s}.{k}" for s, opts in cfg.items() for k in opts if f"{s}.{k}" not in known]
    assert not unknown


def test_sidebar_shows_scenario_device_and_store(loaded_app, scenario) -> None:
    from recsys_core.runs.jobs import JobManager

    at = loaded_app
    # The device is found in a background thread; once known the sidebar shows its label.
    jm = JobManager("t")
    deadline = time.monotonic() + 60
    while jm.device_info() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    at.session_state[state.JOBS] = jm
    # (AppTest drops sidebar elements on reruns of an st.navigation app, so one run only.)
    at.run()
    assert not at.exception
    md = texts(at.sidebar, "markdown")
    assert "**sample**" in md
    assert any(m.startswith(":material/memory: CPU") or "CUDA" in m for m in md)
    cap = " ".join(texts(at.sidebar, "caption"))
    assert "target: 40 users, 30 items" in cap and "source: 60 users, 49 items" in cap
    assert at.sidebar.code[0].value == at.session_state[state.STORE_ROOT]


def test_sidebar_says_checking_while_the_device_is_unknown(app) -> None:
    from recsys_core.runs.jobs import JobManager

    jm = JobManager("t")
    jm._device_thread = object()  # pretend the probe is still running
    app.session_state[state.JOBS] = jm
    app.run()
    assert "checking…" in texts(app.sidebar, "caption")


def test_every_page_is_reachable_and_renders(loaded_app, finished_runs) -> None:
    at = loaded_app
    at.run()
    for page, title in [
        ("views/data.py", "Data"),
        ("views/train.py", "Train"),
        ("views/compare.py", "Compare"),
        ("views/embeddings.py", "Embeddings"),
        ("views/users.py", "Users"),
    ]:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert at.title[0].value == title


def test_session_state_has_one_home_and_is_per_session(app, env_dirs) -> None:
    from streamlit.testing.v1 import AppTest

    app.run()
    other = AppTest.from_file(APP, default_timeout=60).run()
    for key in (
        state.SCENARIO,
        state.SPEC,
        state.SPLIT,
        state.SOURCE_HISTORY,
        state.JOBS,
        state.SESSION_ID,
    ):
        assert key in app.session_state
    assert app.session_state[state.SESSION_ID] != other.session_state[state.SESSION_ID]
    assert app.session_state[state.JOBS] is not other.session_state[state.JOBS]
    assert app.session_state[state.STORE_ROOT] == str(env_dirs[0].resolve())


def test_first_page_does_not_load_the_training_stack(env_dirs) -> None:
    """The Data page answers without importing torch-heavy engine modules (the device
    probe imports torch in a background thread, never the page)."""
    code = (
        "import sys, time\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=60)\n"
        "t = time.perf_counter(); at.run(); dt = time.perf_counter() - t\n"
        "assert not at.exception\n"
        "print(dt, 'recsys_core.pipeline' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dt, pipeline, transformers = out.stdout.split()[-3:]
    assert pipeline == "False" and transformers == "False"
    assert float(dt) < 20


def test_errors_are_messages_never_tracebacks() -> None:
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        from recsys_core.errors import DataError
        from ui.components import show_error

        show_error(DataError("ratings must be numbers", file="r.csv", column="rating", rows=[7]))
        show_error(RuntimeError("boom"), "training")

    at = AppTest.from_function(page).run()
    assert not at.exception
    msgs = [displayed(e.value) for e in at.error]
    assert msgs[0] == "File 'r.csv', column 'rating', line 7: ratings must be numbers."
    assert msgs[1].startswith("training: something went wrong (RuntimeError: boom)")
    assert "Traceback" not in " ".join(msgs)


def test_field_docs_read_the_declared_help() -> None:
    from recsys_core.strategies.fine_tune import FineTuneConfig

    docs = field_docs(FineTuneConfig)
    assert docs["l2sp"].startswith("L2-SP weight lambda")
    assert set(docs) == {"freeze", "l2sp", "lr_scale"}


def test_run_names_are_unique() -> None:
    runs = [
        {"run_id": "a-1111", "strategy": "fine-tune", "label": None},
        {"run_id": "b-2222", "strategy": "fine-tune", "label": None},
        {"run_id": "c-3333", "strategy": "popularity", "label": "pop"},
        {"run_id": "d-4444", "strategy": "ease", "label": float("nan")},  # list_runs gives NaN
    ]
    assert run_names(runs) == {
        "a-1111": "fine-tune ·1111",
        "b-2222": "fine-tune ·2222",
        "c-3333": "pop",
        "d-4444": "ease",
    }


def test_item_frame_labels_every_joint_item(scenario) -> None:
    scn = scenario[0]
    f = item_frame(scn)
    assert len(f) == scn.n_items
    assert f["title"].iloc[0] == "Salt, Sea and Sky"
    assert (f["domain"].iloc[: scn.n_target_items] != "source").all()
    assert (f["domain"].iloc[scn.n_target_items :] == "source").all()
    assert set(f.loc[np.asarray(scn.split.cold_items), "cold status"]) == {"cold item"}
    # a cold item has no target training row; a linked one may have source rows
    cold = np.asarray(scn.split.cold_items)
    src = np.bincount(scn.source_train["item"].to_numpy(), minlength=scn.n_items)
    assert (f["train_count"].to_numpy()[cold] == src[cold]).all()
    assert set(f["popularity"]) <= {"top 10%", "10-50%", "bottom 50%", "never in training"}


@pytest.mark.parametrize("module", ["recsys_core.runs.jobs"])
def test_engine_side_never_imports_streamlit(module: str) -> None:
    code = f"import sys, {module}; print('streamlit' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_no_page_prints_a_stray_string() -> None:
    """Streamlit's magic writes any bare expression of a page script to the page: a
    string under a constant (an attribute docstring) would show up as text."""
    import ast

    for path in [ROOT / "app.py", *sorted((ROOT / "views").glob("*.py"))]:
        body = ast.parse(path.read_text()).body
        stray = [
            n.lineno
            for i, n in enumerate(body)
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and i > 0
        ]
        assert not stray, f"{path.name}: bare string at line(s) {stray}"
