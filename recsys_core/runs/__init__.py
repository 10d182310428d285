"""Run store: every training run's status, progress, results and artifacts.

:class:`~recsys_core.runs.store.RunStore` keeps one SQLite database (``runs.sqlite``)
and one folder per run under a root folder (``./transfer_lab_runs`` or ``RTL_RUN_STORE``).
"""

from recsys_core.runs.store import INTERRUPTED, STATUSES, RunNotFoundError, RunStore, Status

__all__ = ["INTERRUPTED", "STATUSES", "RunNotFoundError", "RunStore", "Status"]
