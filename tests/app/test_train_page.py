"""Train page: strategies with explanations and options, background jobs with live state,
cancel, the what-if grid, and friendly errors."""

from __future__ import annotations

from recsys_core.runs.jobs import JobManager
from recsys_core.runs.store import RunStore
from recsys_core.strategies.registry import STRATEGIES
from tests.app.conftest import displayed, texts
from ui import state


def open_train(at):
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_without_data_the_page_says_so(app) -> None:
    open_train(app)
    assert any("No data loaded yet" in t for t in texts(app, "markdown"))
    assert not [b for b in app.button if b.key == "train_go"]
    assert any(c.startswith("No jobs yet") for c in texts(app, "caption"))


def test_strategies_are_listed_with_their_summary_and_availability(loaded_app) -> None:
    at = open_train(loaded_app)
    for name, cls in STRATEGIES.items():
        box = at.checkbox(key=f"train_pick_{name}")
        assert not box.disabled, name  # the sample has a source and item text
        assert cls.summary in texts(at, "caption")
    assert [n for n in STRATEGIES if at.checkbox(key=f"train_pick_{n}").value] == [
        "popularity",
        "target-only",
        "fine-tune",
    ]
    # fine-tune is a transfer strategy: the suite adds the baselines not picked
    assert at.button(key="train_go").label == "Train 3 strategies + up to 4 suite baselines"
    # fine-tune's options, prefilled with the config defaults, help from the field docs.
    freeze = at.selectbox(key="train_opt_fine-tune_freeze")
    assert freeze.value == "none" and freeze.options == ["none", "text", "items", "text+items"]
    assert "parts kept at their source values" in freeze.help
    assert at.number_input(key="train_opt_fine-tune_l2sp").value == 0.0
    assert at.selectbox(key="train_set_model").value == "two-tower"
    # the model settings' help is ModelSettings's own metadata, not a page-side copy
    from recsys_core.strategies.base import ModelSettings, field_help

    helps = field_help(ModelSettings)
    assert at.selectbox(key="train_set_model").help == helps["model"]
    assert at.number_input(key="train_set_dim").help == helps["dim"]
    assert at.number_input(key="train_set_history_len").help == helps["history_len"]


def test_strategies_that_need_a_source_are_disabled_without_one(app, scenario) -> None:
    from dataclasses import replace

    scn = scenario[0]
    single = replace(scn, source=None, links=None, source_train=scn.source_train.iloc[0:0])
    app.session_state[state.SCENARIO] = single
    open_train(app)
    for name in ("fine-tune", "distill", "adapt"):
        box = app.checkbox(key=f"train_pick_{name}")
        assert box.disabled and not box.value
        assert "needs a source domain" in box.label
    assert app.button(key="train_go").label == "Train 2 strategies"


def test_a_job_runs_in_the_background_and_lands_in_the_store(loaded_app) -> None:
    at = open_train(loaded_app)
    at.checkbox(key="train_pick_target-only").uncheck()
    at.checkbox(key="train_pick_fine-tune").uncheck()
    at.select_slider(key="train_nboot").set_value(100)
    at.text_input(key="train_label").input("smoke")
    at.run()
    at.button(key="train_go").click().run()
    assert not at.exception and not at.error
    assert any("Queued 1 run(s)" in displayed(s.value) for s in at.success)
    jm: JobManager = at.session_state[state.JOBS]
    (job,) = jm.jobs()
    assert job.label == "smoke" and job.strategies == ("popularity",)
    assert jm.wait(timeout=60)
    at.run()
    run = RunStore(at.session_state[state.STORE_ROOT]).get_run(job.run_ids[0])
    assert run["status"] == "done" and run["config"]["n_boot"] == 100
    assert run["config"]["spec"]["name"] == "sample"
    # The panel shows the job, the run's state and its headline metric from the store.
    assert any("**smoke**" in m for m in texts(at, "markdown"))
    caption = [c for c in texts(at, "caption") if c.startswith("NDCG@10 (all users)")]
    ndcg = next(
        m
        for m in run["metrics"]
        if m["segment"] == "all" and m["metric"] == "ndcg" and m["k"] == 10
    )
    assert caption and f"**{ndcg['value']:.4f}**" in caption[0]
    assert "job(s) queued or running" not in " ".join(texts(at.sidebar, "caption"))


def test_invalid_options_are_reported_not_raised(loaded_app, monkeypatch) -> None:
    at = loaded_app
    jm = JobManager("test")
    monkeypatch.setattr(jm, "_ensure_worker", lambda: None)  # queue only, train nothing
    at.session_state[state.JOBS] = jm
    open_train(at)
    at.checkbox(key="train_pick_distill").check().run()
    teacher = at.text_input(key="train_opt_distill_teacher_dim")
    assert teacher.value == "" and teacher.placeholder == "automatic"  # None: the run's dim
    teacher.input("64").run()
    at.number_input(key="train_opt_distill_student_dim").set_value(128).run()
    at.button(key="train_go").click().run()
    assert not at.exception
    assert any("student_dim <= teacher_dim" in displayed(e.value) for e in at.error)
    assert jm.jobs() == []
    # Fixed: the options reach the run's config with their types (teacher_dim an int).
    at.number_input(key="train_opt_distill_student_dim").set_value(8).run()
    at.button(key="train_go").click().run()
    assert not at.error
    (job,) = jm.jobs()
    store = RunStore(at.session_state[state.STORE_ROOT])
    cfg = store.get_run(job.run_ids[job.strategies.index("distill")])["config"]["options"]
    assert (
        cfg["teacher_dim"] == 64 and isinstance(cfg["teacher_dim"], int) and cfg["student_dim"] == 8
    )
    jm.cancel(job.job_id)


def test_what_if_grid_queues_one_run_per_value_and_cancel_works(loaded_app, monkeypatch) -> None:
    at = loaded_app
    jm = JobManager("test")
    monkeypatch.setattr(jm, "_ensure_worker", lambda: None)  # keep the queue still
    at.session_state[state.JOBS] = jm
    open_train(at)
    at.selectbox(key="train_grid_strategy").set_value("fine-tune").run()
    at.selectbox(key="train_grid_option").set_value("freeze").run()
    values = at.multiselect(key="train_grid_values_fine-tune_freeze")
    assert values.value == ["none", "text", "items"]
    at.button(key="train_grid_go").click().run()
    assert not at.exception and not at.error
    jobs = jm.jobs()[::-1]
    assert [j.label for j in jobs] == [
        "fine-tune · freeze=none",
        "fine-tune · freeze=text",
        "fine-tune · freeze=items",
    ]
    store = RunStore(at.session_state[state.STORE_ROOT])
    runs = [store.get_run(j.run_ids[-1]) for j in jobs]
    assert [r["config"]["options"]["freeze"] for r in runs] == ["none", "text", "items"]
    assert {r["status"] for r in runs} == {"queued"}
    # The baseline suite is queued once, with the first value; the others reuse it.
    suite = jobs[0].strategies[:-1]
    assert "ease" in suite and "popularity" in suite
    assert [len(j.run_ids) for j in jobs] == [len(suite) + 1, 1, 1]
    # The queue is on the page, each with a Cancel button.
    n = len(suite) + 3
    assert texts(at, "markdown").count(":gray-badge[queued]") == n
    assert [p.proto.text for p in at.get("progress")] == ["waiting for its turn"] * n
    at.button(key=f"train_cancel_{jobs[0].job_id}").click().run()
    assert store.get_run(jobs[0].run_ids[-1])["status"] == "cancelled"
    assert store.get_run(jobs[1].run_ids[0])["status"] == "queued"
    for j in jobs[1:]:
        jm.cancel(j.job_id)


def test_jobs_belong_to_the_browser_user_and_survive_a_reload(env_dirs, scenario) -> None:
    """A reload is a new session with the same ``?user=`` in the URL: it finds the
    queue and can cancel; another user finds nothing. The owner is on the runs."""
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import APP, quick_request

    scn, spec, split = scenario
    first = AppTest.from_file(APP, default_timeout=60)
    first.run()
    owner = first.session_state[state.OWNER]
    assert first.query_params[state.OWNER_PARAM] == owner  # written to the URL
    jm: JobManager = first.session_state[state.JOBS]
    assert jm is state.job_registry().manager(owner) and jm.owner == owner
    jm._ensure_worker = lambda: None  # keep the job queued: nothing trains
    job = jm.submit(spec, split, "before-target", quick_request("popularity"), env_dirs[0],
                    scenario=scn)  # fmt: skip
    store = RunStore(env_dirs[0])
    run_id = jm.get(job).run_ids[0]
    assert store.get_run(run_id)["owner"] == owner
    assert store.list_runs(owner=owner)["run_id"].tolist() == [run_id]

    # F5: a new session, same URL. No scenario any more, but the job, its run and Cancel.
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params[state.OWNER_PARAM] = owner
    again.run()
    again.switch_page("views/train.py").run()
    assert not again.exception, [e.message for e in again.exception]
    assert again.session_state[state.OWNER] == owner
    assert any("No data loaded yet" in t for t in texts(again, "markdown"))
    assert any(
        c.startswith("Your jobs are below: they kept running") for c in texts(again, "caption")
    )
    assert any("**popularity**" in m for m in texts(again, "markdown"))
    assert any(p.proto.text == "waiting for its turn" for p in again.get("progress"))
    again.button(key=f"train_cancel_{job}").click().run()
    assert jm.get(job).state == "cancelled"
    assert store.get_run(run_id)["status"] == "cancelled"
    assert not [b for b in again.button if b.key == f"train_cancel_{job}"]

    # Another browser (no token, or a different one) sees none of it.
    other = AppTest.from_file(APP, default_timeout=60)
    other.query_params[state.OWNER_PARAM] = "someone-else-entirely"
    other.run()
    other.switch_page("views/train.py").run()
    assert other.session_state[state.OWNER] == "someone-else-entirely"
    assert any(c.startswith("No jobs yet") for c in texts(other, "caption"))
    # A malformed token is replaced, never used as a key.
    bad = AppTest.from_file(APP, default_timeout=60)
    bad.query_params[state.OWNER_PARAM] = "../../etc"
    bad.run()
    assert bad.session_state[state.OWNER] != "../../etc"
    assert bad.query_params[state.OWNER_PARAM] == bad.session_state[state.OWNER]


def test_live_panel_shows_each_step_with_time_left(loaded_app, monkeypatch) -> None:
    """Text encoding is a step with its own bar and an estimate; training says "at most"
    (early stopping may end it sooner); loading the text model says so."""
    from ui.progress import duration, time_left

    at = loaded_app
    jm = JobManager("test")
    monkeypatch.setattr(jm, "_ensure_worker", lambda: None)
    at.session_state[state.JOBS] = jm
    open_train(at)
    at.checkbox(key="train_pick_popularity").uncheck()
    at.checkbox(key="train_pick_fine-tune").uncheck()
    at.run()
    at.button(key="train_go").click().run()
    (job,) = jm.jobs()
    (rid,) = job.run_ids
    store = RunStore(at.session_state[state.STORE_ROOT])
    store.set_status(rid, "running")

    def bar_text() -> tuple[float, str]:
        at.run()
        (bar,) = [p for p in at.get("progress") if p.proto.text != "waiting for its turn"]
        return bar.proto.value, bar.proto.text

    store.heartbeat(rid, {"stage": "encode text", "fraction": 0.0, "seconds": 0.0})
    assert bar_text() == (0, "encode text · loading the text model")
    store.heartbeat(rid, {"stage": "encode text", "fraction": 0.25, "seconds": 30.0})
    assert bar_text() == (25, "encode text · 30 s · about 1.5 min left")
    store.heartbeat(
        rid,
        {"stage": "pretrain source", "epoch": 1, "epochs": 3, "loss": 0.5, "seconds": 100.0,
         "fraction": 0.5},
    )  # fmt: skip
    assert bar_text() == (
        50,
        "pretrain source · epoch 1/3 · loss 0.5000 · 1.7 min · at most 1.7 min left",
    )
    jm.cancel(job.job_id)
    # the wording itself
    assert [duration(s) for s in (12, 150, 900, 4000)] == ["12 s", "2.5 min", "15 min", "1 h 6 min"]
    assert (
        time_left(0.5, 0.5) is None and time_left(10, None) is None and time_left(10, 1.0) is None
    )
