"""On-disk cache of text vectors, so each text is encoded once per model.

Layout under the cache folder::

    index.sqlite                       (model identity, sha256 of text) -> (shard, row)
    shards/<model identity>/<uuid>.safetensors   one float32 matrix "vectors" per call

A call that encodes new texts writes one shard (temporary file, then :func:`os.replace`)
and only then records its rows in the SQLite index in one transaction, so a crash leaves
at worst an unreferenced shard, never an index row pointing at a missing vector. A shard
that has gone missing or is unreadable counts as a miss and is re-encoded. Texts are keyed
by the sha256 of their UTF-8 bytes; the model by :attr:`TextEncoder.identity`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Protocol

import numpy as np
from safetensors.numpy import load_file, save_file

from recsys_core.io_utils import atomic_write
from recsys_core.text.encoder import CancelFn, ProgressFn

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL,
    text_sha TEXT NOT NULL,
    shard TEXT NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (model, text_sha)
) WITHOUT ROWID;
"""


class SupportsEncode(Protocol):
    """What the cache needs from an encoder (:class:`~recsys_core.text.encoder.TextEncoder` fits)."""

    identity: str
    dim: int

    def encode(
        self, texts: list[str], progress: ProgressFn | None = None, cancel: CancelFn | None = None
    ) -> np.ndarray: ...


def text_key(text: str) -> str:
    """sha256 hex digest of the UTF-8 text: the cache key of one text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Text vectors on disk, keyed by (model identity, sha256 of the text).

    Args:
        directory: cache folder (created on first write). Several processes may share it;
            SQLite serialises index writes.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    # ------------------------------------------------------------------ public API

    def get_or_encode(
        self,
        encoder: SupportsEncode,
        texts: Sequence[str],
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> np.ndarray:
        """Vectors for ``texts``, encoding only those not cached yet for this encoder.

        Args:
            encoder: has ``identity``, ``dim`` and ``encode(texts, progress, cancel)``.
            texts: n strings; repeats are encoded once.
            progress: ``progress(done, total)`` over the distinct texts, cached ones counted
                as done from the start (so a fully cached call reports ``(total, total)``).
            cancel: passed to the encoder; nothing is stored when it cancels.

        Returns:
            float32 array (n, encoder.dim), rows in the order of ``texts``.
        """
        texts = [str(t) for t in texts]
        keys = [text_key(t) for t in texts]
        uniq = list(dict.fromkeys(keys))  # distinct keys, first-appearance order
        found = self._lookup(encoder.identity, uniq)
        vectors = self._load(encoder.identity, found)  # key -> vector, unreadable shards dropped

        missing = [k for k in uniq if k not in vectors]
        total = len(uniq)
        if missing:
            first_text = dict(zip(keys, texts))  # equal keys mean equal texts
            todo = [first_text[k] for k in missing]
            done0 = total - len(missing)
            inner = None if progress is None else (lambda d, _t: progress(done0 + d, total))
            new = np.asarray(encoder.encode(todo, progress=inner, cancel=cancel), dtype=np.float32)
            if new.shape != (len(todo), encoder.dim):
                raise ValueError(
                    f"encoder returned shape {new.shape} for {len(todo)} texts, expected ({len(todo)}, {encoder.dim})"
                )
            self._store(encoder.identity, missing, new)
            vectors.update(zip(missing, new))
        elif progress is not None and total:
            progress(total, total)

        out = np.empty((len(texts), encoder.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = vectors[k]
        return out

    def cached_mask(self, encoder: SupportsEncode, texts: Sequence[str]) -> np.ndarray:
        """bool array (n,): text i has an index entry for this encoder (no shard read)."""
        keys = [text_key(str(t)) for t in texts]
        found = self._lookup(encoder.identity, list(dict.fromkeys(keys)))
        return np.array([k in found for k in keys], dtype=bool)

    def count(self, encoder: SupportsEncode | None = None) -> int:
        """Number of cached vectors, for one encoder or for all."""
        if not self._index_path.is_file():
            return 0
        with closing(self._connect()) as con:
            if encoder is None:
                return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
            q = "SELECT COUNT(*) FROM vectors WHERE model = ?"
            return int(con.execute(q, (encoder.identity,)).fetchone()[0])

    # ------------------------------------------------------------------ internals

    @property
    def _index_path(self) -> Path:
        return self.directory / "index.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self._index_path, timeout=30.0)
        con.executescript(_SCHEMA)
        return con

    def _lookup(self, model: str, keys: list[str]) -> dict[str, tuple[str, int]]:
        """key -> (shard file name, row) for the keys the index knows."""
        if not keys or not self._index_path.is_file():
            return {}
        with closing(self._connect()) as con:
            # a temporary table joins thousands of keys in one query (no IN-list size limit)
            con.execute("CREATE TEMP TABLE q (k TEXT PRIMARY KEY)")
            con.executemany("INSERT OR IGNORE INTO q VALUES (?)", ((k,) for k in keys))
            rows = con.execute(
                "SELECT v.text_sha, v.shard, v.row FROM vectors v JOIN q ON v.text_sha = q.k "
                "WHERE v.model = ?",
                (model,),
            ).fetchall()
        return {k: (shard, int(row)) for k, shard, row in rows}

    def _load(self, model: str, found: dict[str, tuple[str, int]]) -> dict[str, np.ndarray]:
        by_shard: dict[str, list[tuple[str, int]]] = {}
        for k, (shard, row) in found.items():
            by_shard.setdefault(shard, []).append((k, row))
        out: dict[str, np.ndarray] = {}
        for shard, items in by_shard.items():
            try:
                mat = load_file(str(self.directory / "shards" / model / shard))["vectors"]
            except Exception:  # missing or corrupt shard (safetensors raises its own types)
                continue  # its texts count as misses and get re-encoded and re-indexed
            for k, row in items:
                if row < len(mat):
                    out[k] = mat[row]
        return out

    def _store(self, model: str, keys: list[str], vectors: np.ndarray) -> None:
        folder = self.directory / "shards" / model
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.safetensors"
        atomic_write(
            folder / name,
            lambda tmp: save_file(
                {"vectors": np.ascontiguousarray(vectors)}, tmp, metadata={"model": model}
            ),
        )
        with (
            closing(self._connect()) as con,
            con,
        ):  # second `con`: one transaction, committed on exit
            con.executemany(
                "INSERT OR REPLACE INTO vectors (model, text_sha, shard, row) VALUES (?, ?, ?, ?)",
                ((model, k, name, i) for i, k in enumerate(keys)),
            )
