"""Compare page: table with intervals and deltas against the default baseline, verdict,
charts, exports; empty states."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.compare import compare_runs, verdict
from tests.app.conftest import displayed, frame_with, texts
from ui import charts, state
from ui.components import html_report


def open_compare(at):
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_empty_store_says_no_runs_yet(app, tmp_path) -> None:
    app.session_state[state.STORE_ROOT] = str(tmp_path / "empty")
    open_compare(app)
    assert any("No runs yet" in t for t in texts(app, "markdown"))


def test_table_deltas_and_verdict_match_the_engine(loaded_app, finished_runs) -> None:
    store, ids = finished_runs
    at = open_compare(loaded_app)
    assert at.selectbox(key="compare_scenario").value == "sample"
    assert set(at.multiselect(key="compare_runs").value) >= set(ids)
    chosen = at.multiselect(key="compare_runs").value
    # the default measures each segment against its own best baseline, as the verdict does
    assert at.selectbox(key="compare_baseline").value == "best baseline of each segment"
    want = compare_runs(store, chosen, baseline=None, metric="ndcg", k=10)
    view = frame_with(at, "Δ vs baseline")
    assert len(view) == len(want)
    # Same numbers as the engine, run by run and segment by segment.
    names = {r: store.get_run(r)["strategy"] for r in chosen}
    for _, w in want.iterrows():
        row = view[
            (view["Run"] == names[w["run_id"]])
            & (view["Segment"] == charts.segment_label(w["segment"]))
        ]
        assert len(row) == 1
        assert np.isclose(row["Value"].iloc[0], w["value"])
        assert row["95% CI"].iloc[0] == f"[{w['ci_low']:.4f}, {w['ci_high']:.4f}]"
        if w["run_id"] == w["baseline"]:
            assert row["Significant"].iloc[0] == "baseline"
        else:
            assert row["Δ vs baseline"].iloc[0] == f"{w['delta']:+.4f}"
            mark = ("▲ better" if w["delta"] > 0 else "▼ worse") if w["significant"] else ""
            assert row["Significant"].iloc[0] == mark
    shown = " ".join(
        [displayed(s.value) for s in at.success] + [displayed(i.value) for i in at.info]
    )
    lines = verdict(want)
    assert lines  # fine-tune is a transfer run: there is a verdict per segment
    for line in lines:
        seg, _, rest = line.partition(": ")
        assert f"- **{seg}**: {rest}" in shown
    captions = " ".join(c.value for c in at.caption)
    assert "Measured against: " in captions and "comparisons (1 transfer run x" in captions
    assert len(at.get("plotly_chart")) >= 4  # segment, few-shot, cold items, curves, time
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels == {
        "Metrics table (CSV)",
        "All metrics of these runs (CSV)",
        "Report (standalone HTML)",
    }


def test_changing_metric_k_and_baseline_recomputes(loaded_app, finished_runs) -> None:
    store, ids = finished_runs
    at = open_compare(loaded_app)
    pop = next(r for r in ids if store.get_run(r)["strategy"] == "popularity")
    at.selectbox(key="compare_metric").set_value("recall")
    at.selectbox(key="compare_k").set_value(5)
    at.selectbox(key="compare_baseline").set_value(pop)
    at.run()
    assert not at.exception
    chosen = at.multiselect(key="compare_runs").value
    want = compare_runs(store, chosen, baseline=pop, metric="recall", k=5)
    view = frame_with(at, "Δ vs baseline")
    assert np.allclose(np.sort(view["Value"].to_numpy()), np.sort(want["value"].to_numpy()))
    base_rows = view[view["Significant"] == "baseline"]
    assert set(base_rows["Run"]) == {"popularity"}
    assert any("Recall@5" in c for c in texts(at, "caption"))


def test_only_this_sessions_runs_filter(loaded_app, finished_runs) -> None:
    at = open_compare(loaded_app)
    at.toggle(key="compare_mine").set_value(True).run()
    assert any("No finished runs of this session" in t for t in texts(at, "markdown"))


def test_html_report_is_standalone() -> None:
    fig = charts.segment_sizes(
        pd.DataFrame({"segment": ["warm_users"], "users": [3], "test_interactions": [4]})
    )
    html = html_report(
        "Transfer report: x",
        "NDCG@10",
        pd.DataFrame({"Run": ["a<b"]}),
        ["all: no gain."],
        [("Sizes", fig)],
    )
    assert html.startswith("<!doctype html>")
    assert "a&lt;b" in html and "<li>All users: no gain.</li>" in html
    # plotly.js is inlined (a few MB), not loaded from a CDN: the file works offline.
    assert len(html) > 1_000_000
    assert 'src="https://cdn.plot.ly' not in html


def test_html_report_of_stored_runs_carries_their_provenance(loaded_app, finished_runs) -> None:
    """The report the Compare page exports: the table as shown (readable segments, 4
    decimals, the legend of its markers) and the runs' ids, settings, split, data."""
    import re

    from recsys_core import __version__
    from recsys_core.report import comparison_view, report_provenance

    store, ids = finished_runs
    runs = [store.get_run(r) for r in ids]
    names = {r["run_id"]: r["strategy"] for r in runs}
    base = None  # each segment against its own best baseline, the page's default
    table = compare_runs(store, ids, baseline=base, metric="ndcg", k=10)
    view = comparison_view(table, names)
    page = html_report(
        "Transfer report: sample",
        "NDCG@10",
        view,
        verdict(table),
        [],
        report_provenance(runs, names, baseline=base),
    )
    for r in runs:
        assert f"<td>{r['run_id']}</td>" in page
    assert runs[0]["data_fingerprint"] in page and f"Recsys Transfer Lab {__version__}" in page
    assert "cold_ks = [0, 1, 3, 5]" in page and "before-target" in page
    assert "epochs = 2" in page  # the fixture's model settings
    assert "<td>Cold users, k = 0</td>" in page and "cold_users_k0" not in page
    cells = re.findall(r"<td>(-?\d+\.\d+)</td>", page)
    assert cells and all(len(c.split(".")[1]) == 4 for c in cells)
    legend = re.search(r'<ul class="legend">(.*?)</ul>', page).group(1)
    marks = {m for m in view["Significant"] if m}
    assert set(re.findall(r"<b>(.*?)</b>", legend)) - {"no mark"} == marks
    assert ("<b>no mark</b>" in legend) == ("" in set(view["Significant"]))
    assert "the best baseline of each segment" in page


# --------------------------------------------------------------------------- external runs


def popularity_file(scn, n: int = 10) -> bytes:
    """Every test user gets the n most popular training items, ranks 1..n (original ids)."""
    split = scn.split
    top = split.train["item"].value_counts().index[:n]
    users = np.unique(split.test["user"].to_numpy())
    rows = [
        f"{split.user_map.ids[u]},{split.item_map.ids[i]},{r + 1}"
        for u in users
        for r, i in enumerate(top)
    ]
    return ("user_id,item_id,rank\n" + "\n".join(rows) + "\n").encode()


def upload(at, name: str, data: bytes, label: str = "") -> None:
    at.text_input(key="compare_upload_label").set_value(label)
    at.get("file_uploader")[0].set_value((name, data, "text/csv"))
    at.run()
    assert not at.exception, [e.message for e in at.exception]


def test_upload_adds_an_external_run_selected_in_the_table(loaded_app, finished_runs) -> None:
    from recsys_core.external import evaluate_recommendation_file

    store, ids = finished_runs
    scn = loaded_app.session_state[state.SCENARIO]
    at = open_compare(loaded_app)
    helps = " ".join(texts(at, "caption"))
    assert "transfer-lab split export" in helps
    data = popularity_file(scn)
    upload(at, "prod_recs.csv", data, label="production model")
    chosen = at.multiselect(key="compare_runs").value
    new = [r for r in chosen if r not in ids]
    assert len(new) == 1, chosen
    run = store.get_run(new[0])
    assert run["strategy"] == "external" and run["label"] == "production model"
    assert run["data_fingerprint"] == scn.fingerprint()
    assert any("Added **production model**" in displayed(s.value) for s in at.success)
    # Its rows in the table carry the numbers the engine computes from the same file.
    want = evaluate_recommendation_file(data, scn.split, name="prod_recs.csv", n_boot=1000)
    rec = pd.DataFrame(want.to_records())
    view = frame_with(at, "Δ vs baseline")
    mine = view[view["Run"] == "production model"]
    assert len(mine) >= 3
    for _, row in mine.iterrows():
        seg = next(s for s in rec["segment"].unique() if charts.segment_label(s) == row["Segment"])
        w = rec[(rec["segment"] == seg) & (rec["metric"] == "ndcg") & (rec["k"] == 10)]
        assert np.isclose(row["Value"], w["value"].iloc[0])
    # The same file again adds nothing (the upload box stays filled across reruns).
    n_external = (store.list_runs(status="done")["strategy"] == "external").sum()
    at.run()
    assert (store.list_runs(status="done")["strategy"] == "external").sum() == n_external
    assert any("is in the comparison as run" in t for t in texts(at, "caption"))
    # The store is shared by the session's app tests: leave it as it was.
    store.delete_run(new[0])


def test_upload_with_unknown_ids_shows_the_engine_message(loaded_app, finished_runs) -> None:
    from recsys_core.errors import DataError
    from recsys_core.external import evaluate_recommendation_file

    store, _ = finished_runs
    scn = loaded_app.session_state[state.SCENARIO]
    before = len(store.list_runs())
    at = open_compare(loaded_app)
    bad = b"user_id,item_id,rank\nnobody,nothing,1\nghost,void,2\n"
    upload(at, "bad.csv", bad)
    try:
        evaluate_recommendation_file(bad, scn.split, name="bad.csv")
    except DataError as exc:
        message = str(exc)
    else:
        raise AssertionError("the engine accepted a file without a known id")
    assert [displayed(e.value) for e in at.error] == [message]
    assert len(store.list_runs()) == before  # nothing stored


def test_upload_needs_the_runs_split_loaded(app, finished_runs) -> None:
    open_compare(app)  # no scenario in this session
    assert not app.get("file_uploader")
    assert any(b.proto.label.startswith("Load sample with the runs' split") for b in app.button)


def test_time_chart_charges_source_pretraining_to_the_run_that_paid(
    loaded_app, finished_runs
) -> None:
    """popularity, target-only and fine-tune trained in one batch: only fine-tune trained
    the source model, so only its bar has a "pretrain source" part, and it is the run's
    stored figure."""
    store, ids = finished_runs
    at = open_compare(loaded_app)
    for box in at.multiselect:
        if box.key == "compare_runs" and set(box.options) and len(box.value) < 3:
            box.set_value(list(box.options)).run()
    import base64
    import json

    def values(v):  # plotly sends numeric arrays as {"dtype", "bdata"} (base64)
        if isinstance(v, dict):
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
        return list(v)

    fig = next(
        json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Wall-clock" in c.proto.spec
    )
    bars = {t["name"]: t for t in fig["data"] if t["type"] == "bar" and t["xaxis"] == "x"}
    assert list(bars)[:2] == ["pretrain source", "fit"] and "evaluate" in bars
    assert "encode text" not in bars  # the text came in ready-made: nobody paid for it
    pre = dict(zip(values(bars["pretrain source"]["x"]), values(bars["pretrain source"]["y"])))
    ft = store.get_run(ids[2])
    paid = [name for name, y in pre.items() if y > 0]
    assert len(paid) == 1 and "fine-tune" in paid[0]
    assert pre[paid[0]] == pytest.approx(ft["seconds"]["pretrain_source"])
    assert any("shows on the run that paid for it" in c for c in texts(at, "caption"))
