"""Every long step of a batch of runs shows progress, and its seconds go to the run that
paid for it: text encoding to the first run that reads text, source pre-training to the
first run that trains it (the next ones reuse it for free)."""

from __future__ import annotations

import time

import pytest
import torch

from recsys_core import pipeline
from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import RunRequest, run_strategies
from recsys_core.runs.store import RunStore
from recsys_core.strategies.base import ModelSettings
from recsys_core.training.callbacks import Callbacks, ProgressEvent
from tests.toy import toy_pair, toy_text

ENCODE_S = 0.6


@pytest.fixture(scope="module")
def scn():
    src, tgt = toy_pair()
    split = SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1, cold_ks=(0, 1, 3), seed=0)
    return build_scenario(tgt, src, split)


@pytest.fixture()
def fake_encoder(monkeypatch, scn):
    """encode_scenario_text without the language model: three progress reports over
    ENCODE_S seconds, then toy vectors. Counts its calls."""
    calls = []

    def encode(scenario, device="cpu", callbacks=None, model_path=None):
        cb = callbacks or Callbacks()
        calls.append(device)
        t0 = time.perf_counter()
        for k in range(4):
            cb.check_cancel()
            cb.progress(
                ProgressEvent(
                    stage="encode text", step=k, seconds=time.perf_counter() - t0, fraction=k / 3
                )
            )
            if k < 3:
                time.sleep(ENCODE_S / 3)
        return toy_text(scenario.item_ids)

    monkeypatch.setattr(pipeline, "encode_scenario_text", encode)
    return calls


def req(*names: str, **settings) -> RunRequest:
    base = dict(dim=8, epochs=2, source_epochs=2, batch_size=128, patience=100)
    return RunRequest(
        strategies=names,
        settings=ModelSettings(**{**base, **settings}),
        device="cpu",
        n_boot=20,
        baselines="none",
    )


def stages(store: RunStore, run_id: str) -> list[str]:
    h = store.history(run_id)
    return list(dict.fromkeys(h["stage"])) if "stage" in h else []


def test_text_is_encoded_inside_the_first_run_that_reads_it(tmp_path, scn, fake_encoder) -> None:
    store = RunStore(tmp_path)
    outs = run_strategies(scn, req("popularity", "target-only", "fine-tune"), store,
                          encode_text=True)  # fmt: skip
    assert [o.status for o in outs] == ["done"] * 3, [o.error for o in outs]
    pop = outs[0].run_id
    assert fake_encoder == ["cpu"]  # once for the batch
    # popularity never waited for the text: no such step, no such seconds
    assert "encode text" not in stages(store, pop)
    assert "encode_text" not in outs[0].seconds
    # the text reader that started first (runs fit side by side, longest first) paid
    # for it: its own step, with a bar that reached the end...
    payers = [o for o in outs[1:] if "encode_text" in o.seconds]
    assert len(payers) == 1, [o.seconds for o in outs]
    (payer,) = payers
    assert stages(store, payer.run_id)[0] == "encode text"
    h = store.history(payer.run_id)
    enc = h[h["stage"] == "encode text"]
    assert enc["fraction"].iloc[0] == 0.0 and enc["fraction"].iloc[-1] == 1.0
    # ...and its seconds, apart from the fitting, inside the total
    s = payer.seconds
    assert ENCODE_S <= s["encode_text"] < ENCODE_S + 1.0
    assert s["total"] == pytest.approx(sum(v for k, v in s.items() if k != "total"))
    assert s["fit"] < s["total"] - ENCODE_S
    # the other reader reused the vectors
    (other,) = [o for o in outs[1:] if o is not payer]
    assert "encode text" not in stages(store, other.run_id)


def test_source_pretraining_is_charged_to_the_run_that_trained_it(tmp_path, scn) -> None:
    store = RunStore(tmp_path)
    text = toy_text(scn.item_ids)
    outs = run_strategies(scn, req("fine-tune", "adapt", source_epochs=3), store, text=text)
    assert [o.status for o in outs] == ["done", "done"], [o.error for o in outs]
    ft, ad = outs
    # fine-tune trained the source model: a step of its own, announced when it began
    assert stages(store, ft.run_id)[:2] == ["pretrain source", "fine-tune target"]
    h = store.history(ft.run_id)
    pre = h[h["stage"] == "pretrain source"]
    assert pre["fraction"].iloc[0] == 0.0 and pre["epoch"].max() == 3
    assert ft.seconds["pretrain_source"] > 0
    assert ft.seconds["total"] == pytest.approx(
        ft.seconds["pretrain_source"] + ft.seconds["fit"] + ft.seconds["evaluate"]
    )
    # adapt reused it from the batch's cache: no pre-training step, no seconds for it
    assert "pretrain source" not in stages(store, ad.run_id)
    assert "pretrain_source" not in ad.seconds


def test_seconds_measured_by_the_caller_go_to_the_runs_that_paid(tmp_path, scn) -> None:
    """The CLI encodes before the batch and passes what it measured."""
    store = RunStore(tmp_path)
    text = toy_text(scn.item_ids)
    outs = run_strategies(
        scn,
        req("popularity", "target-only"),
        store,
        text=text,
        seconds_so_far={"load": 2.0, "encode_text": 5.0},
    )
    pop, tgt = (o.seconds for o in outs)
    assert pop["load"] == 2.0 and "encode_text" not in pop  # loading: the first run
    assert tgt["encode_text"] == 5.0 and "load" not in tgt  # the text: its reader
    assert tgt["total"] == pytest.approx(5.0 + tgt["fit"] + tgt["evaluate"])


def test_training_reports_within_an_epoch(monkeypatch) -> None:
    """A long epoch is not a frozen bar: progress every PROGRESS_EVERY_S seconds."""
    from recsys_core.models.two_tower import TwoTower, TwoTowerConfig
    from recsys_core.strategies.base import target_data
    from recsys_core.training import loop

    monkeypatch.setattr(loop, "PROGRESS_EVERY_S", 0.0)  # report at every step
    _src, tgt = toy_pair()
    scenario = build_scenario(tgt, None, SplitConfig(seed=0))
    model = TwoTower(scenario.n_users, scenario.n_items, TwoTowerConfig(dim=8), None)
    events: list[ProgressEvent] = []
    data = target_data(scenario)
    cfg = loop.TrainConfig(epochs=2, batch_size=64)
    loop.train(model, [data], cfg, callbacks=Callbacks(on_progress=events.append), stage="x")
    fr = [e.fraction for e in events]
    assert events[0].fraction == 0.0 and events[0].epochs == 2  # announced at once
    assert fr == sorted(fr) and fr[-1] == 1.0
    inside = [e for e in events if 0 < e.fraction < 1 and e.fraction != 0.5]
    assert inside and all(e.loss is not None for e in inside)
    assert torch.isfinite(torch.tensor([e.loss for e in inside])).all()
