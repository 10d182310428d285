"""recsys_core/allocator.py: glibc's thresholds are fixed once per process, unless the
user said otherwise. Each case runs in a fresh interpreter (mallopt is process-wide)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = (
    "from recsys_core.allocator import tune_allocator as t; "
    "print(t(), t())"  # the second call answers from the first
)


def _probe(**env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TRANSFER_LAB_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    }
    p = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)


@glibc
def test_tunes_glibc_once_per_process():
    assert _probe() == "True True"


@pytest.mark.parametrize(
    "env",
    [
        {"TRANSFER_LAB_MALLOC": "default"},
        {"TRANSFER_LAB_MALLOC": " Default "},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"MALLOC_TRIM_THRESHOLD_": "131072"},
    ],
)
def test_leaves_malloc_alone_when_told_or_already_tuned(env):
    assert _probe(**env) == "False False"


def test_the_cli_and_every_run_call_it():
    """The two entry points: the console script before it parses anything, and
    run_strategies (the app's jobs and Ray tasks train through it)."""
    import inspect

    from recsys_core import cli, pipeline

    assert "tune_allocator()" in inspect.getsource(cli.main)
    assert "tune_allocator()" in inspect.getsource(pipeline.run_strategies)
