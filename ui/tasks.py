"""Side tasks of the session's JobManager: where their progress and cancel files live."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import streamlit as st

from ui import state


@dataclasses.dataclass(frozen=True)
class TaskFiles:
    """Where a side task of the session's JobManager leaves its traces on disk.

    The worker thread never touches ``st.*``: it writes its progress to these JSON files
    and the page polls them (its result stays in the JobManager's memory:
    ``JobManager.task_result``); the page asks it to stop by creating
    ``cancel`` (the task's ``should_cancel`` looks for it).
    """

    folder: Path
    key: str

    @property
    def progress(self) -> Path:
        return self.folder / f"{self.key}.progress.json"

    @property
    def cancel(self) -> Path:
        return self.folder / f"{self.key}.cancel"

    def write_progress(self, **info: Any) -> None:
        """Replace the progress file in one step (the page never reads half a file)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.progress.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info, default=str))
        tmp.replace(self.progress)

    def read_progress(self) -> dict:
        try:
            return json.loads(self.progress.read_text())
        except (OSError, ValueError):
            return {}


def task_files(kind: str, key: str) -> TaskFiles:
    """This session's files of side task ``key`` (e.g. kind "whatif")."""
    return TaskFiles(state.cache_dir() / kind / st.session_state[state.SESSION_ID], key)
