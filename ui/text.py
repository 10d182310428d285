"""Text from users stays text: one escaping helper for every string a user (or their
files) provided that a page renders through Markdown.

``st.markdown``, ``st.caption``, ``st.write`` of a str, the boxes (``st.error``,
``st.info``...), headers, expander and tab labels all read Markdown. A run label or an
item title such as ``![x](http://127.0.0.1:8799/b.png)`` would otherwise make every
viewer's browser fetch that URL, and ``:red[...]``, ``$...$`` or ``<b>`` would change what
is shown. :func:`md_escape` makes such a string render as exactly its characters.
Dataframes, selectbox options and CSV downloads are not Markdown and take the raw text.

Backslashes do not stop GitHub's *autolink literals*: Streamlit's Markdown (remark-gfm)
turns ``http://...``, ``www.x`` and ``a@b.c`` found in the parsed text into live links,
escapes resolved, so a hostile label became a link to its URL (the browser test in
``tests/browser/test_hostile_and_sessions.py`` found it on the Users page). A WORD JOINER
(U+2060, invisible, no width) before ``http``/``www`` and after ``@`` leaves no word
boundary there for the autolinker; the text shows the same glyphs.
"""

from __future__ import annotations

import re
from typing import Any

# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the
# ones Markdown, GitHub extensions, HTML and Streamlit's own syntax (":material/x:",
# ":red[...]", "$math$") give a meaning to anywhere in a line. ".", "-", "+" and "=" only
# mean something at the start of a line (lists, setext headings): escaped there only, so
# file names like ratings.csv stay readable in the page source.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|<>~$:&])")
_LEADING = re.compile(r"^(\s*)(\d+(?=[.)])|[-+=])")
_BREAKS = re.compile(r"[\r\n\t\x0b\x0c]+")
WORD_JOINER = "\u2060"
# GFM autolink literals: a URL starts at "http(s)://" or "www." after a boundary; an
# e-mail (and mailto:/xmpp:) needs a word character right after "@".
_AUTOLINK_START = re.compile(r"(?i)(?=https?:|www\.|mailto:|xmpp:)")
_AT = re.compile(r"@(?=\w)")


def md_escape(value: Any) -> str:
    """``value`` as text that Markdown shows literally (one line, no markup, no HTML):
    line breaks become spaces and each special character gets a backslash, so
    ``![x](u)`` is sent as ``\\!\\[x\\]\\(u\\)`` and shown as ``![x](u)``; URLs and
    e-mail addresses get an invisible word joiner so they are not made links."""
    raw = _AUTOLINK_START.sub(WORD_JOINER, _BREAKS.sub(" ", str(value)))
    text = _SPECIAL.sub(r"\\\1", _AT.sub("@" + WORD_JOINER, raw))
    m = _LEADING.match(text)
    if m:  # "1. x", "- x", "+ x": a list item; "=": a heading underline
        end = m.end()
        text = (
            text[:end] + "\\" + text[end:]
            if m.group(2)[0].isdigit()
            else (text[: m.start(2)] + "\\" + text[m.start(2) :])
        )
    return text
