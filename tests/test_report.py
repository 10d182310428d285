"""The comparison report: readable segment names, provenance, 4-decimal values, a legend
that names the table's markers, and escaping of everything a user typed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd

from recsys_core import __version__
from recsys_core.report import (
    MARK_BASELINE,
    MARK_BETTER,
    MARK_WORSE,
    readable_verdict,
    render_html_report,
    report_provenance,
    segment_name,
    segment_title,
    significance_mark,
)


def test_segment_names():
    assert segment_name("cold_users_k0") == "cold users, k = 0"
    assert segment_name("cold_users_k12") == "cold users, k = 12"
    assert segment_name("warm_users") == "warm users"
    assert segment_name("all") == "all users"
    assert segment_name("cold_items") == "cold items"
    assert segment_name("some_new_segment") == "some new segment"
    assert segment_title("cold_users_k3") == "Cold users, k = 3"
    assert readable_verdict("cold_users_k3: no gain.") == "Cold users, k = 3: no gain."
    assert readable_verdict("plain sentence: kept") == "plain sentence: kept"


def test_significance_marks():
    assert significance_mark(True, True, 0.3) == MARK_BASELINE
    assert significance_mark(False, True, 0.3) == MARK_BETTER
    assert significance_mark(False, True, -0.3) == MARK_WORSE
    assert significance_mark(False, False, 0.3) == ""


def runs() -> list[dict]:
    base = {
        "scenario": "demo:<b>",
        "data_fingerprint": "abc123",
        "finished_at": datetime(2026, 3, 4, 5, 6, tzinfo=UTC),
    }
    split = {"protocol": "cold-start", "cold_user_frac": 0.1, "cold_ks": [0, 3], "seed": 0}
    return [
        {
            **base,
            "run_id": "r-pop",
            "strategy": "popularity",
            "config": {"split": split, "source_history": "before-target", "options": {}},
        },
        {
            **base,
            "run_id": "r-ft",
            "strategy": "fine-tune",
            "config": {
                "split": split,
                "source_history": "before-target",
                "options": {"l2sp": 0.01, "freeze": "none"},
                "settings": {"dim": 64, "epochs": 40},
                "device": "cpu",
                "n_boot": 200,
            },
        },
    ]


def test_provenance_names_runs_settings_split_data_version_and_date():
    p = report_provenance(
        runs(),
        {"r-ft": "fine-tune <script>"},
        baseline="r-pop",
        now=datetime(2026, 5, 1, tzinfo=UTC),
    )
    facts = dict(p.facts)
    assert facts["Product"] == f"Recsys Transfer Lab {__version__}"
    assert facts["Date"] == "2026-05-01 00:00 UTC"
    assert facts["Data fingerprint"] == "abc123"
    assert facts["Split settings"] == (
        'cold_ks = [0, 3]; cold_user_frac = 0.1; protocol = "cold-start"; seed = 0'
    )
    assert facts["Source history"] == "before-target"
    assert facts["Baseline"] == "popularity (run r-pop)"
    assert list(p.runs["Run id"]) == ["r-pop", "r-ft"]
    ft = p.runs.iloc[1]
    assert ft["Strategy options"] == 'freeze = "none"; l2sp = 0.01'
    assert ft["Model settings"] == "dim = 64; epochs = 40"
    assert ft["Finished"] == "2026-03-04 05:06 UTC" and ft["Bootstrap samples"] == "200"
    # runs on two data versions say so instead of showing one
    other = runs()
    other[1]["data_fingerprint"] = "def456"
    assert dict(report_provenance(other).facts)["Data fingerprint"] == (
        "differs per run: abc123 | def456"
    )


def test_html_report_provenance_decimals_legend_and_escaping():
    table = pd.DataFrame(
        {
            "Segment": [segment_title("cold_users_k0"), segment_title("cold_users_k0")],
            "Run": ["popularity", "<img src=x onerror=alert(1)>"],
            "Value": [0.123456789, 0.2],
            "Significant": [MARK_BASELINE, MARK_BETTER],
        }
    )
    prov = report_provenance(runs(), {"r-ft": "fine-tune <script>"}, baseline="r-pop")
    page = render_html_report(
        "Transfer report: <x>",
        "NDCG@10",
        table,
        ["cold_users_k0: fine-tune <b>beats</b> the baseline."],
        [("Sizes", "<div id='fig'></div>")],
        prov,
    )
    assert page.startswith("<!doctype html>")
    for raw in ("r-pop", "r-ft", "abc123", "before-target", "l2sp = 0.01", __version__):
        assert raw in page
    assert "demo:&lt;b&gt;" in page and "fine-tune &lt;script&gt;" in page
    assert "<td>Cold users, k = 0</td>" in page and "cold_users_k0" not in page
    assert "<td>0.1235</td>" in page and "<td>0.2000</td>" in page
    assert "0.123456" not in page
    # hostile labels and verdict words are escaped; the figure snippet is kept as HTML
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>" not in page and "<b>beats</b>" not in page
    assert "<div id='fig'></div>" in page
    # the legend names exactly the markers in the table, and no "*"
    legend = re.search(r'<ul class="legend">(.*?)</ul>', page).group(1)
    assert f"<b>{MARK_BASELINE}</b>" in legend and f"<b>{MARK_BETTER}</b>" in legend
    assert MARK_WORSE not in legend and "no mark" not in legend  # neither in the table
    assert "* marks" not in page
