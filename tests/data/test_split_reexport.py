"""Issue 12: a re-exported imported split records the settings that really made it, and
never passes defaults off as the settings of another tool's split."""

from __future__ import annotations

import json

from recsys_core.cli import main
from recsys_core.data.split_io import INFERRED_NOTE, export_split, import_split


def export(tmp_path, toy_files, name: str, *flags: str):
    out = tmp_path / name
    assert (
        main(["split", "export", "--target", toy_files["target"], "--out", str(out), *flags]) == 0
    )
    return out


def test_reexport_keeps_the_settings_of_split_json(capsys, tmp_path, toy_files):
    first = export(tmp_path, toy_files, "first", "--cold-items", "0.2", "--seed", "42")
    again = tmp_path / "again"
    export_split(import_split(first), again, scenario_name="t")
    cfg = json.loads((again / "split.json").read_text())["config"]
    assert (cfg["cold_item_frac"], cfg["seed"]) == (0.2, 42)
    assert "settings_inferred" not in json.loads((again / "split.json").read_text())


def test_reexport_of_another_tools_folder_does_not_invent_settings(capsys, tmp_path, toy_files):
    """Without split.json the importer knows the protocol and the support sizes only; the
    export used to record cold_item_frac 0.05 and seed 0 as if they had made the split."""
    theirs = export(tmp_path, toy_files, "theirs", "--cold-items", "0.2", "--seed", "42")
    (theirs / "split.json").unlink()
    split = import_split(theirs)
    assert split.config_inferred
    again = tmp_path / "again"
    export_split(split, again, scenario_name="t")
    info = json.loads((again / "split.json").read_text())
    assert info["config"] == {"protocol": "cold-start", "cold_ks": [0, 1, 3, 5]}
    assert info["settings_inferred"] is True and info["settings_note"] == INFERRED_NOTE
    # and it stays honest through another round trip
    twice = tmp_path / "twice"
    back = import_split(again)
    assert back.config_inferred and back.test.equals(split.test)
    export_split(back, twice, scenario_name="t")
    assert json.loads((twice / "split.json").read_text())["config"] == info["config"]
