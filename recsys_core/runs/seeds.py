"""Seeds as a first-class repeat (issue 14): one request per model seed.

A gain that does not survive a different seed is not a gain. ``transfer-lab run
--seeds 0,1,2`` and the Train page's "seeds" field repeat every strategy of a request
once per seed. Only the *model* seed (``ModelSettings.seed``: initialisation, sampling,
the bootstrap) changes; the split keeps its own seed, so every repeat is evaluated on the
same users and the Compare page can pool them (:func:`recsys_core.compare.seed_pool`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from recsys_core.runs.plan import RunRequest


def repeat_over_seeds(request: RunRequest, seeds: Sequence[int] | None) -> list[RunRequest]:
    """``request`` once per seed (its own seed when ``seeds`` is None or empty).

    Raises:
        ValueError: a seed repeated, or not a whole number from 0 to 2**32 - 1.
    """
    if not seeds:
        return [request]
    seen: set[int] = set()
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32:
            raise ValueError(f"a seed is a whole number from 0 to 4294967295, not {s!r}")
        if s in seen:
            raise ValueError(f"seed {s} is given twice; give each seed once")
        seen.add(s)
    return [replace(request, settings=replace(request.settings, seed=int(s))) for s in seeds]


def create_runs(store, scn, request: RunRequest, **create_kw) -> list[str]:
    """One run id per strategy of a planned ``request``: the reused run's id, or a new
    run ("queued") with the run's config. ``create_kw`` goes to ``store.create_run``
    (label, owner)."""
    from recsys_core.runs.plan import run_config

    fingerprint = scn.fingerprint()
    ids = []
    for name in request.strategies:
        if name in request.reuse:
            ids.append(request.reuse[name])
            continue
        create_kw.setdefault("label", request.label)
        ids.append(
            store.create_run(
                name, scn.name, run_config(scn, request, name), fingerprint, **create_kw
            )
        )
    return ids
