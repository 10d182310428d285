"""The verdict: per-segment best baselines, paired deltas, and Holm's correction."""

import numpy as np
import pandas as pd
import pytest

from recsys_core.compare import compare_runs, verdict, verdict_context, verdict_lines
from recsys_core.evaluation.bootstrap import holm_adjust, paired_t_pvalue


class FakeStore:
    """The two calls compare_runs makes of a RunStore, over per-user NDCG@10 arrays."""

    def __init__(self, runs: dict[str, tuple[str, dict[str, np.ndarray]]]):
        self.runs = runs

    def get_run(self, rid):
        strategy, segs = self.runs[rid]
        metrics = [
            {"segment": s, "metric": "ndcg", "k": 10, "value": float(v.mean()),
             "ci_low": float(v.mean()) - 0.01, "ci_high": float(v.mean()) + 0.01}
            for s, v in segs.items()
        ]  # fmt: skip
        return {"run_id": rid, "strategy": strategy, "label": None, "metrics": metrics,
                "data_fingerprint": "fp", "config": {"links": {"text_available": True}}}  # fmt: skip

    def load_table(self, rid, name):
        _, segs = self.runs[rid]
        return pd.concat(
            [pd.DataFrame({"segment": s, "user": np.arange(len(v)), "ndcg@10": v})
             for s, v in segs.items()], ignore_index=True,
        )  # fmt: skip


def test_holm_matches_hand_computed_values():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(holm_adjust(p), [0.03, 0.06, 0.06, np.nan, 0.02])


def test_paired_t_pvalue_is_not_floored_by_draws():
    rng = np.random.default_rng(0)
    a = rng.random(2000)
    p = paired_t_pvalue(a + 0.05, a + rng.normal(0, 0.1, 2000))
    assert p < 1e-20  # a bootstrap with 1,000 draws could never go below ~0.002
    assert paired_t_pvalue(a, a) == 1.0


def test_paired_t_pvalue_on_a_hand_computed_case():
    # d = (1, 2, 3, 4): mean 2.5, sd 1.290994, t = 2.5 / (1.290994 / 2) = 3.872983;
    # two-sided p of t(3) at 3.872983 = 0.030466 (tables of Student's t)
    p = paired_t_pvalue(np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4))
    assert p == pytest.approx(0.030466, abs=2e-6)


def _segments(rng, quality, noise=0.1):
    return {s: np.clip(q + rng.normal(0, noise, len(q)), 0, 1) for s, q in quality.items()}


def test_verdict_names_the_best_baseline_per_segment_and_the_family():
    rng = np.random.default_rng(1)
    q = {"warm_users": rng.beta(2, 12, 800), "cold_users_k3": rng.beta(5, 6, 300)}
    pop = {"warm_users": q["warm_users"] * 0.6, "cold_users_k3": q["cold_users_k3"]}
    ease = {"warm_users": q["warm_users"], "cold_users_k3": q["cold_users_k3"] * 0.7}
    fine = {"warm_users": q["warm_users"] + 0.03, "cold_users_k3": q["cold_users_k3"] * 0.8}
    store = FakeStore({
        "p": ("popularity", pop), "e": ("ease", ease), "f": ("fine-tune", fine),
        "x": ("external", {"warm_users": q["warm_users"] + 0.5}),
    })  # fmt: skip
    t = compare_runs(store, ["p", "e", "f", "x"])
    warm = t[t["segment"] == "warm_users"].set_index("run_id")
    cold = t[t["segment"] == "cold_users_k3"].set_index("run_id")
    assert warm.loc["f", "seg_baseline"] == "e" and cold.loc["f", "seg_baseline"] == "p"
    # the table's delta column uses each segment's own best baseline, like the verdict
    assert warm.loc["f", "baseline"] == "e" and cold.loc["f", "baseline"] == "p"
    assert warm.loc["f", "delta"] == pytest.approx(0.03)
    assert t.attrs["family_size"] == 2  # one transfer run x two segments; external ignored
    lines = verdict_lines(t)
    assert [(v.segment, v.kind) for v in lines] == [
        ("warm_users", "gain"),
        ("cold_users_k3", "loss"),
    ]
    e = ease["warm_users"].mean()
    assert lines[0].text.startswith(
        f"warm users: fine-tune beats the best baseline, ease ({e:.4f}) by +0.0300 NDCG@10 "
        f"({0.03 / e:+.0%})"
    )
    assert lines[0].text.endswith("(Holm-adjusted p < 0.0001).")
    assert "after correcting for 2 comparisons" in lines[0].text
    p = pop["cold_users_k3"].mean()
    assert f"popularity ({p:.4f}) is better than every transfer strategy" in lines[1].text
    ctx = verdict_context(t)
    assert ctx[0] == "Measured against: popularity, ease."
    assert "Not in this comparison: text-zero-shot, target-only, item-knn, ials" in ctx[1]


def test_no_relative_change_against_a_near_zero_baseline():
    rng = np.random.default_rng(2)
    zero = {"cold_items": np.zeros(500)}
    gain = {"cold_items": np.clip(rng.normal(0.05, 0.02, 500), 0, 1)}
    t = compare_runs(FakeStore({"p": ("popularity", zero), "a": ("adapt", gain)}), ["p", "a"])
    (line,) = verdict(t)
    assert "beats the best baseline, popularity (0.0000) by +0.04" in line
    assert "NDCG@10, 95% CI" in line  # no "(+5675777844572%)" after the absolute figure
    assert "after correcting for 1 comparison (" in line


def test_gain_that_does_not_survive_the_correction_is_not_claimed():
    rng = np.random.default_rng(7)
    base = {f"seg{i}": rng.beta(2, 8, 400) for i in range(7)}
    runs = {"b": ("ease", base)}
    for name in ["fine-tune", "distill", "adapt", "fusion", "mapping"]:
        segs = {s: v.copy() for s, v in base.items()}
        if name == "fine-tune":  # a small effect on one segment: raw p 0.005, above 0.05/35
            segs["seg0"] = segs["seg0"] + rng.normal(0.006, 0.045, 400)
        runs[name] = (name, segs)
    t = compare_runs(FakeStore(runs), list(runs))
    row = t[(t["strategy"] == "fine-tune") & (t["segment"] == "seg0")].iloc[0]
    assert row["seg_p"] < 0.05 and row["seg_significant_raw"]
    assert not row["seg_significant"]
    assert t.attrs["family_size"] == 35
    assert "but not after correcting for 35 comparisons" in verdict(t)[0]


def test_planted_null_adjusted_verdict_claims_at_most_one_family_in_20(capsys):
    """Five 'transfer strategies' that are the baseline model with other seeds, seven
    segments, 20 seeds of the data: the Holm-adjusted verdict may claim a gain in at most
    1 family of 20; the unadjusted rate is printed beside it."""
    adjusted = raw = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        quality = {f"seg{i}": rng.beta(2, 8, 300) for i in range(7)}
        runs = {"base": ("ease", _segments(rng, quality))}
        for name in ["fine-tune", "distill", "adapt", "fusion", "mapping"]:
            runs[name] = (name, _segments(rng, quality))
        t = compare_runs(FakeStore(runs), list(runs), n_boot=200, seed=seed)
        tr = t[t["kind"] == "transfer"]
        adjusted += bool((tr["seg_significant"] & (tr["seg_delta"] > 0)).any())
        raw += bool((tr["seg_significant_raw"] & (tr["seg_delta"] > 0)).any())
    print(f"families claiming a gain: adjusted {adjusted}/20, unadjusted {raw}/20")
    assert adjusted <= 1
    assert raw >= 5  # without the correction, chance "wins" are the rule


def test_cold_item_table_puts_full_and_cold_catalogue_figures_side_by_side():
    from recsys_core.compare import cold_item_table

    m = [
        {"segment": "cold_items", "metric": "ndcg", "k": 10, "value": 0.05, "ci_low": 0.04,
         "ci_high": 0.06},
        {"segment": "cold_catalogue", "metric": "auc", "k": 0, "value": 0.81, "ci_low": 0.8,
         "ci_high": 0.82},
    ]  # fmt: skip
    runs = [
        {"run_id": "a", "strategy": "adapt", "metrics": m},
        {"run_id": "b", "strategy": "ease", "metrics": [{**m[0], "segment": "warm_users"}]},
    ]
    t = cold_item_table(runs)
    assert list(t["run_id"]) == ["a"]  # b has no cold items
    assert t.loc[0, "NDCG@10, full catalogue"] == "0.0500 [0.0400, 0.0600]"
    assert t.loc[0, "cold-item AUC"] == "0.8100 [0.8000, 0.8200]"
    assert t.loc[0, "Recall@20 among cold items"] == ""


def test_auc_pairs_skip_users_without_a_value():
    a = np.array([0.9, np.nan, 0.7, 0.8])
    b = np.array([0.5, 0.6, np.nan, 0.4])
    store = FakeStore(
        {"e": ("ease", {"cold_catalogue": b}), "f": ("fine-tune", {"cold_catalogue": a})}
    )
    t = compare_runs(store, ["e", "f"])
    row = t[t["run_id"] == "f"].iloc[0]
    assert row["delta"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.4)) / 2)  # users 0 and 3


def test_default_runs_take_the_newest_of_each_strategy_and_label():
    from recsys_core.compare import default_runs

    runs = [
        {"run_id": "f2", "strategy": "fine-tune", "label": None},
        {"run_id": "f1", "strategy": "fine-tune", "label": None},
        {"run_id": "g", "strategy": "fine-tune", "label": "l2sp=0.1"},
        *({"run_id": f"b{i}", "strategy": s, "label": None} for i, s in enumerate(
            ["popularity", "item-knn", "ease", "ials", "text-zero-shot", "target-only"])),
    ]  # fmt: skip
    assert default_runs(runs) == ["f2", "g", "b0", "b1", "b2", "b3", "b4", "b5"]
