"""The one exception type a user ever sees, and the warning record that accompanies data.

Every problem with user input is raised as :class:`DataError`, whose ``str()`` is a
one-paragraph message naming the file, the column and the first offending rows, plus what
to do about it. The CLI prints it and exits 2; the app shows it in an ``st.error`` box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class DataError(ValueError):
    """A problem with the user's data or settings, with a message a person can act on.

    Args:
        problem: what is wrong, in plain words ("ratings must be numbers").
        file: the file name as the user knows it (not a temp path), if any.
        column: the column concerned, if any.
        rows: 1-based line numbers in the file (header = line 1) of the first offenders.
        hint: how to fix it ("map the rating column explicitly with --rating-col").
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        column: str | None = None,
        rows: Sequence[int] | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.column = column
        self.rows = list(rows)[:10] if rows is not None else []
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = []
        if self.file:
            where.append(f"file '{self.file}'")
        if self.column:
            where.append(f"column '{self.column}'")
        if self.rows:
            where.append(
                "line" + ("s " if len(self.rows) > 1 else " ") + ", ".join(map(str, self.rows))
            )
        text = (", ".join(where) + ": " if where else "") + self.problem.rstrip(".") + "."
        if self.hint:
            text += " " + self.hint.rstrip(".") + "."
        return text[0].upper() + text[1:]

    def __str__(self) -> str:
        return self.message


CLEANING_CODES: frozenset[str] = frozenset({"duplicate_item_ids", "merged_repeated_pairs"})
"""Codes of warnings that record a documented cleaning rule of the built-in demo loader
(:mod:`recsys_core.data.demo`), not a problem in the data: shown as notes, not warnings."""


@dataclass(frozen=True)
class DataWarning:
    """Something odd but usable in the data (duplicates, singletons, unknown items)."""

    code: str
    message: str
    count: int = 0
    examples: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        ex = f" (e.g. {', '.join(self.examples[:5])})" if self.examples else ""
        return f"{self.message}{ex}"
