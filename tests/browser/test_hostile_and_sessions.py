"""Issue 12 in a real browser: text stays text, and sessions stay apart.

One ``streamlit run app.py`` server, driven by headless Chromium, next to a tiny HTTP
listener on 127.0.0.1 that records every request it gets.

Session A uploads an interactions file and an item table whose titles (and a user id,
and the run's label) carry a Markdown image, HTML ``<img>``/``<iframe>``, a ``<script>``,
a Markdown link and a spreadsheet formula, all pointing at the listener; trains
popularity and EASE (seconds, no text model); then visits every page of the app, opens
the users' lists, downloads the HTML report and the CSVs and opens the report in the
browser. Asserted: the listener got no request, no dialog opened, no element of any
page points at the listener, the hostile strings are shown literally, the CSVs
neutralise the formula.

Session B (a second browser context: another ``?user=``) then visits every page, first
with nothing loaded and then with the same interactions uploaded under the same name
(so its data has A's fingerprint and scenario name, the closest B can come): no page
shows A's upload paths, scenario files, run label, item titles or user histories.

Needs Debian's Chromium at /usr/bin/chromium; run with ``pytest -m browser tests/browser``.
"""

from __future__ import annotations

import csv
import http.server
import io
import re
import threading
from pathlib import Path

import pytest

from tests.browser.test_browser import (
    ARTIFACTS,
    goto,
    idle,
    shot,
)

pytestmark = pytest.mark.browser

PAGES = ("Data", "Train", "Compare", "Embeddings", "Users", "What-if")


class Listener:
    """An HTTP server on 127.0.0.1 that answers 200 to anything and keeps the paths."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                hits.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_OPTIONS = _record

            def log_message(self, *args) -> None:  # quiet
                pass

        self.hits = hits
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def hostile_strings(port: int) -> dict[str, str]:
    base = f"http://127.0.0.1:{port}"
    return {
        "md_image": f"![x]({base}/md.png) Markdown image",
        "img": f"<img src={base}/img.png onerror=alert(1)> tag",
        "script": f"<script>fetch('{base}/js')</script> script",
        "iframe": f"<iframe src={base}/frame></iframe> frame",
        "link": f"[click me]({base}/link) link",
        "formula": "=cmd|' /C calc'!A0",
        "label": f"=cmd|' /C calc'!A0 ![l]({base}/label.png) <img src={base}/label2.png> "
        f'<a href="{base}/a">a</a>',
        "user": f"<img src={base}/user.png>",
        "scenario": f"scn ![s]({base}/scn.png) <img src={base}/scn2.png>",
    }


def write_upload(folder: Path, hostile: dict[str, str]) -> tuple[Path, Path]:
    """40 users x 12 interactions over 24 items; items 0-5 carry the hostile titles and
    are the most popular (they show in histories and in popularity's lists); user 0's id
    is hostile too."""
    titles = [hostile[k] for k in ("md_image", "img", "script", "iframe", "link", "formula")]
    titles += [f"Plain film {i}" for i in range(len(titles), 24)]
    folder.mkdir(parents=True, exist_ok=True)
    inter, items = folder / "interactions.csv", folder / "items.csv"
    with open(inter, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "rating", "timestamp"])
        for u in range(40):
            uid = hostile["user"] if u == 0 else f"u{u:02d}"
            picks = [(u + j) % 6 for j in range(4)] + [6 + (u * 7 + 3 * j) % 18 for j in range(8)]
            for j, i in enumerate(dict.fromkeys(picks)):
                w.writerow([uid, f"i{i:02d}", 1 + (u + j) % 5, 1_600_000_000 + 1000 * u + 60 * j])
    with open(items, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "genres"])
        for i, t in enumerate(titles):
            w.writerow([f"i{i:02d}", t, "Drama|Comedy"])
    return inter, items


@pytest.fixture(scope="module")
def listener():
    srv = Listener()
    yield srv
    srv.close()


def watch(page, dialogs: list[str]) -> None:
    """Record (and dismiss) every alert, confirm or prompt the page opens."""

    def on_dialog(d) -> None:
        dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    page.on("dialog", on_dialog)


def pointing_at(page, port: int) -> list[str]:
    """Elements of the page (and of its same-origin iframes) with an attribute that names
    the listener (src, href, xlink:href of plotly's SVG links, srcdoc, style...; not a
    text input's value, which is the raw text the user typed). Scripts are
    not read: plotly's figures carry the labels as JSON data in them; a script that ran
    would reach the listener or open a dialog."""
    return page.evaluate(
        """port => {
            const out = [];
            const scan = (doc) => {
                for (const el of doc.querySelectorAll('*')) {
                    for (const a of (el.attributes || [])) {
                        const fetches = ['src', 'href', 'xlink:href', 'srcset', 'srcdoc', 'data',
                            'action', 'formaction', 'poster', 'background', 'style'];
                        if (fetches.includes(a.name) && a.value.includes(':' + port))
                            out.push(el.tagName + ' ' + a.name + '=' + a.value);
                    }
                    if (el.tagName === 'IFRAME') {
                        try { if (el.contentDocument) scan(el.contentDocument); } catch (e) {}
                    }
                }
            };
            scan(document);
            return out;
        }""",
        port,
    )


def body_text(page) -> str:
    """What the page shows as text (Markdown, boxes, labels, open menus), without the
    invisible word joiners ui.text.md_escape puts before URLs (they keep the
    autolinker off; the glyphs shown are the same)."""
    return page.locator("body").inner_text().replace("\u2060", "")


def open_options(page, key: str) -> None:
    """Open the option list of the select box or multiselect with widget key ``key``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(4):  # a rerun that lands while the list is open closes it: retry
        idle(page)
        page.locator(f".st-key-{key} input").first.click()
        try:
            page.get_by_role("option").first.wait_for(timeout=5_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    shot(page, f"h_no_options_{key}")
    raise AssertionError(f"the options of {key} never opened")


def upload(page, files: list[tuple[str, Path]], name: str) -> None:
    goto(page, "Data")
    page.get_by_text("Upload your files").first.click()
    idle(page)
    for key, path in files:
        page.locator(f".st-key-{key} input[type=file]").set_input_files(str(path))
        idle(page)
    page.locator(".st-key-data_up_name input").fill(name)
    page.locator(".st-key-data_up_name input").press("Enter")
    idle(page)
    page.locator(".st-key-data_up_go button").click()
    page.get_by_text("Test users per segment").first.wait_for(timeout=120_000)
    idle(page)


def test_hostile_titles_stay_text_and_session_b_sees_nothing_of_a(
    server, browser, listener, tmp_path
) -> None:
    port = listener.port
    hostile = hostile_strings(port)
    inter, items = write_upload(tmp_path / "upload", hostile)
    dialogs: list[str] = []
    shown: dict[str, str] = {}

    # --- Session A: upload, train, visit every page -----------------------------------
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    watch(page, dialogs)
    page.goto(server["url"])
    page.get_by_text("Built-in demo").first.wait_for()
    idle(page)
    upload(
        page,
        [("data_up_target_interactions", inter), ("data_up_target_items", items)],
        hostile["scenario"],
    )
    shown["Data"] = body_text(page)
    shot(page, "h01_data_hostile")
    assert pointing_at(page, port) == []

    goto(page, "Train")
    page.locator(".st-key-train_pick_target-only label").click()  # off: no text model
    idle(page)
    page.locator(".st-key-train_pick_ease label").click()
    idle(page)
    page.locator(".st-key-train_label input").fill(hostile["label"])
    page.locator(".st-key-train_label input").press("Enter")
    idle(page)
    page.locator(".st-key-train_go button").click()
    page.get_by_text("Queued 2 run(s)").first.wait_for()
    page.get_by_text("NDCG@10 (all users)").nth(1).wait_for(timeout=180_000)
    idle(page)
    shown["Train"] = body_text(page)
    shot(page, "h02_train_done")
    assert pointing_at(page, port) == []

    for title in PAGES[2:]:
        goto(page, title)
        page.wait_for_timeout(800)  # charts and fragments settle
        idle(page)
        if title == "Users":
            page.get_by_text("hit(s) in the top").first.wait_for(timeout=60_000)
            idle(page)
            # the new-user box lists every title as an option (dataframes draw on a canvas)
            open_options(page, "users_new_items")
            shown["Users: titles"] = page.get_by_role("listbox").inner_text().replace("\u2060", "")
            page.get_by_role("option", name=hostile["img"], exact=True).click()
            page.keyboard.press("Escape")
            idle(page)
            page.get_by_text("A new user").first.wait_for()
            page.wait_for_timeout(1_000)
            idle(page)
        shown[title] = body_text(page)
        assert page.get_by_text("This app has encountered an error").count() == 0, title
        shot(page, f"h03_{title.lower()}")
        found = pointing_at(page, port)
        assert found == [], (title, found)

    # Compare's downloads: the CSVs neutralise the formula, the report opens inertly.
    goto(page, "Compare")
    page.get_by_text("Report (standalone HTML)").first.wait_for()
    with page.expect_download() as dl:
        page.locator(".st-key-compare_csv button").click()
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert {r["label"] for r in rows} == {"'" + hostile["label"]}  # no formula, text kept
    cells = [v for r in rows for v in r.values() if "cmd|" in v]
    assert cells and all(v.startswith("'=cmd|") for v in cells)
    with page.expect_download() as dl:
        page.locator(".st-key-compare_html button").click()
    report = ARTIFACTS / "h_report.html"
    ARTIFACTS.mkdir(exist_ok=True)
    dl.value.save_as(report)
    page.goto(report.as_uri())
    page.wait_for_timeout(2_000)
    shown["report"] = body_text(page)
    found = pointing_at(page, port)
    assert found == [], ("report", found, listener.hits)
    page.screenshot(path=str(ARTIFACTS / "h04_report.png"), full_page=True)

    uploads = sorted((server["cache"] / "uploads").glob("*/*"))
    assert uploads, "A's uploads were not written under the cache"
    ctx.close()

    assert listener.hits == [], listener.hits
    assert dialogs == [], dialogs
    for key in ("md_image", "img", "script", "iframe", "link", "formula"):
        assert hostile[key] in shown["Users: titles"], key
    assert f"User {hostile['user']}" in shown["Users"]
    assert hostile["label"] in shown["Users"] and hostile["label"] in shown["report"]
    assert f"Loaded {hostile['scenario']} from your files" in shown["Data"]
    assert hostile["scenario"] in shown["Compare"] and hostile["scenario"] in shown["report"]

    # --- Session B: another user; sees nothing of A's ---------------------------------
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    p2 = other.new_page()
    p2.set_default_timeout(60_000)
    watch(p2, dialogs)
    p2.goto(server["url"])  # a new context: a new ?user= token
    p2.get_by_text("No data loaded yet").first.wait_for()
    idle(p2)
    secrets = [
        hostile["label"], hostile["scenario"], hostile["md_image"], "Plain film", hostile["user"],
        *(str(p) for p in uploads), *(p.parent.name for p in uploads),
    ]  # fmt: skip

    def check_b(stage: str) -> None:
        for title in PAGES:
            goto(p2, title)
            p2.wait_for_timeout(300)
            idle(p2)
            html, text = p2.content(), body_text(p2)
            leaked = [s for s in secrets if s in html or s in text]
            if leaked:
                shot(p2, f"h05_b_{stage}_{title.lower()}")
            assert leaked == [], (stage, title, leaked)
            assert p2.get_by_role("button", name=re.compile("with the runs' split")).count() == 0

    check_b("empty")
    # The same interactions, no item table, under A's scenario name.
    upload(p2, [("data_up_target_interactions", inter)], hostile["scenario"])
    secrets.remove(hostile["scenario"])  # B's own name now, and its own user ids
    secrets.remove(hostile["user"])
    check_b("same-data")
    goto(p2, "Users")
    assert p2.get_by_text("No runs yet").first.is_visible()
    other.close()
    assert listener.hits == [], listener.hits
    assert dialogs == [], dialogs
