"""Text from users stays text: a run label or an item title holding a Markdown image,
an HTML tag or a spreadsheet formula is shown literally on the pages and neutralised in
the CSV downloads (the browser test checks what a real browser fetches)."""

from __future__ import annotations

import io
import json
import re
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from recsys_core.io_utils import csv_for_spreadsheets, neutralize_cell
from tests.app.conftest import displayed, quick_request
from ui import state
from ui.text import md_escape

IMAGE = "![x](http://127.0.0.1:8799/b.png)"
HOSTILE = f"{IMAGE} <img src=http://127.0.0.1:8799/c.png> :red[big] $x$"


def unescaped_markup(shown: list[str]) -> list[str]:
    """Strings showing the hostile text where a Markdown/HTML character is not escaped."""
    return [s for s in shown if "8799" in s and re.search(r"(?<!\\)[\[\]<>!()$]", s)]


@pytest.fixture()
def hostile_store(tmp_path, scenario, text):
    """A store with two finished runs of the sample scenario, one labelled HOSTILE."""
    from recsys_core.pipeline import run_config, run_strategies
    from recsys_core.runs.store import RunStore

    scn, spec, _ = scenario
    store = RunStore(tmp_path / "store")
    ids = []
    for name, label in (("popularity", HOSTILE), ("target-only", None)):
        req = quick_request(name, label=label)
        config = {**run_config(scn, req, name), "spec": asdict(spec)}
        rid = store.create_run(name, scn.name, config, scn.fingerprint(), label=label)
        (out,) = run_strategies(scn, req, store, text=text, run_ids=[rid])
        assert out.status == "done", out.error
        ids.append(rid)
    return store, ids


def rendered(at) -> list[str]:
    """Every Markdown-rendered string of the page."""
    out = []
    for kind in ("markdown", "caption", "header", "subheader", "error", "info", "success"):
        out += [str(e.value) for e in at.get(kind)]  # the Markdown source, escapes kept
    return out


def test_md_escape_leaves_no_markup() -> None:
    assert md_escape(IMAGE) == "\\!\\[x\\]\\(\u2060http\\://127.0.0.1\\:8799/b.png\\)"
    # no autolink literal left: a word joiner before every URL start, after every "@"
    assert md_escape("see www.x.org, a@b.co") == "see \u2060www.x.org, a@\u2060b.co"
    assert md_escape("<script>alert(1)</script>") == r"\<script\>alert\(1\)\</script\>"
    assert md_escape("- a\n# b") == r"\- a \# b"  # no list item, no heading, one line
    assert unescaped_markup([f"x {IMAGE}"]) == [f"x {IMAGE}"]  # the check sees raw markup
    assert unescaped_markup([md_escape(HOSTILE)]) == []
    assert displayed(md_escape(HOSTILE)) == HOSTILE  # what the page shows: the text itself
    assert md_escape("12. rank") == r"12\. rank" and md_escape("my_file.csv") == r"my\_file.csv"


def test_hostile_run_label_is_shown_literally_on_users_and_compare(
    loaded_app, hostile_store
) -> None:
    store, ids = hostile_store
    loaded_app.session_state[state.STORE_ROOT] = str(store.root)
    at = loaded_app
    at.run()
    at.switch_page("views/users.py").run()
    assert not at.exception, [e.message for e in at.exception]
    at.multiselect(key="users_runs").set_value(ids).run()
    shown = rendered(at)
    assert f"#### {md_escape(HOSTILE)}" in shown  # the run's column header, escaped
    at.multiselect(key="users_new_items").set_value([0, 1]).run()
    shown = rendered(at)
    assert f"**{md_escape(HOSTILE)}**" in shown  # the new-user box
    assert unescaped_markup(shown) == []

    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.message for e in at.exception]
    at.multiselect(key="compare_runs").set_value(ids).run()
    at.selectbox(key="compare_baseline").set_value(ids[0]).run()
    shown = rendered(at)
    assert any(f"Baseline: {md_escape(HOSTILE)}, in every segment." in s for s in shown), shown
    assert unescaped_markup(shown) == []


def test_csv_exports_neutralise_formulas() -> None:
    label = "=cmd|' /C calc'!A0"
    df = pd.DataFrame(
        {
            "run_name": [label, "@SUM(A1)", "+1+2", "-2+3", "\tx", "plain", "-0.5"],
            "delta": [-0.5, 0.25, 1.0, 2.0, 3.0, 4.0, 5.0],
            "=bad col": ["a", "b", "c", "d", "e", "f", "g"],
        }
    )
    back = pd.read_csv(io.StringIO(csv_for_spreadsheets(df)), keep_default_na=False)
    assert back["run_name"].tolist() == [
        "'" + label, "'@SUM(A1)", "'+1+2", "'-2+3", "'\tx", "plain", "-0.5"
    ]  # fmt: skip
    assert back["delta"].tolist() == [-0.5, 0.25, 1.0, 2.0, 3.0, 4.0, 5.0]  # numbers stay numbers
    assert list(back.columns) == ["run_name", "delta", "'=bad col"]
    assert df["run_name"].iloc[0] == label  # the caller's frame is not changed
    assert neutralize_cell(-1) == -1 and neutralize_cell("+33 1 23") == "'+33 1 23"


def test_charts_show_user_strings_without_plotly_markup() -> None:
    """Plotly draws ``<a href="...">`` in a legend, tick or hover as a live SVG link (the
    browser test found them on Compare and in the report): names reach it escaped."""
    from ui import charts

    link = '<a href="http://127.0.0.1:8799/a">a</a> <b>&</b>'
    assert charts.plot_text(link) == (
        '&lt;a href="http://127.0.0.1:8799/a"&gt;a&lt;/a&gt; &lt;b&gt;&amp;&lt;/b&gt;'
    )
    table = pd.DataFrame(
        {"run_id": ["r1", "r1"], "segment": ["all", "warm_users"], "metric": "ndcg", "k": 10,
         "value": [0.1, 0.2], "ci_low": [0.05, 0.1], "ci_high": [0.15, 0.3]}
    )  # fmt: skip
    curves = pd.DataFrame(
        {"run_id": "r1", "stage": "final", "epoch": [1, 2], "loss": [0.5, 0.4],
         "val_ndcg@10": [0.1, 0.2]}
    )  # fmt: skip
    points = pd.DataFrame(
        {"x": [0.0, 1.0], "y": [1.0, 0.0], "stage": [link, link], "title": [link, "ok"],
         "genre": [link, "Drama"]}
    )  # fmt: skip
    figs = [
        charts.metric_by_segment(table, {"r1": link}),
        charts.training_curves(curves, {"r1": link}),
        charts.embedding_map(points, "genre", "pca"),
        charts.drift_histogram(np.array([0.1, 0.2]), link, "b"),
    ]
    for fig in figs:
        # every string of the figure as plotly gets it (to_json would write "<" as \u003c)
        text = json.dumps(fig.to_plotly_json(), default=str)
        assert "<a href" not in text and "&lt;a href" in text
