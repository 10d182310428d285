"""Planning a batch of runs: what a request is, what defines a run, what can be reused.

:class:`RunRequest` is what the CLI flags and the app's form build; :func:`plan_request`
adds the baseline suite the verdict needs and finds finished runs of the store with the
same data, split and settings (:func:`reusable_run`), which are reused instead of
retrained. :func:`run_config` is everything that defines a run, stored with it;
:func:`typical_seconds` gives the app its time estimates. Nothing here trains.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from recsys_core.data.scenario import Scenario, scenario_has_text
from recsys_core.strategies.base import ModelSettings
from recsys_core.strategies.registry import STRATEGIES, get_strategy, suite_names


@dataclass(frozen=True)
class RunRequest:
    """One batch of runs on one scenario (what the CLI flags and the app's form build)."""

    strategies: tuple[str, ...]
    settings: ModelSettings = field(default_factory=ModelSettings)
    options: dict = field(default_factory=dict)
    """strategy name -> {option: value}, validated by the strategy's config."""
    device: str = "auto"
    n_boot: int = 1000
    label: str | None = None
    baselines: str | tuple[str, ...] = "suite"
    """"suite": whenever a transfer strategy is requested, the strong target-only
    baselines (every registry strategy with ``in_suite``) are trained beside it on the
    same split, or reused from the store (issue 10: a verdict is only as strong as its
    baselines); "none": only what was asked; or a tuple of baseline names."""
    reuse: dict = field(default_factory=dict)
    """strategy name -> run id of a finished run in the store with the same data, split
    and settings, reused instead of retrained (filled by :func:`plan_request`)."""
    workers: int = 0
    """runs fitted side by side (:mod:`recsys_core.runs.parallel`); 0 chooses (one per
    CPU core up to four, one on a GPU). How a call is executed, not what it computes:
    not part of a run's config."""

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ValueError("choose at least one strategy")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(
                f"unknown strategy {unknown[0]!r}; choose from: {', '.join(STRATEGIES)}"
            )
        b = self.baselines
        if isinstance(b, str) and b not in ("suite", "none"):
            raise ValueError(
                f"baselines must be 'suite', 'none' or a list of baseline names, not {b!r}"
            )
        if not isinstance(b, str):
            object.__setattr__(self, "baselines", tuple(b))
            bad = [n for n in b if n not in STRATEGIES or STRATEGIES[n].kind != "baseline"]
            if bad:
                base = [n for n, c in STRATEGIES.items() if c.kind == "baseline"]
                raise ValueError(
                    f"{bad[0]!r} is not a baseline strategy; baselines: {', '.join(base)}"
                )
        for name in self.strategies:  # validate options now, before anything trains
            get_strategy(name, self.options.get(name))
        if not 0 <= self.workers <= 64:
            raise ValueError(f"workers must be between 0 (choose) and 64, got {self.workers}")
        if not 0 <= self.n_boot <= 100_000:
            raise ValueError(f"n_boot must be between 0 and 100000, got {self.n_boot}")


ENGINE_VERSION = 3
"""Bumped when the same settings would give different figures (2: the popularity prior
for short histories, cold-catalogue metrics; 3: history pooling summed in another order,
DANN's classifier seeded on its own), so older runs are never reused."""


def run_config(scn: Scenario, request: RunRequest, name: str) -> dict:
    """Everything that defines a run, as JSON (stored with it)."""
    return {
        "engine": ENGINE_VERSION,
        "strategy": name,
        "options": get_strategy(name, request.options.get(name)).config.to_dict(),
        "settings": asdict(request.settings),
        "split": scn.split.config.to_dict(),
        "source_history": scn.source_history,
        "scenario": scn.name,
        "constructed": scn.constructed,
        "device": request.device,
        "n_boot": request.n_boot,
        "links": scn.links.to_dict() if scn.links else None,
    }


def suite_additions(
    names: list[str] | tuple[str, ...],
    scn: Scenario,
    baselines: str | tuple[str, ...] = "suite",
    need_transfer: bool = True,
) -> list[str]:
    """The baselines a request of ``names`` gets added, in registry order: with "suite",
    every suite baseline that can run on ``scn`` (when ``names`` holds a transfer
    strategy, unless ``need_transfer`` is False); with a tuple, those names; none that
    ``names`` already has. What the Train page announces and :func:`plan_request` adds."""
    has_text = scenario_has_text(scn)
    if baselines == "suite":
        transfer = any(STRATEGIES[n].kind == "transfer" for n in names)
        wanted = suite_names(has_text) if transfer or not need_transfer else []
    elif baselines == "none":
        wanted = []
    else:
        wanted = list(baselines)
    return [
        n
        for n in STRATEGIES
        if n in wanted and n not in names and STRATEGIES[n].unavailable(scn, has_text) is None
    ]


def plan_request(request: RunRequest, scn: Scenario, store=None) -> RunRequest:
    """The request with its baseline suite added and reusable runs found.

    With ``baselines="suite"`` and at least one transfer strategy, every suite baseline
    that can run on ``scn`` is put first (the verdict needs them); a tuple adds those
    names. With a ``store``, each added baseline with a finished run of the same data,
    split and settings is reused instead of retrained. Returns a request whose
    ``baselines`` is "none" (planning twice adds nothing).
    """
    names = list(request.strategies)
    added = suite_additions(names, scn, request.baselines)
    reuse = dict(request.reuse)
    if store is not None:
        for n in added:
            rid = reusable_run(store, scn, request, n)
            if rid is not None:
                reuse[n] = rid
    # the added baselines first (registry order), then what was asked, in its order
    return replace(request, strategies=tuple(added + names), baselines="none", reuse=reuse)


def _reuse_key(config: dict) -> str:
    keep = {k: v for k, v in config.items() if k not in ("device", "spec")}
    return json.dumps(keep, sort_keys=True, default=str)


def reusable_run(store, scn: Scenario, request: RunRequest, name: str) -> str | None:
    """Run id of a finished run of ``name`` with this data, split and settings, or None."""
    runs = store.list_runs(status="done")
    if runs.empty:
        return None
    fp = scn.fingerprint()
    cands = runs[(runs["strategy"] == name) & (runs["data_fingerprint"] == fp)]
    want = _reuse_key(run_config(scn, request, name))
    for rid in cands["run_id"]:
        try:
            if _reuse_key(store.get_run(rid)["config"]) == want and store.list_artifacts(rid):
                return str(rid)
        except (KeyError, OSError):  # a run deleted meanwhile, a broken folder
            continue
    return None


ONE_OFF_STEPS = ("encode_text", "load")
"""Steps a run may have paid for that the next one will not: the text vectors are cached
on disk, and a batch loads its data once."""


def typical_seconds(store, names: list[str]) -> dict[str, float | None]:
    """Median seconds of the store's finished runs of each strategy (None when it has
    none), without the one-off steps (:data:`ONE_OFF_STEPS`): the time estimates the
    app shows before training."""
    out: dict[str, float | None] = dict.fromkeys(names)
    runs = store.list_runs(status="done")
    for n in names:
        ids = list(runs.loc[runs["strategy"] == n, "run_id"][:20])
        secs = []
        for r in ids:
            s = store.get_run(r).get("seconds") or {}
            if isinstance(s.get("total"), int | float):
                once = sum(float(s.get(k) or 0.0) for k in ONE_OFF_STEPS)
                secs.append(max(float(s["total"]) - once, 0.0))
        out[n] = float(np.median(secs)) if secs else None
    return out
