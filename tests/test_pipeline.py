"""The pipeline: runs of one call do not leak choices into each other; what it records."""

import numpy as np

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import RunRequest, plan_request, run_strategies
from recsys_core.runs.store import RunStore
from recsys_core.strategies.base import ModelSettings
from tests.toy import toy_pair, toy_text


def _scn():
    src, tgt = toy_pair()
    cfg = SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1, cold_ks=(0, 1, 3))
    return build_scenario(tgt, src, cfg)


def _ndcg(out, seg="all"):
    return {(m["segment"], m["k"]): m["value"] for m in out.metrics if m["metric"] == "ndcg"}[
        (seg, 10)
    ]


def test_fusion_is_the_same_with_or_without_target_only_before_it(tmp_path):
    """Issue 10: target-only's cold-item choice was made in place on the cached model
    fusion reuses, so fusion changed when target-only ran first in the same call."""
    scn = _scn()
    text = toy_text(scn.item_ids)
    settings = ModelSettings(dim=8, epochs=3)
    both = run_strategies(
        scn,
        RunRequest(("target-only", "fusion"), settings, n_boot=10, device="cpu", baselines="none"),
        RunStore(tmp_path / "a"),
        text=text,
    )
    alone = run_strategies(
        scn,
        RunRequest(("fusion",), settings, n_boot=10, device="cpu", baselines="none"),
        RunStore(tmp_path / "b"),
        text=text,
    )
    a, b = both[1], alone[0]
    assert a.status == b.status == "done"
    assert a.info["chosen"] == b.info["chosen"]
    for seg in ("all", "warm_users", "cold_items"):
        assert np.isclose(_ndcg(a, seg), _ndcg(b, seg))


def test_every_short_history_model_records_its_prior_and_exposure(tmp_path):
    scn = _scn()
    outs = run_strategies(
        scn,
        RunRequest(("popularity", "ease", "target-only"), ModelSettings(dim=8, epochs=2),
                   n_boot=10, device="cpu", baselines="none"),
        RunStore(tmp_path / "s"),
        text=toy_text(scn.item_ids),
    )  # fmt: skip
    pop, ease, tower = outs
    assert "popularity_prior" not in pop.info  # it is the prior
    assert set(ease.info["popularity_prior"]) == {"0", "1", "3"}
    assert "exposure" not in ease.info  # id-only: no text, no exposure curve
    curve = tower.info["exposure"]["curve"]
    assert tower.info["exposure"]["chosen_offset"] in {r["offset"] for r in curve}


def test_with_an_informative_popularity_the_prior_takes_over_an_empty_history(tmp_path):
    """EASE scores a user with no history as all zeros (every item tied): on data where
    popularity means something, validation gives k = 0 to the prior, and EASE's k = 0
    figures become popularity's."""
    from tests.toy import skewed_domain

    cfg = SplitConfig(cold_user_frac=0.2, cold_item_frac=0.0, valid_cold_item_frac=0.0,
                      cold_ks=(0, 1, 3))  # fmt: skip
    scn = build_scenario(skewed_domain(), None, cfg)
    pop, ease = run_strategies(
        scn,
        RunRequest(("popularity", "ease"), ModelSettings(), n_boot=10, device="cpu"),
        RunStore(tmp_path / "s"),
    )
    assert ease.info["popularity_prior"]["0"] > 0
    assert np.isclose(_ndcg(ease, "cold_users_k0"), _ndcg(pop, "cold_users_k0"))


def test_plan_adds_the_suite_only_beside_a_transfer_strategy():
    scn = _scn()
    base = RunRequest(("popularity",), ModelSettings(dim=8))
    assert plan_request(base, scn).strategies == ("popularity",)
    planned = plan_request(RunRequest(("fine-tune",), ModelSettings(dim=8)), scn)
    assert planned.strategies[-1] == "fine-tune" and "ease" in planned.strategies
    assert planned.baselines == "none" and plan_request(planned, scn) == planned
    none = RunRequest(("fine-tune",), ModelSettings(dim=8), baselines="none")
    assert plan_request(none, scn).strategies == ("fine-tune",)
    listed = RunRequest(("fine-tune",), ModelSettings(dim=8), baselines=("ease",))
    assert plan_request(listed, scn).strategies == ("ease", "fine-tune")


def test_pipeline_reexports_the_spec_and_the_planning() -> None:
    """ScenarioSpec lives in data/spec.py and the planning in runs/plan.py; the old
    import path keeps working, and neither new module imports the pipeline back."""
    import ast
    import inspect

    import recsys_core.pipeline as pipeline
    from recsys_core.data import spec
    from recsys_core.runs import plan

    assert pipeline.ScenarioSpec is spec.ScenarioSpec
    assert pipeline.FILE_FIELDS is spec.FILE_FIELDS
    for name in (
        "RunRequest",
        "plan_request",
        "reusable_run",
        "run_config",
        "typical_seconds",
        "ENGINE_VERSION",
    ):
        assert getattr(pipeline, name) is getattr(plan, name), name
    for mod in (spec, plan):
        tree = ast.parse(inspect.getsource(mod))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "recsys_core.pipeline" not in imported, mod.__name__


def test_runs_side_by_side_give_the_figures_of_runs_one_after_the_other(tmp_path):
    """Issue 13: fitting runs in parallel threads changes nothing a run reports (shared
    pre-training computed once, model initialisation seeded as one step)."""
    import torch

    scn = _scn()
    text = toy_text(scn.item_ids)
    names = ("popularity", "ease", "target-only", "fine-tune", "distill", "adapt", "fusion")
    settings = ModelSettings(dim=16, epochs=3)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the same intra-op threads both ways: identical sums
    try:
        outs = {
            w: run_strategies(
                scn,
                RunRequest(names, settings, n_boot=10, device="cpu", baselines="none", workers=w),
                RunStore(tmp_path / f"w{w}"),
                text=text,
            )
            for w in (1, 3)
        }
    finally:
        torch.set_num_threads(before)
    one, three = outs[1], outs[3]
    assert [o.strategy for o in three] == list(names)
    assert all(o.status == "done" for o in one + three), [o.error for o in one + three]
    assert three[0].info.get("parallel", {}).get("workers") == 3
    for a, b in zip(one, three):
        for seg in ("all", "warm_users", "cold_items"):
            assert _ndcg(a, seg) == _ndcg(b, seg), (a.strategy, seg)
    # the shared source pre-training is charged to exactly one run either way
    assert sum("pretrain_source" in o.seconds for o in three) == 1
