"""summarize / format_summary on a hand-checked tiny domain."""

from __future__ import annotations

import json

import pytest

from recsys_core.data.loaders import load_domain
from recsys_core.data.summary import format_summary, summarize

# u1: 3 items, u2: 2 items, u3: 1 item; a: 3 users, b: 2, c: 1.
INTER = (
    b"user,item,rating,date\n"
    b"u1,a,5,2021-01-01\nu1,b,3,2021-01-02\nu1,c,1,2021-02-03\n"
    b"u2,a,4,2021-01-05\nu2,b,2,2021-01-06\nu3,a,3,2021-03-15T23:59:59Z\n"
)


def test_summarize_counts_and_distributions() -> None:
    s = summarize(load_domain(INTER, b"item_id,title\na,Alpha\nb,Beta\nc,Gamma\n", name="t"))
    assert (s["rows"], s["users"], s["items"]) == (6, 3, 3)
    assert s["density"] == pytest.approx(6 / 9)
    assert s["rating"] == {"min": 1.0, "max": 5.0, "mean": 3.0}
    assert s["time_span"] == {"first": "2021-01-01", "last": "2021-03-15"}
    assert s["per_user"] == {
        "min": 1.0,
        "p25": 1.5,
        "median": 2.0,
        "p75": 2.5,
        "p90": 2.8,
        "max": 3.0,
        "mean": 2.0,
    }
    assert s["per_item"]["median"] == 2.0 and s["per_item"]["max"] == 3.0
    assert s["item_table_rows"] == 3 and s["user_table_rows"] is None
    assert s["text_fields"] == ["title"]
    assert s["warnings"] == [
        "1 of 3 users has a single interaction (too few to both train and test on) (e.g. u3)",
        "1 of 3 items has a single interaction (too few to both train and test on) (e.g. c)",
    ]
    json.dumps(s)  # JSON-able for the app and the run store


def test_summary_without_ratings_or_times() -> None:
    s = summarize(load_domain(b"user,item\nu1,a\nu2,a\nu1,b\nu2,b\n"))
    assert s["rating"] is None and s["time_span"] is None and s["warnings"] == []
    text = format_summary(s)
    assert "ratings       none (implicit feedback)" in text
    assert "time span     no timestamps" in text
    assert "warnings      none" in text


def test_format_summary_block() -> None:
    dom = load_domain(INTER, name="target")
    text = format_summary(summarize(dom))
    lines = text.splitlines()
    assert lines[0] == "Domain 'target' (interactions file)"
    assert lines[1] == "  interactions  6   users 3   items 3   density 66.67%"
    assert lines[2] == "  ratings       1 to 5, mean 3.00"
    assert lines[3] == "  time span     2021-01-01 to 2021-03-15"
    assert lines[4] == "  per user      min 1, median 2, p90 2.80, max 3, mean 2.0"
    assert lines[-3] == "  warnings (2):"
    assert lines[-1].startswith("    - 1 of 3 items has a single interaction")
