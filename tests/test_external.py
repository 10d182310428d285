"""Evaluating anyone's recommendations: identical to our own runs, hand-computed values,
clear errors, the CLI commands and storing the file as a run."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest

from recsys_core.cli import evaluate as evaluate_command
from recsys_core.cli import split as split_command
from recsys_core.compare import compare_runs
from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_io import export_split, folder_fingerprint, import_split
from recsys_core.data.split_types import SplitConfig
from recsys_core.errors import DataError
from recsys_core.external import add_external_run, evaluate_recommendation_file
from recsys_core.pipeline import RunRequest, run_strategies
from recsys_core.runs.store import RunStore
from recsys_core.strategies.base import ModelSettings
from tests.data.test_split_io import foreign, write
from tests.toy import toy_pair, toy_text

L3 = 1.0 / math.log2(3)  # DCG gain at rank 2
L4 = 0.5  # rank 3
L5 = 1.0 / math.log2(5)  # rank 4


# --------------------------------------------------------------------------- our own run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A target-only run through the real pipeline, its split exported, and its stored
    top-K written as a recommendation file with original ids (k rows for cold users)."""
    root = tmp_path_factory.mktemp("ext")
    _, tgt = toy_pair()
    scn = build_scenario(tgt, None, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3)), name="toy")
    store = RunStore(root / "store")
    request = RunRequest(("target-only",), ModelSettings(dim=8, epochs=2), n_boot=50, device="cpu")
    (out,) = run_strategies(scn, request, store, text=toy_text(scn.item_ids))
    assert out.status == "done", out.error
    export_split(scn.split, root / "split", scn.name, scn.fingerprint())
    split = import_split(root / "split")
    topk = store.load_table(out.run_id, "topk")
    topk = topk[topk["item"] >= 0]
    frames = []
    for seg, k in [("warm_users", ""), *((f"cold_users_k{k}", k) for k in split.support)]:
        t = topk[topk["segment"] == seg]
        frames.append(
            pd.DataFrame(
                {
                    "user_id": split.user_map.decode(t["user"]),
                    "item_id": split.item_map.decode(t["item"]),
                    "rank": t["rank"],
                    "k": k,
                }
            )
        )
    recs = pd.concat(frames).sample(frac=1.0, random_state=0)  # order in the file is irrelevant
    recs.to_csv(root / "recs.csv", index=False)
    return scn, store, out, split, root


def test_evaluate_gives_exactly_the_runs_metrics(trained):
    _, store, out, split, root = trained
    res = evaluate_recommendation_file(root / "recs.csv", split, n_boot=50, seed=0)
    assert res.warnings == ()
    mine = {(r["segment"], r["metric"], r["k"]): r for r in res.to_records()}
    # a list cannot be scored among the cold items only (that needs scores): the run's
    # own cold_catalogue segment has no counterpart in a recommendation file
    run = {
        (r["segment"], r["metric"], r["k"]): r
        for r in store.get_run(out.run_id)["metrics"]
        if r["segment"] != "cold_catalogue"
    }
    assert {s for s, _, _ in run} == {"all", "warm_users", "cold_users_k0", "cold_users_k1",
                                       "cold_users_k3", "cold_items"}  # fmt: skip
    assert {k for _, _, k in run} == {5, 10, 20}
    assert {m for _, m, _ in run} == {
        "recall",
        "ndcg",
        "hit",
        "mrr",
        "precision",
        "coverage",
        "arp",
    }
    assert mine == run  # every value and interval bound, exactly
    stored = store.load_table(out.run_id, "per_user")
    stored = stored[stored["segment"] != "cold_catalogue"].drop(columns="auc")
    pd.testing.assert_frame_equal(res.per_user, stored.reset_index(drop=True))


def test_stored_external_run_sits_beside_the_run(trained):
    scn, store, out, split, root = trained
    fp = folder_fingerprint(root / "split", split)
    assert fp == scn.fingerprint()
    rid = add_external_run(
        store, split, scn.name, fp, root / "recs.csv", label="production", n_boot=50
    )
    run = store.get_run(rid)
    assert (
        run["strategy"] == "external" and run["status"] == "done" and run["label"] == "production"
    )
    own = [m for m in store.get_run(out.run_id)["metrics"] if m["segment"] != "cold_catalogue"]
    assert run["metrics"] == own
    assert run["config"]["file"] == "recs.csv" and len(run["config"]["file_sha256"]) == 64
    table = compare_runs(store, [out.run_id, rid], baseline=out.run_id)
    ext = table[table["run_id"] == rid]
    assert len(ext) == 6 and (ext["delta"] == 0).all() and not ext["significant"].any()
    topk = store.load_table(rid, "topk")
    assert list(topk.columns) == ["segment", "user", "rank", "item"]


# --------------------------------------------------------------------------- by hand


def hand_recs() -> str:
    """Lists for the foreign folder of test_split_io (see test_hand_computed_metrics)."""
    rows = [
        # warm users (k empty)
        ("u1", "i3", 1, ""), ("u1", "i8", 2, ""), ("u1", "i5", 3, ""), ("u1", "i4", 4, ""),
        ("u2", "i5", 3, ""), ("u2", "i6", 1, ""), ("u2", "i7", 2, ""), ("u2", "i5", 5, ""),
        ("u4", "i2", 1, ""), ("u4", "i3", 2, ""), ("u4", "i8", 3, ""), ("u4", "i5", 4, ""),
        ("u4", "nope", 5, ""), ("u4", "i1", 6, ""),
        ("ghost", "i1", 1, ""),
        # cold users
        ("c1", "i5", 1, "0"), ("c1", "i1", 2, "0"), ("c1", "i6", 3, "0"),
        ("c2", "i1", 1, "0"), ("c2", "i4", 2, "0"),
        ("c1", "i1", 1, "1"), ("c1", "i6", 2, "1"), ("c1", "i7", 3, "1"),
        ("c2", "i2", 1, ""), ("c2", "i3", 2, ""), ("c2", "i4", 3, ""),
    ]  # fmt: skip
    return "user_id,item_id,rank,k\n" + "".join(f"{u},{i},{r},{k}\n" for u, i, r, k in rows)


def test_hand_computed_metrics(tmp_path):
    """Split (tests/data/test_split_io.foreign): train u1 {i1,i2} u2 {i2,i3} u3 {i1,i3}
    u4 {i4..i7}; valid u1 {i3}; test u1 {i4, i8*} u2 {i5} u3 {i6, i8*} u4 {i1}
    (* cold item); cold users c1 {i5,i6}, c2 {i4}; support k1: c1 {i1}, c2 {i2}.

    Lists after reading (masked: known items removed; duplicates keep the best rank):
      u1 [i8 i5 i4]        (i3 is a valid item: masked)   hits at 1, 3 of {i4, i8}
      u2 [i6 i7 i5]        (i5 twice: rank 3 kept)         hit at 3
      u3 no row            -> zeros
      u4 [i2 i3 i8 i1]     (i5 in train: masked; 'nope' unknown) hit at 4
      k0: c1 [i5 i1 i6] hits at 1, 3 of {i5, i6}; c2 [i1 i4] hit at 2
      k1: c1 [i6 i7] (i1 is support: masked) hit at 1 of 2; c2 (no k -> largest k = 1)
          [i3 i4] (i2 is support: masked) hit at 2
    """
    split = import_split(foreign(tmp_path / "split"))
    res = evaluate_recommendation_file(
        hand_recs().encode(), split, name="hand.csv", k_max=10, n_boot=0
    )
    assert res.config.ks == (5, 10)

    ndcg_u1 = (1 + L4) / (1 + L3)
    per_user = {  # user -> (recall, ndcg, hit, mrr, hits)
        "u1": (1.0, ndcg_u1, 1.0, 1.0, 2),
        "u2": (1.0, L4, 1.0, 1 / 3, 1),
        "u3": (0.0, 0.0, 0.0, 0.0, 0),
        "u4": (1.0, L5, 1.0, 1 / 4, 1),
        "c1@0": (1.0, ndcg_u1, 1.0, 1.0, 2),
        "c2@0": (1.0, L3, 1.0, 1 / 2, 1),
        "c1@1": (0.5, 1 / (1 + L3), 1.0, 1.0, 1),
        "c2@1": (1.0, L3, 1.0, 1 / 2, 1),
        # cold-item segment: only the cold item i8 is the truth
        "u1*": (1.0, 1.0, 1.0, 1.0, 1),
        "u3*": (0.0, 0.0, 0.0, 0.0, 0),
    }
    segments = {
        "all": ["u1", "u2", "u3", "u4", "c1@1", "c2@1"],
        "warm_users": ["u1", "u2", "u3", "u4"],
        "cold_users_k0": ["c1@0", "c2@0"],
        "cold_users_k1": ["c1@1", "c2@1"],
        "cold_items": ["u1*", "u3*"],
    }
    assert res.segments == list(segments)
    for seg, users in segments.items():
        rows = [per_user[u] for u in users]
        for k in (5, 10):
            expect = {
                "recall": np.mean([r[0] for r in rows]),
                "ndcg": np.mean([r[1] for r in rows]),
                "hit": np.mean([r[2] for r in rows]),
                "mrr": np.mean([r[3] for r in rows]),
                "precision": np.mean([r[4] / k for r in rows]),
            }
            for metric, value in expect.items():
                assert res.metric(seg, metric, k) == pytest.approx(value, abs=1e-12), (
                    seg,
                    metric,
                    k,
                )
    # a few of those means written out, so the arithmetic above is checked too
    assert res.metric("warm_users", "recall", 5) == 0.75
    assert res.metric("warm_users", "precision", 5) == pytest.approx(0.2)
    assert res.metric("warm_users", "mrr", 10) == pytest.approx((1 + 1 / 3 + 0 + 1 / 4) / 4)
    assert res.metric("all", "hit", 5) == pytest.approx(5 / 6)
    assert res.metric("cold_users_k1", "ndcg", 5) == pytest.approx((1 / (1 + L3) + L3) / 2)
    # beyond accuracy: k1 lists {i6, i7, i3, i4} of 8 items; train popularity i3 2, others 1
    assert res.metric("cold_users_k1", "coverage", 5) == 0.5
    assert res.metric("cold_users_k1", "arp", 5) == pytest.approx((1.0 + 1.5) / 2)
    assert res.metric("warm_users", "coverage", 10) == 1.0  # u1, u2, u4 lists cover i1..i8

    notes = {w.code: w.count for w in res.warnings}
    assert notes == {
        "unknown_users": 1,
        "unknown_items": 1,
        "cold_users_without_k": 1,
        "duplicates": 1,
        "history_items": 4,  # u1 i3 (valid), u4 i5 (train), c1@1 i1 and c2@1 i2 (support)
        "users_without_list": 1,
    }
    assert res.stats["rankings"] == {"cold_k0": 2, "cold_k1": 2, "warm": 3}
    assert res.lists.query("ranking == 'warm' and user == 2")["item"].tolist() == [7, 4, 3]


def test_scores_and_ties(tmp_path):
    split = import_split(foreign(tmp_path / "split"))
    # higher score first; equal scores by item index (i4 < i8), duplicates keep the best
    recs = "user_id,item_id,score\nu1,i8,0.5\nu1,i4,0.5\nu1,i5,0.9\nu1,i5,0.1\n"
    res = evaluate_recommendation_file(recs.encode(), split, k_max=5, n_boot=0)
    assert res.lists.query("user == 2")["item"].tolist() == [4, 3, 7]  # i5, i4, i8
    assert res.metric("warm_users", "mrr", 5) == pytest.approx(0.5 / 4)  # u1 only: 1/2 / 4 users
    assert "cold_users_k0" not in res.segments  # no row for cold users: left out, not zero
    assert {w.code for w in res.warnings} >= {"users_without_list", "duplicates"}


@pytest.mark.parametrize(
    "text, needles",
    [
        ("user_id,item_id\nu1,i1\n", ["hand.csv", "rank"]),
        ("user,item_id,rank\nu1,i1,1\n", ["hand.csv", "user_id"]),
        ("user_id,item_id,rank\nu1,i1,1\nu1,i2,2\nu1,i3,first\n", ["hand.csv", "rank", "line 4"]),
        ("user_id,item_id,rank,k\nc1,i1,1,2\n", ["hand.csv", "'k'", "line 2", "0, 1"]),
        ("user_id,item_id,rank,k\nc1,i1,1,-1\n", ["hand.csv", "'k'", "line 2"]),
        ("user_id,item_id,rank\nx,i1,1\ny,i2,1\n", ["hand.csv", "none of the 2 rows"]),
        ("user_id,item_id,rank\n", ["hand.csv", "no rows"]),
    ],
    ids=["no-rank-or-score", "no-user-column", "bad-rank", "k-not-a-support-size", "negative-k",
         "nothing-matches", "header-only"],
)  # fmt: skip
def test_broken_recommendation_files(tmp_path, text, needles):
    split = import_split(foreign(tmp_path / "split"))
    with pytest.raises(DataError) as e:
        evaluate_recommendation_file(text.encode(), split, name="hand.csv")
    for n in needles:
        assert n in str(e.value)


def test_recommendation_files_are_read_with_the_table_reader_limits(tmp_path):
    import gzip
    import io

    from recsys_core.data.loaders import Limits

    split = import_split(foreign(tmp_path / "split"))
    text = b"user_id,item_id,rank\nu1,i4,1\nu1,i8,2\nu2,i5,1\n"
    with pytest.raises(DataError, match=r"hand\.csv.*3 rows, more than the limit of 2"):
        evaluate_recommendation_file(text, split, name="hand.csv", limits=Limits(max_rows=2))
    # the same limits for a path and a file object; gzip read by content, tabs sniffed
    path = tmp_path / "recs.tsv.gz"
    path.write_bytes(gzip.compress(text.replace(b",", b"\t")))
    res = evaluate_recommendation_file(path, split, n_boot=0)
    assert res.stats["rows_read"] == 3
    with pytest.raises(DataError, match=r"recs\.tsv\.gz.*limit of 2"):
        evaluate_recommendation_file(path, split, limits=Limits(max_rows=2))
    with pytest.raises(DataError, match=r"up\.csv.*limit of 2"):
        evaluate_recommendation_file(
            io.BytesIO(text), split, name="up.csv", limits=Limits(max_rows=2)
        )


def test_nothing_is_stored_for_a_broken_file(tmp_path):
    split = import_split(foreign(tmp_path / "split"))
    store = RunStore(tmp_path / "store")
    with pytest.raises(DataError):
        add_external_run(store, split, "hand", "fp", b"user_id,item_id\nu1,i1\n", label="x")
    assert store.list_runs().empty


# --------------------------------------------------------------------------- CLI


def cli(capsys, *argv):
    parser = argparse.ArgumentParser(prog="transfer-lab")
    sub = parser.add_subparsers(dest="command", required=True)
    split_command.add_parser(sub)
    evaluate_command.add_parser(sub)
    args = parser.parse_args(list(argv))
    code = args.func(args)
    out = capsys.readouterr()
    return code, out.out


def test_cli_export_then_evaluate(capsys, tmp_path, toy_files):
    out_dir = tmp_path / "split"
    code, out = cli(
        capsys, "split", "export", "--target", toy_files["target"], "--out", str(out_dir),
        "--cold-ks", "0,2", "--cold-users", "0.2", "--seed", "1",
    )  # fmt: skip
    assert code == 0 and "cold_users_k2" in out and "train.csv" in out
    split = import_split(out_dir)
    assert split.config.cold_ks == (0, 2) and split.config.seed == 1
    # the same flags give the same split as `run` builds
    assert json.loads((out_dir / "split.json").read_text())["config"]["cold_user_frac"] == 0.2

    # popularity-like lists: every test user gets the catalogue's first 10 items
    users = split.user_map.ids[np.unique(split.test["user"])]
    rows = [(u, split.item_map.ids[j], j + 1) for u in users for j in range(10)]
    recs = tmp_path / "recs.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "rank"]).to_csv(recs, index=False)
    store = tmp_path / "store"
    code, out = cli(
        capsys, "evaluate", "--split", str(out_dir), "--recs", str(recs), "--json",
        "--n-boot", "20", "--store", str(store),
    )  # fmt: skip
    assert code == 0
    rec = json.loads(out)
    assert set(rec) == {"run_id", "strategy", "status", "device", "seconds", "metrics", "info",
                        "error", "scenario", "source_history", "protocol"}  # fmt: skip
    assert rec["strategy"] == "external" and rec["protocol"] == "cold-start"
    # rows without k count for cold users at the largest support size only: no k0 segment
    assert {m["segment"] for m in rec["metrics"]} == {
        "all",
        "warm_users",
        "cold_users_k2",
        "cold_items",
    }
    assert any("k = 0" in w and "left out" in w for w in rec["info"]["warnings"])
    assert {m["k"] for m in rec["metrics"]} == {5, 10, 20}
    assert RunStore(store).get_run(rec["run_id"])["metrics"] == rec["metrics"]
    # the text table, not stored
    code, out = cli(
        capsys, "evaluate", "--split", str(out_dir), "--recs", str(recs), "--n-boot", "0"
    )
    assert code == 0 and "warm_users" in out and "ndcg" in out and "stored" not in out
    assert "k = 2" in out  # blank-k lists of cold users were used at the largest support size


def test_cli_evaluate_errors_are_data_errors(capsys, tmp_path):
    folder = foreign(tmp_path / "split")
    write(tmp_path, "bad.csv", "user_id,item_id,rank\nu1,i1,x\n")
    with pytest.raises(DataError, match=r"bad\.csv.*rank.*line 2"):
        cli(capsys, "evaluate", "--split", str(folder), "--recs", str(tmp_path / "bad.csv"))
    with pytest.raises(DataError, match="not found"):
        cli(capsys, "evaluate", "--split", str(folder), "--recs", str(tmp_path / "none.csv"))
