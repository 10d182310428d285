"""Uploaded files read by the engine's loader, cached per upload
(``st.cache_data(max_entries=...)``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st


@st.cache_data(max_entries=16, show_spinner=False)
def file_columns(data: bytes, name: str) -> tuple[list[str], str | None]:
    """The header of an uploaded file as the user sees it, and an error message or None
    (the engine's :func:`recsys_core.data.loaders.read_header`, cached per upload)."""
    from recsys_core.data.loaders import read_header
    from recsys_core.errors import DataError

    try:
        return read_header(data, name=name), None
    except DataError as exc:
        return [], str(exc)


@st.cache_data(max_entries=16, show_spinner=False)
def parse_table(
    data: bytes, name: str, kind: str, mapping: tuple | None
) -> tuple[pd.DataFrame | None, dict, str | None]:
    """Read an upload with the loader; (canonical frame, read info, None) or (None, {}, message).

    ``mapping``: ``ColumnMapping`` fields as a tuple of (name, value) pairs (hashable).
    """
    from recsys_core.data.loaders import ColumnMapping, read_table
    from recsys_core.errors import DataError

    try:
        cm = ColumnMapping(**dict(mapping)) if mapping else None
        df = read_table(data, name=name, kind=kind, columns=cm)
    except (DataError, ValueError) as exc:
        return None, {}, str(exc)
    info = dict(df.attrs.get("read_info", {}))
    df.attrs = {}
    return df, info, None
