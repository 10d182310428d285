"""Messages every page shows: the engine's errors as friendly text (never a
traceback), flash messages kept across a rerun, empty states and page headers."""

from __future__ import annotations

import logging

import streamlit as st

from ui import state
from ui.text import md_escape

log = logging.getLogger(__name__)


PAGES = {
    "data": "views/data.py",
    "train": "views/train.py",
    "compare": "views/compare.py",
    "embeddings": "views/embeddings.py",
    "users": "views/users.py",
    "whatif": "views/whatif.py",
}


def show_error(exc: BaseException, context: str | None = None) -> None:
    """An engine error as a red box with its message; never a traceback.

    DataError and ValueError messages are written for people (file, column, lines, what
    to do); anything else is a bug, shown as one line and logged with its traceback.
    """
    from recsys_core.errors import DataError

    # Messages name files, columns and values from the user's data: shown as text.
    prefix = f"{md_escape(context)}: " if context else ""
    if isinstance(exc, DataError | ValueError | KeyError | FileNotFoundError):
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        st.error(f"{prefix}{md_escape(msg)}", icon=":material/error:")
    else:
        log.exception("unexpected error in the app", exc_info=exc)
        st.error(
            f"{prefix}something went wrong ({type(exc).__name__}: {md_escape(exc)}). "
            "The details are in the server log.",
            icon=":material/error:",
        )


def show_flash() -> None:
    msg = st.session_state.get(state.FLASH)
    if msg:
        kind, text = msg
        getattr(st, kind, st.info)(text)
        st.session_state[state.FLASH] = None


def empty_state(
    text: str, page: str | None = None, label: str | None = None, icon: str = ":material/info:"
) -> None:
    """A friendly "nothing here yet" box with a link to the page that fixes it."""
    with st.container(border=True):
        st.markdown(f"#### {text}")
        if page:
            st.page_link(
                PAGES[page],
                label=label or f"Go to {page.capitalize()}",
                icon=":material/arrow_forward:",
            )


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)
