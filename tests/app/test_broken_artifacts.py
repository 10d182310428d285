"""Issue 12: a truncated artifact of one run (Parquet, safetensors) is said where it is
shown, naming the run and the file, while the rest of the page keeps working: one broken
run does not replace the Compare page with an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.app.conftest import displayed, frame_with
from ui import state

BROKEN = "truncated or corrupted"


@pytest.fixture()
def broken_copy(finished_runs, tmp_path):
    """A copy of the session's store; break(strategy, file) truncates one artifact."""
    store, ids = finished_runs
    root = tmp_path / "store"
    shutil.copytree(store.root, root)
    by_strategy = {store.get_run(r)["strategy"]: r for r in ids}

    def damage(strategy: str, file: str) -> str:
        rid = by_strategy[strategy]
        path = Path(root, rid, file)
        path.write_bytes(path.read_bytes()[: max(8, path.stat().st_size // 3)])
        return rid

    return root, by_strategy, damage


def open_page(at, root: Path, page: str):
    at.session_state[state.STORE_ROOT] = str(root)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def boxes(at, kind: str) -> list[str]:
    return [displayed(str(e.value)) for e in at.get(kind)]


def test_a_truncated_per_user_table_leaves_that_run_out_of_the_comparison(
    loaded_app, broken_copy
) -> None:
    root, _runs, damage = broken_copy
    bad = damage("target-only", "per_user.parquet")
    at = open_page(loaded_app, root, "views/compare.py")
    assert bad in at.multiselect(key="compare_runs").value  # chosen, but cannot be compared
    warnings = [w for w in boxes(at, "warning") if "left out of the comparison" in w]
    assert len(warnings) == 1
    assert "target-only" in warnings[0] and "per_user.parquet" in warnings[0]
    assert BROKEN in warnings[0] and bad in warnings[0]
    assert not at.error  # no error box in place of the page
    view = frame_with(at, "Δ vs baseline")  # the table of the other runs is there
    assert {"popularity", "fine-tune"} <= set(view["Run"]) and "target-only" not in set(view["Run"])
    assert any(s.value for s in at.subheader if s.value == "Verdict")


def test_a_truncated_training_curve_is_said_in_its_tab(loaded_app, broken_copy) -> None:
    root, runs, damage = broken_copy
    damage("fine-tune", "curve.parquet")
    at = open_page(loaded_app, root, "views/compare.py")
    assert not at.error
    frame_with(at, "Δ vs baseline")  # the comparison itself is untouched
    w = [x for x in boxes(at, "warning") if "curve.parquet" in x]
    assert len(w) == 1 and BROKEN in w[0] and runs["fine-tune"] in w[0]


def test_truncated_vectors_are_said_on_the_embeddings_page(loaded_app, broken_copy) -> None:
    root, runs, damage = broken_copy
    damage("fine-tune", "vectors_final.safetensors")
    at = open_page(loaded_app, root, "views/embeddings.py")
    assert at.selectbox(key="emb_run").value == runs["fine-tune"]
    errors = boxes(at, "error")
    assert len(errors) == 1, errors
    assert "vectors_final.safetensors" in errors[0] and BROKEN in errors[0]
    assert "something went wrong" not in errors[0]
    # the rest of the page works: another run can be picked and is drawn
    at.selectbox(key="emb_run").set_value(runs["target-only"]).run()
    assert not at.exception and not at.error
    assert at.get("plotly_chart")
