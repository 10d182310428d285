"""Shared fixtures: an isolated cache and run store per test session, toy data files."""

from __future__ import annotations

import os

import pytest
import torch

from tests.toy import toy_pair

# Test data is tiny: with two threads, thread start-up and synchronisation cost more
# than the arithmetic (measured: the model tests take 13 s on one thread, 40 s on two).
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory):
    """Run stores and caches of tests never touch the user's folders."""
    root = tmp_path_factory.mktemp("rtl")
    old = {k: os.environ.get(k) for k in ("RTL_RUN_STORE",)}
    os.environ["RTL_RUN_STORE"] = str(root / "runs")
    # The text/demo cache is shared across the session (encoding real text is slow);
    # honour a cache the caller already set (CI sets one), else use a session folder.
    os.environ.setdefault("RTL_CACHE_DIR", str(root / "cache"))
    # No UMAP map computed without a click (after a job, by the Embeddings page, the
    # warm-up): a real fit compiles numba code for a minute in the background of every
    # test process. The tests of that path turn it on (tests/embeddings/test_maps.py,
    # tests/app/test_embeddings_page.py, tests/browser/test_embeddings_cache.py).
    os.environ.setdefault("RTL_PRECOMPUTE_MAPS", "0")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def toy_files(tmp_path_factory):
    """The toy pair written as CSV files a user could upload."""
    d = tmp_path_factory.mktemp("toy")
    src, tgt = toy_pair()
    paths = {}
    for dom, role in ((src, "source"), (tgt, "target")):
        p = d / f"{role}_interactions.csv"
        dom.interactions.to_csv(p, index=False)
        q = d / f"{role}_items.csv"
        dom.items.to_csv(q, index=False)
        paths[role] = str(p)
        paths[f"{role}_items"] = str(q)
    return paths
