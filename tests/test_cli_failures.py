"""Issue 12: every CLI failure is one paragraph on stderr with exit status 2, never a
traceback; --json output is strict JSON (no NaN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_core.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--strategy", "popularity", "--baselines", "none", "--quiet", "--n-boot", "10"]


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_message(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one paragraph
    for n in needles:
        assert n.lower() in err.lower(), (n, err)


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as jq and JSON.parse do."""

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# --------------------------------------------------------------------------- TOML config


@pytest.mark.parametrize(
    "toml, needles",
    [
        ("[settings]\nfoo = 1\n", ["[settings] has an unknown key 'foo'", "dim"]),
        ('[settings]\ndim = "abc"\n', ["[settings] dim must be a whole number", "'abc'"]),
        ("bogus = 1\n", ["unknown key 'bogus'", "strategies"]),
        ("[options.nosuch]\nx = 1\n", ["[options.nosuch] names an unknown strategy"]),
        ("[options.fine-tune]\nnope = 1\n", ["[options.fine-tune] has an unknown key 'nope'"]),
        ("settings = 3\n", ["[settings] must be a table"]),
        ("[split]\nfoo = 1\n", ["[split] has an unknown key 'foo'"]),
        ('[split]\ncold_ks = [0, "a"]\n', ["cold_ks must be an array of whole numbers"]),
        ("[settings]\nweight_decay = nan\n", ["weight_decay must be a finite number"]),
        ("[settings]\nseed = -1\n", ["seed must be a whole number from 0 to 4294967295"]),
        ('device = "gpu"\n', ["device must be one of"]),
        ('strategies = ["magic"]\n', ["unknown strategy 'magic'"]),
    ],
)
def test_config_errors_name_the_file_and_key(capsys, tmp_path, toy_files, toml, needles):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(toml)
    code, _, err = run_cli(
        capsys, "run", "--config", str(cfg), "--target", toy_files["target"],
        "--store", str(tmp_path / "s"), *QUICK,
    )  # fmt: skip
    assert_message(code, err, "exp.toml", *needles)


_VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(-3, 60), max_size=3),
)
_KEYS = st.sampled_from(
    ["dim", "epochs", "lr", "seed", "model", "loss", "weight_decay", "sparse_adam", "foo",
     "protocol", "cold_ks", "cold_user_frac", "min_rating", "l2sp", "freeze", "Dim"]
)  # fmt: skip
_TABLES = st.sampled_from(["", "settings", "split", "options.fine-tune", "options.mapping"])


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return (
            "nan" if v != v else ("inf" if v > 0 else "-inf") if abs(v) == float("inf") else repr(v)
        )
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return json.dumps(v)  # strings (JSON escapes are TOML escapes) and integers


@given(entries=st.lists(st.tuples(_TABLES, _KEYS, _VALUES), min_size=1, max_size=3))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_wrong_key_or_type_is_a_data_error(tmp_path, entries):
    """Whatever keys and values a config holds, checking it and building the request
    either succeed or raise the typed DataError (or a ValueError from a range check):
    never a TypeError, AttributeError or KeyError from deep inside."""
    import argparse

    from recsys_core.cli import build_parser, build_request
    from recsys_core.errors import DataError

    tables: dict[str, dict] = {}
    for table, key, value in entries:
        tables.setdefault(table, {})[key] = value
    lines = [f"{k} = {_toml_value(v)}" for k, v in tables.pop("", {}).items()]
    for table, kv in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in kv.items()]
    text = "\n".join(lines) + "\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # not TOML at all: covered by the "not valid TOML" message
    cfg = tmp_path / "fuzz.toml"
    cfg.write_text(text)
    args = build_parser().parse_args(["run", "--config", str(cfg), "--target", "t.csv"])
    assert isinstance(args, argparse.Namespace)
    try:
        build_request(args)
    except DataError as exc:
        assert "fuzz.toml" in str(exc) or "--" in str(exc) or "must" in str(exc)
    except ValueError:
        pass  # a range check of a config dataclass: also a one-paragraph message


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--seed", "-1"], ["--seed", "0 to 4294967295"]),
        (["--seed", "99999999999999999999"], ["--seed", "0 to 4294967295"]),
        (["--weight-decay", "nan"], ["--weight-decay", "finite"]),
        (["--lr", "inf"], ["--lr", "finite"]),
        (["--option", "fine-tune.l2sp=nan"], ["l2sp must be a finite number"]),
        (["--option", "nope.x=1"], ["unknown strategy 'nope'"]),
    ],
)
def test_bad_flags_are_refused_at_once_naming_the_flag(capsys, tmp_path, toy_files, flags, needles):
    code, out, err = run_cli(
        capsys, "run", "--target", toy_files["target"], "--store", str(tmp_path / "s"),
        *QUICK, *flags,
    )  # fmt: skip
    assert_message(code, err, *needles)
    assert out == ""


# --------------------------------------------------------------------------- the store


def _store_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    db_dir = tmp_path / "db_is_dir"
    (db_dir / "runs.sqlite").mkdir(parents=True)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "runs.sqlite").write_bytes(os.urandom(4096))
    return {
        "file": (a_file, "is a file, not a folder"),
        "db_dir": (db_dir, "runs.sqlite' is not a file"),
        "garbage": (garbage, "cannot be used as the run store's database"),
    }


@pytest.mark.parametrize("case", ["file", "db_dir", "garbage"])
@pytest.mark.parametrize("command", ["runs", "run", "compare"])
def test_a_store_that_cannot_hold_runs_is_refused_at_start(
    capsys, tmp_path, toy_files, case, command
):
    path, needle = _store_cases(tmp_path)[case]
    argv = {
        "runs": ["runs"],
        "run": ["run", "--target", toy_files["target"], *QUICK],
        "compare": ["compare", "some-run"],
    }[command]
    code, out, err = run_cli(capsys, *argv, "--store", str(path))
    assert_message(code, err, needle, "--store")
    assert out == ""


def test_a_read_only_store_is_refused(capsys, tmp_path, toy_files, monkeypatch):
    """Root may write anywhere, so the folder's permission is simulated."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw)
    )
    code, _, err = run_cli(
        capsys, "run", "--target", toy_files["target"], *QUICK, "--store", str(ro)
    )
    assert_message(code, err, "is read-only", "--store")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_store_is_refused_for_real(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, "runs", "--store", str(ro))
    finally:
        ro.chmod(0o755)
    assert_message(code, err, "is read-only")


# --------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, toy_files):
    store = tmp_path_factory.mktemp("cmp") / "store"
    code = main(
        ["run", "--target", toy_files["target"], "--strategy", "popularity,target-only",
         "--baselines", "none", "--quiet", "--n-boot", "10", "--dim", "8", "--epochs", "1",
         "--device", "cpu", "--store", str(store), "--json"]
    )  # fmt: skip
    assert code == 0
    ids = sorted(p.name for p in store.iterdir() if p.is_dir())
    return store, ids


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--k", "7"], ["--k 7", "5, 10, 20"]),
        (["--metric", "bogus"], ["--metric 'bogus'", "ndcg", "recall"]),
    ],
)
def test_compare_refuses_a_metric_the_runs_do_not_hold(capsys, two_runs, extra, needles):
    store, ids = two_runs
    code, out, err = run_cli(capsys, "compare", *ids, "--store", str(store), *extra)
    assert_message(code, err, *needles)
    assert "nothing to compare" not in out


def test_compare_an_unknown_run(capsys, two_runs):
    store, ids = two_runs
    code, _, err = run_cli(capsys, "compare", ids[0], "nosuchrun", "--store", str(store))
    assert_message(code, err, "no run 'nosuchrun'", "transfer-lab runs")


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_compare_a_run_whose_per_user_table_is_broken(capsys, tmp_path, two_runs, damage):
    import shutil

    src, ids = two_runs
    store = tmp_path / "store"
    shutil.copytree(src, store)
    table = store / ids[0] / "per_user.parquet"
    if damage == "missing":
        table.unlink()
    else:
        table.write_bytes(table.read_bytes()[:100])
    code, out, err = run_cli(capsys, "compare", *ids, "--store", str(store))
    assert_message(code, err, ids[0], "per_user.parquet", "Run the strategy again")
    assert out == ""


def test_compare_help_names_the_real_default_baseline(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the first" not in text
    assert "baseline-kind run with the best value of --metric on that segment" in text


# --------------------------------------------------------------------------- output


def test_json_outputs_hold_no_nan(capsys, tmp_path, two_runs):
    """40 users with two interactions each: no validation rows, so the validation score
    is NaN; it used to be printed as a bare NaN (invalid JSON)."""
    two = tmp_path / "two.csv"
    rows = [f"u{i},i{(i + j) % 7},4,{1000 + 10 * i + j}" for i in range(40) for j in range(2)]
    two.write_text("user_id,item_id,rating,timestamp\n" + "\n".join(rows) + "\n")
    store = tmp_path / "s"
    code, out, err = run_cli(
        capsys, "run", "--target", str(two), *QUICK, "--store", str(store), "--json"
    )
    assert code == 0, err
    rec = strict_json(out)
    assert rec["info"]["val_ndcg@10"] is None
    code, out, _ = run_cli(capsys, "runs", "--json", "--store", str(store))
    assert code == 0 and strict_json(out)[0]["run_id"] == rec["run_id"]
    src, ids = two_runs
    code, out, _ = run_cli(capsys, "compare", *ids, "--json", "--store", str(src))
    assert code == 0 and {r["run_id"] for r in strict_json(out)} == set(ids)


def test_json_line_maps_non_finite_floats_to_null():
    import numpy as np

    from recsys_core.io_utils import json_line

    text = json_line({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.int64(3)})
    assert strict_json(text) == {"a": None, "b": [None, 1.5], "c": 3}


def test_a_closed_pipe_ends_the_listing_quietly(tmp_path):
    """`transfer-lab runs --json | head` used to end in a BrokenPipeError traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RTL_RUN_STORE": str(tmp_path / "s")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from recsys_core.cli import main; "
         "sys.exit(main(['runs', '--json']))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert err == ""
    assert code == 141


def _console(args: list[str], tmp_path, prelude: str = "") -> subprocess.CompletedProcess:
    """The process entry point (``console``: main, then out without the teardown)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RTL_RUN_STORE": str(tmp_path / "s")}
    code = f"import sys; {prelude}sys.argv = ['transfer-lab', *{args!r}]; "
    code += "from recsys_core.cli import console; console()"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
        timeout=120,
    )  # fmt: skip


def test_the_console_entry_keeps_exit_codes_output_and_exit_handlers(tmp_path, toy_files):
    """``console`` skips the interpreter's teardown (1 s after the demo, issue 13), not
    what a caller relies on: the exit status, every line written, the exit handlers."""
    bad = _console(["validate", str(tmp_path / "missing.csv")], tmp_path,
                   "import atexit; atexit.register(lambda: print('handler ran', "
                   "file=sys.stderr)); ")  # fmt: skip
    assert bad.returncode == 2
    assert "missing.csv" in bad.stderr and bad.stderr.rstrip().endswith("handler ran")
    ok = _console(["validate", str(toy_files["target"])], tmp_path)
    assert ok.returncode == 0, ok.stderr
    with_main = subprocess.run(
        [sys.executable, "-c", "import sys; from recsys_core.cli import main; "
         f"sys.exit(main(['validate', {str(toy_files['target'])!r}]))"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert ok.stdout == with_main.stdout and ok.stdout.endswith("\n") and len(ok.stdout) > 50


# --------------------------------------------------------------------------- data


def test_a_one_user_target_is_not_blamed_on_filters(capsys, tmp_path, toy_files):
    one = tmp_path / "one_user.csv"
    lines = Path(toy_files["target"]).read_text().splitlines()
    one.write_text("\n".join([lines[0], *[x for x in lines[1:] if x.startswith("u0,")]]) + "\n")
    code, _, err = run_cli(
        capsys, "run", "--target", str(one), *QUICK, "--store", str(tmp_path / "s")
    )
    assert_message(code, err, "one_user.csv", "1 user(s)", "at least 2 users")
    assert "filter" not in err and "threshold" not in err and "k-core" not in err
    code, _, err = run_cli(
        capsys, "run", "--target", toy_files["target"], *QUICK, "--min-rating", "6",
        "--store", str(tmp_path / "s"),
    )  # fmt: skip
    assert_message(code, err, "after filtering by the rating threshold (6)")


def test_a_target_of_single_interactions_is_an_error_not_an_empty_run(capsys, tmp_path):
    single = tmp_path / "single.csv"
    rows = [f"u{i},i{i % 7},4,{1000 + i}" for i in range(40)]
    single.write_text("user_id,item_id,rating,timestamp\n" + "\n".join(rows) + "\n")
    code, out, err = run_cli(
        capsys, "run", "--target", str(single), *QUICK, "--store", str(tmp_path / "s"), "--json"
    )
    assert_message(code, err, "single.csv", "each of the 40 users has a single interaction")
    assert out == ""


def test_a_header_of_64_kib_is_read_not_called_a_quoting_problem(capsys, tmp_path):
    wide = tmp_path / "wide.csv"
    cols = ["user_id", "item_id", "rating", *[f"extra_column_{i}" for i in range(5000)]]
    assert len(",".join(cols)) > 64 * 1024
    row = "u1,i1,3" + "," * 5000
    wide.write_text(",".join(cols) + "\n" + "\n".join([row, row.replace("i1", "i2")]) + "\n")
    code, out, err = run_cli(capsys, "validate", str(wide))
    assert code == 0, err
    assert "quote" not in err and "interactions  2" in out
    huge = tmp_path / "huge.csv"
    huge.write_text("user_id,item_id," + ",".join(f"c{i}" for i in range(200_000)) + "\n")
    code, _, err = run_cli(capsys, "validate", str(huge))
    assert_message(code, err, "huge.csv", "first line is longer than 1 MiB")
    assert "quote" not in err


def test_an_id_only_run_never_imports_the_text_model(tmp_path, toy_files):
    """The text model's code (3 s of imports) is imported only for runs that read text."""
    code = (
        "import sys, threading; from recsys_core.cli import main; "
        f"main(['run', '--target', {str(toy_files['target'])!r}, '--target-items', "
        f"{str(toy_files['target_items'])!r}, '--strategy', 'popularity', '--baselines', "
        f"'none', '--quiet', '--n-boot', '10', '--store', {str(tmp_path / 's')!r}]); "
        "print('transformers' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "RTL_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_run_reading_text_imports_the_model_code_while_loading(
    capsys, monkeypatch, tmp_path, toy_files
):
    """...and for those, on a side thread started before the data are read (issue 13)."""
    import recsys_core.pipeline as pipeline
    import recsys_core.text.encoder as encoder

    events = []
    monkeypatch.setattr(encoder, "import_model_code_in_background", lambda: events.append("import"))
    real = pipeline.load_scenario
    monkeypatch.setattr(
        pipeline, "load_scenario", lambda *a, **k: events.append("load") or real(*a, **k)
    )
    code, _, err = run_cli(
        capsys, "run", "--target", toy_files["target"], "--target-items",
        toy_files["target_items"], "--strategy", "text-zero-shot", "--baselines", "none",
        "--quiet", "--n-boot", "10", "--store", str(tmp_path / "s"),
    )  # fmt: skip
    assert code == 0, err
    assert events[:2] == ["import", "load"]
