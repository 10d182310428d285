"""The Embeddings page's joint map of a run: which points it shows, and its UMAP
computed ahead of time and cached, so opening the page draws it at once (issue 13).

One rule decides the points of a map, here, for the page and for the background job
alike, so that what the job caches is exactly what the page asks for:

* the stages (:func:`default_picks`): every stage the run stored vectors for (text
  encoder, source model, teacher, final), then the final stage of the newest finished
  target-only run of the same data (the page's default "peer"), unless the run is
  target-only itself;
* the rows (:func:`select_points`): up to ``items_per_stage`` joint items drawn once
  (seeded) and shown in every stage, optionally without source-only items, optionally
  with up to ``users_per_stage`` target users per stage.

The map is one joint UMAP fit when every stage has one dimension (else one per stage),
cached by :mod:`recsys_core.embeddings.projection` under ``<run store>/projections/``
with the content hash of the stacked vectors and the UMAP parameters as key
(``docs/projection_cache.md``). :func:`precompute_projection` computes a run's default
map; :func:`schedule_maps` queues it as low-priority side tasks of a
:class:`~recsys_core.runs.jobs.JobManager` after a job (the app's managers do this;
the CLI never pays for UMAP); :func:`map_task` is the task the page starts itself when
nothing is cached and nothing is running.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys_core.embeddings.projection import (
    UMAP_LAYOUT_STAGE,
    cache_key,
    cached_projection,
    project_2d,
)
from recsys_core.training.callbacks import Callbacks

if TYPE_CHECKING:
    from recsys_core.runs.jobs import JobManager, TaskHandle
    from recsys_core.runs.store import RunStore

log = logging.getLogger(__name__)

PROJECTIONS_DIRNAME = "projections"
"""Folder of the cached maps inside the run store (run folders are named
``<stamp>-<strategy>-<hex>``, so this name never collides with one)."""
STAGE_ORDER = {"text": 0, "source": 1, "teacher": 2, "final": 9}
"""Order of a run's stages on the map (others between teacher and final, by name)."""
TASK_PREFIX = "umap-"
ENV_VAR = "RTL_PRECOMPUTE_MAPS"
"""``0`` (or off/false/no) turns off the maps computed without a click: no map after a
job, none started by the page, no warm-up (the test suite sets it; the page then offers
its "Compute UMAP" button)."""


def background_maps_enabled() -> bool:
    """Whether maps are computed without a click (:data:`ENV_VAR`, on by default)."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "off", "false", "no")


WARM_DELAY_S = 5.0
"""Seconds after the app's first page run before the warm-up starts (the page first)."""


def warm_maps() -> None:
    """Load UMAP's numba code in the background, once per process (the app calls this
    on every run; later calls cost a lock). Nothing when background maps are off."""
    if background_maps_enabled():
        from recsys_core.embeddings.projection import warm_umap

        warm_umap(background=True, delay_s=WARM_DELAY_S)


@dataclass(frozen=True)
class MapSettings:
    """What the joint map shows and how UMAP fits it (the page's defaults).

    Attributes:
        items_per_stage: joint items drawn (once, seeded) and shown in every stage.
        source_items: include items only the source domain has.
        users: add target users (their rows of the stage's ``users`` vectors).
        users_per_stage: target users drawn per stage when ``users``.
        seed: the draw of items and users, and UMAP's random state.
        n_neighbors, min_dist: UMAP's neighbourhood size and minimum distance.
    """

    items_per_stage: int = 2000
    source_items: bool = True
    users: bool = False
    users_per_stage: int = 300
    seed: int = 0
    n_neighbors: int = 15
    min_dist: float = 0.1

    def __post_init__(self) -> None:
        if int(self.items_per_stage) != self.items_per_stage or self.items_per_stage < 1:
            raise ValueError(
                f"items_per_stage must be a whole number >= 1, not {self.items_per_stage}"
            )
        if int(self.users_per_stage) != self.users_per_stage or self.users_per_stage < 1:
            raise ValueError(
                f"users_per_stage must be a whole number >= 1, not {self.users_per_stage}"
            )
        if int(self.n_neighbors) != self.n_neighbors or self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be a whole number >= 2, not {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"min_dist must be between 0 and 1, not {self.min_dist}")


@dataclass(frozen=True)
class MapBlock:
    """One stage's rows on the map.

    Attributes:
        pick: index of the stage in the picks (:func:`default_picks` order).
        kind: "items" or "users".
        rows: int64 (m,), the joint item (or target user) index of each row.
        X: (m, d) float, the vectors of those rows in that stage.
    """

    pick: int
    kind: str
    rows: np.ndarray
    X: np.ndarray


def projection_dir(store_root: str | Path) -> Path:
    """Where a run store keeps its cached maps: ``<store_root>/projections``."""
    return Path(store_root) / PROJECTIONS_DIRNAME


def stored_stages(store: RunStore, run_id: str) -> list[str]:
    """Stage names a run stored vectors for, in map order, e.g. ["source", "final"]."""
    try:
        names = store.list_artifacts(run_id)
    except KeyError:
        return []
    stages = [
        n.removeprefix("vectors_").removesuffix(".safetensors")
        for n in names
        if n.startswith("vectors_") and n.endswith(".safetensors")
    ]
    return sorted(stages, key=lambda s: (STAGE_ORDER.get(s, 5), s))


def default_peer(store: RunStore, run: Mapping[str, Any]) -> str | None:
    """The run whose final stage the page adds by default: the newest finished
    target-only run of the same data with stored vectors (None for a target-only run,
    or when there is none)."""
    if run["strategy"] == "target-only":
        return None
    runs = store.list_runs(status="done")  # newest first
    same = runs[
        (runs["strategy"] == "target-only")
        & (runs["data_fingerprint"] == run["data_fingerprint"])
        & (runs["run_id"] != run["run_id"])
    ]
    for rid in same["run_id"]:
        if stored_stages(store, rid):
            return str(rid)
    return None


def default_picks(store: RunStore, run_id: str) -> list[tuple[str, str]]:
    """(run_id, stage) of every stage the page shows by default for ``run_id``: the
    run's stages, then its peer's final stage (:func:`default_peer`)."""
    run = store.get_run(run_id)
    picks = [(run_id, s) for s in stored_stages(store, run_id)]
    if not picks:
        return []
    peer = default_peer(store, run)
    if peer is not None and "final" in stored_stages(store, peer):
        picks.append((peer, "final"))
    return picks


def select_points(
    vectors: Sequence[Mapping[str, np.ndarray]],
    settings: MapSettings = MapSettings(),
    is_source: np.ndarray | None = None,
    n_target_users: int = 0,
) -> list[MapBlock]:
    """The rows of each stage on the map (the same items in every stage).

    Args:
        vectors: one mapping per stage, {"items": (n_items, d), "users"?: (n_users, d)}.
        settings: how many points, which ones (:class:`MapSettings`).
        is_source: bool (n_items,), True for source-only items (dropped when
            ``settings.source_items`` is off); None: no item is source-only.
        n_target_users: the first rows of "users" that are target users (users added
            only when > 0 and a stage has "users").

    Returns:
        Blocks in stage order, each stage's items then (if asked) its users.
    """
    if not vectors:
        return []
    rng = np.random.default_rng(settings.seed)
    n = len(vectors[0]["items"])
    if is_source is not None and not settings.source_items:
        keep = np.flatnonzero(~np.asarray(is_source, dtype=bool))
    else:
        keep = np.arange(n)
    if len(keep) > settings.items_per_stage:
        keep = np.sort(rng.choice(keep, settings.items_per_stage, replace=False))
    blocks = []
    for i, V in enumerate(vectors):
        blocks.append(MapBlock(i, "items", keep, np.asarray(V["items"])[keep]))
        if settings.users and n_target_users > 0 and "users" in V:
            U = np.asarray(V["users"])[:n_target_users]
            u_idx = np.sort(
                rng.choice(len(U), min(settings.users_per_stage, len(U)), replace=False)
            )
            blocks.append(MapBlock(i, "users", u_idx, U[u_idx]))
    return blocks


def map_groups(blocks: Sequence[MapBlock]) -> list[np.ndarray]:
    """Arrays to project: one stack of every block when all have one dimension (a joint
    map), else one per block."""
    Xs = [b.X for b in blocks]
    return [np.vstack(Xs)] if len({x.shape[1] for x in Xs}) == 1 else Xs


def map_task_key(groups: Sequence[np.ndarray], settings: MapSettings = MapSettings()) -> str:
    """The job manager's task key of a map: ``umap-`` + 16 hex of the groups' cache keys
    (so the page and the background job name the same map the same way)."""
    h = hashlib.sha256()
    for X in groups:
        h.update(
            cache_key(X, "umap", settings.seed, settings.n_neighbors, settings.min_dist).encode()
        )
    return TASK_PREFIX + h.hexdigest()[:16]


def cached_map(
    groups: Sequence[np.ndarray], cache_dir: str | Path, settings: MapSettings = MapSettings()
) -> np.ndarray | None:
    """The UMAP map (sum of group rows, 2) from the cache, or None if any group is
    missing (or its file is damaged); never computes."""
    out = []
    for X in groups:
        Y = cached_projection(
            X, "umap", cache_dir, settings.seed, settings.n_neighbors, settings.min_dist
        )
        if Y is None:
            return None
        out.append(Y)
    return np.vstack(out) if out else None


def compute_map(
    groups: Sequence[np.ndarray],
    cache_dir: str | Path,
    settings: MapSettings = MapSettings(),
    callbacks: Callbacks | None = None,
) -> np.ndarray:
    """Fit (or read from the cache) the UMAP map of every group and cache it.

    Progress: each group's events with ``fraction`` scaled to the whole map and, when
    there are several groups, " (map i of n)" added to the stage. Cancellation: the
    callbacks' ``should_cancel`` (raises ``Cancelled``; nothing half-written is cached).

    Returns:
        float64 (sum of group rows, 2), groups stacked in order.
    """
    from recsys_core.training.callbacks import ProgressEvent

    cb = callbacks or Callbacks()
    n = len(groups)
    out = []
    for gi, X in enumerate(groups):

        def on_progress(ev: ProgressEvent, gi: int = gi) -> None:
            stage = ev.stage + (f" (map {gi + 1} of {n})" if n > 1 else "")
            cb.progress(
                ProgressEvent(
                    stage=stage,
                    epoch=ev.epoch,
                    epochs=ev.epochs,
                    seconds=ev.seconds,
                    fraction=(gi + ev.fraction) / n,
                )
            )

        out.append(
            project_2d(
                X,
                "umap",
                cache_dir,
                seed=settings.seed,
                n_neighbors=settings.n_neighbors,
                min_dist=settings.min_dist,
                callbacks=Callbacks(on_progress=on_progress, should_cancel=cb.should_cancel),
            )
        )
    return np.vstack(out)


def run_map_groups(
    store: RunStore, run_id: str, settings: MapSettings = MapSettings()
) -> list[np.ndarray]:
    """The arrays of a run's default map (:func:`default_picks`, :func:`select_points`
    without the item table: with the default ``source_items`` every item is kept, as
    on the page). [] when the run stored no vectors."""
    picks = default_picks(store, run_id)
    vectors = [store.load_tensors(rid, f"vectors_{stage}") for rid, stage in picks]
    return map_groups(select_points(vectors, settings))


def precompute_projection(
    store: RunStore,
    run_id: str,
    settings: MapSettings = MapSettings(),
    callbacks: Callbacks | None = None,
) -> np.ndarray | None:
    """Compute and cache the UMAP map the Embeddings page shows by default for a run.

    Args:
        store: the run store (the map is cached in its ``projections/`` folder).
        run_id: a finished run.
        settings: the map's settings (the page's defaults).
        callbacks: progress and cancellation (``Cancelled`` stops it, nothing cached).

    Returns:
        float64 (n points, 2), or None when the run stored no vectors.
    """
    groups = run_map_groups(store, run_id, settings)
    if not groups:
        return None
    return compute_map(groups, projection_dir(store.root), settings, callbacks)


def map_task(
    groups: Sequence[np.ndarray],
    cache_dir: str | Path,
    settings: MapSettings = MapSettings(),
    wait_while: Callable[[], bool] | None = None,
) -> Callable[[TaskHandle], np.ndarray]:
    """A job-manager side task that computes a map: reports each stage as a line (the
    layout with its epoch and the time left from the epochs' pace), stops when asked,
    and returns the map (also cached).

    Args:
        wait_while: low priority: while it returns True (training under way), the task
            waits, saying so, before it starts fitting.
    """

    def fit(task: TaskHandle) -> np.ndarray:
        from recsys_core.training.callbacks import Cancelled

        if wait_while is not None:
            while wait_while():
                if task.should_cancel():
                    raise Cancelled("map stopped before it started")
                task.report(0.0, "UMAP: waiting for training to finish")
                time.sleep(0.5)
        if task.should_cancel():  # stopped while it waited
            raise Cancelled("map stopped before it started")
        pace: dict[str, float] = {}

        def on_progress(ev) -> None:
            line, eta = ev.stage, None
            if ev.stage.startswith(UMAP_LAYOUT_STAGE) and ev.epochs:
                line += f" · epoch {ev.epoch}/{ev.epochs}"
                if "t" not in pace or ev.epoch < pace["epoch"]:  # a new group starts over
                    pace.update(t=ev.seconds, epoch=ev.epoch)
                elif ev.epoch > pace["epoch"]:
                    per = (ev.seconds - pace["t"]) / (ev.epoch - pace["epoch"])
                    eta = per * (ev.epochs - ev.epoch)
            task.report(ev.fraction, line, eta_s=eta)

        return compute_map(
            groups,
            cache_dir,
            settings,
            Callbacks(on_progress=on_progress, should_cancel=task.should_cancel),
        )

    return fit


def schedule_maps(
    jm: JobManager,
    store_root: str | Path,
    run_ids: Sequence[str],
    settings: MapSettings = MapSettings(),
) -> list[str]:
    """Queue the default map of each run as a low-priority side task of ``jm`` (after a
    job; nothing when :func:`background_maps_enabled` is off): skipped when the run has no vectors, the map is cached, or its task exists.
    Transfer runs first (the page opens on them). Errors are logged, never raised: a
    map is a convenience, the runs are saved.

    Returns:
        The task keys started.
    """
    from recsys_core.runs.store import RunStore
    from recsys_core.strategies.registry import kind_of

    if not background_maps_enabled():
        return []
    store = RunStore(store_root)
    cache = projection_dir(store.root)
    started = []

    def transfer_first(rid: str) -> bool:
        try:
            return kind_of(store.get_run(rid)["strategy"]) == "baseline"
        except Exception:
            return True

    for rid in sorted(run_ids, key=transfer_first):
        try:
            groups = run_map_groups(store, rid, settings)
            if not groups or cached_map(groups, cache, settings) is not None:
                continue
            key = map_task_key(groups, settings)
            if jm.start_task(key, map_task(groups, cache, settings, wait_while=jm.busy)):
                started.append(key)
        except Exception as exc:
            log.warning("map of run %s not scheduled: %s", rid, exc)
    return started


__all__ = [
    "MapBlock",
    "MapSettings",
    "background_maps_enabled",
    "cached_map",
    "compute_map",
    "default_peer",
    "default_picks",
    "map_groups",
    "map_task",
    "map_task_key",
    "precompute_projection",
    "projection_dir",
    "run_map_groups",
    "schedule_maps",
    "select_points",
    "stored_stages",
    "warm_maps",
]
