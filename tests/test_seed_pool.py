"""Seeds as a first-class repeat (issue 14): ``run --seeds`` makes one run per model
seed on one split, and the comparison pools them with a between-seed interval."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys_core.cli import main
from recsys_core.compare import compare_runs, format_comparison, seed_interval, seed_pool
from recsys_core.runs.store import RunStore


def test_seed_interval_on_a_hand_computed_case():
    m, lo, hi = seed_interval(np.array([0.1, 0.2, 0.3]))
    # sd 0.1, t(0.975, 2) = 4.302653
    half = 4.302653 * 0.1 / np.sqrt(3)
    assert m == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-6)
    m1, lo1, hi1 = seed_interval(np.array([0.4]))
    assert m1 == 0.4 and np.isnan(lo1) and np.isnan(hi1)


def _run(rid, strategy, seed, label=None, dim=8):
    return {"run_id": rid, "strategy": strategy, "label": label,
            "config": {"strategy": strategy, "settings": {"seed": seed, "dim": dim},
                       "device": "cpu"}}  # fmt: skip


def test_pool_groups_only_runs_that_differ_by_their_seed():
    runs = [_run("a", "ease", 0), _run("b", "ease", 1), _run("c", "ease", 2),
            _run("d", "ease", 0, dim=16), _run("e", "popularity", 0)]  # fmt: skip
    vals = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.9, "e": 0.5}
    table = pd.DataFrame(
        [{"run_id": r, "strategy": "ease" if r != "e" else "popularity", "kind": "baseline",
          "label": None, "segment": "all", "value": v, "ci_low": v - 0.05, "ci_high": v + 0.05,
          "seg_delta": np.nan} for r, v in vals.items()]
    )  # fmt: skip
    table.attrs["runs"] = runs
    pooled = seed_pool(table)
    assert len(pooled) == 1  # dim 16 is another experiment; popularity ran once
    row = pooled.iloc[0]
    assert row["seeds"] == 3 and row["seed_list"] == "0,1,2"
    assert row["value"] == pytest.approx(0.2)
    assert row["boot_low"] == pytest.approx(0.15) and row["boot_high"] == pytest.approx(0.25)
    assert row["seed_low"] < 0.1 < 0.3 < row["seed_high"]  # three seeds: a wide interval


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_seeds_makes_one_run_per_seed_on_one_split(capsys, tmp_path, toy_files):
    store = str(tmp_path / "store")
    code, out, err = run_cli(
        capsys,
        "run", "--target", toy_files["target"], "--strategy", "popularity,ials",
        "--cold-ks", "0,1,3", "--cold-users", "0.2", "--n-boot", "20", "--device", "cpu",
        "--store", store, "--json", "--quiet", "--baselines", "none", "--seeds", "3,4",
        "--model", "ials", "--epochs", "2",
    )  # fmt: skip
    assert code == 0, err
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert [x["strategy"] for x in lines] == ["popularity", "ials"] * 2
    rs = RunStore(store)
    runs = [rs.get_run(x["run_id"]) for x in lines]
    assert [r["config"]["settings"]["seed"] for r in runs] == [3, 3, 4, 4]
    assert len({r["data_fingerprint"] for r in runs}) == 1  # one split for every seed
    table = compare_runs(rs, [x["run_id"] for x in lines], n_boot=50)
    pooled = seed_pool(table)
    assert set(pooled["strategy"]) == {"popularity", "ials"}
    assert (pooled["seeds"] == 2).all() and (pooled["seed_list"] == "3,4").all()
    text = format_comparison(table)  # what `transfer-lab compare` prints
    assert "over seeds" in text and "ials, seeds 3,4:" in text
    code, _, err = run_cli(capsys, "run", "--target", toy_files["target"], "--seeds", "1,1",
                           "--store", store, "--quiet")  # fmt: skip
    assert code == 2 and "repeats" in err
