"""Every registered strategy honours the same contract (implicit's test-mixin idea)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.evaluation.evaluate import EvalConfig, evaluate
from recsys_core.strategies.base import Fitted, ModelSettings, field_help
from recsys_core.strategies.registry import STRATEGIES, get_strategy

OPTIONS = {"distill": {"teacher_dim": 16, "student_dim": 4}, "adapt": {"align_samples": 32}}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_contract(name, make_ctx, toy_scenario):
    ctx = make_ctx()
    strat = get_strategy(name, OPTIONS.get(name))
    fitted = strat.fit(ctx)
    assert isinstance(fitted, Fitted)
    s = toy_scenario.split
    users = np.arange(4)
    hist = sp.csr_matrix((4, s.n_items), dtype=np.float32)
    scores = fitted.scorer.score(users, hist)
    assert isinstance(scores, torch.Tensor) and tuple(scores.shape) == (4, s.n_items)
    assert torch.isfinite(scores).all()
    res = evaluate(fitted.scorer, s, EvalConfig(n_boot=20))
    segs = set(res.summary["segment"])
    assert {"all", "warm_users", "cold_users_k0", "cold_users_k3"} <= segs
    # a real ranking: something better than nothing on warm users for every strategy
    assert res.metric("warm_users", "hit", 20) > 0
    # cold items ranked among cold items, with the cold-item AUC beside them
    assert "cold_items" in segs and "cold_catalogue" in segs
    assert 0.0 <= res.metric("cold_catalogue", "auc", 0) <= 1.0
    pu = res.per_user[res.per_user["segment"] == "cold_catalogue"]
    assert pu["auc"].notna().any() and res.metric("cold_catalogue", "recall", 20) > 0
    for stage in fitted.stages.values():
        assert stage["items"].shape[0] == toy_scenario.n_items


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_config_is_frozen_and_rejects_unknown_options(name):
    cls = STRATEGIES[name]
    cfg = cls.Config()
    with pytest.raises(ValueError, match="unknown option"):
        cls.Config.from_dict({"no_such_option": 1})
    import dataclasses

    if dataclasses.fields(cfg):
        f = dataclasses.fields(cfg)[0]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, f.name, getattr(cfg, f.name))


def test_cpu_run_repeats_exactly(make_ctx):
    a = get_strategy("fine-tune").fit(make_ctx())
    b = get_strategy("fine-tune").fit(make_ctx())
    np.testing.assert_array_equal(a.stages["final"]["items"], b.stages["final"]["items"])
    assert a.history[-1]["loss"] == b.history[-1]["loss"]


def test_source_strategies_need_a_source(make_ctx, toy_scenario):
    import dataclasses

    ctx = make_ctx()
    ctx.scenario = dataclasses.replace(
        toy_scenario, source=None, source_train=toy_scenario.source_train.iloc[:0]
    )
    with pytest.raises(ValueError, match="needs a source domain"):
        get_strategy("fine-tune").fit(ctx)


def _no_text_cases():
    from typing import get_args

    from recsys_core.strategies.base import ModelName

    for name, cls in sorted(STRATEGIES.items()):
        for model in get_args(ModelName):
            if not cls.reads_text(ModelSettings(model=model)):
                yield name, model


@pytest.mark.parametrize(("name", "model"), list(_no_text_cases()))
def test_a_strategy_that_declares_no_text_scores_the_same_without_it(name, model, make_ctx):
    """reads_text() is what the pipeline trusts to skip the text encoder: a strategy
    that says it reads no text under a model must give identical scores without it."""
    with_text = make_ctx(model=model)
    without = make_ctx(model=model)
    without.text = None
    a = get_strategy(name, OPTIONS.get(name)).fit(with_text).scorer
    b = get_strategy(name, OPTIONS.get(name)).fit(without).scorer
    s = with_text.scenario.split
    users = np.arange(6)
    hist = sp.csr_matrix(
        (np.ones(6, np.float32), (np.arange(6), np.arange(6))), shape=(6, s.n_items)
    )
    torch.testing.assert_close(a.score(users, hist), b.score(users, hist))


@pytest.mark.parametrize("name", sorted(n for n, c in STRATEGIES.items() if c.requires_text))
def test_a_strategy_that_requires_text_refuses_to_run_without(name, make_ctx):
    ctx = make_ctx()
    ctx.text = None
    with pytest.raises(ValueError, match="needs item text; load an item table with titles"):
        get_strategy(name).fit(ctx)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_needs_source_is_declared_truthfully(name, make_ctx, toy_scenario):
    import dataclasses

    ctx = make_ctx()
    ctx.scenario = dataclasses.replace(
        toy_scenario, source=None, source_train=toy_scenario.source_train.iloc[:0]
    )
    strat = get_strategy(name, OPTIONS.get(name))
    if STRATEGIES[name].needs_source:
        assert "needs a source domain" in STRATEGIES[name].unavailable(ctx.scenario, True)
        with pytest.raises(ValueError, match="needs a source domain"):
            strat.check(ctx)
    else:
        assert STRATEGIES[name].unavailable(ctx.scenario, True) is None
        assert isinstance(strat.fit(ctx), Fitted)  # runs on the target alone


@pytest.mark.parametrize(
    "cls",
    [ModelSettings, *(STRATEGIES[n].Config for n in sorted(STRATEGIES))],
    ids=lambda c: c.__name__,
)
def test_every_option_declares_its_help(cls):
    """The app's widgets and the CLI read ``metadata["help"]``; a field without it would
    show a bare widget. Read the metadata itself, not a docstring of the source."""
    import dataclasses

    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        assert isinstance(f.metadata.get("help"), str), f"{cls.__name__}.{f.name} has no help"
        assert helps[f.name].strip(), f"{cls.__name__}.{f.name} has empty help"


def test_field_help_needs_no_source_file(monkeypatch):
    """An installed wheel may lack the .py files: help must not come from inspect."""
    import inspect

    from recsys_core.strategies.fine_tune import FineTuneConfig

    def no_source(obj):
        raise OSError("no source here")

    monkeypatch.setattr(inspect, "getsource", no_source)
    monkeypatch.setattr(inspect, "getsourcelines", no_source)
    helps = field_help(FineTuneConfig)
    assert helps["l2sp"].startswith("L2-SP weight lambda")
    assert set(helps) == {"freeze", "l2sp", "lr_scale"}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_shared_steps_are_declared_truthfully(name, make_ctx, toy_scenario):
    """Every step a fit computes or reads through Context.cache is declared on its class
    (issue 13: the parallel scheduler reads the declaration to avoid blocked workers)."""
    ctx = make_ctx(dim=16)
    used: set[str] = set()
    compute = ctx.cache.get_or_compute

    def spy(key, fn, step=None):
        if step:
            used.add(step)
        return compute(key, fn, step)

    ctx.cache.get_or_compute = spy
    strat = get_strategy(name, OPTIONS.get(name))
    if strat.unavailable(toy_scenario, True):
        pytest.skip(strat.unavailable(toy_scenario, True))
    strat.fit(ctx)
    assert used <= strat.shared_steps(ctx.settings), sorted(used)
