"""End to end in a real browser: ``streamlit run app.py`` driven by headless Chromium.

Loads the ML-100K demo, trains two quick strategies (popularity, and target-only with
BPR-MF so the text model is never loaded), checks that the comparison table, an
embedding map (then the UMAP map, appearing by itself) and a user's recommendations are
visible, that a second browser does not see the first one's jobs, and that a broken
upload shows the loader's message with its line. A second test reloads the Train page
during a run (its progress and Cancel come back) and stops the server with a run
training (a clean exit). Screenshots go to ``test-artifacts/`` (gitignored).

Needs Debian's Chromium at /usr/bin/chromium (``make browser-deps``); never runs
``playwright install``. Run with ``pytest -m browser tests/browser``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BROKEN = ROOT / "sample_data" / "broken_ratings.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path_factory: pytest.TempPathFactory, cache: Path | None = None) -> dict:
    """``streamlit run app.py`` on a free port with its own run store; returns once it
    answers /_stcore/health: {"url", "t0", "health_s", "runs", "cache", "log", "proc"}."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (run `make browser-deps`)")
    pytest.importorskip("playwright.sync_api")
    port = free_port()
    runs = tmp_path_factory.mktemp("runs")
    cache = cache or tmp_path_factory.mktemp("cache")
    env = {
        **os.environ,
        "RTL_RUN_STORE": str(runs),
        "RTL_CACHE_DIR": str(cache),
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
            "--server.fileWatcherType", "none",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.terminate()
        log.seek(0)
        pytest.fail("streamlit did not start:\n" + log.read()[-3000:])
    return {
        "url": url, "t0": t0, "health_s": time.perf_counter() - t0, "runs": runs,
        "cache": cache, "log": log, "proc": proc,
    }  # fmt: skip


def stop_server(srv: dict, timeout: float = 60) -> str:
    """SIGTERM (what Ctrl-C or a service manager sends), wait, and return the log."""
    proc = srv["proc"]
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
    log = srv["log"]
    log.flush()
    log.seek(0)
    text = log.read()
    log.close()
    return text


def load_demo_ml100k(page, url: str) -> None:
    """Open the app at ``url`` and load the built-in ML-100K demo on the Data page."""
    page.goto(url)
    page.get_by_text("Built-in demo").first.wait_for()
    idle(page)
    page.locator(".st-key-data_demo_ml100k button").click()
    page.get_by_text("Test users per segment").first.wait_for(timeout=120_000)
    idle(page)


def shot(page, name: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its main block, so the
    viewport is stretched to the content's height for the picture."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(600)  # let plotly finish its transitions
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...['[data-testid=\"stMain\"]', '[data-testid=\"stMainBlockContainer\"]']"
        ".map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))"
    )
    page.set_viewport_size(
        {"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))}
    )
    page.wait_for_timeout(400)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def idle(page, timeout: float = 120_000) -> None:
    """Wait until Streamlit's script run is over (stApp's data-test-script-state)."""
    page.wait_for_timeout(400)
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
        " return a && a.getAttribute('data-test-script-state') !== 'running'; }",
        timeout=timeout,
    )


def goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    idle(page)


def choose(page, key: str, option: str) -> None:
    """Pick an option of the select box with widget key ``key``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(3):  # a rerun that lands while the list is open closes it: retry
        idle(page)
        page.locator(f".st-key-{key} [role='combobox']").click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        raise AssertionError(f"could not choose {option!r} in {key}")
    idle(page)


def test_demo_train_compare_embeddings_users_and_a_broken_upload(server, browser) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)

    # First page: how long after the server process started does it answer?
    t_request = time.perf_counter()
    page.goto(server["url"])
    page.get_by_text("Built-in demo").first.wait_for()
    first_page_s = time.perf_counter() - server["t0"]
    request_s = time.perf_counter() - t_request
    idle(page)
    timings = {
        "server_healthy_s": round(server["health_s"], 2),  # process start -> /_stcore/health
        "first_page_visible_s": round(first_page_s, 2),  # process start -> Data page drawn
        "request_to_visible_s": round(request_s, 2),  # browser asks -> Data page drawn
        "first_page_done_s": round(time.perf_counter() - server["t0"], 2),  # ... script run over
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings))
    assert first_page_s < 30, f"first page took {first_page_s:.1f}s"
    assert page.get_by_text("No data loaded yet").first.is_visible()
    shot(page, "01_data_empty")

    # One click on a demo.
    page.locator(".st-key-data_demo_ml100k button").click()
    page.get_by_text("Test users per segment").first.wait_for(timeout=120_000)
    idle(page)
    assert page.get_by_text("Loaded demo:ml100k").first.is_visible()
    assert page.locator(".js-plotly-plot").count() >= 3
    shot(page, "02_data_demo_loaded")

    # Train two quick strategies: popularity and target-only with BPR-MF (no text model).
    goto(page, "Train")
    assert page.locator(".st-key-train_pick_popularity input").is_checked()
    assert page.locator(".st-key-train_pick_target-only input").is_checked()
    page.get_by_text("Model and training settings").click()
    choose(page, "train_set_model", "bpr-mf")
    choose(page, "train_set_loss", "bpr")
    page.locator(".st-key-train_set_epochs input").fill("3")
    page.locator(".st-key-train_set_epochs input").press("Enter")
    page.locator(".st-key-train_set_dim input").fill("32")
    page.locator(".st-key-train_set_dim input").press("Enter")
    idle(page)
    shot(page, "03_train_form")
    page.locator(".st-key-train_go button").click()
    page.get_by_text("Queue and progress").first.wait_for()
    page.get_by_text("Queued 2 run(s)").first.wait_for()

    # Switch pages while the job runs, then come back: the job is still there.
    goto(page, "Data")
    goto(page, "Train")
    page.get_by_text("popularity + target-only").first.wait_for()
    shot(page, "04_train_running")
    page.get_by_text("NDCG@10 (all users)").nth(1).wait_for(timeout=240_000)
    idle(page)
    shot(page, "05_train_done")

    # A second browser session sees none of the first one's jobs or data.
    other = browser.new_context(viewport={"width": 1280, "height": 800})
    p2 = other.new_page()
    p2.goto(server["url"])
    p2.get_by_text("No data loaded yet").first.wait_for()
    goto(p2, "Train")
    assert p2.get_by_text("No jobs yet").first.is_visible()
    assert p2.get_by_text("popularity + target-only").count() == 0
    # A deep link (a bookmark, or a reload on a page other than the first) opens the
    # page inside the app: Streamlit must not run the page file alone, as it does for a
    # folder named pages/ (then the session state was never set up: a KeyError).
    p2.goto(server["url"].rstrip("/") + "/compare")
    p2.get_by_role("heading", name="Compare", exact=True).first.wait_for()
    idle(p2)
    assert p2.get_by_text("This app has encountered an error").count() == 0
    assert p2.get_by_text("Prepare").first.is_visible()  # the app's own navigation
    other.close()

    # Compare: table, verdict area and charts.
    goto(page, "Compare")
    page.get_by_text("Metrics table").first.wait_for()
    idle(page)
    page.locator(".st-key-compare_table_box [data-testid='stDataFrame']").wait_for()
    page.locator(".st-key-compare_fig_segment .js-plotly-plot").wait_for()
    page.get_by_text("Report (standalone HTML)").first.wait_for()
    shot(page, "06_compare")

    # Embeddings: the target-only run has item vectors -> a map.
    goto(page, "Embeddings")
    page.locator(".st-key-emb_map .js-plotly-plot").wait_for(timeout=120_000)
    page.get_by_text("How far the items moved").first.wait_for()
    idle(page)
    shot(page, "07_embeddings")

    # UMAP in the background: its progress over the PCA map, then the UMAP map appears
    # by itself (a fragment polls the task; nobody clicks).
    page.get_by_role("button", name="Compute UMAP").click()
    page.locator("[data-testid='stProgress']", has_text="UMAP:").first.wait_for()
    assert page.get_by_text("PCA of").first.is_visible()
    shot(page, "07b_embeddings_umap_running")
    page.get_by_text("UMAP of").first.wait_for(timeout=300_000)
    idle(page)
    expect(page.locator("[data-testid='stProgress']", has_text="UMAP:")).to_have_count(0)
    shot(page, "07c_embeddings_umap_done")

    # Users: a warm user's lists side by side.
    goto(page, "Users")
    page.get_by_text("hit(s) in the top").first.wait_for(timeout=60_000)
    idle(page)
    assert page.get_by_text("hit(s) in the top").count() >= 2  # two runs side by side
    assert page.get_by_text("Held out for test").first.is_visible()
    shot(page, "08_users")

    # A broken upload: the loader's message with the file, column and line.
    goto(page, "Data")
    page.get_by_text("Upload your files").first.click()
    page.locator(".st-key-data_up_target_interactions input[type=file]").set_input_files(
        str(BROKEN)
    )
    err = page.get_by_text("line 7").first
    err.wait_for(timeout=60_000)
    idle(page)
    text = page.locator("[data-testid='stAlertContentError']").first.inner_text()
    assert "broken_ratings.csv" in text and "rating" in text and "five" in text
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "09_data_broken_upload")
    ctx.close()


def test_a_reload_during_a_run_brings_back_its_progress_and_cancel(
    server, browser, tmp_path_factory
) -> None:
    """Jobs belong to the browser's user (``?user=`` in the URL), not to a page load: F5
    on Train, or a second tab, finds the queue, the live progress and a working Cancel.
    Then the server is stopped (SIGTERM) with a run training: it stops cleanly."""
    import re

    from playwright.sync_api import expect

    srv = start_server(tmp_path_factory, cache=server["cache"])  # its own server to stop
    try:
        ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        load_demo_ml100k(page, srv["url"])
        assert re.search(r"[?&]user=[A-Za-z0-9_-]{16}", page.url), page.url

        # Two long jobs of target-only (BPR-MF, no text model): the second waits its turn.
        goto(page, "Train")
        page.locator(".st-key-train_pick_popularity label").click()
        idle(page)
        page.get_by_text("Model and training settings").click()
        choose(page, "train_set_model", "bpr-mf")
        choose(page, "train_set_loss", "bpr")
        for key, value in (("epochs", "400"), ("patience", "400"), ("dim", "16")):
            page.locator(f".st-key-train_set_{key} input").fill(value)
            page.locator(f".st-key-train_set_{key} input").press("Enter")
            idle(page)
        for label in ("long one", "long two"):
            page.locator(".st-key-train_label input").fill(label)
            page.locator(".st-key-train_label input").press("Enter")
            idle(page)
            page.locator(".st-key-train_go button").click()
            page.get_by_text("Queued 1 run(s)").first.wait_for()
            idle(page)
        epoch = re.compile(r"epoch \d+/400")
        page.get_by_text(epoch).first.wait_for(timeout=180_000)

        # F5: the scenario is gone with the page load, the jobs are not.
        page.reload()
        page.get_by_role("heading", name="Train", exact=True).first.wait_for()
        idle(page)
        assert page.get_by_text("No data loaded yet").first.is_visible()
        page.get_by_text("long one").first.wait_for()
        bar = page.locator("[data-testid='stProgress']", has_text=epoch).first
        bar.wait_for()
        first = bar.inner_text()
        page.wait_for_timeout(4_000)  # the live panel keeps polling after the reload
        assert (
            page.locator("[data-testid='stProgress']", has_text=epoch).first.inner_text() != first
        )
        assert page.get_by_text("waiting for its turn").first.is_visible()  # long two
        shot(page, "10_train_after_reload")

        # A second tab of the same user sees the same queue.
        tab = ctx.new_page()
        tab.goto(page.url)
        tab.get_by_text("long two").first.wait_for()
        tab.locator(".st-key-train_cancel_job-1 button").wait_for()
        tab.close()

        # Cancel works from the reloaded page; the next job starts.
        page.locator(".st-key-train_cancel_job-1 button").click()
        page.get_by_text("cancelled by the user").first.wait_for(timeout=60_000)
        page.locator(".st-key-train_cancel_job-2 button").wait_for()
        # The run's row says "cancelled" as soon as the store has it; the job itself ends
        # when its worker acknowledges, a poll of the panel later (the CI run of stop 17
        # looked in between). Wait for the button to go rather than sample it once.
        expect(page.locator(".st-key-train_cancel_job-1 button")).to_have_count(0, timeout=30_000)
        page.locator("[data-testid='stProgress']", has_text=epoch).first.wait_for(timeout=120_000)
        shot(page, "11_train_cancelled_after_reload")
        ctx.close()

        # Stopping the server with "long two" training: a clean exit, the run closed.
        log = stop_server(srv)
        assert srv["proc"].returncode == 0, log[-3000:]
        assert "terminate called" not in log, log[-3000:]
        from recsys_core.runs.store import RunStore

        runs = RunStore(srv["runs"]).list_runs()
        two = runs[runs["label"] == "long two"].iloc[0]
        assert two["status"] == "cancelled" and two["error"] == "stopped: the server shut down"
    finally:
        if srv["proc"].poll() is None:
            stop_server(srv, timeout=10)
