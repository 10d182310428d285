"""Split folders: export/import round trips, foreign folders, errors that name the file
and column, and scenarios rebuilt around an imported split."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_io import (
    ImportedSplitScenario,
    export_split,
    folder_fingerprint,
    import_split,
    scenario_with_split,
    scenario_with_split_folder,
    split_fingerprint,
)
from recsys_core.data.split_io.scenario import _rebuild
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.errors import DataError
from tests.toy import toy_pair

CONFIGS = [
    SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3)),
    SplitConfig(protocol="recbole", seed=3),
    SplitConfig(protocol="temporal"),
    SplitConfig(min_rating=3, cold_item_frac=0.2, cold_ks=(0, 2, 5)),
]


def assert_same_split(a: Split, b: Split) -> None:
    assert a.config == b.config
    assert a.user_map.ids.tolist() == b.user_map.ids.tolist()
    assert a.item_map.ids.tolist() == b.item_map.ids.tolist()
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert list(a.support) == list(b.support)
    for k in a.support:
        pd.testing.assert_frame_equal(a.support[k], b.support[k])
    for name in ("cold_users", "cold_items", "first_time"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.int64 and x.tolist() == y.tolist(), name
    pd.testing.assert_frame_equal(a.segment_sizes(), b.segment_sizes())


@pytest.fixture(scope="module")
def pair():
    return toy_pair()


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.protocol}-{c.min_rating}")
def test_export_then_import_gives_the_same_split(tmp_path, pair, config):
    src, tgt = pair
    scn = build_scenario(tgt, src, config, name="toy")
    paths = export_split(scn.split, tmp_path, "toy", scn.fingerprint())
    assert paths[-1].name == "split.json"
    back = import_split(tmp_path)
    assert_same_split(scn.split, back)
    assert split_fingerprint(back) == split_fingerprint(scn.split)
    # the folder says which scenario it came from, so external runs compare with its runs
    assert folder_fingerprint(tmp_path) == scn.fingerprint()
    # and the same split on the same scenario is the same scenario
    assert scenario_with_split(scn, back) is scn
    assert scenario_with_split_folder(scn, tmp_path) is scn


def test_files_hold_original_ids_and_counts(tmp_path, pair):
    _, tgt = pair
    scn = build_scenario(tgt, None, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3)))
    s = scn.split
    export_split(s, tmp_path, "toy")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        ["train.csv", "valid.csv", "test.csv", "support_k0.csv", "support_k1.csv", "support_k3.csv",
         "cold_users.csv", "cold_items.csv", "users.csv", "items.csv", "split.json"]
    )  # fmt: skip
    train = pd.read_csv(tmp_path / "train.csv", dtype=str)
    assert list(train.columns) == ["user_id", "item_id", "timestamp"]
    assert train.iloc[0].tolist()[:2] == [
        s.user_map.ids[s.train.user[0]],
        s.item_map.ids[s.train.item[0]],
    ]
    test = pd.read_csv(tmp_path / "test.csv")
    assert list(test.columns) == ["user_id", "item_id", "cold_user", "cold_item"]
    assert set(test["cold_user"]) == {0, 1} and test["cold_user"].sum() == s.test.cold_user.sum()
    assert len(pd.read_csv(tmp_path / "support_k3.csv")) == 3 * len(s.cold_users)
    assert pd.read_csv(tmp_path / "support_k0.csv").shape == (0, 2)
    meta = json.loads((tmp_path / "split.json").read_text())
    assert meta["format_version"] == 1 and meta["scenario"] == "toy"
    assert meta["config"]["cold_ks"] == [0, 1, 3]
    assert meta["counts"]["train"] == len(s.train) and meta["counts"]["support"]["1"] == len(
        s.cold_users
    )
    assert meta["fingerprint"] == split_fingerprint(s)


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def foreign(folder):
    """A hand-made cold-start folder as another tool might write it: no split.json,
    no timestamps, no cold lists, support files for k = 0 and 1."""
    write(folder, "train.csv", "user_id,item_id\nu1,i1\nu1,i2\nu2,i2\nu2,i3\nu3,i1\nu3,i3\n"
          "u4,i4\nu4,i5\nu4,i6\nu4,i7\n")  # fmt: skip
    write(folder, "valid.csv", "user_id,item_id\nu1,i3\n")
    write(folder, "test.csv", "user_id,item_id,cold_user,cold_item\nu1,i4,0,0\nu1,i8,0,1\n"
          "u2,i5,0,0\nu3,i6,0,0\nu3,i8,0,1\nu4,i1,0,0\nc1,i5,1,0\nc1,i6,1,0\nc2,i4,1,0\n")  # fmt: skip
    write(folder, "support_k0.csv", "user_id,item_id\n")
    write(folder, "support_k1.csv", "user_id,item_id\nc1,i1\nc2,i2\n")
    return folder


def test_a_foreign_cold_start_folder(tmp_path):
    s = import_split(foreign(tmp_path / "f"))
    assert s.config.protocol == "cold-start" and s.config.cold_ks == (0, 1)
    assert s.user_map.ids.tolist() == ["c1", "c2", "u1", "u2", "u3", "u4"]
    assert s.item_map.ids.tolist() == [f"i{i}" for i in range(1, 9)]
    assert s.cold_users.tolist() == [0, 1] and s.cold_items.tolist() == [7]
    assert s.support[1].values.tolist() == [[0, 0], [1, 1]] and len(s.support[0]) == 0
    assert s.train["timestamp"].tolist() == [0] * 10 and s.first_time.tolist() == [-1] * 6
    assert s.segment_sizes().values.tolist() == [
        ["warm_users", 4, 6], ["cold_users_k0", 2, 3], ["cold_users_k1", 2, 3], ["cold_items", 2, 2]
    ]  # fmt: skip
    # exporting it and reading it back changes nothing
    export_split(s, tmp_path / "again")
    assert_same_split(s, import_split(tmp_path / "again"))


def test_a_minimal_foreign_folder_is_temporal(tmp_path):
    write(tmp_path, "train.csv", "user_id,item_id,timestamp\nb,x,20\na,x,10\na,y,5\n")
    write(tmp_path, "test.csv", "user_id,item_id\na,z\nb,y\n")
    s = import_split(tmp_path)
    assert s.config.protocol == "temporal" and s.support == {}
    assert s.valid.shape == (0, 2) and s.test.cold_user.sum() == 0 and s.test.cold_item.sum() == 0
    assert s.train.values.tolist() == [[1, 0, 20], [0, 0, 10], [0, 1, 5]]
    assert s.first_time.tolist() == [5, 20]
    assert len(s.cold_items) == 0 and len(s.cold_users) == 0
    # a cold flag without support files: cold users are tested at k = 0
    write(tmp_path, "test.csv", "user_id,item_id,cold_user\na,z,0\nc,y,1\n")
    s = import_split(tmp_path)
    assert s.config.protocol == "cold-start" and list(s.support) == [0]
    assert s.cold_users.tolist() == [2] and s.test.cold_item.tolist() == [True, False]  # z unseen


@pytest.mark.parametrize(
    "files, needles",
    [
        ({"train.csv": "user_id,item\nu1,i1\n"}, ["train.csv", "item_id"]),
        ({"test.csv": "user_id,item_id,cold_user\nc1,i5,1\nc1,i6,maybe\n"}, ["test.csv", "cold_user", "line 3"]),
        ({"test.csv": "user_id,item_id,cold_user\nu1,i5,1\n"}, ["test.csv", "cold_user", "train.csv"]),
        ({"test.csv": "user_id,item_id,cold_item\nu1,i1,1\n"}, ["test.csv", "cold_item", "line 2"]),
        ({"test.csv": "user_id,item_id\nu1,i1\n,i2\n"}, ["test.csv", "user_id", "line 3"]),
        ({"train.csv": "user_id,item_id,timestamp\nu1,i1,soon\n"}, ["train.csv", "timestamp", "line 2"]),
        ({"support_k1.csv": "user,item_id\n"}, ["support_k1.csv", "user_id"]),
        ({"test.csv": ""}, ["test.csv", "empty"]),
    ],
    ids=["missing-column", "bad-flag", "cold-user-in-train", "cold-item-in-train", "empty-id",
         "bad-timestamp", "support-column", "empty-file"],
)  # fmt: skip
def test_broken_files_name_file_column_and_line(tmp_path, files, needles):
    folder = foreign(tmp_path)
    for name, text in files.items():
        write(folder, name, text)
    with pytest.raises(DataError) as e:
        import_split(folder)
    for n in needles:
        assert n in str(e.value)


def test_missing_files_and_bad_split_json(tmp_path):
    with pytest.raises(DataError, match="not found"):
        import_split(tmp_path / "nowhere")
    folder = foreign(tmp_path / "f")
    (folder / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test\.csv.*not found"):
        import_split(folder)
    folder = foreign(tmp_path / "g")
    write(
        folder,
        "split.json",
        json.dumps({"format": "recsys-transfer-lab split", "format_version": 99}),
    )
    with pytest.raises(DataError, match=r"split\.json.*newer"):
        import_split(folder)
    write(folder, "split.json", "{not json")
    with pytest.raises(DataError, match=r"split\.json.*JSON"):
        import_split(folder)


def test_edited_export_loses_its_scenario_fingerprint(tmp_path, pair):
    _, tgt = pair
    scn = build_scenario(tgt, None, SplitConfig(protocol="temporal"))
    export_split(scn.split, tmp_path, "toy", scn.fingerprint())
    test = (tmp_path / "test.csv").read_text().splitlines()
    (tmp_path / "test.csv").write_text("\n".join(test[:-1]) + "\n")  # one test row fewer
    s = import_split(tmp_path)
    assert len(s.test) == len(scn.split.test) - 1
    assert folder_fingerprint(tmp_path) == split_fingerprint(s) != scn.fingerprint()


def test_rebuilt_joint_index_matches_build_scenario(pair):
    src, tgt = pair
    # one source item linked by title only, to exercise the whole linking
    items = src.items.copy()
    items.loc[items["item_id"] == "s9", "title"] = "Item t9"
    src = replace(src, items=items)
    scn = build_scenario(tgt, src, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 2)))
    assert scn.links.shared_items_by_title == 1
    r = _rebuild(scn, scn.split, "abc")
    assert isinstance(r, ImportedSplitScenario) and r.fingerprint() == "abc"
    assert r.item_ids.tolist() == scn.item_ids.tolist()
    assert r.item_domain.tolist() == scn.item_domain.tolist()
    assert r.user_ids.tolist() == scn.user_ids.tolist()
    pd.testing.assert_frame_equal(r.source_train, scn.source_train)
    assert r.texts == scn.texts and r.links == scn.links


def test_scenario_with_another_split(tmp_path, pair):
    src, tgt = pair
    scn = build_scenario(tgt, src, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 2)))
    other = build_scenario(tgt, src, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 2), seed=5))
    export_split(other.split, tmp_path, "other", other.fingerprint())
    got = scenario_with_split_folder(scn, tmp_path)
    assert isinstance(got, ImportedSplitScenario)
    assert_same_split(got.split, other.split)
    # same data, same settings, other seed: the joint index and the honest source cut
    # are those build_scenario gives for that split, and runs compare with `other`'s
    assert got.fingerprint() == other.fingerprint()
    assert got.item_ids.tolist() == other.item_ids.tolist()
    pd.testing.assert_frame_equal(got.source_train, other.source_train)
    assert got.n_target_items == other.split.n_items
    # without a folder fingerprint, the split's own content names the data
    assert scenario_with_split(scn, other.split).fingerprint() == split_fingerprint(other.split)


def test_cold_users_without_flags_come_from_the_support_files(tmp_path):
    folder = foreign(tmp_path)
    write(folder, "test.csv", "user_id,item_id\nu1,i4\nu2,i5\nc1,i5\nc2,i4\n")
    s = import_split(folder)
    assert s.test["cold_user"].tolist() == [False, False, True, True]
    assert s.cold_users.tolist() == [0, 1]
    assert s.segment_sizes()["segment"].tolist() == ["warm_users", "cold_users_k0", "cold_users_k1"]


# --------------------------------------------------------------------------- untrusted folders

SECRET = "root:x:0:0:SECRET-LINE\n"


def exported(tmp_path, pair):
    _, tgt = pair
    scn = build_scenario(tgt, None, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1)))
    folder = tmp_path / "split"
    export_split(scn.split, folder, "toy")
    return folder


def edit_meta(folder, change):
    meta = json.loads((folder / "split.json").read_text())
    change(meta)
    (folder / "split.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "entry, value",
    [
        ("valid", "ABS"),  # an absolute path to a file outside
        ("valid", "../outside.csv"),
        ("cold_users", "sub/../../outside.csv"),
        ("items", "C:outside.csv"),
        ("support.1", "/etc/passwd"),
    ],
)
def test_split_json_entries_cannot_leave_the_folder(tmp_path, pair, entry, value):
    folder = exported(tmp_path, pair)
    outside = tmp_path / "outside.csv"
    outside.write_text("user_id,item_id\n" + SECRET)
    value = str(outside) if value == "ABS" else value

    def change(meta):
        if entry.startswith("support."):
            meta["files"]["support"][entry.split(".")[1]] = value
        else:
            meta["files"][entry] = value

    edit_meta(folder, change)
    with pytest.raises(DataError) as e:
        import_split(folder)
    msg = str(e.value)
    assert f"files.{entry}" in msg and "not a file name inside the split folder" in msg
    assert "split.json" in msg and "SECRET" not in msg and "root:x" not in msg


def test_links_that_lead_outside_are_not_read(tmp_path, pair):
    folder = exported(tmp_path, pair)
    outside = tmp_path / "outside.csv"
    outside.write_text("user_id,item_id\n" + SECRET)
    (folder / "valid.csv").unlink()
    (folder / "valid.csv").symlink_to(outside)
    with pytest.raises(DataError) as e:
        import_split(folder)
    assert str(e.value).startswith("File 'valid.csv': the file entry files.valid = 'valid.csv'")
    assert "link to a file outside the split folder" in str(e.value)
    assert "SECRET" not in str(e.value)
    # a foreign folder (no split.json): its fixed names are checked the same way
    f = foreign(tmp_path / "f")
    (f / "train.csv").unlink()
    (f / "train.csv").symlink_to(outside)
    with pytest.raises(
        DataError, match=r"^File 'train\.csv': the file is a link to a file outside"
    ):
        import_split(f)
    # a link that stays inside the folder is fine
    g = foreign(tmp_path / "g")
    (g / "train.csv").rename(g / "real_train.csv")
    (g / "train.csv").symlink_to(g / "real_train.csv")
    assert len(import_split(g).train) == 10


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda m: m.update(files=["train.csv"]), '"files" must be an object, not list'),
        (lambda m: m["files"].update(valid=3), '"files.valid" must be a file name, not int'),
        (lambda m: m["files"].update(support="support_k1.csv"), '"files.support" must be an object'),
        (lambda m: m["files"]["support"].update({"one": "support_k1.csv"}), "support size 'one' is not a whole number"),
        (lambda m: m.update(config="cold-start"), '"config" must be an object, not str'),
        (lambda m: m["config"].update(cold_ks=5), "cold_ks must be a list of whole numbers"),
        (lambda m: m["config"].update(cold_user_frac="a lot"), "the split settings are invalid"),
        (lambda m: m.update(scenario_fingerprint=12), '"scenario_fingerprint" must be a text, not int'),
    ],
    ids=["files-list", "file-int", "support-str", "support-key", "config-str", "cold-ks-int",
         "frac-str", "fingerprint-int"],
)  # fmt: skip
def test_split_json_with_wrong_types_says_which_field(tmp_path, pair, change, needle):
    folder = exported(tmp_path, pair)
    edit_meta(folder, change)
    with pytest.raises(DataError) as e:
        import_split(folder)
    assert "split.json" in str(e.value) and needle in str(e.value)


def test_split_files_are_read_with_the_table_reader_limits(tmp_path, pair):
    import gzip

    from recsys_core.data.loaders import Limits

    folder = exported(tmp_path, pair)
    n_train = len(import_split(folder).train)
    # a gzip-compressed train.csv is still read (the reader recognises it by content)
    data = (folder / "train.csv").read_bytes()
    (folder / "train.csv").write_bytes(gzip.compress(data))
    assert len(import_split(folder).train) == n_train
    # and the reader's limits apply to every file of the folder
    with pytest.raises(DataError, match=rf"train\.csv.*{n_train:,} rows, more than the limit of 5"):
        import_split(folder, limits=Limits(max_rows=5))


def test_a_folder_without_valid_csv_gets_a_validation_share_carved_from_train(tmp_path):
    """A peer's train/test folder: validation is carved out of train (seeded, per user),
    so every choice is still made on validation; the split says so."""
    folder = tmp_path / "peer"
    rows = "".join(f"u{u},i{i},{1000 * u + i}\n" for u in range(6) for i in range(10))
    write(folder, "train.csv", "user_id,item_id,timestamp\n" + rows)
    write(folder, "test.csv", "user_id,item_id\nu0,i10\nu1,i11\n")
    s = import_split(folder)
    assert len(s.valid) == 6  # one row (10% of 10) per user, the latest by time
    assert sorted(s.valid["item"].map(lambda i: s.item_map.ids[i])) == ["i9"] * 6
    assert len(s.train) == 54 and not set(map(tuple, s.valid.values)) & set(
        map(tuple, s.train[["user", "item"]].values)
    )
    assert s.notes and "validation carved out of train.csv, 6 rows" in s.notes[0]
    assert "their latest" in s.notes[0]
    # same folder, same split
    assert import_split(folder).valid.equals(s.valid)
