"""The downloadable HTML report: the engine's page with the plotly figures inlined."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


def html_report(
    title: str,
    subtitle: str,
    table: pd.DataFrame,
    verdict: Sequence[str],
    figures: Sequence[tuple[str, Any]],
    provenance: Any = None,
) -> str:
    """A standalone HTML page (:func:`recsys_core.report.render_html_report`) with the
    plotly figures as snippets (plotly.js inlined once, so it opens offline)."""
    from recsys_core.report import render_html_report

    divs = [
        (
            heading,
            fig.to_html(
                full_html=False,
                include_plotlyjs="inline" if n == 0 else False,
                config={"displaylogo": False},
            ),
        )
        for n, (heading, fig) in enumerate(figures)
    ]
    return render_html_report(title, subtitle, table, verdict, divs, provenance)
