"""Nothing the product writes or reads may run code when loaded: no pickle (pandas,
numpy, torch or the pickle module), no remote code in Hugging Face loaders. A grep over
the product's code (recsys_core, ui, views, app.py) that fails on any hit outside a
comment, so the rule holds for code written later too."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [ROOT / "recsys_core", ROOT / "ui", ROOT / "views", ROOT / "app.py"]

FORBIDDEN = {
    "pickle module": r"\b(import|from)\s+(c?pickle|cloudpickle|dill|joblib)\b",
    "pickle call": r"\b(c?pickle|cloudpickle|dill|joblib)\.(loads?|dumps?|Unpickler)\b",
    "pandas pickle": r"\b(to_pickle|read_pickle)\s*\(",
    "numpy pickle": r"\ballow_pickle\s*=\s*True\b",
    "remote code": r"\btrust_remote_code\s*=\s*True\b",
    # torch.load unpickles unless weights_only=True is among its arguments
    "torch.load": r"\btorch\.load\s*\((?![^()]*weights_only\s*=\s*True)",
}


def code_without_comments(source: str) -> str:
    """The source with every comment blanked (strings and docstrings are kept: a hit
    in a string is code too, e.g. an eval'd snippet or a subprocess command)."""
    out = source.splitlines(keepends=True)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            (row, col), (_, end) = tok.start, tok.end
            line = out[row - 1]
            out[row - 1] = line[:col] + " " * (end - col) + line[end:]
    return "".join(out)


def hits(source: str) -> list[tuple[int, str]]:
    code = code_without_comments(source)
    found = []
    for what, pattern in FORBIDDEN.items():
        for m in re.finditer(pattern, code):
            found.append((code.count("\n", 0, m.start()) + 1, what))
    return sorted(found)


def product_files() -> list[Path]:
    files = []
    for p in PRODUCT:
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return files


def test_the_product_never_loads_a_pickle() -> None:
    files = product_files()
    assert len(files) > 40  # the walk found the code
    bad = [
        f"{f.relative_to(ROOT)}:{line}: {what}" for f in files for line, what in hits(f.read_text())
    ]
    assert bad == []


@pytest.mark.parametrize(
    "code, expected",
    [
        ("import pickle\n", ["pickle module"]),
        ("from joblib import load\n", ["pickle module"]),
        ("x = pickle.loads(b)\n", ["pickle call"]),
        ("df.to_pickle(p)\npd.read_pickle(p)\n", ["pandas pickle", "pandas pickle"]),
        ("np.load(p, allow_pickle=True)\n", ["numpy pickle"]),
        ("AutoModel.from_pretrained(d, trust_remote_code=True)\n", ["remote code"]),
        ("torch.load(p)\n", ["torch.load"]),
        ("torch.load(p, map_location='cpu', weights_only=False)\n", ["torch.load"]),
        ("torch.load(p, weights_only=True)\n", []),
        ("np.load(p, allow_pickle=False)  # allow_pickle=True would run code\n", []),
        ("# never pd.read_pickle(path): a planted file runs code\n", []),
    ],
)
def test_the_grep_sees_code_and_ignores_comments(code: str, expected: list[str]) -> None:
    assert [what for _, what in hits(code)] == expected
