"""In a real browser: a run trained in the app gets its UMAP map computed in the
background after its job, so the Embeddings page draws UMAP with no click (issue 13).

Loads the ML-100K demo, trains target-only with BPR-MF (plus popularity, which keeps no
vectors), waits until the map file is in the run store (``projections/``), then opens
the Embeddings page and times navigation -> UMAP figure. The time is printed with the
load average and written to ``test-artifacts/embeddings_timing.json``; it is a figure,
not asserted (the lead measures it on an idle machine).

Starts streamlit the way ``test_browser.py`` does, with background maps on (the test
suite turns them off elsewhere: ``tests/conftest.py``). Run with
``pytest -m browser tests/browser/test_embeddings_cache.py -s``.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.browser.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    choose,
    goto,
    idle,
    load_demo_ml100k,
    shot,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def maps_server(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RTL_PRECOMPUTE_MAPS", "1")
        srv = start_server(tmp_path_factory)
    yield srv
    stop_server(srv, timeout=30)


def wait_for_map_file(runs, timeout: float) -> float:
    """Seconds until a UMAP map is cached in the run store (fails after ``timeout``)."""
    t0 = time.monotonic()
    while not list((runs / "projections").glob("umap-*.safetensors")):
        assert time.monotonic() - t0 < timeout, "no UMAP map was cached after the job"
        time.sleep(1.0)
    return time.monotonic() - t0


def test_a_finished_run_opens_on_its_umap_map_without_a_click(maps_server) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        load_demo_ml100k(page, maps_server["url"])

        # Train popularity and target-only with BPR-MF (no text model), as test_browser.
        goto(page, "Train")
        page.get_by_text("Model and training settings").click()
        choose(page, "train_set_model", "bpr-mf")
        choose(page, "train_set_loss", "bpr")
        for key, value in (("epochs", "3"), ("dim", "32")):
            page.locator(f".st-key-train_set_{key} input").fill(value)
            page.locator(f".st-key-train_set_{key} input").press("Enter")
            idle(page)
        page.locator(".st-key-train_go button").click()
        page.get_by_text("Queued 2 run(s)").first.wait_for()
        page.get_by_text("NDCG@10 (all users)").nth(1).wait_for(timeout=240_000)
        idle(page)

        # The job's follow-up task fits the map; nobody asked for it.
        map_s = wait_for_map_file(maps_server["runs"], timeout=600)

        # Navigation -> UMAP figure, with no click on the page.
        t0 = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"] a', has_text="Embeddings").first.click()
        page.locator(".st-key-emb_map .js-plotly-plot").wait_for(timeout=60_000)
        page.get_by_text("UMAP of").first.wait_for(timeout=60_000)
        nav_s = time.perf_counter() - t0
        idle(page)
        assert page.get_by_role("button", name="Compute UMAP").count() == 0
        assert page.locator("[data-testid='stProgress']", has_text="UMAP:").count() == 0
        assert page.get_by_text("PCA of").count() == 0
        shot(page, "20_embeddings_umap_from_cache")

        # A fresh page load straight onto the Embeddings page (a new session of the same
        # user): the map comes from the run store again.
        t1 = time.perf_counter()
        page.goto(page.url)
        page.get_by_text("UMAP of").first.wait_for(timeout=60_000)
        page.locator(".st-key-emb_map .js-plotly-plot").wait_for(timeout=60_000)
        reload_s = time.perf_counter() - t1
        ctx.close()
        browser.close()

    figures = {
        "job_end_to_map_cached_s": round(map_s, 2),
        "navigation_to_umap_figure_s": round(nav_s, 2),
        "page_load_to_umap_figure_s": round(reload_s, 2),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "embeddings_timing.json").write_text(json.dumps(figures))
    print("\nEmbeddings page from cache:", json.dumps(figures))
