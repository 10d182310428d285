"""Canonical in-memory form of one domain: what every loader produces.

Column names are fixed here so that the rest of the engine never guesses:

* interactions: ``user_id`` (str), ``item_id`` (str), ``rating`` (float64, NaN when the
  file had none), ``timestamp`` (int64 seconds since the epoch, or absent).
* items: ``item_id`` (str) plus any text columns (``title``, ``genres``, ``year``,
  ``description``...). ``text_fields`` names, in order, the columns joined into the
  text the encoder reads ("title | genres | year").
* users: ``user_id`` (str) plus attribute columns.

Ids are kept as the user's original strings; contiguous integer indices are assigned by
:class:`IdMap` when a split is built, and the map is kept so results can be reported
with the original ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys_core.errors import DataWarning

USER, ITEM, RATING, TIME = "user_id", "item_id", "rating", "timestamp"


def _arrow_text(values: pd.Series | np.ndarray) -> pa.Array | pa.ChunkedArray | None:
    """``values`` as Arrow strings when they are all text (no missing value), else None."""
    if isinstance(values, pd.Series) and not isinstance(values.dtype, pd.StringDtype):
        return None
    if isinstance(values, np.ndarray) and values.dtype != object:
        return None
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    return arr if arr.null_count == 0 else None


@dataclass(frozen=True)
class IdMap:
    """Bijection between original string ids and contiguous indices ``0..n-1``.

    ``ids`` is a numpy object array of shape (n,), index -> original id.
    """

    ids: np.ndarray

    @classmethod
    def from_values(cls, values: pd.Series | np.ndarray) -> IdMap:
        """Indices in order of first appearance after sorting (deterministic).

        String ids are made distinct and sorted by Arrow on the column's own buffers
        (byte order of UTF-8 is code point order, which is Python's ``sorted``), without
        a Python object per row: 10 M ids took 8 s through ``pd.unique`` (issue 13).
        """
        arr = _arrow_text(values)
        if arr is not None:
            uniq = pc.unique(arr)
            ids = uniq.take(pc.array_sort_indices(uniq)).to_numpy(zero_copy_only=False)
            return cls(np.asarray(ids, dtype=object))
        uniq = pd.unique(pd.Series(values, dtype=object))
        return cls(np.array(sorted(uniq), dtype=object))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> pd.Index:
        return pd.Index(self.ids)

    def encode(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Original ids -> indices (int64); -1 for ids not in the map."""
        arr = _arrow_text(values)
        if arr is not None and len(self.ids):
            try:
                known = pa.array(self.ids, type=pa.string())
            except (pa.ArrowException, TypeError, ValueError):
                known = None
            if known is not None:
                idx = pc.fill_null(pc.index_in(arr, value_set=known), -1)
                return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)
        return self.index.get_indexer(pd.Series(values, dtype=object)).astype(np.int64)

    def decode(self, idx: np.ndarray) -> np.ndarray:
        return self.ids[np.asarray(idx, dtype=np.int64)]


@dataclass(frozen=True)
class Domain:
    """One recommendation domain (a catalogue with its users and their interactions).

    Attributes:
        name: short label shown in the app and the CLI ("ML-1M", "target").
        interactions: DataFrame with columns user_id, item_id, rating, and optionally
            timestamp, one row per interaction (duplicates already merged, see
            :func:`recsys_core.data.validation.merge_duplicates`).
        items: optional item table, one row per item_id.
        users: optional user table, one row per user_id.
        text_fields: item columns joined into the encoder text, in order.
        warnings: what validation noticed but did not reject.
        source_files: the names of the files this domain was read from.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    text_fields: tuple[str, ...] = ()
    warnings: tuple[DataWarning, ...] = ()
    source_files: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def has_time(self) -> bool:
        return TIME in self.interactions.columns

    @property
    def n_users(self) -> int:
        return int(self.interactions[USER].nunique())

    @property
    def n_items(self) -> int:
        return int(self.interactions[ITEM].nunique())

    def item_texts(self, item_ids: np.ndarray | None = None) -> list[str]:
        """Encoder text "title | genres | year" for ``item_ids`` (default: all rated items).

        Items with no row in the item table, or no text fields, get their id as text.
        """
        ids = pd.unique(self.interactions[ITEM]) if item_ids is None else item_ids
        if self.items is None or not self.text_fields:
            return [str(i) for i in ids]
        table = self.items.drop_duplicates(ITEM).set_index(ITEM)
        fields = [f for f in self.text_fields if f in table.columns]
        if not fields:
            return [str(i) for i in ids]
        # column lists zipped, not DataFrame.apply(axis=1): 0.03 s instead of 0.5 s for the
        # demo's 5,549 items, the largest part of reading it (issue 13)
        cols = [table[f].astype("string").fillna("").tolist() for f in fields]
        joined = pd.Series(
            [" | ".join(v for v in row if v) for row in zip(*cols)], index=table.index, dtype=object
        )
        out = joined.reindex(pd.Index(ids, dtype=object))
        return [t if isinstance(t, str) and t else str(i) for i, t in zip(ids, out)]

    def fingerprint(self) -> str:
        """sha256 over the interactions and the text fields: what data a run saw."""
        h = hashlib.sha256()
        h.update(pd.util.hash_pandas_object(self.interactions, index=False).values.tobytes())
        if self.items is not None:
            h.update(
                pd.util.hash_pandas_object(self.items.astype(str), index=False).values.tobytes()
            )
        h.update("|".join(self.text_fields).encode())
        return h.hexdigest()[:16]
