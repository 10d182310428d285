"""Issue 12: results that mislead in silence. `run` says, before its numbers, what
`validate` would say and what the split could not do as asked (stderr, and "warnings"
in --json), and refuses a split folder that belongs to other data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from recsys_core.cli import main

QUICK = ["--strategy", "popularity", "--baselines", "none", "--quiet", "--n-boot", "10"]


def run_json(capsys, tmp_path, *argv):
    code = main(["run", *QUICK, "--store", str(tmp_path / "s"), "--json", *argv])
    out = capsys.readouterr()
    lines = [json.loads(x) for x in out.out.strip().splitlines()] if out.out.strip() else []
    return code, lines, out.err


def test_data_warnings_reach_run(capsys, tmp_path, toy_files):
    """An item table matching none of the interactions' items used to train in silence
    (every item encoded by its id as text)."""
    items = tmp_path / "vendor_items.csv"
    items.write_text("item_id,title\n" + "".join(f"zz{i},Title {i}\n" for i in range(30)))
    code, lines, err = run_json(
        capsys, tmp_path, "--target", toy_files["target"], "--target-items", str(items)
    )
    assert code == 0, err
    assert (
        "warning: target: 40 of 40 items in the interactions have no row in the item table" in err
    )
    assert any("no row in the item table" in w for w in lines[0]["warnings"])


def test_no_timestamps_says_the_order_is_random(capsys, tmp_path, toy_files):
    df = pd.read_csv(toy_files["target"]).drop(columns="timestamp")
    f = tmp_path / "no_time.csv"
    df.to_csv(f, index=False)
    for protocol in ("temporal", "cold-start"):
        code, lines, err = run_json(capsys, tmp_path, "--target", str(f), "--protocol", protocol)
        assert code == 0, err
        assert (
            f"no timestamps, so the {protocol} protocol orders each user's interactions at random"
            in err
        )
        assert any("at random" in w for w in lines[0]["warnings"])
    code, lines, err = run_json(capsys, tmp_path, "--target", str(f), "--protocol", "recbole")
    assert "at random" not in err and lines[0]["warnings"] == []


def test_support_sizes_longer_than_every_history_name_the_dropped_segments(
    capsys, tmp_path, toy_files
):
    code, lines, err = run_json(
        capsys, tmp_path, "--target", toy_files["target"], "--cold-ks", "0,50"
    )
    assert code == 0, err
    assert "no user has the 51 interactions a cold user needs" in err
    assert "cold_users_k0, cold_users_k50 were dropped" in err
    segments = {m["segment"] for m in lines[0]["metrics"]}
    assert not any(s.startswith("cold_users") for s in segments)  # what the warning says
    assert any("were dropped" in w for w in lines[0]["warnings"])


def test_a_split_folder_of_other_data_is_refused(capsys, tmp_path, toy_files):
    df = pd.read_csv(toy_files["target"])
    other = tmp_path / "other.csv"
    df.assign(user_id="w" + df["user_id"].str[1:]).to_csv(other, index=False)
    folder = tmp_path / "other_split"
    assert main(["split", "export", "--target", str(other), "--out", str(folder)]) == 0
    capsys.readouterr()
    code, lines, err = run_json(
        capsys, tmp_path, "--target", toy_files["target"], "--split", str(folder)
    )
    assert code == 2 and lines == []
    assert "none of the split folder's 60 users is among the 60 users of the scenario" in err
    assert "Traceback" not in err
    # the scenario's own split is accepted, and the split's settings replace the warnings
    # about the split the scenario would have made
    own = tmp_path / "own_split"
    assert main(["split", "export", "--target", toy_files["target"], "--out", str(own)]) == 0
    capsys.readouterr()
    code, lines, err = run_json(
        capsys, tmp_path, "--target", toy_files["target"], "--split", str(own), "--cold-ks", "0,50"
    )
    assert code == 0, err
    assert "were dropped" not in err
    assert Path(own, "split.json").is_file()
