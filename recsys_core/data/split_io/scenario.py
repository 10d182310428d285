"""Running on an imported split: the scenario with its target split replaced
(:func:`scenario_with_split`, ``run --split DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from recsys_core.data.scenario import Scenario, build_scenario
from recsys_core.data.schema import ITEM, USER
from recsys_core.data.split_io.export import split_fingerprint
from recsys_core.data.split_io.importing import folder_fingerprint, import_split
from recsys_core.data.split_io.reading import _shown
from recsys_core.data.split_types import Split
from recsys_core.errors import DataError


@dataclass(frozen=True)
class ImportedSplitScenario(Scenario):
    """A :class:`Scenario` whose target split was read from a split folder.

    ``Scenario.fingerprint`` hashes the data and the split *settings*, which no longer
    describe an imported split; this one reports ``data_fingerprint`` instead (see
    :func:`scenario_with_split`), so runs on the imported split are compared only with
    runs evaluated on the same split.
    """

    data_fingerprint: str = ""

    def fingerprint(self) -> str:
        return self.data_fingerprint


def scenario_with_split(scn: Scenario, split: Split, fingerprint: str | None = None) -> Scenario:
    """``scn`` with its target split replaced by ``split`` (for ``run --split DIR``).

    The joint indexing is rebuilt the way :func:`recsys_core.data.scenario.build_scenario`
    builds it, with ``split``'s maps as the target part: target items first (linked to
    source items by id, then by normalised title), then source-only items; target users
    first, then source-only users. The source history cut (``scn.source_history``) is
    recomputed from ``split``'s train times and first times; a split without any time
    (all first times unknown) keeps the whole source history, as build_scenario does for
    data without timestamps.

    Args:
        scn: the scenario (data, source, text) to run on.
        split: the imported split; its ids should be the target domain's ids (ids the
            target does not know get their id as text and no source link).
        fingerprint: the data fingerprint runs on it should carry (``folder_fingerprint``);
            default: ``scn``'s own when ``split`` is exactly ``scn.split``, else
            ``split_fingerprint(split)``.

    Returns:
        ``scn`` itself when nothing changes; else an :class:`ImportedSplitScenario`.
    """
    _check_shared_ids(scn, split)
    same = split_fingerprint(split) == split_fingerprint(scn.split)
    if fingerprint is None:
        fingerprint = scn.fingerprint() if same else split_fingerprint(split)
    if same and fingerprint == scn.fingerprint():
        return scn
    return _rebuild(scn, split, fingerprint)


def _check_shared_ids(scn: Scenario, split: Split) -> None:
    """Refuse a split whose users or items are none of the scenario's target ones: its
    results would be stored under the scenario's name while measuring something else
    (every id would get its id as text and no source link)."""
    users = pd.Index(pd.unique(scn.target.interactions[USER]))
    items = pd.Index(pd.unique(scn.target.interactions[ITEM]))
    for what, ids, known, file in (
        ("users", split.user_map.ids, users, "train.csv"),
        ("items", split.item_map.ids, items, "items.csv"),
    ):
        if len(ids) and not known.isin(ids).any():
            raise DataError(
                f"none of the split folder's {len(ids):,} {what} is among the {len(known):,} "
                f"{what} of the scenario '{scn.name}' (e.g. {_shown(str(ids[0]), 30)} in the "
                f"folder, {_shown(str(known[0]), 30)} in the data)",
                file=file,
                hint="Give the split folder exported from this scenario's data "
                "(transfer-lab split export), with the same ids",
            )


def _rebuild(scn: Scenario, split: Split, fingerprint: str) -> ImportedSplitScenario:
    """Joint indexing of ``scn``'s domains around ``split`` (build_scenario does the work)."""
    built = build_scenario(
        scn.target,
        scn.source,
        split.config,
        source_history=scn.source_history,
        name=scn.name,
        description=scn.description,
        constructed=scn.constructed,
        split=split,
    )
    values = {f.name: getattr(built, f.name) for f in fields(Scenario)}
    values["meta"] = dict(scn.meta)
    return ImportedSplitScenario(**values, data_fingerprint=fingerprint)


def scenario_with_split_folder(scn: Scenario, folder: Path | str) -> Scenario:
    """``scenario_with_split(scn, import_split(folder), folder_fingerprint(folder))``."""
    split = import_split(folder)
    return scenario_with_split(scn, split, fingerprint=folder_fingerprint(folder, split))
