"""Split folders: a target split as plain CSV files with original ids, and back again.

A split folder lets any other library train and score on exactly the split our runs
use (``transfer-lab split export``), and lets a split made elsewhere drive our runs
(``transfer-lab run --split DIR``). The format is described for humans in
docs/split_format.md; in short::

    split.json          format and version, scenario, fingerprints, SplitConfig, counts, files
    train.csv           user_id,item_id,timestamp    warm users' training interactions
    valid.csv           user_id,item_id              warm users' validation interactions
    test.csv            user_id,item_id,cold_user,cold_item   (flags 0/1)
    support_k{K}.csv    user_id,item_id              cold users' first K interactions
    cold_users.csv      user_id                      users held out of training
    cold_items.csv      item_id                      items without training interactions
    users.csv           user_id,first_timestamp      every user of the split (index order)
    items.csv           item_id                      the catalogue every list ranks over

Only ``train.csv`` and ``test.csv`` are required in a folder made by another tool.

Indices are never written: :func:`import_split` rebuilds the id maps with
:meth:`IdMap.from_values` over every id in the files (sorted original ids), which is how
:func:`recsys_core.data.splits.make_split` built them, so export then import gives an
identical :class:`Split` (same maps, frames, segments and config).
"""

from __future__ import annotations

from recsys_core.data.split_io.export import (
    FORMAT,
    FORMAT_VERSION,
    INFERRED_NOTE,
    META_FILE,
    export_split,
    split_fingerprint,
    split_settings,
)
from recsys_core.data.split_io.importing import carve_validation, folder_fingerprint, import_split
from recsys_core.data.split_io.reading import read_csv_cells, read_split_info
from recsys_core.data.split_io.scenario import (
    ImportedSplitScenario,
    scenario_with_split,
    scenario_with_split_folder,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INFERRED_NOTE",
    "META_FILE",
    "ImportedSplitScenario",
    "carve_validation",
    "export_split",
    "folder_fingerprint",
    "import_split",
    "read_csv_cells",
    "read_split_info",
    "scenario_with_split",
    "scenario_with_split_folder",
    "split_fingerprint",
    "split_settings",
]
