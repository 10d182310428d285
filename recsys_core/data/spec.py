"""Where a scenario's data comes from and how to read it: :class:`ScenarioSpec`.

A spec names a demo or files (target required), with optional column roles and item
text fields per file. The CLI flags, a TOML ``[scenario]`` table, a ``scenario.json``
and the app's Data page all end in one; :func:`recsys_core.pipeline.load_scenario`
reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recsys_core.data.loaders import ColumnMapping
from recsys_core.errors import DataError

FILE_FIELDS: tuple[str, ...] = (
    "target_interactions",
    "target_items",
    "source_interactions",
    "source_items",
)
"""The files of a scenario, as :class:`ScenarioSpec` fields and keys of its ``columns``."""


@dataclass(frozen=True)
class ScenarioSpec:
    """Where the data comes from and how to read it: a demo name, or files (target
    required) with optional column roles and item text fields.

    Everything the Data page decides about a file (which column is the user, the item,
    the rating, the time; which item columns the text encoder reads) is held here, so
    the CLI, a TOML ``[scenario]`` table or a ``scenario.json`` can say it too, and a
    stored run can be reloaded exactly (``asdict(spec)`` round-trips through JSON).
    """

    demo: str | None = field(default=None, metadata={"help": "a built-in scenario, demo:NAME."})
    target_interactions: str | None = field(
        default=None, metadata={"help": "the target domain's interactions file."}
    )
    target_items: str | None = field(
        default=None, metadata={"help": "the target domain's item table (item text)."}
    )
    source_interactions: str | None = field(
        default=None, metadata={"help": "the source domain's interactions file."}
    )
    source_items: str | None = field(
        default=None, metadata={"help": "the source domain's item table."}
    )
    name: str | None = field(default=None, metadata={"help": "the label runs are filed under."})
    # Not hashed: a dict; two specs with the same files still compare by their columns.
    columns: Mapping[str, ColumnMapping] = field(
        default_factory=dict,
        hash=False,
        metadata={
            "help": (
                "per file (keys as the file fields: target_interactions, target_items, ...): "
                "which column is the user, item, rating and timestamp, and for an item "
                "table the text_fields the encoder reads, in the order they are joined. "
                'Roles left out are detected; rating or timestamp "" means none.'
            )
        },
    )
    owner: str | None = field(
        default=None,
        metadata={
            "help": (
                "the browser session whose uploads these files are (the app's session id), "
                "so other sessions never load them from a run's config; None: files anyone "
                "with the store may read (a demo, the CLI's own paths)."
            )
        },
    )

    def __post_init__(self) -> None:
        if (self.demo is None) == (self.target_interactions is None):
            raise ValueError(
                "give either a demo scenario name or target interaction files (not both)"
            )
        if self.demo is not None and not self.demo.startswith("demo:"):
            raise ValueError(f"demo scenario names start with 'demo:', got {self.demo!r}")
        cols = self.columns if self.columns is not None else {}
        if not isinstance(cols, Mapping):
            raise ValueError(
                f"columns must map file names ({', '.join(FILE_FIELDS)}) to column roles, "
                f"got {type(cols).__name__}"
            )
        out: dict[str, ColumnMapping] = {}
        for key, value in cols.items():
            if key not in FILE_FIELDS:
                raise ValueError(
                    f"columns were given for an unknown file {key!r}; use one of "
                    f"{', '.join(FILE_FIELDS)}"
                )
            if getattr(self, key) is None:
                raise ValueError(f"columns were given for {key}, but no {key} file is set")
            if isinstance(value, Mapping):  # from JSON or TOML
                value = ColumnMapping(**dict(value))
            if not isinstance(value, ColumnMapping):
                raise ValueError(
                    f"columns[{key!r}] must be a ColumnMapping or a table of roles, "
                    f"got {type(value).__name__}"
                )
            if key.endswith("_interactions") and value.text_fields:
                raise ValueError(
                    f"text_fields belong to the item table: set them under "
                    f"columns['{key.removesuffix('_interactions')}_items']"
                )
            out[key] = value
        object.__setattr__(self, "columns", out)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.demo or Path(self.target_interactions or "target").stem

    def domain_columns(self, role: str) -> dict[str, ColumnMapping] | None:
        """The column mappings of one domain ("target" or "source"), keyed as
        :func:`~recsys_core.data.loaders.load_domain` takes them, or None (detect all)."""
        maps = {
            kind: self.columns[f"{role}_{kind}"]
            for kind in ("interactions", "items")
            if f"{role}_{kind}" in self.columns
        }
        return maps or None

    def to_dict(self) -> dict:
        """Plain, JSON- and TOML-ready dict; :meth:`from_dict` rebuilds the spec."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "columns"}
        d = {k: v for k, v in d.items() if v is not None}
        if self.columns:
            # TOML has no null: a role left to detection is simply absent
            d["columns"] = {
                k: {r: v for r, v in m.to_dict().items() if v is not None}
                for k, m in self.columns.items()
            }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScenarioSpec:
        """A spec from a plain dict (a TOML ``[scenario]`` table, a stored run's config).

        Unknown keys are refused with the known ones named.
        """
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(
                f"unknown scenario setting(s): {', '.join(sorted(map(str, unknown)))}; "
                f"known: {', '.join(sorted(names))}"
            )
        return cls(**dict(d))

    @classmethod
    def parse(cls, value: str) -> ScenarioSpec:
        """'demo:NAME', or a folder holding a scenario.json as written by demo-data.

        The json's ``files`` name the files relative to the folder; an optional
        ``columns`` table holds their column roles and text fields (see ``columns``).
        """
        if value.startswith("demo:"):
            return cls(demo=value)
        folder = Path(value)
        meta = folder / "scenario.json"
        if not meta.is_file():
            raise DataError(
                f"'{value}' is neither a demo name (demo:...) nor a folder with a scenario.json",
                hint="Use e.g. --scenario demo:ml1m-to-ml100k, or --target FILE [--source FILE]",
            )
        m = json.loads(meta.read_text())
        files = m.get("files", {})

        def f(key: str) -> str | None:
            v = files.get(key)
            return str(folder / v) if v else None

        return cls(
            target_interactions=f("target_interactions"),
            target_items=f("target_items"),
            source_interactions=f("source_interactions"),
            source_items=f("source_items"),
            name=m.get("name", folder.name),
            columns=m.get("columns") or {},
        )
