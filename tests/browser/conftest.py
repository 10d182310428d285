"""What every browser test module shares: its own streamlit server and one Chromium."""

from __future__ import annotations

import pytest

from tests.browser.test_browser import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(tmp_path_factory)
    yield srv
    stop_server(srv, timeout=10)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
