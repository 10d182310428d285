"""What-if page: choices, the curve computed in a side task on the tiny sample, the
figure (log x axis, one panel per segment, a band per strategy, the baseline at zero)
and the plain-language lines, checked on a hand-made curve."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from tests.app.conftest import displayed, texts
from ui import charts, state
from ui.components import curve_verdict, family_note


def open_whatif(at):
    at.run()
    at.switch_page("views/whatif.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def hand_curve() -> pd.DataFrame:
    """Two strategies on two segments: mapping gains at 10 and 30 warm users (p small
    enough to survive Holm over the 16 points), its interval includes zero from 100 on;
    fine-tune never gains measurably."""
    rows = []
    for seg in ("all", "cold_users_k0"):
        for v, d, lo, hi, p in [
            (10, 0.08, 0.03, 0.13, 1e-6),
            (30, 0.05, 0.01, 0.09, 1e-4),
            (100, 0.01, -0.02, 0.04, 0.4),
            ("all", 0.00, -0.03, 0.03, 1.0),
        ]:
            rows.append(("mapping", seg, v, d, lo, hi, p))
        for v in (10, 30, 100, "all"):
            rows.append(("fine-tune", seg, v, 0.0, -0.01, 0.01, 1.0))
    cols = ["strategy", "segment", "value", "delta", "ci_low", "ci_high", "p_t"]
    df = pd.DataFrame(rows, columns=cols)
    return df.assign(
        factor="warm_users",
        metric="ndcg",
        k=10,
        baseline="target-only",
        x=[500.0 if v == "all" else float(v) for v in df["value"]],
        n_users=40,
        source_history="before-target",
        scenario="hand",
    )


def test_caption_says_where_the_interval_first_includes_zero() -> None:
    lines = curve_verdict(hand_curve())
    assert lines == [
        "**All users** · mapping: gains +0.0800 [+0.0300, +0.1300] at 10 warm users; "
        "the gain is no longer measurable at 100 warm users (+0.0100 [-0.0200, +0.0400]).",
        "**All users** · fine-tune: no measurable gain at any value (every 95% interval "
        "includes zero).",
        "**Cold users, k = 0** · mapping: gains +0.0800 [+0.0300, +0.1300] at 10 warm users; "
        "the gain is no longer measurable at 100 warm users (+0.0100 [-0.0200, +0.0400]).",
        "**Cold users, k = 0** · fine-tune: no measurable gain at any value (every 95% "
        "interval includes zero).",
    ]


def test_caption_reads_values_that_came_back_as_text() -> None:
    # A table or CSV round trip turns 10 into "10"; it must not read as "all 10 warm users".
    df = hand_curve()
    assert curve_verdict(df.assign(value=df["value"].astype(str))) == curve_verdict(df)


def test_caption_for_a_loss_and_for_source_interactions() -> None:
    df = pd.DataFrame(
        {
            "factor": "source_interactions",
            "value": [0, 3, "all"],
            "strategy": "mapping",
            "segment": "cold_users_k0",
            "delta": [-0.05, 0.0, 0.04],
            "ci_low": [-0.08, -0.02, 0.01],
            "ci_high": [-0.01, 0.03, 0.07],
            "p_t": [1e-4, 0.9, 1e-4],
            "x": [0.0, 2.5, 7.25],
        }
    )
    (line,) = curve_verdict(df)
    assert line == (
        "**Cold users, k = 0** · mapping: no measurable difference first at 3 source "
        "interactions (+0.0000 [-0.0200, +0.0300]); a gain is measurable first at all source "
        "interactions (≈7.2 per cold user) (+0.0400 [+0.0100, +0.0700]). Worse than the "
        "baseline at 0 source interactions."
    )


def test_an_interval_off_zero_by_chance_is_not_called_a_gain() -> None:
    # 16 points: at 30 warm users mapping's interval excludes zero with p = 0.01, which
    # Holm's correction for 16 comparisons (0.05 / 16 = 0.003 for the smallest) rejects.
    df = hand_curve()
    df.loc[df["strategy"] == "mapping", "p_t"] = [0.2, 0.01, 0.4, 1.0] * 2
    lines = curve_verdict(df)
    assert lines[0] == (
        "**All users** · mapping: no measurable gain at any value. The interval excludes "
        "zero at 10 warm users (+0.0800 [+0.0300, +0.1300]), 30 warm users (+0.0500 "
        "[+0.0100, +0.0900]), but not after Holm's correction for 16 comparisons."
    )
    # the same p on a single-point curve is a gain: the correction scales with the family
    one = df[(df["strategy"] == "mapping") & (df["segment"] == "all") & (df["value"] == 30)]
    (line,) = curve_verdict(one)
    assert line == "**All users** · mapping: gains +0.0500 [+0.0100, +0.0900] at 30 warm users."
    # the chart fills no marker of the 16-point curve, and the caption names the rule
    fig = charts.what_if_curve(df)
    marks = [t for t in fig.data if t.mode == "lines+markers"]
    assert all(c == "white" for t in marks for c in t.marker.color)
    assert "Holm's correction for the 16 comparisons" in family_note(df)


def test_curve_figure_log_axis_panels_bands_and_baseline() -> None:
    df = hand_curve()
    fig = charts.what_if_curve(df)
    # One panel per segment, titled as on the compare page.
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:2] == ["All users", "Cold users, k = 0"]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"
    # Ticks: 10, 30, 100 at themselves, "all" at the effective number of warm users.
    assert list(fig.layout.xaxis.tickvals) == [10, 30, 100, 500]
    assert list(fig.layout.xaxis.ticktext)[-1] == "all<br>(≈500)"
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["mapping", "fine-tune", "mapping", "fine-tune"]
    m = lines[0]
    assert list(m.x) == [10, 30, 100, 500]
    assert np.allclose(m.y, [0.08, 0.05, 0.01, 0.0])
    # Filled markers where the gain is claimed (off zero, after Holm), hollow elsewhere.
    assert list(m.marker.color)[:2] == [m.line.color] * 2
    assert list(m.marker.color)[2:] == ["white", "white"]
    # Same colour for a strategy in every panel; the band holds the interval.
    assert lines[0].line.color == lines[2].line.color != lines[1].line.color
    bands = [t for t in fig.data if t.fill == "toself"]
    assert np.allclose(sorted(bands[0].y)[:1], [-0.03]) and max(bands[0].y) == 0.13
    base = [t for t in fig.data if t.name and t.name.startswith("best target-only")]
    assert len(base) == 2 and all(list(b.y) == [0, 0] for b in base)
    assert sum(bool(b.showlegend) for b in base) == 1


def test_zero_source_interactions_sits_left_of_the_smallest_value() -> None:
    df = pd.DataFrame({"value": [0, 3, 10, "all"], "x": [0.0, 2.9, 8.0, 12.0]})
    pos, ticks, text = charts.curve_positions(df)
    assert pos[0] == 1.0 and pos[3] == 3 and pos[10] == 10 and pos["all"] == 12.0
    assert text == ["0", "3", "10", "all<br>(≈12)"]
    assert ticks == sorted(ticks)


def test_no_scenario_points_to_the_data_page(app) -> None:
    open_whatif(app)
    assert any("Load a scenario first" in t for t in texts(app, "markdown"))


def test_defaults_and_bad_values(loaded_app) -> None:
    at = open_whatif(loaded_app)
    assert at.radio(key="whatif_factor").value == "warm_users"
    # a first curve in a few minutes: three values, one draw, fine-tune against EASE
    assert at.text_input(key="whatif_values_warm_users").value == "30, 100, all"
    assert at.number_input(key="whatif_draws").value == 1
    assert at.multiselect(key="whatif_strategies").value == ["fine-tune"]
    assert at.multiselect(key="whatif_baselines").value == ["popularity", "target-only"]
    assert at.selectbox(key="whatif_model").value == "ease"
    at.radio(key="whatif_factor").set_value("source_interactions").run()
    assert at.text_input(key="whatif_values_source_interactions").value == "0, 10, all"
    at.text_input(key="whatif_values_source_interactions").set_value("0, lots").run()
    assert not at.exception
    assert any("curve values must be integers or 'all'" in displayed(e.value) for e in at.error)
    assert all(b.key != "whatif_go" for b in at.button)


def test_compute_curve_on_the_sample_in_the_background(loaded_app) -> None:
    at = open_whatif(loaded_app)
    at.text_input(key="whatif_values_warm_users").set_value("5, all")
    at.multiselect(key="whatif_strategies").set_value(["mapping"])
    at.number_input(key="whatif_draws").set_value(1)
    at.number_input(key="whatif_nboot").set_value(200)
    at.run()
    caps = texts(at, "caption")
    assert any("6 fits (2 values × 1 draws × 3 strategies)" in c for c in caps), caps
    at.button(key="whatif_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    jm = at.session_state[state.JOBS]
    key = next(iter(jm._tasks))
    deadline = time.monotonic() + 120
    while jm.task_state(key)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jm.task_state(key) == ("done", None)
    at.run()
    assert not at.exception and not at.error, [displayed(e.value) for e in at.error]
    fig = at.get("plotly_chart")
    assert len(fig) == 1
    pts = next(d.value for d in at.dataframe if "ci_low" in d.value.columns)
    assert set(pts["value"].astype(str)) == {"5", "all"}
    assert set(pts["strategy"]) == {"mapping"}
    assert {"all", "warm_users", "cold_users_k0"} <= set(pts["segment"])
    # At 5 warm users the engine kept exactly 5; the baseline is a target-only one.
    assert (pts.loc[pts["value"].astype(str) == "5", "x"] == 5).all()
    assert set(pts["baseline"]) <= {"popularity", "target-only"}
    shown = " ".join(
        [displayed(s.value) for s in at.success] + [displayed(i.value) for i in at.info]
    )
    # The table shows 'value' as text; the verdict reads integers and "all".
    typed = pts.assign(value=[v if v == "all" else int(v) for v in pts["value"].astype(str)])
    for line in curve_verdict(typed):
        assert line in shown
    assert not math.isnan(pts["delta"].iloc[0])
    # The choices are the same: the stored curve is shown, no button to compute it again.
    assert all(b.key != "whatif_go" for b in at.button)


def test_strategies_that_cannot_run_are_not_offered(app, scenario) -> None:
    from dataclasses import replace

    scn = scenario[0]
    single = replace(scn, source=None, links=None, source_train=scn.source_train.iloc[0:0])
    app.session_state[state.SCENARIO] = single
    app.session_state["whatif_strategies"] = ["mapping", "fusion"]  # picked on another scenario
    at = open_whatif(app)
    box = at.multiselect(key="whatif_strategies")
    assert "fusion" in box.options
    for name in ("fine-tune", "distill", "adapt", "mapping"):
        assert name not in box.options
    assert box.value == ["fusion"]  # the stale pick is dropped, no error
    note = next(c for c in texts(at, "caption") if c.startswith("Not offered on this scenario"))
    assert "**mapping** (mapping needs a source domain" in note


def test_mapping_is_not_offered_without_shared_users(app, scenario) -> None:
    from dataclasses import replace

    scn = scenario[0]
    app.session_state[state.SCENARIO] = replace(scn, links=replace(scn.links, shared_users=0))
    at = open_whatif(app)
    box = at.multiselect(key="whatif_strategies")
    assert "mapping" not in box.options and "fine-tune" in box.options
    assert any("**mapping** (mapping needs users present in both domains" in c
               for c in texts(at, "caption"))  # fmt: skip


def test_a_time_estimate_is_given_before_starting(loaded_app, finished_runs) -> None:
    from recsys_core.pipeline import typical_seconds
    from ui.progress import duration

    store, _ = finished_runs
    at = open_whatif(loaded_app)
    at.multiselect(key="whatif_strategies").set_value(["fine-tune"])
    at.text_input(key="whatif_values_warm_users").set_value("5, all")
    at.number_input(key="whatif_draws").set_value(2).run()
    typical = typical_seconds(store, ["popularity", "target-only", "fine-tune"])
    total = sum(s * 4 for s in typical.values())
    cap = next(c for c in texts(at, "caption") if "12 fits (2 values × 2 draws" in c)
    assert f"About **{duration(total)}** on this machine" in cap
    assert f"fine-tune: {duration(typical['fine-tune'])} × 4" in cap
    # a strategy never trained with this store: no figure made up for it
    at.multiselect(key="whatif_strategies").set_value(["adapt"]).run()
    cap = next(c for c in texts(at, "caption") if "fits (" in c)
    known = typical["popularity"] * 4 + typical["target-only"] * 4
    assert f"At least **{duration(known)}** on this machine" in cap
    assert "**adapt** never trained with this run store, so not counted" in cap


def test_stop_keeps_the_values_already_computed(loaded_app) -> None:
    at = open_whatif(loaded_app)
    at.text_input(key="whatif_values_warm_users").set_value("5, 10, all")
    at.multiselect(key="whatif_strategies").set_value(["fusion"])
    at.number_input(key="whatif_nboot").set_value(100)
    at.number_input(key="whatif_epochs").set_value(40)  # fusion trains long enough to stop it
    at.number_input(key="whatif_dim").set_value(256)
    at.run()
    at.button(key="whatif_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.get("progress") and at.button(key="whatif_stop").label == "Stop"
    jm = at.session_state[state.JOBS]
    (key,) = jm.task_keys("whatif-", state="running")
    deadline = time.monotonic() + 120
    while "fit 6/9: fusion at warm target users = 10" not in jm.task_progress(key).get("line", ""):
        assert jm.task_state(key)[0] == "running" and time.monotonic() < deadline
        time.sleep(0.01)
    at.button(key="whatif_stop").click().run()
    while jm.task_state(key)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    result = jm.task_result(key)
    done = result["values_done"]
    assert result["complete"] is False and done in (1, 2)  # stopped at or after value 10
    at.run()
    assert not at.exception
    assert any(f"Stopped after {done} of 3 values" in displayed(i.value) for i in at.info)
    pts = next(d.value for d in at.dataframe if "ci_low" in d.value.columns)
    assert set(pts["value"].astype(str)) == ({"5"} if done == 1 else {"5", "10"})
    assert pts["delta"].notna().any()
    assert at.button(key="whatif_go").label == "Compute the full curve"
