"""Pieces every page shares, re-exported from one module per concern so pages (and
other branches) keep importing them from here.

* :mod:`ui.messages`: errors as friendly text, flash messages, empty states, headers;
* :mod:`ui.sidebar`: scenario, device and run store on every page;
* :mod:`ui.runs`: run names, cached run artifacts and vectors, reloading a run's data;
* :mod:`ui.options`: widgets generated from config dataclasses (help from field metadata);
* :mod:`ui.uploads`: uploads read by the engine's loader, cached per upload;
* :mod:`ui.report`: the downloadable HTML report;
* :mod:`ui.curve_text`: the plain lines under a what-if curve;
* the item table (popularity, cold status) is the engine's:
  :mod:`recsys_core.data.item_table`.

Rules kept in all of them: the engine's errors reach the user as ``st.error`` with the
engine's own message (never a traceback); parsed uploads and finished runs' artifacts
go through ``st.cache_data`` with a bounded ``max_entries``; nothing is cached in a
module-level variable.
"""

from __future__ import annotations

from recsys_core.data.item_table import item_frame, item_frame_from_artifact
from ui.curve_text import curve_verdict, family_note, value_phrase
from ui.messages import PAGES, empty_state, page_header, show_error, show_flash
from ui.options import field_docs, option_hints, option_widgets, parse_values, seed
from ui.report import html_report
from ui.runs import (
    done_runs,
    offer_reload,
    run_names,
    run_stages,
    run_table,
    run_vectors,
    scenario_for_runs,
)
from ui.sidebar import sidebar
from ui.uploads import file_columns, parse_table

__all__ = [
    "PAGES",
    "curve_verdict",
    "done_runs",
    "empty_state",
    "family_note",
    "field_docs",
    "file_columns",
    "html_report",
    "item_frame",
    "item_frame_from_artifact",
    "offer_reload",
    "option_hints",
    "option_widgets",
    "page_header",
    "parse_table",
    "parse_values",
    "run_names",
    "run_stages",
    "run_table",
    "run_vectors",
    "scenario_for_runs",
    "seed",
    "show_error",
    "show_flash",
    "sidebar",
    "value_phrase",
]
