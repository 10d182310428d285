"""Data page: demo in one click, uploads with mapping and line-level errors, summaries,
links, split settings with a preview of segment sizes."""

from __future__ import annotations

from tests.app.conftest import SAMPLE, displayed, frame_with, metric_values, sample_spec, texts
from ui import state


def test_first_run_shows_the_empty_state_and_the_demo_cards(app) -> None:
    app.run()
    assert not app.exception
    assert app.title[0].value == "Data"
    assert any("No data loaded yet" in t for t in texts(app, "markdown"))
    keys = {b.key for b in app.button}
    assert {
        "data_demo_ml1m-to-ml100k",
        "data_demo_ml1m-genres",
        "data_demo_ml100k",
        "data_demo_ml1m",
    } <= keys
    assert any("No data loaded yet" in c for c in texts(app.sidebar, "caption"))
    # The sidebar names the run store the env var points at.
    assert app.sidebar.code[0].value == app.session_state[state.STORE_ROOT]


def test_one_click_demo_loads_ml100k(app) -> None:
    app.run()
    app.button(key="data_demo_ml100k").click().run()
    assert not app.exception and not app.error
    scn = app.session_state[state.SCENARIO]
    assert scn.name == "demo:ml100k" and scn.source is None
    m = metric_values(app)
    assert m["Users"] == "943" and m["Items"] == "1,664" and m["Interactions"] == "99,693"
    assert any("Loaded **demo:ml100k**" in displayed(s.value) for s in app.success)
    # Single domain: no link metrics, an info box instead; the cleaning note is shown.
    assert any("Single domain, no source" in displayed(i.value) for i in app.info)
    assert any("307 repeated (user, item) pairs" in c for c in texts(app, "caption"))
    # The demo's own documented cleaning is a note, not a yellow data warning.
    notes = [displayed(i.value) for i in app.info if "Cleaned on load" in displayed(i.value)]
    assert len(notes) == 1 and "18 item rows share a title id" in notes[0]
    assert "307 (user, item) pairs occurred twice" in notes[0]
    assert not any(
        "title id" in displayed(w.value) or "occurred twice" in displayed(w.value)
        for w in app.warning
    )


def test_loaded_scenario_summary_links_and_segment_preview(loaded_app, scenario) -> None:
    at = loaded_app
    at.run()
    assert not at.exception
    m = metric_values(at)
    assert m["Users"] == "40" and m["Items"] == "30" and m["Interactions"] == "144"
    assert m["Density"] == "12.00%"
    assert m["Shared users"] == "25"
    assert m["Shared items (same id)"] == "8"  # the demo-shaped fixture: 8 by id, 8 by
    assert m["Shared items (same title)"] == "8"  # title, a remake's title match dropped
    assert m["Item text in both"] == "yes"
    # Per-domain tabs for target and source, with their distributions.
    assert [t.label for t in at.tabs][:2] == [
        ":material/movie: Built-in demo",
        ":material/upload_file: Upload your files",
    ]
    assert any(t.label.startswith("Source") for t in at.tabs)
    sizes = frame_with(at, "Test interactions")
    # 2 test cold items and 2 validation cold items (5% of 30 items each, rounded)
    assert list(sizes["Users"]) == [29, 4, 4, 4, 4, 8]
    assert list(sizes["Segment"])[:2] == ["Warm users", "Cold users, k = 0"]


def test_split_settings_rebuild_the_split(loaded_app) -> None:
    at = loaded_app
    at.run()
    at.slider(key="data_split_cu").set_value(0.3)
    at.multiselect(key="data_split_ks").set_value([0, 3])
    next(b for b in at.get("button") if "Apply split" in str(b.label)).click().run()
    assert not at.exception and not at.error
    split = at.session_state[state.SPLIT]
    assert split.cold_user_frac == 0.3 and split.cold_ks == (0, 3)
    sizes = frame_with(at, "Test interactions")
    assert list(sizes["Segment"]) == [
        "Warm users",
        "Cold users, k = 0",
        "Cold users, k = 3",
        "Cold items",
    ]
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import load_scenario

    want = load_scenario(
        sample_spec(), SplitConfig(cold_user_frac=0.3, cold_ks=(0, 3)), "before-target"
    )
    assert list(sizes["Users"]) == list(want.split.segment_sizes()["users"])
    assert list(sizes["Users"]) != [30, 4, 4, 4, 4, 10][:4]


def test_upload_with_detected_columns_then_use(app) -> None:
    app.run()
    up = app.get("file_uploader")
    by_label = {u.label: u for u in up}
    assert "Interactions" in by_label  # target, required
    target = next(u for u in up if u.label == "Interactions")
    target.set_value(
        ("target_interactions.csv", (SAMPLE / "target_interactions.csv").read_bytes(), "text/csv")
    )
    items = next(u for u in up if u.label == "Items (optional)")
    items.set_value(("target_items.csv", (SAMPLE / "target_items.csv").read_bytes(), "text/csv"))
    app.run()
    assert not app.exception
    ok = [displayed(s.value) for s in app.success]
    assert "target_interactions.csv: 144 rows, 40 users, 30 items" in ok
    assert "target_items.csv: 30 rows" in ok
    # Column roles pre-filled by the loader's detection.
    sel = {
        s.key.rsplit("_", 1)[-1]: s.value
        for s in app.selectbox
        if s.key and s.key.startswith("data_map_target_interactions")
    }
    assert sel == {
        "user": "user_id",
        "item": "item_id",
        "rating": "rating",
        "timestamp": "timestamp",
    }
    text_fields = next(
        m for m in app.multiselect if m.key and m.key.startswith("data_map_target_items")
    )
    assert text_fields.value == ["title", "genres", "year", "description"]
    app.text_input(key="data_up_name").set_value("audiobooks")
    app.button(key="data_up_go").click().run()
    assert not app.exception and not app.error
    scn = app.session_state[state.SCENARIO]
    assert scn.name == "audiobooks" and scn.n_target_items == 30 and scn.source is None
    assert scn.target.text_fields == ("title", "genres", "year", "description")
    spec = app.session_state[state.SPEC]
    assert spec.target_interactions.endswith("target_interactions.csv")
    # the choices made on the page travel in the spec: the engine reads the file with them
    assert spec.columns["target_interactions"].rating == "rating"
    assert spec.columns["target_items"].text_fields == ("title", "genres", "year", "description")


def test_broken_upload_shows_the_loader_message_with_its_line(app) -> None:
    app.run()
    target = next(u for u in app.get("file_uploader") if u.label == "Interactions")
    target.set_value(
        ("broken_ratings.csv", (SAMPLE / "broken_ratings.csv").read_bytes(), "text/csv")
    )
    app.run()
    assert not app.exception
    errors = [displayed(e.value) for e in app.error]
    assert len(errors) == 1
    assert errors[0].startswith("File 'broken_ratings.csv', column 'rating', line 7")
    assert "five" in errors[0]
    assert app.button(key="data_up_go").disabled


def test_remapping_a_column_changes_what_is_read(app) -> None:
    app.run()
    target = next(u for u in app.get("file_uploader") if u.label == "Interactions")
    target.set_value(
        ("broken_ratings.csv", (SAMPLE / "broken_ratings.csv").read_bytes(), "text/csv")
    )
    app.run()
    rating = next(
        s
        for s in app.selectbox
        if s.key and s.key.startswith("data_map_target_interactions") and s.key.endswith("_rating")
    )
    rating.set_value("(none)")  # treat as implicit feedback: the bad rating no longer matters
    app.run()
    assert not app.error
    assert any(displayed(s.value).startswith("broken_ratings.csv: 12 rows") for s in app.success)
    assert not app.button(key="data_up_go").disabled


def upload_target(app, name: str, data: bytes) -> None:
    app.run()
    target = next(u for u in app.get("file_uploader") if u.label == "Interactions")
    target.set_value((name, data, "text/csv"))
    app.run()
    assert not app.exception, [e.message for e in app.exception]


def test_upload_previews_parsed_rows_and_flags_implausible_ratings(app) -> None:
    rows = [
        "user_id,item_id,rating,timestamp",
        "u1,i1,4,2023-01-07T18:06:17Z",
        "u2,i1,-3,2023-01-08T00:00:00Z",
        "u1,i2,1e308,2023-01-09T00:00:00Z",
        "u3,i3,5,2023-01-10T00:00:00Z",
        "u3,i2,2,2023-01-11T00:00:00Z",
        "u2,i3,3,2023-01-12T00:00:00Z",
    ]
    upload_target(app, "odd.csv", ("\n".join(rows) + "\n").encode())
    assert [s.value for s in app.success] == ["odd.csv: 6 rows, 3 users, 3 items"]
    # what the loader understood: the column roles and the first parsed rows
    assert any(
        "`user_id` ← `user_id`" in c and "`timestamp` ← `timestamp`" in c
        for c in texts(app, "caption")
    )
    preview = frame_with(app, "user_id")
    assert len(preview) == 5
    assert list(preview["user_id"]) == ["u1", "u2", "u1", "u3", "u3"]
    assert list(preview["rating"][:3]) == [4.0, -3.0, 1e308]
    assert preview["timestamp"].iloc[0] == "2023-01-07 18:06:17"
    # parsed, usable, but flagged with the rows to look at
    (w,) = [displayed(w.value) for w in app.warning]
    assert "2 ratings are outside the plausible range 0 to 1,000,000" in w
    assert "data rows 2, 3" in w and "u2 -> i1 = -3" in w and "u1 -> i2 = 1e+308" in w
    assert not app.button(key="data_up_go").disabled


def test_unguessable_column_opens_the_mapping_and_plurals_are_right(app) -> None:
    upload_target(app, "one.csv", b"who,what\nalice,book\n")
    exp = next(e for e in app.expander if displayed(e.label) == "Columns of one.csv")
    assert exp.proto.expanded
    assert any(
        "Could not guess the user id and item id columns" in displayed(i.value) for i in exp.info
    )
    keys = {s.key.rsplit("_", 1)[-1]: s for s in exp.selectbox}
    keys["user"].set_value("who")
    keys["item"].set_value("what")
    app.run()
    assert [s.value for s in app.success] == ["one.csv: 1 row, 1 user, 1 item"]
    # a header the loader reads closes it again
    upload_target(app, "target_interactions.csv", (SAMPLE / "target_interactions.csv").read_bytes())
    exp = next(
        e for e in app.expander if displayed(e.label) == "Columns of target_interactions.csv"
    )
    assert not exp.proto.expanded
