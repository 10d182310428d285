"""The comparison report: readable segment names, provenance and the standalone HTML page.

One home for what a reader of an exported report must be able to check: which runs
(ids, strategy options, model settings), on which data (fingerprint, split settings,
source history), made by which version of this product and when. The app's Compare page
and any other front end (the CLI) share these functions, so a segment is called
"cold users, k = 3" everywhere and the legend under a table names the markers the table
actually uses.

Everything that comes from a user (titles, run labels, scenario names) is escaped with
:func:`html.escape`; only the plotly figure snippets passed in are trusted HTML.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recsys_core import __version__

PRODUCT = "Recsys Transfer Lab"

SEGMENT_NAMES: dict[str, str] = {
    "all": "all users",
    "warm_users": "warm users",
    "cold_items": "cold items",
    "cold_catalogue": "cold items among cold items",
}

_COLD_K = re.compile(r"cold_users_k(\d+)")

MARK_BETTER = "▲ better"
MARK_WORSE = "▼ worse"
MARK_BASELINE = "baseline"
MARK_LEGEND: dict[str, str] = {
    MARK_BETTER: "better than the baseline: the paired 95% interval of the delta is above zero",
    MARK_WORSE: "worse than the baseline: the paired 95% interval of the delta is below zero",
    MARK_BASELINE: "the run every delta in its segment is measured against",
}
"""Every marker a comparison table can carry, with its meaning (in table order)."""

NO_MARK = "no mark"
"""How the legend names a row without a marker."""

VALUE_DECIMALS = 4


def segment_name(segment: str) -> str:
    """A readable name for an evaluation segment key.

    'cold_users_k0' -> 'cold users, k = 0'; 'warm_users' -> 'warm users'; 'all' -> 'all
    users'; 'cold_items' -> 'cold items'; anything else with its underscores as spaces.
    """
    if segment in SEGMENT_NAMES:
        return SEGMENT_NAMES[segment]
    m = _COLD_K.fullmatch(segment)
    if m:
        return f"cold users, k = {m.group(1)}"
    return segment.replace("_", " ")


def segment_title(segment: str) -> str:
    """:func:`segment_name` with a capital first letter, for headings and table cells."""
    name = segment_name(segment)
    return name[:1].upper() + name[1:]


def significance_mark(is_baseline: bool, significant: bool, delta: float) -> str:
    """The marker of one (run, segment) row of a comparison table ("" when the interval
    of the delta includes zero)."""
    if is_baseline:
        return MARK_BASELINE
    if not significant:
        return ""
    return MARK_BETTER if delta > 0 else MARK_WORSE


def readable_verdict(line: str) -> str:
    """'cold_users_k3: sentence' -> 'Cold users, k = 3: sentence' (the sentence kept)."""
    seg, sep, rest = line.partition(": ")
    return f"{segment_title(seg)}: {rest}" if sep and " " not in seg else line


def comparison_view(table: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """The comparison table as shown and exported: one row per (segment, run).

    table: :func:`recsys_core.compare.compare_runs`'s frame (segment, run_id, baseline,
    value, ci_low, ci_high, delta, delta_low, delta_high, significant). Returns columns
    Segment (readable), Run (``names``), Value (float), 95% CI, Δ vs baseline, Δ 95% CI
    (text, 4 decimals) and Significant (a marker of :data:`MARK_LEGEND` or ""), segment
    by segment with the baseline first.
    """
    seg_order = {s: i for i, s in enumerate(dict.fromkeys(table["segment"]))}
    table = table.assign(
        _s=table["segment"].map(seg_order), _b=(table["run_id"] != table["baseline"]).astype(int)
    ).sort_values(["_s", "_b"], kind="stable")
    is_base = (table["run_id"] == table["baseline"]).to_numpy()
    return pd.DataFrame(
        {
            "Segment": table["segment"].map(segment_title),
            "Run": table["run_id"].map(names),
            "Value": table["value"],
            "95% CI": [
                f"[{lo:.4f}, {hi:.4f}]" for lo, hi in zip(table["ci_low"], table["ci_high"])
            ],
            "Δ vs baseline": [
                "" if b or not np.isfinite(d) else f"{d:+.4f}"
                for b, d in zip(is_base, table["delta"])
            ],
            "Δ 95% CI": [
                "" if b or not np.isfinite(lo) else f"[{lo:+.4f}, {hi:+.4f}]"
                for b, lo, hi in zip(is_base, table["delta_low"], table["delta_high"])
            ],
            "Significant": [
                significance_mark(b, bool(s), d)
                for b, s, d in zip(is_base, table["significant"], table["delta"])
            ],
        }
    )


# --------------------------------------------------------------------------- provenance


def _settings_text(d: Mapping[str, Any] | None) -> str:
    """{'dim': 64, 'lr': 0.01} -> 'dim = 64; lr = 0.01' (keys sorted, values as JSON)."""
    if not d:
        return "(defaults)"
    return "; ".join(
        f"{k} = {json.dumps(v, default=str, ensure_ascii=False)}" for k, v in sorted(d.items())
    )


def _when(t: Any) -> str:
    if t is None or t == "":
        return ""
    if isinstance(t, datetime):
        return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(t)


@dataclass(frozen=True)
class Provenance:
    """What a report was made from.

    Attributes:
        facts: (label, value) pairs about the whole comparison: product and version,
            date, scenario, data fingerprint(s), split settings, source history, baseline.
        runs: one row per run: name, run id, strategy, finished, strategy options, model
            settings, device, bootstrap samples, data fingerprint.
    """

    facts: list[tuple[str, str]]
    runs: pd.DataFrame = field(compare=False)


def report_provenance(
    runs: Sequence[Mapping[str, Any]],
    names: Mapping[str, str] | None = None,
    *,
    baseline: str | None = None,
    now: datetime | None = None,
) -> Provenance:
    """Provenance of a comparison of stored runs (dicts as ``RunStore.get_run`` returns).

    ``names``: run id -> display name (defaults to the strategy); ``baseline``: the run id
    deltas are measured against; ``now``: the report's date (defaults to the current UTC
    time).
    """
    given = dict(names or {})
    names = {r["run_id"]: given.get(r["run_id"]) or r.get("strategy") or r["run_id"] for r in runs}
    configs = [r.get("config") or {} for r in runs]

    def one_or_each(values: list[str]) -> str:
        distinct = list(dict.fromkeys(v for v in values if v))
        if not distinct:
            return "(unknown)"
        return distinct[0] if len(distinct) == 1 else "differs per run: " + " | ".join(distinct)

    facts = [
        ("Product", f"{PRODUCT} {__version__}"),
        ("Date", _when(now or datetime.now(UTC))),
        ("Scenario", one_or_each([str(r.get("scenario") or "") for r in runs])),
        ("Data fingerprint", one_or_each([str(r.get("data_fingerprint") or "") for r in runs])),
        ("Split settings", one_or_each([_settings_text(c.get("split")) for c in configs])),
        ("Source history", one_or_each([str(c.get("source_history") or "") for c in configs])),
    ]
    if baseline is not None:
        facts.append(("Baseline", f"{names.get(baseline, baseline)} (run {baseline})"))
    else:
        facts.append(("Baseline", "the best baseline of each segment"))
    rows = [
        {
            "Run": names[r["run_id"]],
            "Run id": r["run_id"],
            "Strategy": r.get("strategy") or "",
            "Finished": _when(r.get("finished_at")),
            "Strategy options": _settings_text(c.get("options")),
            "Model settings": _settings_text(c.get("settings")),
            "Device": str(c.get("device") or ""),
            "Bootstrap samples": str(c.get("n_boot") or ""),
            "Data fingerprint": str(r.get("data_fingerprint") or ""),
        }
        for r, c in zip(runs, configs)
    ]
    return Provenance(facts=facts, runs=pd.DataFrame(rows))


# --------------------------------------------------------------------------- HTML


def _fmt(v: Any) -> str:
    """Floats to VALUE_DECIMALS decimals, everything else as text ('' for missing)."""
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{v:.{VALUE_DECIMALS}f}"
    return str(v)


def _table(df: pd.DataFrame, cls: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def legend_items(table: pd.DataFrame, column: str = "Significant") -> list[tuple[str, str]]:
    """(marker, meaning) for each marker that occurs in ``table[column]``, in legend order."""
    used = set(table[column].astype(str)) if column in table.columns else set()
    items = [(m, meaning) for m, meaning in MARK_LEGEND.items() if m in used]
    if "" in used:
        items.append((NO_MARK, "the paired 95% interval of the delta includes zero"))
    return items


def render_html_report(
    title: str,
    subtitle: str,
    table: pd.DataFrame,
    verdict: Sequence[str],
    figures: Sequence[tuple[str, str]] = (),
    provenance: Provenance | None = None,
) -> str:
    """A standalone HTML page: provenance, verdict, metrics table with its legend, figures.

    Args:
        table: the comparison table as shown (a "Significant" column carries the markers;
            float cells are written to 4 decimals).
        verdict: the engine's verdict lines ("segment_key: sentence"); segment keys are
            shown by their readable names.
        figures: (heading, HTML snippet) pairs; the snippets are trusted (plotly output),
            everything else is escaped.
    """
    e = html.escape
    parts = [f"<section><h2>{e(heading)}</h2>{div}</section>" for heading, div in figures]
    verdict_html = (
        "".join(f"<li>{e(readable_verdict(v))}</li>" for v in verdict)
        or "<li>No transfer strategy among these runs.</li>"
    )
    legend = legend_items(table)
    legend_html = (
        '<ul class="legend">'
        + "".join(f"<li><b>{e(m)}</b>: {e(meaning)}</li>" for m, meaning in legend)
        + "</ul>"
        if legend
        else ""
    )
    prov_html = ""
    if provenance is not None:
        facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in provenance.facts)
        prov_html = (
            f'<h2>Provenance</h2><table class="facts">{facts}</table>'
            f"<h3>Runs</h3>{_table(provenance.runs, 'metrics runs')}"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: Inter, 'Segoe UI', Helvetica, Arial, sans-serif; color: #262730; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }}
h1 {{ margin-bottom: .2rem; }} .sub {{ color: #6b6f7b; margin-top: 0; }}
h2 {{ margin-top: 2.2rem; border-bottom: 1px solid #e6e8ee; padding-bottom: .3rem; font-size: 1.25rem; }}
table.metrics {{ border-collapse: collapse; font-size: .88rem; width: 100%; }}
table.metrics th {{ text-align: left; background: #f4f5f8; padding: .4rem .6rem; }}
table.metrics td {{ padding: .35rem .6rem; border-top: 1px solid #eceef2; vertical-align: top; }}
table.runs td {{ font-size: .8rem; word-break: break-word; }}
table.facts th {{ white-space: nowrap; text-align: left; padding: .2rem 1rem .2rem 0; color: #6b6f7b; font-weight: 500; }}
ul.verdict li, ul.legend li {{ margin: .3rem 0; }}
</style></head><body>
<h1>{e(title)}</h1><p class="sub">{e(subtitle)}</p>
{prov_html}
<h2>Verdict</h2><ul class="verdict">{verdict_html}</ul>
<h2>Metrics with 95% intervals and deltas against the baseline</h2>{_table(table, "metrics")}
{legend_html}
<p class="sub">Intervals: bootstrap over users; deltas: paired bootstrap against the baseline.</p>
{"".join(parts)}
<p class="sub">Made with {e(PRODUCT)} {e(__version__)}.</p>
</body></html>"""


__all__ = [
    "MARK_BASELINE",
    "MARK_BETTER",
    "MARK_LEGEND",
    "MARK_WORSE",
    "Provenance",
    "comparison_view",
    "legend_items",
    "readable_verdict",
    "render_html_report",
    "report_provenance",
    "segment_name",
    "segment_title",
    "significance_mark",
]
