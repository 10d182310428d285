"""Which text encoding a delimited file uses: UTF-8 (with or without BOM), UTF-16 with
a BOM (or without, when the zero bytes give it away), else Windows-1252 / Latin-1.
"""

from __future__ import annotations

import codecs

import numpy as np

from recsys_core.data import validation as V
from recsys_core.data.sources import MiB
from recsys_core.errors import DataError


def decode_text(data: bytes, file: str) -> tuple[bytes, str]:
    """Text bytes -> UTF-8 bytes (no BOM) and the encoding they were read with."""
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"the file starts like {enc.upper()} text but is not valid {enc.upper()}",
                    file=file,
                    hint="Save it as UTF-8",
                ) from e
            out = text.encode("utf-8", "surrogatepass")
            V.check_raw_bytes(out, file=file)
            return out, enc
    utf16 = _utf16_without_bom(data)
    if utf16:
        try:
            out = data.decode(utf16).encode("utf-8", "surrogatepass")
            V.check_raw_bytes(out, file=file)
            return out, utf16
        except UnicodeDecodeError:
            pass
    V.check_raw_bytes(data, file=file)
    encoding = "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
        encoding = "utf-8-sig"
        V.check_raw_bytes(data, file=file)  # a BOM alone is still an empty file
    if is_utf8(data):
        return data, encoding
    try:
        # Windows-1252 is what "Latin-1" files from Excel usually are (curly quotes at
        # 0x91-0x94); real Latin-1 is the fallback for the five bytes it leaves undefined.
        return data.decode("cp1252").encode("utf-8"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1").encode("utf-8"), "latin-1"


def is_utf8(data: bytes) -> bool:
    dec = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    step = 16 * MiB  # in chunks: no 2 GiB str just to validate
    try:
        for off in range(0, len(data), step):
            dec.decode(view[off : off + step])
        dec.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' / 'utf-16-be' when every other byte of the start is NUL (ASCII text)."""
    sample = np.frombuffer(data[: 4096 - (min(len(data), 4096) % 2)], dtype=np.uint8)
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if (odd == 0).mean() > 0.9 and (even == 0).mean() < 0.1:
        return "utf-16-le"
    if (even == 0).mean() > 0.9 and (odd == 0).mean() < 0.1:
        return "utf-16-be"
    return None
