"""What-if curves: the subsampling never leaks, draws repeat by seed, the output is as
documented, and the pooling and baseline rules do what the module says."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from recsys_core.cli.curve import add_parser as add_commands
from recsys_core.curves import (
    CURVE_COLUMNS,
    EXTRA_COLUMNS,
    CurveConfig,
    _Fit,
    _paired_by_draw,
    adjust_for_family,
    cap_source_interactions,
    parse_values,
    subsample_warm_users,
    what_if_curve,
)
from recsys_core.data.scenario import build_scenario
from recsys_core.data.schema import Domain
from recsys_core.data.split_types import SplitConfig
from recsys_core.strategies.base import ModelSettings
from tests.toy import toy_domain, toy_pair

CONFIG = SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1, cold_ks=(0, 1, 3), seed=0)


@pytest.fixture(scope="module")
def scn():
    src, tgt = toy_pair()
    return build_scenario(tgt, src, CONFIG)


@pytest.fixture(scope="module")
def interleaved():
    """Source activity overlapping target activity, so before-target cuts something."""
    _, tgt = toy_pair()
    src = toy_domain("source", 60, 60, 20, 0, "s", t0=1_000_000 - 12_000)
    return build_scenario(tgt, Domain("source", src.interactions), CONFIG)


def _pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["user"].tolist(), df["item"].tolist()))


# --------------------------------------------------------------- warm-user subsampling
@pytest.mark.parametrize("n", [1, 5, 20, 47])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subsampling_never_puts_a_test_user_or_pair_into_training(scn, n, seed):
    full = scn.split
    sub = subsample_warm_users(scn, n, seed=seed).split
    train, valid, test = _pairs(sub.train), _pairs(sub.valid), _pairs(sub.test)
    # only removals: nothing enters train, valid or test
    assert train <= _pairs(full.train) and valid <= _pairs(full.valid) and test <= _pairs(full.test)
    # no test pair of the full split is in the new training or validation rows
    assert not (_pairs(full.test) & (train | valid))
    kept = set(sub.train["user"])
    assert len(kept) == n
    # no test-only user (cold, or a warm user's test rows) becomes a training user
    cold = set(full.cold_users.tolist())
    assert not (kept & cold)
    assert kept <= set(full.train["user"])
    # cold users keep exactly their support and test rows
    for k in full.support:
        assert sub.support[k].equals(full.support[k])
    ct, cs = full.test[full.test["cold_user"]], sub.test[sub.test["cold_user"]]
    assert _pairs(cs) == _pairs(ct)
    # a dropped warm user is gone from every frame, its test rows included
    dropped = set(full.train["user"]) - kept
    for frame in (sub.train, sub.valid, sub.test):
        assert not (set(frame["user"]) & dropped)
    # warm-user test rows belong to kept users only
    assert set(sub.test.loc[~sub.test["cold_user"], "user"]) <= kept
    # cold items follow the new training rows (no training row touches them)
    assert not (set(sub.train["item"]) & set(sub.cold_items.tolist()))
    assert set(sub.test.loc[sub.test["cold_item"], "item"]) <= set(sub.cold_items.tolist())


def test_subsampling_is_deterministic_by_seed_and_nested_across_sizes(scn):
    def users(n, seed):
        return sorted(set(subsample_warm_users(scn, n, seed=seed).split.train["user"]))

    assert users(10, [0, 1]) == users(10, [0, 1])
    assert users(10, [0, 1]) != users(10, [0, 2])
    assert set(users(5, 3)) <= set(users(10, 3)) <= set(users(30, 3))
    assert subsample_warm_users(scn, None) is scn
    assert subsample_warm_users(scn, 10_000) is scn
    with pytest.raises(ValueError, match="at least one"):
        subsample_warm_users(scn, 0)


# --------------------------------------------------------------- source-history caps
@pytest.mark.parametrize("history", ["before-target", "all"])
def test_cap_keeps_the_most_recent_allowed_source_rows_of_cold_users(interleaved, history):
    import dataclasses

    full = build_scenario(interleaved.target, interleaved.source, CONFIG, source_history=history)
    capped = cap_source_interactions(full, 3)
    assert capped.split is full.split  # the target split is untouched
    cold = full.split.cold_users
    raw = full.source.interactions
    first = full.target.interactions.groupby("user_id")["timestamp"].min()
    for u in cold:
        uid = full.user_ids[u]
        rows = raw[raw["user_id"] == uid]
        if history == "before-target":
            rows = rows[rows["timestamp"] < first[uid]]
        want = set(rows.sort_values("timestamp", ascending=False)["item_id"].head(3))
        got = set(full.item_ids[capped.source_train.loc[capped.source_train["user"] == u, "item"]])
        assert got == want
    # other users' source rows are the same
    st, st0 = capped.source_train, full.source_train
    other = ~st["user"].isin(cold)
    assert _pairs(st[other]) == _pairs(st0[~st0["user"].isin(cold)])
    none = cap_source_interactions(full, 0)
    assert not none.source_train["user"].isin(cold).any()
    assert cap_source_interactions(full, None) is full
    with pytest.raises(ValueError, match="no source"):
        cap_source_interactions(dataclasses.replace(full, source=None), 3)


# ----------------------------------------------------------------------- the pooling
def test_draws_are_pooled_by_user_before_the_bootstrap():
    """User 1 is in both draws (its two paired values are averaged into one), user 2 only
    in the first, user 3 only in the second: three users, not four observations."""

    def fit(pairs):
        return _Fit(
            0.0,
            pd.DataFrame(
                [("warm_users", u, v) for u, v in pairs], columns=["segment", "user", "value"]
            ),
        )

    a = [fit([(1, 1.0), (2, 0.5)]), fit([(1, 0.0), (3, 1.0)])]
    b = [fit([(1, 0.5), (2, 0.5)]), fit([(1, 0.5), (3, 0.0)])]
    xa, xb = _paired_by_draw(a, b, "warm_users")
    np.testing.assert_allclose(xa, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(xb, [0.5, 0.5, 0.0])


def test_config_and_values():
    assert parse_values("10, 30,all") == (10, 30, None)
    with pytest.raises(ValueError, match="integers or 'all'"):
        parse_values("10,many")
    with pytest.raises(ValueError, match=">= 1"):
        CurveConfig("warm_users", (0,))
    assert CurveConfig("source_interactions", (0, None)).values == (0, None)
    with pytest.raises(ValueError, match="repeats"):
        CurveConfig("warm_users", (10, 10))
    with pytest.raises(ValueError, match="factor"):
        CurveConfig("items", (10,))
    with pytest.raises(ValueError, match="draws"):
        CurveConfig(draws=0)


# ------------------------------------------------------------------------ the curve
SETTINGS = ModelSettings(model="ials")


def test_curve_output_columns_rows_and_determinism(scn):
    kw = dict(draws=2, seed=0, n_boot=200)
    df = what_if_curve(
        scn,
        "warm_users",
        [10, None],
        ["mapping", "popularity"],
        ["popularity", "target-only"],
        SETTINGS,
        **kw,
    )
    assert list(df.columns) == CURVE_COLUMNS + EXTRA_COLUMNS
    segs = [
        "all",
        "warm_users",
        "cold_users_k0",
        "cold_users_k1",
        "cold_users_k3",
        "cold_items",
        "cold_catalogue",
    ]
    assert len(df) == 2 * 2 * len(segs)  # values x strategies x segments
    assert set(df["segment"]) == set(segs)
    assert df["value"].tolist()[:1] == [10] and df["value"].tolist()[-1] == "all"
    assert (df["draws"] == 2).all() and (df["metric"] == "ndcg").all() and (df["k"] == 10).all()
    assert set(df.loc[df["value"] == 10, "x"]) == {10.0}
    assert set(df.loc[df["value"] == "all", "x"]) == {48.0}
    rule = df.set_index("segment")["baseline_rule"].to_dict()
    assert rule["all"] == rule["warm_users"] == rule["cold_items"] == "validation"
    assert rule["cold_users_k0"] == "best-on-segment"
    # popularity compared with itself: exactly no gain wherever it is the baseline
    same = df[(df["strategy"] == "popularity") & (df["baseline"] == "popularity")]
    assert len(same) and (same["delta"] == 0).all() and (same["ci_low"] == 0).all()
    # the best baseline is never worse than popularity on its own segment
    k0 = df[(df["segment"] == "cold_users_k0") & (df["strategy"] == "popularity")]
    assert (k0["delta"] <= 0).all()
    # a dropped warm user leaves the evaluation: 10 users kept, 10 evaluated
    # (pooled over 2 draws of 10 users each: at most 20 distinct users)
    w = df[(df["value"] == 10) & (df["segment"] == "warm_users")]
    assert ((w["n_users"] > 10) & (w["n_users"] <= 20)).all()
    # every point with an estimate is in the family: Holm's p never below the raw one
    ok = df["delta"].notna()
    assert df.loc[ok, "p_t"].notna().all() and df.attrs["family_size"] == ok.sum()
    assert (df.loc[ok, "p_holm"] >= df.loc[ok, "p_t"]).all()
    # a model against itself: the paired t-test's p is 1, and nothing is claimed
    assert (df.loc[same.index, "p_t"] == 1.0).all()
    assert not df.loc[same.index, "significant"].any()


def test_family_correction_on_a_hand_computed_case():
    # Holm on (0.01, 0.04, 0.03, NaN): sorted 0.01, 0.03, 0.04 times 3, 2, 1 gives
    # 0.03, 0.06, 0.04 -> running maximum 0.03, 0.06, 0.06; NaN is not counted.
    df = pd.DataFrame(
        {
            "delta": [0.05, -0.02, 0.01, np.nan],
            "ci_low": [0.01, -0.04, -0.01, np.nan],
            "ci_high": [0.09, -0.001, 0.03, np.nan],
            "p_t": [0.01, 0.04, 0.03, np.nan],
        }
    )
    out = adjust_for_family(df)
    assert np.allclose(out["p_holm"], [0.03, 0.06, 0.06, np.nan], equal_nan=True)
    # a gain that holds; a loss whose interval is off zero but fails the correction; an
    # interval on zero whatever its p; no estimate
    assert out["significant"].tolist() == [True, False, False, False]
    assert out.attrs["family_size"] == 3 and "p_holm" not in df.columns


def test_curve_draws_repeat_by_seed(scn):
    def curve(seed):
        opts = {"mapping": {"tune_target": False}}
        return what_if_curve(
            scn,
            "warm_users",
            [10],
            ["mapping"],
            ["popularity"],
            SETTINGS,
            draws=2,
            seed=seed,
            n_boot=100,
            options=opts,
        )

    a, b, c = curve(0), curve(0), curve(5)
    pd.testing.assert_frame_equal(a, b)
    assert not a["baseline_value"].equals(c["baseline_value"])  # other users drawn


def test_source_interactions_curve_without_source_is_no_transfer(scn):
    df = what_if_curve(
        scn,
        "source_interactions",
        [0, None],
        ["mapping"],
        ["popularity"],
        SETTINGS,
        draws=1,
        n_boot=200,
    )
    k0 = df[df["segment"] == "cold_users_k0"].set_index("value")
    # cold users who bring no source history get popularity: exactly no gain at k = 0
    assert k0.loc[0, "delta"] == 0.0 and k0.loc[0, "x"] == 0.0
    assert k0.loc["all", "x"] > 20 and k0.loc["all", "ci_low"] > 0
    with pytest.raises(ValueError, match="transfer strategy"):
        what_if_curve(scn, "warm_users", [10], ["mapping"], ["mapping"], SETTINGS)
    with pytest.raises(ValueError, match="unknown strategy"):
        what_if_curve(scn, "warm_users", [10], ["nope"], ["popularity"], SETTINGS)


def test_progress_and_cancel_through_callbacks(scn):
    from recsys_core.training.callbacks import Callbacks, Cancelled

    events, lines = [], []
    cb = Callbacks(on_progress=events.append, log=lines.append)
    what_if_curve(
        scn,
        "warm_users",
        [5, None],
        ["popularity"],
        ["popularity", "target-only"],
        SETTINGS,
        draws=2,
        callbacks=cb,
        n_boot=20,
    )
    assert [e.step for e in events] == list(range(1, 9))
    assert events[-1].fraction == 1.0 and {e.stage for e in events} == {"what-if curve"}
    assert len(lines) == 8 and lines[0].startswith("warm_users=5 draw 1/2: popularity")
    stop = Callbacks(should_cancel=lambda: True)
    with pytest.raises(Cancelled):
        what_if_curve(
            scn, "warm_users", [5], ["popularity"], ["popularity"], SETTINGS, callbacks=stop
        )


# --------------------------------------------------------------------------- the CLI
def test_cli_json_prints_one_object_per_point(toy_files, capsys):
    p = argparse.ArgumentParser(prog="transfer-lab")
    add_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(
        [
            "curve",
            "--target", toy_files["target"],
            "--source", toy_files["source"],
            "--factor", "warm_users",
            "--values", "10,all",
            "--strategy", "mapping",
            "--baseline", "popularity,target-only",
            "--model", "ials",
            "--draws", "1",
            "--n-boot", "50",
            "--cold-ks", "0,1,3",
            "--source-history", "all",
            "--json",
            "--quiet",
        ]
    )  # fmt: skip
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 2 * 7  # six segments and cold items among cold items
    assert list(recs[0])[: len(CURVE_COLUMNS)] == CURVE_COLUMNS
    assert {r["value"] for r in recs} == {10, "all"}
    assert {r["source_history"] for r in recs} == {"all"}
    assert all(r["baseline"] in ("popularity", "target-only") for r in recs)
    assert all(isinstance(r["significant"], bool) for r in recs)
    assert all(r["p_holm"] is None or r["p_holm"] >= r["p_t"] for r in recs)


def test_each_fit_is_announced_and_finished_points_survive_a_stop(scn):
    """The app names the fit under way and keeps the values already computed when the
    analyst stops the curve."""
    from recsys_core.training.callbacks import Callbacks, Cancelled

    fits, points = [], []

    def stop_after_first_value() -> bool:
        return len(points) >= 1

    with pytest.raises(Cancelled):
        what_if_curve(
            scn,
            "warm_users",
            [5, 10, None],
            ["popularity"],
            ["popularity", "target-only"],
            SETTINGS,
            draws=1,
            callbacks=Callbacks(should_cancel=stop_after_first_value),
            n_boot=20,
            on_fit=fits.append,
            on_point=points.append,
        )
    # two names per value (popularity as a baseline and a strategy is one fit)
    assert [(f["strategy"], f["value"], f["done"]) for f in fits] == [
        ("popularity", 5, 0),
        ("target-only", 5, 1),
    ]
    assert fits[0]["total"] == 6 and fits[0]["draw"] == 1 and fits[0]["draws"] == 1
    (partial,) = points
    assert list(partial.columns) == CURVE_COLUMNS + EXTRA_COLUMNS
    assert set(partial["value"]) == {5} and partial["delta"].notna().all()
    full = what_if_curve(
        scn, "warm_users", [5], ["popularity"], ["popularity", "target-only"], SETTINGS,
        draws=1, n_boot=20,
    )  # fmt: skip
    pd.testing.assert_frame_equal(partial, full)


def test_the_estimate_is_the_typical_run_times_the_fits(tmp_path):
    from recsys_core.curves import estimate_curve_seconds
    from recsys_core.runs.store import RunStore

    store = RunStore(tmp_path)
    for name, secs in (("fine-tune", 300.0), ("fine-tune", 500.0), ("popularity", 2.0)):
        rid = store.create_run(name, "s", {}, "fp")
        store.finish(rid, [], {"total": secs})
    est = estimate_curve_seconds(store, ["fine-tune"], ["popularity"], n_values=3, draws=2)
    assert est.fits == 12 and est.missing == ()
    assert est.per_fit == {"popularity": 2.0, "fine-tune": 400.0}  # medians
    assert est.seconds == pytest.approx(6 * 2.0 + 6 * 400.0)
    unknown = estimate_curve_seconds(store, ["fusion"], ["popularity"], n_values=3, draws=1)
    assert unknown.missing == ("fusion",) and unknown.per_fit["popularity"] == 2.0
    assert unknown.seconds == 6.0  # what is known: a lower bound
    # one-off steps of a run (text encoded once, data loaded once) are not counted again
    rid = store.create_run("fusion", "s", {}, "fp")
    store.finish(rid, [], {"encode_text": 50.0, "load": 5.0, "fit": 20.0, "total": 75.0})
    assert estimate_curve_seconds(store, ["fusion"], [], 1, 1).per_fit == {"fusion": 20.0}


def test_cli_text_stars_only_what_survives_the_correction():
    from recsys_core.cli.curve import format_curve

    df = pd.DataFrame(
        {
            "factor": "warm_users",
            "value": [10, 30, "all"],
            "strategy": "mapping",
            "segment": "all",
            "metric": "ndcg",
            "k": 10,
            "delta": [0.08, 0.05, 0.0],
            "ci_low": [0.03, 0.01, -0.03],
            "ci_high": [0.13, 0.09, 0.03],
            "p_t": [1e-4, 0.04, 1.0],  # Holm over 3: 3e-4, 0.08, 1.0
            "baseline": "target-only",
            "baseline_rule": "validation",
            "n_users": 40,
            "source_history": "all",
            "scenario": "hand",
        }
    )
    rows = [x for x in format_curve(df).splitlines() if "mapping" in x]
    assert ["*" in x for x in rows] == [True, False, False]
    assert "Holm's correction for the 3 comparisons" in format_curve(df)
