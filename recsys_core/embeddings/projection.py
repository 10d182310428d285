"""Joint 2-D maps of embeddings (UMAP or PCA), cached on disk by content.

The caller stacks every stage it wants to show into one array and projects it once, so
that all stages share one map and positions can be compared across stages. PCA is a numpy
SVD and returns at once; UMAP (umap-learn, imported lazily) is much slower, above all the
first call in a fresh process, which compiles numba code. Results are therefore cached as
``.safetensors`` files named by a sha256 of the input bytes and the parameters (the full
key is also in the file's header and checked on reading), so the app can show the PCA
map at once, ask :func:`cached_projection` whether the UMAP map is ready, and a
background job can precompute it after training (:mod:`recsys_core.embeddings.maps`).

Numba: compiled code is cached on disk under the cache root (``numba/``, set as
``NUMBA_CACHE_DIR`` before umap-learn is first imported, unless the caller set one), so a
new process loads it instead of compiling again; :func:`warm_umap` fits a tiny map in a
background thread once per process, so the code is loaded (or compiled) before anyone
waits for a map. ``FIT_LOCK`` lets one UMAP fit run at a time in a process: on a
laptop-class CPU two fits side by side take as long as one after the other.

Progress and cancellation of a UMAP fit travel through :class:`Callbacks`: one stage
while the neighbour graph is built (the first fit in a process also compiles), then
the layout epochs, read from umap-learn's own epoch loop (its tqdm bar, pointed at
:class:`_EpochSink` instead of a terminal); a cancel stops the layout at the next
report.

No pickle: safetensors only (``docs/projection_cache.md``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from recsys_core.training.callbacks import Callbacks, ProgressEvent

log = logging.getLogger(__name__)

Method = Literal["umap", "pca"]
_METHODS = ("umap", "pca")
# Bump when the fitting code changes in a way that changes its output, so stale cache
# files are not served.
_CACHE_VERSION = 2  # 2: safetensors files with the key in the header


MAX_CATEGORIES = 12
"""How many categories a map colours apart: beyond about a dozen, hues stop being told
apart at a glance, so rarer ones are grouped."""


def group_rare(
    labels, keep: int = MAX_CATEGORIES, other: str = "other", fixed: tuple[str, ...] = ()
) -> tuple[np.ndarray, list[str]]:
    """Keep the ``keep`` most frequent labels, call the rest ``other``.

    Args:
        labels: sequence (n,) of category labels (e.g. each point's first genre).
        keep: how many distinct labels keep their own name (ties: first seen first).
        fixed: labels that are never grouped nor counted against ``keep`` (e.g. "users").

    Returns:
        (object array (n,) of labels after grouping, category order: kept labels by
        falling frequency, then ``other`` if used, then the ``fixed`` labels present).
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    s = np.asarray([str(x) for x in labels], dtype=object)
    names, first, counts = np.unique(s, return_index=True, return_counts=True)
    order = sorted(
        (i for i in range(len(names)) if names[i] not in fixed),
        key=lambda i: (-counts[i], first[i]),
    )
    kept = [str(names[i]) for i in order[:keep]]
    grouped = np.array(
        [x if (x in fixed or x in kept) else other for x in s.tolist()], dtype=object
    )
    cats = kept + ([other] if len(order) > keep else [])
    cats += [f for f in fixed if f in set(s.tolist())]
    return grouped, cats


def _validate(X: np.ndarray, method: str, n_neighbors: int, min_dist: float) -> np.ndarray:
    if method not in _METHODS:
        raise ValueError(f"method must be 'umap' or 'pca', not {method!r}")
    A = np.ascontiguousarray(np.asarray(X))
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n, d), got shape {A.shape}")
    if not np.issubdtype(A.dtype, np.number):
        raise ValueError(f"X must be numeric, got dtype {A.dtype}")
    if not np.all(np.isfinite(A)):
        raise ValueError("X contains NaN or infinite values; drop or fix those rows first")
    if int(n_neighbors) != n_neighbors or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors}")
    if not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"min_dist must be between 0 and 1, got {min_dist}")
    return A


def _params(method: str, seed: int, n_neighbors: int, min_dist: float) -> dict:
    """The parameters that change the output of ``method`` (PCA ignores the UMAP knobs,
    so a PCA map is not recomputed when only n_neighbors changes)."""
    if method == "pca":
        return {"method": "pca", "version": _CACHE_VERSION}
    return {
        "method": "umap",
        "version": _CACHE_VERSION,
        "seed": int(seed),
        "n_neighbors": int(n_neighbors),
        "min_dist": float(min_dist),
    }


def cache_key(
    X: np.ndarray, method: Method, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1
) -> str:
    """sha256 hex digest of X's bytes, dtype and shape plus the relevant parameters."""
    A = _validate(X, method, n_neighbors, min_dist)
    h = hashlib.sha256()
    h.update(json.dumps(_params(method, seed, n_neighbors, min_dist), sort_keys=True).encode())
    h.update(f"{A.dtype.str}|{A.shape}".encode())
    h.update(A.tobytes())
    return h.hexdigest()


def _cache_path(cache_dir: Path, method: str, key: str) -> Path:
    return Path(cache_dir) / f"{method}-{key[:40]}.safetensors"


def _load(path: Path, n: int, key: str | None = None) -> np.ndarray | None:
    """The cached array, or None when missing, unreadable, of the wrong shape, written
    for another key, or whose data fails the header's sha256 (a damaged or planted file
    is recomputed, never trusted)."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            Y = f.get_tensor("xy")
    except Exception as exc:  # safetensors raises its own error types on damaged files
        log.warning("projection cache %s unreadable (%s): recomputing", path.name, exc)
        return None
    if key is not None and meta.get("key") != key:
        return None
    if Y.shape != (n, 2) or meta.get("sha256") != hashlib.sha256(Y.tobytes()).hexdigest():
        return None  # flipped bytes in the data: the header's checksum says so
    return Y.astype(np.float64, copy=False)


def _save_atomic(path: Path, Y: np.ndarray, key: str, params: dict) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a
    file. The header holds the full key and the parameters (JSON)."""
    from safetensors.numpy import save

    xy = np.ascontiguousarray(Y, dtype=np.float64)
    data = save(
        {"xy": xy},
        metadata={
            "key": key,
            "params": json.dumps(params, sort_keys=True),
            "sha256": hashlib.sha256(xy.tobytes()).hexdigest(),
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fit_pca(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """First two principal components of X, shape (n, 2), float64.

    Signs are fixed so that the largest-magnitude loading of each component is positive
    (as sklearn's svd_flip), so the same data always gives the same picture. Missing
    components (d == 1, or n == 1) are zeros.
    """
    A = np.asarray(X, dtype=np.float64)
    A = A - A.mean(axis=0)
    n = A.shape[0]
    out = np.zeros((n, 2))
    if n < 2:
        return out
    _, _, Vt = np.linalg.svd(A, full_matrices=False)
    comps = Vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.argmax(np.abs(comps), axis=1)])
    signs[signs == 0] = 1.0
    out[:, : len(comps)] = A @ (comps * signs[:, None]).T
    return out


FIT_LOCK = threading.Lock()
"""Held by every UMAP fit of :func:`project_2d` and by :func:`warm_umap`: one fit at a
time per process (module docstring)."""

UMAP_GRAPH_SHARE = 0.3
"""Share of a UMAP fit's progress bar given to the neighbour graph (the layout epochs
take the rest): the graph has no progress of its own to report."""
UMAP_GRAPH_STAGE = "UMAP: neighbour graph"
UMAP_LAYOUT_STAGE = "UMAP: layout"
UMAP_WAIT_STAGE = "UMAP: waiting for another map (or the warm-up)"


class _EpochSink:
    """A file for umap-learn's tqdm bar: reads "n/total" epochs from what the bar
    writes and turns it into progress events; asks ``should_cancel`` at each write and
    stops the fit (raising in the fitting thread only: tqdm may also write from its
    monitor thread)."""

    _N = re.compile(r"(\d+)/(\d+)")

    def __init__(self, cb: Callbacks, t0: float) -> None:
        self.cb, self.t0, self.thread = cb, t0, threading.current_thread()

    def write(self, text: str) -> int:
        found = self._N.findall(text)
        if found:
            n, total = (int(x) for x in found[-1])
            frac = UMAP_GRAPH_SHARE + (1 - UMAP_GRAPH_SHARE) * n / max(total, 1)
            self.cb.progress(
                ProgressEvent(
                    stage=UMAP_LAYOUT_STAGE,
                    epoch=n,
                    epochs=total,
                    seconds=time.perf_counter() - self.t0,
                    fraction=frac,
                )
            )
        if threading.current_thread() is self.thread:
            self.cb.check_cancel()
        return len(text)

    def flush(self) -> None:
        pass


def _fit_umap(
    X: np.ndarray, seed: int, n_neighbors: int, min_dist: float, cb: Callbacks | None = None
) -> np.ndarray:
    """UMAP to 2-D with cosine distance (how the scorer compares vectors), shape (n, 2).

    Fixed random_state makes it reproducible (and single-threaded). Fewer than 4 points
    cannot make a neighbour graph: PCA is used instead. ``cb``: progress (the graph,
    then the layout epochs) and cancellation (module docstring).
    """
    n = X.shape[0]
    if n < 4:
        return _fit_pca(X, seed)
    cb = cb or Callbacks()
    t0 = time.perf_counter()
    cb.progress(ProgressEvent(stage=UMAP_GRAPH_STAGE, fraction=0.0))
    use_numba_cache()
    import umap  # lazy: importing umap-learn pulls numba and takes seconds

    cb.check_cancel()
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=int(min(n_neighbors, n - 1)),
        min_dist=float(min_dist),
        metric="cosine",
        random_state=int(seed),
        tqdm_kwds={
            "disable": False,
            "file": _EpochSink(cb, t0),
            "bar_format": "{n}/{total}",
            "mininterval": 0.5,
        },
    )
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state" and spectral-init
        # fallbacks on tiny graphs: expected, not the analyst's concern.
        warnings.simplefilter("ignore")
        Y = reducer.fit_transform(np.asarray(X, dtype=np.float32))
    cb.progress(
        ProgressEvent(stage=UMAP_LAYOUT_STAGE, seconds=time.perf_counter() - t0, fraction=1.0)
    )
    return np.asarray(Y, dtype=np.float64)


def cached_projection(
    X: np.ndarray,
    method: Method,
    cache_dir: Path | str | None,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> np.ndarray | None:
    """The cached projection of X if it is on disk, else None; never computes anything.

    Same arguments as :func:`project_2d`. Returns float64 (n, 2) or None.
    """
    if cache_dir is None:
        return None
    key = cache_key(X, method, seed, n_neighbors, min_dist)
    return _load(_cache_path(Path(cache_dir), method, key), np.shape(X)[0], key)


def project_2d(
    X: np.ndarray,
    method: Method = "umap",
    cache_dir: Path | str | None = None,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    callbacks: Callbacks | None = None,
) -> np.ndarray:
    """Project all rows of X to 2-D in one joint fit, reading and filling the disk cache.

    Args:
        X: shape (n, d), every point to show (stack the stages first so they share a map).
        method: "pca" (instant, linear) or "umap" (slow first call, keeps neighbourhoods).
        cache_dir: folder for cached results; None disables caching.
        seed: random state of UMAP (PCA is deterministic).
        n_neighbors: UMAP neighbourhood size (capped at n - 1); larger favours global shape.
        min_dist: UMAP minimum distance between points in the map, in [0, 1].
        callbacks: progress and cancellation of a UMAP fit (``Cancelled`` stops it and
            nothing is cached); PCA is instant and reports nothing.

    Returns:
        float64 array of shape (n, 2), row i the map position of row i of X.
    """
    A = _validate(X, method, n_neighbors, min_dist)
    path = key = None
    if cache_dir is not None:
        key = cache_key(A, method, seed, n_neighbors, min_dist)
        path = _cache_path(Path(cache_dir), method, key)
        hit = _load(path, A.shape[0], key)
        if hit is not None:
            return hit
    if method == "pca":
        Y = _fit_pca(A, seed)
    else:
        cb = callbacks or Callbacks()
        while not FIT_LOCK.acquire(timeout=0.2):  # one fit at a time (module docstring)
            cb.check_cancel()
            cb.progress(ProgressEvent(stage=UMAP_WAIT_STAGE, fraction=0.0))
        try:
            # Another session may have fitted the same map while this one waited.
            hit = None if path is None else _load(path, A.shape[0], key)
            if hit is not None:
                return hit
            Y = _fit_umap(A, seed, n_neighbors, min_dist, cb)
            Y = _cache(
                path, key, np.asarray(Y, dtype=np.float64), method, seed, n_neighbors, min_dist
            )
        finally:
            FIT_LOCK.release()
        return Y
    return _cache(path, key, np.asarray(Y, dtype=np.float64), method, seed, n_neighbors, min_dist)


def _cache(path, key, Y: np.ndarray, method, seed, n_neighbors, min_dist) -> np.ndarray:
    if path is not None and key is not None:
        try:
            _save_atomic(path, Y, key, _params(method, seed, n_neighbors, min_dist))
        except OSError as exc:  # a full or read-only disk costs the cache, not the map
            log.warning("projection cache %s not written: %s", path, exc)
    return Y


NUMBA_DIRNAME = "numba"


def use_numba_cache() -> str | None:
    """Point numba's on-disk cache at ``<cache root>/numba`` unless the caller chose a
    folder (``NUMBA_CACHE_DIR``). Effective only before numba is imported (numba reads
    it once); returns the folder in force, or None when numba was imported without one.

    Why: umap-learn and pynndescent mark their kernels ``cache=True``; with a writable
    cache folder a new process loads them instead of compiling (measured in
    ``docs/projection_cache.md``). Without one, numba writes next to the installed
    package, which is often read-only.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    if "numba" in sys.modules:
        return None
    root = os.environ.get("RTL_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "recsys_transfer_lab"
    folder = base / NUMBA_DIRNAME  # the rule of recsys_core.pipeline.cache_root (no torch here)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    return str(folder)


WARM_POINTS = 4200
"""Points of the warm-up fit: above umap-learn's 4,096, where it switches from exact
neighbours to pynndescent, so the kernels a real map uses are the ones loaded."""

_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None
_warm_stop = threading.Event()


def warm_umap(background: bool = True, delay_s: float = 0.0) -> threading.Thread | None:
    """Load (or compile) UMAP's numba code once per process, ahead of the first map.

    Fits a small random map (:data:`WARM_POINTS` points, 16-d, 5 layout epochs) with the
    settings of :func:`_fit_umap`, holding :data:`FIT_LOCK`. Later calls do nothing.

    Args:
        background: run in a daemon thread (the app's start) and return it; False runs
            here and returns None.
        delay_s: seconds the thread waits first (numba's compiler holds the GIL much of
            the time: the app's first page is drawn before it starts).

    Returns:
        The warm-up thread when one was started by this call, else None.
    """
    global _warm_thread
    with _warm_lock:
        if _warm_thread is not None:
            return None
        _warm_thread = threading.Thread(
            target=_warm, args=(delay_s if background else 0.0,), name="rtl-umap-warm", daemon=True
        )
        if not background:
            _warm_thread.run()
            return None
        _warm_thread.start()
    import atexit

    # Stopped and joined at exit: a daemon thread inside numba's compiler while Python
    # tears down can abort the process. Not started yet: it ends at once.
    atexit.register(_stop_warm, _warm_thread)
    return _warm_thread


def _stop_warm(thread: threading.Thread, timeout: float = 60.0) -> None:
    _warm_stop.set()
    thread.join(timeout)


def _warm(delay_s: float = 0.0) -> None:
    if _warm_stop.wait(delay_s):
        return
    t0 = time.perf_counter()
    try:
        use_numba_cache()
        import umap

        X = np.random.default_rng(0).normal(size=(WARM_POINTS, 16)).astype(np.float32)
        with FIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap.UMAP(
                n_components=2,
                n_neighbors=15,
                metric="cosine",
                random_state=0,
                n_epochs=5,
                init="random",  # spectral init is scipy, not numba: nothing to warm
            ).fit_transform(X)
    except Exception as exc:  # warming is an optimisation: never an error for anyone
        log.warning("UMAP warm-up failed: %s", exc)
        return
    log.info("UMAP warm-up done in %.1f s", time.perf_counter() - t0)
