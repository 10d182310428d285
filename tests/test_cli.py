"""The headless path: exit codes, JSON Lines shape, config files, compare."""

import json

import pytest

from recsys_core.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_validate_ok_and_broken(capsys, tmp_path, toy_files):
    code, out, _ = run_cli(capsys, "validate", toy_files["target"])
    assert code == 0 and "users" in out.lower()
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,rating\nu1,i1,5\nu2,i2,five\n")
    code, out, err = run_cli(capsys, "validate", str(bad))
    assert code == 2
    assert "bad.csv" in err and "rating" in err and "3" in err and "Traceback" not in err


def test_run_json_lines_shape(capsys, tmp_path, toy_files):
    store = str(tmp_path / "store")
    code, out, _ = run_cli(
        capsys,
        "run", "--target", toy_files["target"], "--target-items", toy_files["target_items"],
        "--source", toy_files["source"], "--source-items", toy_files["source_items"],
        "--strategy", "popularity,fine-tune", "--dim", "8", "--epochs", "2", "--source-epochs", "1",
        "--cold-ks", "0,1,3", "--cold-users", "0.2", "--n-boot", "20", "--device", "cpu",
        "--store", store, "--json", "--quiet", "--baselines", "none",
    )  # fmt: skip
    assert code == 0, out
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert [x["strategy"] for x in lines] == ["popularity", "fine-tune"]
    for x in lines:
        assert {"run_id", "strategy", "device", "seconds", "metrics"} <= set(x)
        assert "total" in x["seconds"]
        segs = {m["segment"] for m in x["metrics"]}
        assert {"all", "warm_users", "cold_users_k0", "cold_users_k1", "cold_users_k3"} <= segs
        metrics = {m["metric"] for m in x["metrics"]}
        assert metrics == {"recall", "ndcg", "hit", "mrr", "precision", "coverage", "arp", "auc"}
        assert {m["k"] for m in x["metrics"]} == {0, 5, 10, 20}  # k = 0: the cold-item AUC
        assert {m["segment"] for m in x["metrics"] if m["metric"] == "auc"} == {"cold_catalogue"}
    assert lines[1]["source_history"] == "before-target"

    code, out, _ = run_cli(capsys, "runs", "--store", store)
    assert code == 0 and lines[0]["run_id"] in out
    code, out, _ = run_cli(
        capsys, "compare", lines[0]["run_id"], lines[1]["run_id"], "--store", store
    )
    assert code == 0 and "delta" in out and "[warm users]" in out


def test_run_trains_the_baseline_suite_by_default_and_reuses_it(capsys, tmp_path, toy_files):
    store = str(tmp_path / "store")
    argv = [
        "run", "--target", toy_files["target"], "--target-items", toy_files["target_items"],
        "--strategy", "fusion", "--dim", "8", "--epochs", "2", "--cold-ks", "0,1,3",
        "--cold-users", "0.2", "--n-boot", "20", "--device", "cpu", "--store", store,
        "--json", "--quiet",
    ]  # fmt: skip
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0, out
    first = [json.loads(x) for x in out.strip().splitlines()]
    from recsys_core.strategies.registry import suite_names

    assert [x["strategy"] for x in first] == [*suite_names(True), "fusion"]
    assert not any(x["reused"] for x in first)
    code, out, _ = run_cli(capsys, *argv)
    second = [json.loads(x) for x in out.strip().splitlines()]
    assert [x["reused"] for x in second] == [True] * len(suite_names(True)) + [False]
    assert [x["run_id"] for x in second[:-1]] == [x["run_id"] for x in first[:-1]]
    # the verdict of a comparison names what it was measured against
    ids = [x["run_id"] for x in second]
    code, out, _ = run_cli(capsys, "compare", *ids, "--store", store)
    assert code == 0 and "Measured against: " + ", ".join(suite_names(True)) in out
    assert "comparisons (1 transfer run x" in out


def test_bpr_mf_with_text_strategies_encodes_the_text(capsys, tmp_path, toy_files):
    """Issue 11: the CLI skipped text encoding for --model bpr-mf, so text-zero-shot and
    fusion failed with "needs item text" although titles were given."""
    code, out, err = run_cli(
        capsys,
        "run", "--target", toy_files["target"], "--target-items", toy_files["target_items"],
        "--strategy", "text-zero-shot,fusion", "--model", "bpr-mf", "--dim", "8",
        "--epochs", "2", "--n-boot", "20", "--device", "cpu",
        "--store", str(tmp_path / "s"), "--json", "--quiet", "--baselines", "none",
    )  # fmt: skip
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert code == 0, err
    assert [(x["strategy"], x["status"]) for x in lines] == [
        ("text-zero-shot", "done"),
        ("fusion", "done"),
    ]


def test_run_from_toml_config(capsys, tmp_path, toy_files):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        """
strategies = ["target-only"]
device = "cpu"
n_boot = 10
[settings]
dim = 8
epochs = 2
model = "bpr-mf"
[split]
protocol = "recbole"
"""
    )
    code, out, _ = run_cli(
        capsys,
        "run",
        "--config",
        str(cfg),
        "--target",
        toy_files["target"],
        "--store",
        str(tmp_path / "s"),
        "--json",
        "--quiet",
    )
    assert code == 0
    rec = json.loads(out.strip().splitlines()[0])
    assert rec["protocol"] == "recbole"
    assert {m["segment"] for m in rec["metrics"]} == {"all", "warm_users"}


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "--scenario", "demo:nope", "--strategy", "popularity"], "demo:ml100k"),
        (["run", "--scenario", "demo:ml100k", "--strategy", "magic"], "unknown strategy"),
        (["run", "--scenario", "demo:ml100k", "--strategy", "fine-tune", "--l2sp", "-1"], "l2sp"),
        (["run", "--scenario", "demo:ml100k", "--dim", "1"], "dim"),
    ],
)
def test_bad_settings_exit_2_with_message(capsys, tmp_path, argv, needle):
    code, _, err = run_cli(capsys, *argv, "--store", str(tmp_path / "s"), "--quiet")
    assert code == 2
    assert needle in err and "Traceback" not in err


def test_run_on_a_split_without_validation_carves_one_and_says_so(capsys, tmp_path, toy_files):
    """Issue 10: EASE refused to run, fusion and --cold-item-scores auto took their first
    option, and the two-tower trained every epoch, when an imported split had no valid."""
    folder = tmp_path / "split"
    code, _, err = run_cli(
        capsys, "split", "export", "--target", toy_files["target"], "--cold-users", "0.2",
        "--cold-ks", "0,1,3", "--out", str(folder),
    )  # fmt: skip
    assert code == 0, err
    (folder / "valid.csv").unlink()
    (folder / "split.json").unlink()  # as a peer's train/test folder would come
    code, out, err = run_cli(
        capsys, "run", "--target", toy_files["target"], "--split", str(folder),
        "--strategy", "target-only", "--model", "ease", "--n-boot", "20", "--device", "cpu",
        "--store", str(tmp_path / "s"), "--json", "--quiet", "--baselines", "none",
    )  # fmt: skip
    assert code == 0, err
    (line,) = [json.loads(x) for x in out.strip().splitlines()]
    assert line["status"] == "done"
    assert "validation carved out of train.csv" in line["info"]["split_notes"][0]
    assert "note: no valid.csv: validation carved out of train.csv" in err
    assert line["info"]["chosen"]["l2"] > 0  # EASE chose its l2 on the carved validation
