"""The CLI package's layout (issue 11): one module per command over a shared ``common``,
no private names across modules, no import cycles; flags generated from the config
dataclasses, so a strategy's option is a flag with no CLI edit."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import pytest

import recsys_core.cli
from recsys_core.cli import build_parser, build_request, main
from recsys_core.cli.common import SHORT_OPTION_FLAGS
from recsys_core.strategies import registry
from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
    field_help,
)

PACKAGE = "recsys_core.cli"
MODULES = [PACKAGE] + [
    f"{PACKAGE}.{m.name}"
    for m in pkgutil.iter_modules(recsys_core.cli.__path__)
    if m.name != "__main__"  # it runs main() on import
]
COMMAND_MODULES = ["validate", "demo_data", "run", "runs", "compare", "split", "evaluate", "curve"]
SHARED_MODULES = ["common", "config", "fields", "executing"]


def cli_imports(module: str) -> list[tuple[str, str]]:
    """(sibling module, imported name) for each ``from recsys_core.cli[.x] import name``
    anywhere in ``module`` (functions included); a submodule imported through the
    package counts as importing that module."""
    mod = importlib.import_module(module)
    tree = ast.parse(inspect.getsource(mod))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # relative: resolve against this package
            base = PACKAGE if node.level == 1 else None
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module
        if target == PACKAGE:
            for a in node.names:
                out.append(
                    (f"{PACKAGE}.{a.name}", "*") if a.name in _submodules() else (PACKAGE, a.name)
                )
        elif target and target.startswith(PACKAGE + "."):
            out += [(target, a.name) for a in node.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, "*") for a in node.names if a.name.startswith(PACKAGE + ".")]
    return out


def _submodules() -> set[str]:
    return {m.name for m in pkgutil.iter_modules(recsys_core.cli.__path__)}


def test_the_package_has_one_module_per_command_and_the_old_modules_are_gone() -> None:
    assert set(COMMAND_MODULES + SHARED_MODULES) <= _submodules()
    core = Path(recsys_core.cli.__file__).parents[1]  # (find_spec would also see an
    for old in ("cli", "cli_curve", "cli_split", "cli_config"):  # editable install's tree)
        assert not (core / f"{old}.py").exists(), old
    assert importlib.util.find_spec(PACKAGE).submodule_search_locations  # a package
    assert callable(recsys_core.cli.main)  # the console script's entry point
    for name in COMMAND_MODULES:
        assert callable(importlib.import_module(f"{PACKAGE}.{name}").add_parser), name


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_a_private_name_from_a_sibling(module: str) -> None:
    private = [(m, n) for m, n in cli_imports(module) if n.startswith("_") and m != module]
    assert not private, f"{module} imports private names: {private}"


def test_the_cli_modules_import_each_other_without_cycles() -> None:
    edges = {
        m: {t for t, _ in cli_imports(m) if t != m and t != PACKAGE}
        for m in MODULES
        if m != PACKAGE
    }
    # only the package itself (which assembles the parser) and __main__ import the package
    for m in MODULES:
        if m != PACKAGE:
            assert all(t != PACKAGE for t, _ in cli_imports(m)), m
    # commands import only the shared modules, never another command
    shared = {f"{PACKAGE}.{s}" for s in SHARED_MODULES}
    for name in COMMAND_MODULES:
        assert edges[f"{PACKAGE}.{name}"] <= shared, name
    # and the shared modules form no cycle among themselves
    seen: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, " -> ".join((*path, m))
        if m in seen:
            return
        for t in edges.get(m, ()):
            visit(t, (*path, m))
        seen.add(m)

    for m in edges:
        visit(m, ())


# --------------------------------------------------------------------------- generated flags
def run_help(capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def parse_request(*flags: str):
    args = build_parser().parse_args(["run", "--target", "t.csv", *flags])
    return build_request(args)[3]


def test_every_strategy_option_is_a_flag_with_its_declared_help(capsys, monkeypatch) -> None:
    text = run_help(capsys, monkeypatch)
    for name, cls in registry.STRATEGIES.items():
        helps = field_help(cls.Config)
        for f in fields(cls.Config):
            flag = f"--{name}-{f.name.replace('_', '-')}"
            assert flag in text, flag
            assert helps[f.name] in text, (flag, helps[f.name])
    for alias in SHORT_OPTION_FLAGS:
        assert alias in text, alias


def test_item_knn_options_are_flags_with_no_cli_edit(capsys, monkeypatch) -> None:
    text = run_help(capsys, monkeypatch)
    helps = field_help(registry.STRATEGIES["item-knn"].Config)
    assert f"--item-knn-neighbours A,B,... {helps['neighbours']}" in text
    assert f"--item-knn-shrink A,B,... {helps['shrink']}" in text
    request = parse_request(
        "--strategy", "item-knn", "--item-knn-neighbours", "5,20", "--item-knn-shrink", "10"
    )
    assert request.options["item-knn"] == {"neighbours": (5, 20), "shrink": (10.0,)}


def test_short_aliases_and_long_flags_fill_the_same_option() -> None:
    short = parse_request("--strategy", "fine-tune", "--freeze", "text", "--l2sp", "0.01")
    long = parse_request(
        "--strategy", "fine-tune", "--fine-tune-freeze", "text", "--fine-tune-l2sp", "0.01"
    )
    assert short.options == long.options == {"fine-tune": {"freeze": "text", "l2sp": 0.01}}
    for flag, (strategy, option) in SHORT_OPTION_FLAGS.items():
        assert option in {f.name for f in fields(registry.STRATEGIES[strategy].Config)}, flag
    req = parse_request(
        "--strategy", "mapping", "--align", "coral", "--no-mapping-tune-target",
        "--mapping-factors", "8", "--fusion-betas", "0,0.5",
    )  # fmt: skip
    assert req.options == {
        "adapt": {"method": "coral"},
        "mapping": {"tune_target": False, "factors": 8},
        "fusion": {"betas": (0.0, 0.5)},
    }


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--item-knn-neighbours", "5,x"], ["--item-knn-neighbours", "whole numbers separated"]),
        (["--fusion-betas", "0,nan"], ["--fusion-betas", "finite numbers separated"]),
        (["--mapping-mapper", "cubic"], ["--mapping-mapper", "invalid choice"]),
        (["--mapping-factors", "many"], ["--mapping-factors", "whole number"]),
    ],
)
def test_a_bad_generated_flag_is_refused_naming_it(capsys, flags, needles) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--target", "t.csv", *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(n in err for n in needles), err


def test_model_settings_flags_come_from_the_dataclass(capsys, monkeypatch) -> None:
    text = run_help(capsys, monkeypatch)
    helps = field_help(ModelSettings)
    for f in fields(ModelSettings):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
        if f.name != "seed":  # --seed is the split's flag, which seeds the models too
            assert helps[f.name] in text, f.name
    req = parse_request(
        "--model", "bpr-mf", "--dim", "8", "--history-len", "4", "--source-loss", "bpr",
        "--sparse-adam", "--seed", "3",
    )  # fmt: skip
    s = req.settings
    assert (s.model, s.dim, s.history_len, s.source_loss, s.sparse_adam, s.seed) == (
        "bpr-mf", 8, 4, "bpr", True, 3,
    )  # fmt: skip


# --------------------------------------------------------------------------- a new strategy
@dataclass(frozen=True)
class FakeConfig(StrategyConfig):
    knob_size: int = field(default=3, metadata={"help": "how far the fake knob turns (50%)"})


class FakeStrategy(Strategy):
    name: ClassVar[str] = "fake-one"
    Config = FakeConfig
    kind = "baseline"

    def fit(self, ctx: Context) -> Fitted:  # pragma: no cover - never trained here
        raise NotImplementedError


def test_a_new_strategy_option_becomes_a_flag_with_no_cli_edit(capsys, monkeypatch) -> None:
    monkeypatch.setattr(registry, "STRATEGIES", {**registry.STRATEGIES, "fake-one": FakeStrategy})
    text = run_help(capsys, monkeypatch)
    assert "fake-one options (baseline)" in text
    assert "--fake-one-knob-size KNOB_SIZE how far the fake knob turns (50%)" in text
    request = parse_request("--strategy", "popularity", "--fake-one-knob-size", "7")
    assert request.options == {"fake-one": {"knob_size": 7}}


def test_commands_that_need_no_registry_start_without_torch():
    """validate, runs, compare... must not pay torch's import (about 1.7 s) for flags
    they do not have; run and curve build theirs from the strategy registry."""
    import subprocess
    import sys

    code = (
        "import sys; from recsys_core.cli import build_parser; "
        "p = build_parser('validate'); p.parse_args(['validate', 'x.csv']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from recsys_core.cli import build_parser

    run_help = build_parser(None)._subparsers._group_actions[0].choices["run"].format_help()
    assert "--item-knn-neighbours" in run_help
