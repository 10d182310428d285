"""Every design note the repository refers to is inside the repository.

Code, configs and docs point to ``docs/NAME.md`` (sometimes with a section:
``docs/design.md, "Evaluation"``); each must name a file that exists and, when a
section is given, a heading of that file. Links between the docs resolve too.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = re.compile(r"docs/([\w./-]+?\.md)(?:,\s*\"([^\"]+)\"(?:\s+and\s+\"([^\"]+)\")?)?")
LINK = re.compile(r"\]\(([\w./-]+\.md)(?:#[\w-]+)?\)")
OUTSIDE_REFS_PENDING: set[str] = set()


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [ROOT / p for p in out.stdout.split()]


def headings(path: Path) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#+\s+(.+)$", path.read_text(), re.MULTILINE)}


# this file names the patterns it looks for, so it is not one of the sources it checks
SOURCES = [
    p for p in tracked("*.py", "*.toml", "*.md", "Makefile") if p != Path(__file__).resolve()
]


def references() -> list[tuple[str, str, tuple[str, ...]]]:
    refs = []
    for path in SOURCES:
        text = path.read_text(errors="replace")
        for m in REF.finditer(text):
            sections = tuple(s for s in m.groups()[1:] if s)
            refs.append((str(path.relative_to(ROOT)), m.group(1), sections))
    return refs


def test_there_are_references_to_check() -> None:
    files = {f for _, f, _ in references()}
    assert {"design.md", "metrics.md", "split_format.md"} <= files


@pytest.mark.parametrize(
    "where, name, sections", references(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_docs_reference_resolves(where: str, name: str, sections: tuple[str, ...]) -> None:
    target = ROOT / "docs" / name
    assert target.is_file(), f"{where} refers to docs/{name}, which does not exist"
    missing = set(sections) - headings(target)
    assert not missing, f"{where} refers to section(s) {missing} of docs/{name}, not headings there"


def test_links_between_docs_resolve() -> None:
    for doc in (ROOT / "docs").glob("*.md"):
        for m in LINK.finditer(doc.read_text()):
            assert (doc.parent / m.group(1)).is_file(), f"{doc.name} links to missing {m.group(1)}"


def test_no_reference_to_notes_outside_the_repository() -> None:
    outside = re.compile(r"\b(DESIGN|STYLE)\.md\b")
    found = {
        str(p.relative_to(ROOT))
        for p in SOURCES
        if p.suffix in (".py", ".toml") and outside.search(p.read_text(errors="replace"))
    }
    assert found <= OUTSIDE_REFS_PENDING, (
        f"point these at docs/design.md: {found - OUTSIDE_REFS_PENDING}"
    )
