"""The run store: one SQLite database plus one folder of artifacts per run.

Layout under the root folder (``./transfer_lab_runs`` by default, or the ``RTL_RUN_STORE``
environment variable, or the ``root`` argument)::

    runs.sqlite                  status, config, metrics, progress of every run
    <run_id>/config.json         the config as given to create_run
    <run_id>/result.json         metrics, seconds and extra, written by finish
    <run_id>/metrics.parquet     the metric records as a table, written by finish
    <run_id>/<name>.parquet      tables (save_table)
    <run_id>/<name>.safetensors  tensors (save_tensors)
    <run_id>/<name>.json         anything JSON (save_json)
    <run_id>/run.log             free-text log lines (log)

Guarantees:

* Files are written atomically (temp file in the same folder, fsync, ``os.replace``), so a
  reader sees the old file or the new one, never half of one. ``run.log`` is the one
  exception: lines are appended.
* Database writes are single transactions on a connection opened for that call, in WAL
  mode with a busy timeout, so a background training thread and the UI thread (or another
  process) can use one store at once; sqlite3 connections are never shared across threads.
* A run is "done" only through :meth:`RunStore.finish`, which writes every artifact first
  and flips the status last. A run whose process died while queued or running is marked
  "failed" by :meth:`RunStore.reconcile` (called by :meth:`RunStore.list_runs` and
  :meth:`RunStore.get_run`), so it never looks finished or still alive.
* No pickle: JSON, Parquet, safetensors and SQLite only.

Who may read a run (issue 12): a run trained on a browser session's private uploads (its
config's ``spec.owner`` is set) belongs to the run's ``owner``, the app's browser user.
A store opened with ``viewer=<owner token>`` (the app opens one per user) lists, reads and
loads only the runs that user may see: its own, the runs of data nobody owns (demos, the
CLI's own files) and the scenarios their owner shared (:meth:`RunStore.share_scenario`);
the others are absent, exactly as a run id the store never held
(:class:`RunNotFoundError`). ``viewer=None`` (the CLI, scripts, the training worker) sees
every run: whoever has the folder has its files anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from recsys_core.errors import DataError

if TYPE_CHECKING:  # torch is imported lazily: a store that only lists runs needn't load it
    import torch

Status = Literal["queued", "running", "done", "failed", "cancelled"]
STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATUSES: tuple[str, ...] = ("queued", "running")
ENV_VAR = "RTL_RUN_STORE"
DEFAULT_DIRNAME = "transfer_lab_runs"
DB_NAME = "runs.sqlite"
INTERRUPTED = "interrupted: the process that ran it stopped"

_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 30.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

# The runs a viewer (parameter :viewer) may see, as one SQL condition on the runs table:
# its own, those of data nobody owns (no spec.owner in the config: a demo, the CLI's own
# files), and those of scenarios their owner shared.
_VISIBLE_SQL = (
    "(runs.owner = :viewer OR json_extract(runs.config_json, '$.spec.owner') IS NULL "
    "OR EXISTS (SELECT 1 FROM shares WHERE shares.owner = runs.owner "
    "AND shares.scenario = runs.scenario))"
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT PRIMARY KEY,
    label            TEXT,
    strategy         TEXT NOT NULL,
    scenario         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    error            TEXT,
    config_json      TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    progress_json    TEXT,
    metrics_json     TEXT,
    seconds_json     TEXT,
    extra_json       TEXT,
    pid              INTEGER,
    pid_start        INTEGER,
    hostname         TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    heartbeat_at     REAL,
    owner            TEXT
);
CREATE INDEX IF NOT EXISTS runs_scenario ON runs (scenario, created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS shares (
    owner    TEXT NOT NULL,
    scenario TEXT NOT NULL,
    PRIMARY KEY (owner, scenario)
);
CREATE TABLE IF NOT EXISTS history (
    run_id        TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    time          REAL NOT NULL,
    progress_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


class StoreError(DataError):
    """The store's location cannot hold a run store (a file, a read-only folder, a
    runs.sqlite that is a folder or not a database)."""


class ArtifactError(DataError, FileNotFoundError):
    """A run's artifact is missing, truncated or corrupted. A FileNotFoundError too, so
    callers that treat a missing artifact as "none" keep doing so for broken ones.

    ``run_id`` and ``artifact`` (the file name) say which, so a page comparing several
    runs can leave the broken one out and go on with the rest.
    """

    def __init__(self, problem: str, *, run_id: str, artifact: str, hint: str | None = None):
        super().__init__(problem, hint=hint)
        self.run_id = run_id
        self.artifact = artifact


class MissingArtifactError(ArtifactError):
    """The artifact is not in the run's folder (some runs have none: popularity keeps no
    vectors); its broken siblings are plain :class:`ArtifactError`."""


class RunNotFoundError(KeyError):
    """No run with this id in the store (deleted, or a typo)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else "run not found"


# --- small helpers --------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    """Make numpy/torch scalars, arrays, paths and timestamps JSON-able (never pickled)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, pd.Timestamp, datetime)):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # torch tensors, without importing torch
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=False)


def _loads(text: str | None, empty: Any = None) -> Any:
    return empty if text is None else json.loads(text)


def _now() -> float:
    return time.time()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s[:40].rstrip("-")) or "run"


def _fsync_dir(path: Path) -> None:
    """Persist a rename on POSIX; a no-op where directories cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success fsync it and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with _atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _process_start(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux /proc), else None.

    Stored next to the pid so a recycled pid (a new process given the dead run's number)
    is not mistaken for the run's owner.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of proc(5), "starttime"
    except (IndexError, ValueError):
        return None


def _process_alive(pid: int, start: int | None) -> bool:
    """Whether the process that owned a run still exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    except OSError:
        return False
    proc = Path(f"/proc/{pid}/stat")
    if proc.exists():
        try:
            state = proc.read_text()
        except OSError:
            return False
        if state[state.rfind(")") + 2 :].split()[:1] == ["Z"]:  # zombie: dead, not yet reaped
            return False
        if start is not None and _process_start(pid) != start:
            return False  # the pid was recycled by another process
    return True


# --- the store ---------------------------------------------------------------------------


class RunStore:
    """Runs and their artifacts under one root folder.

    Args:
        root: the store folder. None: the ``RTL_RUN_STORE`` environment variable if set,
            else ``./transfer_lab_runs`` in the current working directory. Created if
            missing; the path is resolved once, so a later ``chdir`` does not move it.

        viewer: the browser user this store reads for (the app's owner token): runs
            trained on another user's private uploads, and not shared, are left out of
            every query and refused by every read (:class:`RunNotFoundError`, as for an
            id the store never held). None: every run (the CLI, the training worker).

    Every method opens its own short-lived SQLite connection, so one ``RunStore`` object
    may be used from several threads.
    """

    def __init__(self, root: Path | str | None = None, viewer: str | None = None) -> None:
        self.viewer = viewer
        if root is None:
            root = os.environ.get(ENV_VAR) or Path.cwd() / DEFAULT_DIRNAME
        self.root = Path(root).expanduser().resolve()
        self.db_path = self.root / DB_NAME
        self._hostname = socket.gethostname()
        self._check_location()
        try:
            with self._connect() as con:
                # WAL lets readers (the UI) proceed while a writer (training) commits; the
                # setting is stored in the database file, so setting it once is enough.
                con.execute("PRAGMA journal_mode=WAL")
                version = con.execute("PRAGMA user_version").fetchone()[0]
                if version > _SCHEMA_VERSION:
                    raise ValueError(
                        f"the run store at {self.root} was written by a newer version "
                        f"(schema {version}); upgrade recsys-transfer-lab or choose another folder"
                    )
                con.executescript(_SCHEMA)
                # ``owner`` came later: a nullable column added in place. Older code reads
                # rows by name and inserts named columns, so it keeps working on this file
                # (hence no schema version bump).
                cols = {r[1] for r in con.execute("PRAGMA table_info(runs)").fetchall()}
                if "owner" not in cols:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process won
                        con.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
                con.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"'{self.db_path}' cannot be used as the run store's database ({exc})",
                hint="Point --store (or RTL_RUN_STORE) at the folder of a run store, or at an "
                "empty folder to start a new one; do not edit runs.sqlite by hand",
            ) from exc

    def _check_location(self) -> None:
        """Refuse, with a message, a store root that cannot hold a run store: a file, a
        folder that cannot be created or written, a runs.sqlite that is not a file."""
        how = "Point --store (or RTL_RUN_STORE) at a folder you can write"
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the run store '{self.root}' is a file, not a folder", hint=how)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"the run store folder '{self.root}' cannot be created ({exc.strerror})",
                hint=how,
            ) from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(
                f"the run store folder '{self.root}' is read-only (runs, and SQLite's "
                "write-ahead log, are written there)",
                hint=how,
            )
        if self.db_path.exists() and not self.db_path.is_file():
            raise StoreError(
                f"'{self.db_path}' is not a file; the run store keeps its database there",
                hint="Move it away, or point --store (or RTL_RUN_STORE) at another folder",
            )

    def __repr__(self) -> str:
        who = "" if self.viewer is None else ", viewer=..."
        return f"RunStore({str(self.root)!r}{who})"

    # -- database plumbing ------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one call, closed afterwards (sqlite3's own context manager
        only commits, it never closes)."""
        con = sqlite3.connect(self.db_path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys=ON")
            # NORMAL is corruption-safe in WAL mode; a power cut may lose the last commit.
            con.execute("PRAGMA synchronous=NORMAL")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front, so two
        writers wait for each other (busy timeout) instead of failing on upgrade."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _row(self, con: sqlite3.Connection, run_id: str) -> sqlite3.Row:
        """The run's row; RunNotFoundError when the store lacks it or the viewer may not
        see it (every read of a run, its artifacts and its folder passes here)."""
        sql, args = "SELECT * FROM runs WHERE run_id = :run_id", {"run_id": run_id}
        if self.viewer is not None:
            sql += f" AND {_VISIBLE_SQL}"
            args["viewer"] = self.viewer
        row = con.execute(sql, args).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run '{run_id}' in the run store at {self.root}")
        return row

    # -- lifecycle ----------------------------------------------------------------------

    def create_run(
        self,
        strategy: str,
        scenario: str,
        config: Mapping[str, Any],
        data_fingerprint: str,
        label: str | None = None,
        owner: str | None = None,
    ) -> str:
        """Register a new run in status "queued" and create its folder.

        Args:
            strategy: strategy name ("fine-tune", "distill"...), also used in the id.
            scenario: scenario name, used to filter :meth:`list_runs`.
            config: JSON-able settings of the run (stored in the DB and as config.json).
            data_fingerprint: hash of the data the run uses, to tell comparable runs apart.
            label: optional name shown to the analyst.
            owner: who asked for the run (the app's browser user, an opaque token), so
                the runs of one user can be found again after a reload; None for the CLI.

        Returns:
            The run id, e.g. "20261122-142501-fine-tune-3fa2" (UTC time, strategy, random).
        """
        if not strategy or not str(strategy).strip():
            raise ValueError("strategy must be a non-empty name, e.g. 'fine-tune'")
        if not scenario or not str(scenario).strip():
            raise ValueError("scenario must be a non-empty name")
        config_json = _dumps(dict(config))
        now = _now()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        pid = os.getpid()
        for _ in range(20):
            run_id = f"{stamp}-{_slug(strategy)}-{secrets.token_hex(2)}"
            try:
                with self._write() as con:
                    con.execute(
                        "INSERT INTO runs (run_id, label, strategy, scenario, status, "
                        "config_json, data_fingerprint, pid, pid_start, hostname, created_at, "
                        "updated_at, owner) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            run_id, label, strategy, scenario, config_json, str(data_fingerprint),
                            pid, _process_start(pid), self._hostname, now, now, owner,
                        ),
                    )  # fmt: skip
            except sqlite3.IntegrityError:
                continue  # same second, same 4 hex digits: draw again
            break
        else:  # pragma: no cover - 20 collisions in a row
            raise RuntimeError("could not allocate a unique run id")
        folder = self.root / run_id
        folder.mkdir(parents=True, exist_ok=True)
        # A copy next to the artifacts, so a run folder explains itself without the DB.
        manifest = {
            "run_id": run_id,
            "strategy": strategy,
            "scenario": scenario,
            "label": label,
            "data_fingerprint": str(data_fingerprint),
            "config": json.loads(config_json),
        }
        _atomic_write_bytes(folder / "config.json", json.dumps(manifest, indent=2).encode())
        return run_id

    def set_status(self, run_id: str, status: Status, error: str | None = None) -> None:
        """Move a run to another status.

        "running" records this process (pid, start time, host) as the owner, so a crash is
        detected by :meth:`reconcile`. "done" is refused here: only :meth:`finish`, which
        writes the artifacts first, may mark a run done. A done run never changes status.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        if status == "done":
            raise ValueError(
                "use finish(run_id, ...) to mark a run done: it writes the results first"
            )
        now = _now()
        with self._write() as con:
            row = self._row(con, run_id)
            if row["status"] == "done":
                raise ValueError(f"run '{run_id}' is done; a finished run cannot change status")
            sets = ["status = ?", "error = ?", "updated_at = ?"]
            args: list[Any] = [status, error, now]
            if status == "running":
                pid = os.getpid()
                sets += ["pid = ?", "pid_start = ?", "hostname = ?", "heartbeat_at = ?"]
                args += [pid, _process_start(pid), self._hostname, now]
                if row["started_at"] is None:
                    sets.append("started_at = ?")
                    args.append(now)
            elif status in ("failed", "cancelled"):
                sets.append("finished_at = ?")
                args.append(now)
            con.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", (*args, run_id))

    def heartbeat(self, run_id: str, progress: Mapping[str, Any]) -> None:
        """Record progress: the latest state plus one history row (training curves).

        Args:
            progress: JSON-able values such as ``{"epoch": 3, "step": 1200, "loss": 0.41,
                "val_ndcg@10": 0.083, "seconds": 12.5}``.
        """
        progress_json = _dumps(dict(progress))
        now = _now()
        with self._write() as con:
            cur = con.execute(
                "UPDATE runs SET progress_json = ?, heartbeat_at = ?, updated_at = ? "
                "WHERE run_id = ?",
                (progress_json, now, now, run_id),
            )
            if cur.rowcount == 0:
                raise RunNotFoundError(f"no run '{run_id}' in the run store at {self.root}")
            con.execute(
                "INSERT INTO history (run_id, seq, time, progress_json) VALUES (?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM history WHERE run_id = ?), ?, ?)",
                (run_id, run_id, now, progress_json),
            )

    def finish(
        self,
        run_id: str,
        metrics_records: list[dict[str, Any]],
        seconds: Mapping[str, float],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the results, then mark the run done (in that order).

        Args:
            metrics_records: one dict per metric value, e.g. ``{"segment": "warm_users",
                "metric": "ndcg", "k": 10, "value": 0.081, "low": 0.075, "high": 0.087}``;
                saved as ``metrics.parquet`` and in the database.
            seconds: wall-clock seconds per phase, e.g. ``{"train": 41.2, "eval": 3.1}``.
            extra: anything else JSON-able worth keeping (model size, best epoch...).

        Raises:
            ValueError: when the run is already done, failed or cancelled.
        """
        with self._connect() as con:
            status = self._row(con, run_id)["status"]
        if status not in ACTIVE_STATUSES:
            raise ValueError(f"run '{run_id}' is {status}; only a queued or running run can finish")
        records = [dict(r) for r in metrics_records]
        metrics_json, seconds_json = _dumps(records), _dumps(dict(seconds))
        extra_json = _dumps(dict(extra or {}))
        # Artifacts first: if the process dies here, the run is not "done" and reconcile
        # will mark it failed.
        if records:
            self.save_table(run_id, "metrics", pd.DataFrame.from_records(records))
        result = {
            "metrics": json.loads(metrics_json),
            "seconds": json.loads(seconds_json),
            "extra": json.loads(extra_json),
        }
        self.save_json(run_id, "result", result)
        now = _now()
        with self._write() as con:
            cur = con.execute(
                "UPDATE runs SET status = 'done', error = NULL, metrics_json = ?, "
                "seconds_json = ?, extra_json = ?, finished_at = ?, updated_at = ? "
                "WHERE run_id = ? AND status IN ('queued', 'running')",
                (metrics_json, seconds_json, extra_json, now, now, run_id),
            )
            if cur.rowcount == 0:  # cancelled or failed while the artifacts were written
                status = self._row(con, run_id)["status"]
                raise ValueError(f"run '{run_id}' became {status} before it could finish")

    def fail(self, run_id: str, error: str) -> None:
        """Mark a run failed with a message for the analyst (what went wrong, in words)."""
        self.set_status(run_id, "failed", error=str(error))

    def reconcile(self, run_ids: Iterable[str] | None = None) -> list[str]:
        """Mark as failed the queued or running runs whose owning process is gone.

        Only runs owned by a process on this host can be checked; runs of other hosts
        are left alone.

        Args:
            run_ids: restrict the check to these runs (None: every active run).

        Returns:
            The ids of the runs just marked failed.
        """
        with self._connect() as con:
            rows = con.execute(
                "SELECT run_id, pid, pid_start, hostname FROM runs "
                "WHERE status IN ('queued', 'running')"
            ).fetchall()
        wanted = None if run_ids is None else set(run_ids)
        dead = [
            r
            for r in rows
            if (wanted is None or r["run_id"] in wanted)
            and r["hostname"] == self._hostname
            and r["pid"] is not None
            and not _process_alive(int(r["pid"]), r["pid_start"])
        ]
        marked = []
        for r in dead:
            now = _now()
            with self._write() as con:
                # Re-check status and owner inside the transaction: the run may have been
                # finished or picked up by another process since the SELECT.
                cur = con.execute(
                    "UPDATE runs SET status = 'failed', error = ?, finished_at = ?, "
                    "updated_at = ? WHERE run_id = ? AND status IN ('queued', 'running') "
                    "AND pid = ? AND hostname = ?",
                    (INTERRUPTED, now, now, r["run_id"], r["pid"], r["hostname"]),
                )
            if cur.rowcount:
                marked.append(r["run_id"])
                with contextlib.suppress(OSError):
                    self.log(r["run_id"], f"marked failed: {INTERRUPTED} (pid {r['pid']})")
        return marked

    def delete_run(self, run_id: str) -> None:
        """Remove a run from the database and delete its folder.

        Raises:
            ValueError: when the run is running in a live process (cancel it first).
        """
        self.reconcile([run_id])
        with self._write() as con:
            row = self._row(con, run_id)
            if row["status"] == "running":
                raise ValueError(f"run '{run_id}' is still running; cancel it before deleting it")
            con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        # Database first: a crash here leaves an orphan folder, never a listed run without one.
        shutil.rmtree(self.root / run_id, ignore_errors=True)

    # -- sharing ------------------------------------------------------------------------

    def share_scenario(self, scenario: str, owner: str, shared: bool = True) -> None:
        """Let every viewer see ``owner``'s runs of ``scenario`` (its item titles,
        recommendations and per-user tables), or (``shared=False``) stop that. Runs of
        the scenario trained later are covered too. The uploaded files themselves stay
        private to the session that made them.

        Raises:
            ValueError: when this store reads for another viewer (only the owner shares).
        """
        if not owner or not scenario:
            raise ValueError("sharing needs the scenario's name and its owner")
        if self.viewer is not None and self.viewer != owner:
            raise ValueError("only the owner of a scenario's runs can share them")
        with self._write() as con:
            if shared:
                con.execute(
                    "INSERT OR IGNORE INTO shares (owner, scenario) VALUES (?, ?)",
                    (owner, scenario),
                )
            else:
                con.execute(
                    "DELETE FROM shares WHERE owner = ? AND scenario = ?", (owner, scenario)
                )

    def is_shared(self, scenario: str, owner: str) -> bool:
        """Whether ``owner`` shared its runs of ``scenario`` (:meth:`share_scenario`)."""
        with self._connect() as con:
            row = con.execute(
                "SELECT 1 FROM shares WHERE owner = ? AND scenario = ?", (owner, scenario)
            ).fetchone()
        return row is not None

    # -- queries ------------------------------------------------------------------------

    def list_runs(
        self,
        scenario: str | None = None,
        status: Status | Iterable[Status] | None = None,
        owner: str | None = None,
    ) -> pd.DataFrame:
        """All runs, newest first, after :meth:`reconcile`.

        Args:
            scenario: keep only this scenario's runs.
            status: keep only runs in this status (or any of these statuses).
            owner: keep only the runs created with this owner.

        Only the runs the store's viewer may see (all when it has none).

        Returns:
            DataFrame with columns run_id, label, strategy, scenario, status, error,
            data_fingerprint, created_at, updated_at, started_at, finished_at,
            heartbeat_at (the times as UTC datetimes), owner, one row per run.
        """
        self.reconcile()
        where: list[str] = []
        args: dict[str, Any] = {}
        if scenario is not None:
            where.append("scenario = :scenario")
            args["scenario"] = scenario
        if owner is not None:
            where.append("owner = :owner")
            args["owner"] = owner
        if self.viewer is not None:
            where.append(_VISIBLE_SQL)
            args["viewer"] = self.viewer
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            bad = [s for s in wanted if s not in STATUSES]
            if bad:
                raise ValueError(f"status must be among {', '.join(STATUSES)}, not {bad}")
            names = [f":status{i}" for i in range(len(wanted))]
            where.append(f"status IN ({', '.join(names)})")
            args.update({n[1:]: v for n, v in zip(names, wanted, strict=True)})
        cols = [
            "run_id", "label", "strategy", "scenario", "status", "error", "data_fingerprint",
            "created_at", "updated_at", "started_at", "finished_at", "heartbeat_at", "owner",
        ]  # fmt: skip
        sql = f"SELECT {', '.join(cols)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC"
        with self._connect() as con:
            rows = [tuple(r) for r in con.execute(sql, args).fetchall()]
        df = pd.DataFrame(rows, columns=cols)
        for c in cols[7:12]:
            df[c] = pd.to_datetime(df[c].astype("float64"), unit="s", utc=True)
        return df

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Everything the store knows about one run (after reconciling it).

        Returns:
            dict with run_id, label, strategy, scenario, status, error, config (dict),
            data_fingerprint, progress (dict, latest heartbeat), metrics (list of dicts),
            seconds (dict), extra (dict), pid, hostname, owner (who asked for it, or
            None), created_at, updated_at, started_at, finished_at, heartbeat_at (UTC
            datetimes or None) and run_dir.
        """
        self.reconcile([run_id])
        with self._connect() as con:
            r = self._row(con, run_id)
        return {
            "run_id": r["run_id"],
            "label": r["label"],
            "strategy": r["strategy"],
            "scenario": r["scenario"],
            "status": r["status"],
            "error": r["error"],
            "config": _loads(r["config_json"], {}),
            "data_fingerprint": r["data_fingerprint"],
            "progress": _loads(r["progress_json"], {}),
            "metrics": _loads(r["metrics_json"], []),
            "seconds": _loads(r["seconds_json"], {}),
            "extra": _loads(r["extra_json"], {}),
            "pid": r["pid"],
            "hostname": r["hostname"],
            "owner": r["owner"],
            "created_at": _dt(r["created_at"]),
            "updated_at": _dt(r["updated_at"]),
            "started_at": _dt(r["started_at"]),
            "finished_at": _dt(r["finished_at"]),
            "heartbeat_at": _dt(r["heartbeat_at"]),
            "run_dir": str(self.root / run_id),
        }

    def history(self, run_id: str) -> pd.DataFrame:
        """The heartbeats of a run in the order they were recorded (training curves).

        Returns:
            DataFrame with columns seq (1, 2, ...), time (UTC datetime) and one column per
            progress key seen (epoch, step, loss...; NaN where a heartbeat lacked it;
            keys named "seq" or "time" come back as "progress_seq" / "progress_time").
        """
        with self._connect() as con:
            self._row(con, run_id)
            rows = con.execute(
                "SELECT seq, time, progress_json FROM history WHERE run_id = ? ORDER BY seq",
                (run_id,),
            ).fetchall()
        base = pd.DataFrame(
            {
                "seq": np.array([r["seq"] for r in rows], dtype=np.int64),
                "time": pd.to_datetime(
                    np.array([r["time"] for r in rows], dtype=np.float64), unit="s", utc=True
                ),
            }
        )
        progress = pd.DataFrame.from_records([json.loads(r["progress_json"]) for r in rows])
        # A progress key named like a base column keeps its value under another name.
        progress = progress.rename(columns={"seq": "progress_seq", "time": "progress_time"})
        return pd.concat([base, progress.reset_index(drop=True)], axis=1)

    # -- artifacts ----------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run's artifacts (created by create_run).

        Raises:
            RunNotFoundError: for an id the store does not hold (so a deleted run's
                folder is never silently recreated by a late write).
        """
        with self._connect() as con:
            self._row(con, run_id)
        return self.root / run_id

    def _artifact(self, run_id: str, name: str, suffix: str) -> Path:
        base = name[: -len(suffix)] if name.endswith(suffix) else name
        if not _NAME_RE.match(base):
            raise ValueError(
                f"artifact name {name!r} must be letters, digits, '_', '-' or '.', starting "
                "with a letter or digit (no folders)"
            )
        return self.run_dir(run_id) / f"{base}{suffix}"

    def _existing(self, run_id: str, name: str, suffix: str) -> Path:
        path = self._artifact(run_id, name, suffix)
        if not path.exists():
            raise MissingArtifactError(
                f"run '{run_id}' has no artifact '{path.name}' (its folder in the run store "
                f"{self.root} lacks it)",
                run_id=run_id,
                artifact=path.name,
                hint="Run the strategy again, or delete this run",
            )
        return path

    @contextlib.contextmanager
    def _reading(self, run_id: str, path: Path) -> Iterator[None]:
        """Turn the reader's error on a truncated or corrupted file into an ArtifactError
        naming the run and the file (readers raise their own types: pyarrow's, safetensors',
        json's, OSError)."""
        try:
            yield
        except ArtifactError:
            raise
        except Exception as exc:
            reason = " ".join(str(exc).split())
            reason = reason if len(reason) <= 160 else reason[:157] + "..."
            raise ArtifactError(
                f"run '{run_id}': {path.name} cannot be read, it is truncated or corrupted "
                f"({type(exc).__name__}: {reason})",
                run_id=run_id,
                artifact=path.name,
                hint="Run the strategy again, or delete this run",
            ) from exc

    def list_artifacts(self, run_id: str) -> list[str]:
        """File names in the run folder (temp files of writes in progress excluded)."""
        folder = self.run_dir(run_id)
        if not folder.exists():
            return []
        return sorted(
            p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def save_table(self, run_id: str, name: str, df: pd.DataFrame) -> Path:
        """Save a DataFrame as ``<name>.parquet`` in the run folder (atomically)."""
        path = self._artifact(run_id, name, ".parquet")
        with _atomic_path(path) as tmp:
            df.to_parquet(tmp)
        return path

    def load_table(self, run_id: str, name: str) -> pd.DataFrame:
        """Read ``<name>.parquet`` from the run folder (ArtifactError when missing or broken)."""
        path = self._existing(run_id, name, ".parquet")
        with self._reading(run_id, path):
            return pd.read_parquet(path)

    def save_tensors(
        self,
        run_id: str,
        name: str,
        tensors: Mapping[str, np.ndarray | torch.Tensor],
        metadata: Mapping[str, str] | None = None,
    ) -> Path:
        """Save named arrays as ``<name>.safetensors`` (atomically).

        Args:
            tensors: name -> numpy array or torch tensor (any device; copied to CPU).
                Views of one storage (tied weights) are copied apart, since safetensors
                refuses shared memory.
            metadata: optional string -> string header, e.g. ``{"stage": "source"}``.
        """
        if metadata is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise ValueError(
                "tensor metadata must map strings to strings (json.dumps other values)"
            )
        meta = dict(metadata) if metadata else None
        if any(not isinstance(v, np.ndarray) for v in tensors.values()):
            import torch
            from safetensors.torch import save as save_torch

            flat = {
                k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v)
                .detach()
                .cpu()
                .contiguous()
                .clone()
                for k, v in tensors.items()
            }
            data = save_torch(flat, metadata=meta)
        else:
            from safetensors.numpy import save as save_np

            data = save_np({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta)
        path = self._artifact(run_id, name, ".safetensors")
        _atomic_write_bytes(path, data)
        return path

    def load_tensors(
        self, run_id: str, name: str, framework: Literal["np", "pt"] = "np"
    ) -> dict[str, Any]:
        """Read ``<name>.safetensors``: name -> numpy array ("np") or torch tensor ("pt")."""
        from safetensors import safe_open

        path = self._existing(run_id, name, ".safetensors")
        with self._reading(run_id, path), safe_open(str(path), framework=framework) as f:
            return {k: f.get_tensor(k) for k in f.keys()}

    def tensor_metadata(self, run_id: str, name: str) -> dict[str, str]:
        """The metadata header saved with ``<name>.safetensors`` ({} when none)."""
        from safetensors import safe_open

        path = self._existing(run_id, name, ".safetensors")
        with self._reading(run_id, path), safe_open(str(path), framework="np") as f:
            return dict(f.metadata() or {})

    def save_json(self, run_id: str, name: str, obj: Any) -> Path:
        """Save a JSON-able object as ``<name>.json`` (numpy scalars and arrays converted)."""
        path = self._artifact(run_id, name, ".json")
        _atomic_write_bytes(path, json.dumps(obj, default=_json_default, indent=2).encode())
        return path

    def load_json(self, run_id: str, name: str) -> Any:
        """Read ``<name>.json`` from the run folder (ArtifactError when missing or broken)."""
        path = self._existing(run_id, name, ".json")
        with self._reading(run_id, path):
            return json.loads(path.read_text(encoding="utf-8"))

    def log(self, run_id: str, line: str) -> None:
        """Append one timestamped line to the run's ``run.log`` (UTC, ISO 8601)."""
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        text = " ".join(str(line).splitlines()) or ""
        with open(folder / "run.log", "a", encoding="utf-8") as f:
            f.write(f"{stamp} {text}\n")

    def read_log(self, run_id: str) -> list[str]:
        """The lines of ``run.log`` ([] when nothing was logged)."""
        path = self.run_dir(run_id) / "run.log"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
