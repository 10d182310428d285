"""Where a table's bytes come from, and the limits that keep reading them safe.

A source is a path, the bytes of an upload, a binary file object (or a DataFrame, which
never reaches here). :func:`load_bytes` reads at most ``Limits.max_file_bytes``;
compressed files are expanded by :func:`decompress` in blocks and refused as soon as
they pass ``max_decompressed_bytes`` or ``max_compression_ratio`` (a zip bomb is stopped
before it expands). :func:`as_data_error` turns anything that goes wrong into the one
exception type users see, :class:`~recsys_core.errors.DataError`. What each limit bounds
and when it is checked: docs/reader_limits.md.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.errors import DataError

GiB = 1024**3
MiB = 1024**2


def _env_int(name: str, default: int, scale: int = 1) -> int:
    """A positive whole number from the environment (an operator's override), else default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(
            f"the environment variable {name} must be a positive whole number, got {raw!r}"
        )
    return int(raw) * scale


DECOMPRESSED_ENV = "TRANSFER_LAB_MAX_DECOMPRESSED_MB"
RATIO_ENV = "TRANSFER_LAB_MAX_COMPRESSION_RATIO"
ROWS_ENV = "TRANSFER_LAB_MAX_ROWS"
COLUMNS_ENV = "TRANSFER_LAB_MAX_COLUMNS"
RATIO_FLOOR = 16 * MiB
"""The compression ratio is only judged past this much output: small files that compress
very well (a tiny test table, a column of one repeated value) are never refused for it."""


@dataclass(frozen=True)
class Limits:
    """Size limits that protect the process from files it cannot hold.

    Attributes:
        max_file_bytes: largest file accepted (default 2 GiB), also after decompression.
        max_field_bytes: largest single field in UTF-8 bytes (default 1 MiB); a longer
            field almost always means an unclosed quote swallowed the rest of the file.
        max_rows: most data rows accepted (default 200 million, or
            ``TRANSFER_LAB_MAX_ROWS``). A Parquet file is judged on the row count its
            footer declares, before any row is read.
        max_columns: most columns accepted (default 10,000, or ``TRANSFER_LAB_MAX_COLUMNS``):
            judged on the header line of delimited text and on the footer of Parquet.
        max_decompressed_bytes: most bytes a compressed file (gzip, bz2, xz) may expand
            to (default 1 GiB, or ``TRANSFER_LAB_MAX_DECOMPRESSED_MB`` MiB). Checked while
            decompressing: reading stops as soon as it is passed, so a small "bomb"
            never holds more than this much memory. Parquet is compressed per column
            chunk: the uncompressed size its footer declares is checked against this
            limit before reading, and the decoded size while reading, row group by row
            group (:func:`recsys_core.data.parsing.read_parquet_bounded`).
        max_compression_ratio: most decompressed bytes per compressed byte (default 100,
            or ``TRANSFER_LAB_MAX_COMPRESSION_RATIO``); judged while decompressing, once
            the output passes 16 MiB. Interaction tables compress 3-20 fold; a file that
            expands 500 fold is a bomb, refused after reading a few MiB of it.
    """

    max_file_bytes: int = 2 * GiB
    max_field_bytes: int = 1 * MiB
    max_rows: int = field(default_factory=lambda: _env_int(ROWS_ENV, 200_000_000))
    max_columns: int = field(default_factory=lambda: _env_int(COLUMNS_ENV, 10_000))
    max_decompressed_bytes: int = field(
        default_factory=lambda: _env_int(DECOMPRESSED_ENV, 1 * GiB, scale=MiB)
    )
    max_compression_ratio: int = field(default_factory=lambda: _env_int(RATIO_ENV, 100))

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
                raise ValueError(f"Limits.{f.name} must be a positive whole number, got {v!r}")
        if self.max_field_bytes > self.max_file_bytes:
            raise ValueError(
                f"Limits.max_field_bytes ({self.max_field_bytes}) cannot exceed "
                f"Limits.max_file_bytes ({self.max_file_bytes})"
            )


def limit_hint(attr: str) -> str:
    """How to raise one limit, for messages: the Limits field and, where there is one,
    the environment variable an operator sets."""
    env = {
        "max_rows": ROWS_ENV,
        "max_columns": COLUMNS_ENV,
        "max_decompressed_bytes": f"{DECOMPRESSED_ENV} (in MiB)",
        "max_compression_ratio": RATIO_ENV,
    }.get(attr)
    return f"Limits({attr}=...)" + (f" or the environment variable {env}" if env else "")


def display_name(source: Any, name: str | None, kind: str) -> str:
    if name:
        return str(name)
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        return f"{kind} text"
    if isinstance(source, str | os.PathLike):
        try:
            return os.path.basename(os.fspath(source)) or os.fspath(source)
        except TypeError:
            return kind
    n = getattr(source, "name", None)
    if isinstance(n, str) and n:
        return os.path.basename(n)
    if isinstance(source, pd.DataFrame):
        return f"{kind} table"
    return f"{kind} file"


def load_bytes(source: Any, file: str, limits: Limits) -> tuple[bytes, str]:
    """The raw bytes of a source (at most max_file_bytes) and a lower-case name hint."""
    limit = limits.max_file_bytes
    ext_name = file
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        raise DataError(
            "text with line breaks was given where a file path was expected",
            file=file,
            hint="Pass the file's content as bytes (text.encode()) or its path",
        )
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        ext_name = str(path)
        try:
            if os.path.isdir(path):
                raise DataError(
                    "this is a folder, not a file", file=file, hint="Choose a file inside it"
                )
            size = os.path.getsize(path)
            if not os.path.isfile(path):
                # Devices and pipes have no size and may never end (/dev/zero).
                raise DataError("this is not a regular file", file=file)
            if size > limit:
                raise DataError(
                    f"the file is {human_bytes(size)}, more than the limit of {human_bytes(limit)}",
                    file=file,
                    hint="Sample the data, or raise Limits.max_file_bytes",
                )
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError as e:
            raise DataError(
                "the file does not exist", file=file, hint=f"Check the path {path!r}"
            ) from e
        except PermissionError as e:
            raise DataError("the file cannot be read (permission denied)", file=file) from e
        except IsADirectoryError as e:
            raise DataError("this is a folder, not a file", file=file) from e
        except OSError as e:
            raise DataError(f"the file cannot be read ({e.strerror or e})", file=file) from e
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif hasattr(source, "getvalue") or hasattr(source, "read"):
        try:
            # getvalue() reads an in-memory upload whole even if it was read before.
            data = source.getvalue() if hasattr(source, "getvalue") else source.read(limit + 1)
        except Exception as e:
            raise DataError(f"the upload cannot be read ({type(e).__name__})", file=file) from e
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DataError("the file object did not return bytes", file=file)
        data = bytes(data)
    else:
        raise DataError(
            f"cannot read a {type(source).__name__}",
            file=file,
            hint="Pass a path, the file's bytes, a binary file object or a DataFrame",
        )
    if len(data) > limit:
        raise DataError(
            f"the file is larger than the limit of {human_bytes(limit)}",
            file=file,
            hint="Sample the data, or raise Limits.max_file_bytes",
        )
    return data, ext_name.lower()


def compression_of(data: bytes) -> tuple[str, Any] | None:
    if data[:2] == b"\x1f\x8b":
        return "gzip", lambda fh: gzip.GzipFile(fileobj=fh, mode="rb")
    if data[:3] == b"BZh" and data[3:4].isdigit():
        return "bz2", bz2.BZ2File
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz", lzma.LZMAFile
    return None


def decompressed_limit(limits: Limits) -> tuple[int, str]:
    """(most bytes a compressed file may expand to, how to raise that limit)."""
    limit = min(limits.max_decompressed_bytes, limits.max_file_bytes)
    if limit == limits.max_decompressed_bytes:
        how = f"Limits(max_decompressed_bytes=...) or the environment variable {DECOMPRESSED_ENV}"
    else:  # a decompressed file is still a file: max_file_bytes binds when it is lower
        how = "Limits(max_file_bytes=...)"
    return limit, how


def decompress(data: bytes, kind: str, opener: Any, file: str, limits: Limits) -> bytearray:
    """The decompressed bytes, read in blocks and refused as soon as they pass
    ``limits.max_decompressed_bytes`` or ``limits.max_compression_ratio``: a bomb is
    stopped before it holds more than the limit, never after expanding in full."""
    limit, how = decompressed_limit(limits)
    raw = io.BytesIO(data)
    out = bytearray()
    try:
        with opener(raw) as fh:
            while True:
                # Never ask for more than one byte past the limit.
                block = fh.read(min(_BLOCK, limit + 1 - len(out)))
                if not block:
                    break
                out += block
                if len(out) > limit:
                    raise DataError(
                        f"the file expands to more than the limit of {human_bytes(limit)} when "
                        f"decompressed (reading stopped there; it is {human_bytes(len(data))} "
                        "compressed)",
                        file=file,
                        hint=f"Sample the data, or raise the limit: {how}",
                    )
                read_in = max(raw.tell(), 1)
                ratio = len(out) / read_in
                if len(out) > RATIO_FLOOR and ratio > limits.max_compression_ratio:
                    raise DataError(
                        f"the file expands more than {limits.max_compression_ratio} fold when "
                        f"decompressed ({human_bytes(read_in)} became {human_bytes(len(out))}, "
                        f"{ratio:.0f} fold, before reading stopped), which is how "
                        "decompression bombs look",
                        file=file,
                        hint="If the data is genuine, decompress it first or raise the limit: "
                        f"Limits(max_compression_ratio=...) or the environment variable {RATIO_ENV}",
                    )
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as e:
        raise DataError(
            f"the {kind} file is damaged or incomplete ({short_text(e)})",
            file=file,
            hint="Download or export it again",
        ) from e
    return out


_BLOCK = 4 * MiB


@contextmanager
def as_data_error(file: str) -> Iterator[None]:
    """Whatever goes wrong inside reaches the caller as a DataError."""
    try:
        yield
    except DataError:
        raise
    except MemoryError as e:
        raise DataError(
            "the file is too large to load in the memory available",
            file=file,
            hint="Sample the data",
        ) from e
    except Exception as e:
        raise DataError(
            f"the file could not be read ({type(e).__name__}: {short_text(e)})",
            file=file,
            hint="Check that it is a CSV, TSV, Parquet or RecBole atomic file",
        ) from e


def release_arrow_memory() -> None:
    """Hand memory Arrow freed back to the system. Arrow's allocator (mimalloc) keeps
    freed blocks for reuse; between the stages of reading a big file (parse, convert,
    merge) that kept the peak about a table's size higher than needed (issue 13)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def short_text(e: BaseException | None, n: int = 160) -> str:
    s = " ".join(str(e).split()) if e is not None else "unknown error"
    return s if len(s) <= n else s[: n - 3] + "..."


def name_list(names: Sequence[str], k: int = 12) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
