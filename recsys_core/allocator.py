"""Keep glibc's malloc from handing every training step's tensors back to the kernel.

PyTorch's CPU tensors come from ``malloc``. With glibc's defaults, a block above the
mmap threshold (128 KiB at start, raised on its own up to 32 MiB) is mapped and unmapped
for each allocation, and free memory at the top of the heap above the trim threshold is
returned at once; a training step then page-faults its way through fresh memory for
every (2,048, 64) gather and every gradient, step after step (1,400 minor page faults
a closed-form BPR-MF step, none with fixed thresholds). Measured on the 2-core box
(issue 13, ``bench/bench_allocator.py``, medians of three processes each): a BPR-MF epoch
on ML-100K 0.070 s with the defaults, 0.038 s with fixed thresholds (1.8x); a two-tower
full-softmax epoch 1.09 s against 0.82 s (1.3x). PyTorch's CPU
performance guide makes the same point and recommends jemalloc or tcmalloc, which need
``LD_PRELOAD`` before the process starts; ``mallopt`` does it from inside.

What it costs: up to ``trim`` bytes of freed memory per malloc arena stay mapped instead
of going back to the system at once, and blocks under ``mmap`` bytes come from the heap.
Both are constants, so memory stays bounded (the upload limits of issue 12 hold: the
Arrow reader has its own allocator). A user who sets ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` themselves keeps their values; ``TRANSFER_LAB_MALLOC=default``
turns this off.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

MiB = 1024 * 1024
MMAP_THRESHOLD = 64 * MiB
"""Blocks below this come from the heap and are reused (a full-softmax step's (4,096,
1,664) float32 logits are 27 MiB)."""
TRIM_THRESHOLD = 256 * MiB
"""Free memory at the top of a heap kept for reuse, above which it goes back to the
system (a two-tower step on the demo frees about 150 MiB and allocates it again)."""

# mallopt parameter numbers, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

ENV = "TRANSFER_LAB_MALLOC"
_lock = threading.Lock()
_state: dict[str, bool | None] = {"tuned": None}


def tune_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds for this process, once; idempotent.

    Returns:
        True when the thresholds are (now) set by this function; False where it does
        nothing: not glibc (macOS, Windows, musl), turned off with
        ``TRANSFER_LAB_MALLOC=default``, or the user's own ``MALLOC_*_THRESHOLD_``.
    """
    with _lock:
        if _state["tuned"] is not None:
            return bool(_state["tuned"])
        _state["tuned"] = _tune()
        return bool(_state["tuned"])


def _tune() -> bool:
    if os.environ.get(ENV, "").strip().lower() == "default":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False  # the user tuned glibc themselves
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and friends
            return False
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    return ok
