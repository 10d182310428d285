"""Every registered strategy honours the same contract (implicit's test-mixin idea)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.evaluation.evaluate import EvalConfig, evaluate
from recsys_core.strategies.base import Fitted
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
