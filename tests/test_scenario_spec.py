"""ScenarioSpec holds what the Data page decides about a file (column roles, item text
fields), so the CLI, a TOML table and a scenario.json can say it too."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from recsys_core.data.loaders import ColumnMapping
from recsys_core.pipeline import ScenarioSpec, load_scenario

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def odd_files(folder: Path) -> tuple[Path, Path]:
    """The sample target with names no detector guesses, and an extra item column."""
    inter = pd.read_csv(SAMPLE / "target_interactions.csv", dtype=str)
    inter = inter.rename(
        columns={"user_id": "who", "item_id": "what", "rating": "grade", "timestamp": "at"}
    )
    items = pd.read_csv(SAMPLE / "target_items.csv", dtype=str, keep_default_na=False)
    items = items.rename(columns={"item_id": "ref", "description": "blurb"})
    items["price"] = "9.99"
    a, b = folder / "inter.csv", folder / "items.csv"
    inter.to_csv(a, index=False)
    items.to_csv(b, index=False)
    return a, b


COLUMNS = {
    "target_interactions": {"user": "who", "item": "what", "rating": "grade", "timestamp": "at"},
    "target_items": {"item": "ref", "text_fields": ["title", "genres", "blurb"]},
}


def test_columns_and_text_fields_are_read_by_the_engine(tmp_path) -> None:
    a, b = odd_files(tmp_path)
    spec = ScenarioSpec(target_interactions=str(a), target_items=str(b), columns=COLUMNS)
    scn = load_scenario(spec)
    plain = load_scenario(
        ScenarioSpec(
            target_interactions=str(SAMPLE / "target_interactions.csv"),
            target_items=str(SAMPLE / "target_items.csv"),
        )
    )
    # the same interactions as the sample read with detected roles
    pd.testing.assert_frame_equal(scn.target.interactions, plain.target.interactions)
    assert scn.target.text_fields == ("title", "genres", "blurb")
    items = pd.read_csv(SAMPLE / "target_items.csv", dtype=str).set_index("item_id")
    first = items.index[0]
    row = items.loc[first]
    assert scn.target.item_texts([first]) == [
        f"{row['title']} | {row['genres']} | {row['description']}"
    ]


def test_without_columns_the_odd_file_is_refused(tmp_path) -> None:
    a, _ = odd_files(tmp_path)
    with pytest.raises(Exception, match="no user id column"):
        load_scenario(ScenarioSpec(target_interactions=str(a)))


def test_spec_round_trips_through_json_and_toml_dicts(tmp_path) -> None:
    a, b = odd_files(tmp_path)
    spec = ScenarioSpec(target_interactions=str(a), target_items=str(b), columns=COLUMNS)
    assert isinstance(spec.columns["target_items"], ColumnMapping)
    # a stored run keeps asdict(spec) as JSON; the app rebuilds it with ScenarioSpec(**d)
    again = ScenarioSpec(**json.loads(json.dumps(asdict(spec))))
    assert again == spec and hash(again) == hash(spec)
    d = spec.to_dict()
    assert None not in d["columns"]["target_items"].values()  # TOML has no null
    assert ScenarioSpec.from_dict(d) == spec
    assert load_scenario(again).fingerprint() == load_scenario(spec).fingerprint()


def test_a_scenario_folder_carries_its_columns(tmp_path) -> None:
    a, b = odd_files(tmp_path)
    meta = {
        "name": "odd",
        "files": {"target_interactions": a.name, "target_items": b.name},
        "columns": COLUMNS,
    }
    (tmp_path / "scenario.json").write_text(json.dumps(meta))
    spec = ScenarioSpec.parse(str(tmp_path))
    assert spec.label == "odd"
    assert spec.columns["target_interactions"].user == "who"
    assert load_scenario(spec).target.text_fields == ("title", "genres", "blurb")


@pytest.mark.parametrize(
    "columns, msg",
    [
        ({"target_ratings": {"user": "who"}}, "unknown file 'target_ratings'"),
        ({"source_interactions": {"user": "who"}}, "no source_interactions file is set"),
        ({"target_interactions": {"text_fields": ["title"]}}, "belong to the item table"),
        ({"target_interactions": {"user": "a", "item": "a"}}, "one column to two roles"),
    ],
)
def test_bad_columns_are_refused_with_a_reason(columns, msg) -> None:
    with pytest.raises(ValueError, match=msg):
        ScenarioSpec(target_interactions="x.csv", columns=columns)


def test_from_dict_names_unknown_settings() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario setting.*target_file"):
        ScenarioSpec.from_dict({"target_file": "x.csv"})
