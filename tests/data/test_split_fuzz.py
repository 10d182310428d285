"""Property: whatever is in a split folder (split.json and the CSV files) or in a
recommendation file, import_split / evaluate_recommendation_file return a valid result
or raise DataError, the typed user-facing error; never another exception (issue 12,
like tests/data/test_loader_fuzz.py for the loader)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_io import export_split, import_split
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.errors import DataError
from recsys_core.external import evaluate_recommendation_file
from tests.toy import toy_pair

FUZZ = settings(
    max_examples=60,
    deadline=10_000,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

FILES = [
    "train.csv",
    "valid.csv",
    "test.csv",
    "support_k0.csv",
    "support_k1.csv",
    "support_k3.csv",
    "cold_users.csv",
    "cold_items.csv",
    "users.csv",
    "items.csv",
]


@pytest.fixture(scope="module")
def exported():
    """A real exported split folder (cold-start, k = 0, 1, 3) and its split."""
    _, tgt = toy_pair()
    scn = build_scenario(tgt, None, SplitConfig(cold_user_frac=0.2, cold_ks=(0, 1, 3)))
    folder = Path(tempfile.mkdtemp(prefix="split_fuzz_"))
    export_split(scn.split, folder, "toy", scn.fingerprint())
    yield folder, scn.split
    shutil.rmtree(folder, ignore_errors=True)


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["train.csv", "../train.csv", "/etc/passwd", "", "C:x", "support_k1.csv"]),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SPLIT_KEYS = st.sampled_from(
    [
        "format",
        "format_version",
        "scenario",
        "fingerprint",
        "config",
        "files",
        "counts",
        "settings_inferred",
        "scenario_fingerprint",
    ]
)
CONFIG_KEYS = st.sampled_from(
    [
        "protocol",
        "cold_user_frac",
        "cold_item_frac",
        "cold_ks",
        "seed",
        "min_rating",
        "valid_frac",
        "test_frac",
        "bogus",
    ]
)
CELLS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", " ", '"', "nan", "-1", "1e400", "2", "1.5", "true", "x0", "t3", "u1"]),
    st.integers(-(10**19), 10**19).map(str),
)


@st.composite
def folder_edits(draw):
    """A list of edits to apply to a copy of a good split folder."""
    edits = []
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(
            st.sampled_from(
                [
                    "meta_key",
                    "config_key",
                    "file_key",
                    "delete",
                    "bytes",
                    "cell",
                    "cell",
                    "cell",
                    "header",
                    "truncate",
                    "meta_text",
                ]
            )
        )
        if kind == "meta_key":
            edits.append((kind, draw(SPLIT_KEYS), draw(JSON)))
        elif kind == "config_key":
            edits.append((kind, draw(CONFIG_KEYS), draw(JSON)))
        elif kind == "file_key":
            key = draw(
                st.sampled_from(
                    [
                        "train",
                        "test",
                        "valid",
                        "support",
                        "users",
                        "items",
                        "cold_users",
                        "cold_items",
                    ]
                )
            )
            edits.append((kind, key, draw(JSON)))
        elif kind == "delete":
            edits.append((kind, draw(st.sampled_from([*FILES, "split.json"])), None))
        elif kind == "bytes":
            name = draw(st.sampled_from([*FILES, "split.json"]))
            edits.append((kind, name, draw(st.binary(max_size=200))))
        elif kind == "cell":
            name = draw(st.sampled_from(FILES))
            edits.append(
                (kind, name, (draw(st.integers(0, 400)), draw(st.integers(0, 3)), draw(CELLS)))
            )
        elif kind == "header":
            name = draw(st.sampled_from(FILES))
            edits.append((kind, name, draw(st.lists(CELLS, min_size=1, max_size=5))))
        elif kind == "truncate":
            name = draw(st.sampled_from([*FILES, "split.json"]))
            edits.append((kind, name, draw(st.floats(0, 1))))
        else:
            edits.append((kind, "split.json", draw(st.text(max_size=60))))
    return edits


def apply(folder: Path, edits) -> None:
    meta_path = folder / "split.json"
    for kind, name, value in edits:
        if kind in ("meta_key", "config_key", "file_key"):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict):
                continue
            if kind == "meta_key":
                meta[name] = value
            else:
                part = "config" if kind == "config_key" else "files"
                if not isinstance(meta.get(part), dict):
                    meta[part] = {}
                meta[part][name] = value
            meta_path.write_text(json.dumps(meta))
        elif kind == "delete":
            (folder / name).unlink(missing_ok=True)
        elif kind == "bytes":
            (folder / name).write_bytes(value)
        elif kind == "truncate":
            p = folder / name
            if p.exists():
                data = p.read_bytes()
                p.write_bytes(data[: int(len(data) * value)])
        elif kind == "meta_text":
            meta_path.write_text(value)
        else:
            p = folder / name
            if not p.exists():
                continue
            lines = p.read_text(encoding="utf-8", errors="replace").split("\n")
            if kind == "header":
                lines[0] = ",".join(value)
            else:
                row, col, cell = value
                i = 1 + row % max(len(lines) - 1, 1)
                if i < len(lines):
                    cells = lines[i].split(",")
                    cells[col % len(cells)] = cell
                    lines[i] = ",".join(cells)
            p.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")


@FUZZ
@given(edits=folder_edits())
def test_any_split_folder_imports_or_raises_data_error(exported, edits):
    good, _ = exported
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "split"
        shutil.copytree(good, folder)
        apply(folder, edits)
        try:
            split = import_split(folder)
        except DataError as e:
            assert str(e)  # a message, never empty
            event("DataError")
            return
    event("imported")
    assert isinstance(split, Split)
    n_users, n_items = len(split.user_map.ids), len(split.item_map.ids)
    for frame in (split.train, split.test):
        assert frame.user.between(0, n_users - 1).all()
        assert frame.item.between(0, n_items - 1).all()


@st.composite
def rec_files(draw, ids):
    """Mostly well-formed recommendation files with some bad cells, odd headers and
    odd values, so that both outcomes are reached."""
    users, items = ids
    good = {
        "user_id": st.sampled_from(users),
        "item_id": st.sampled_from(items),
        "rank": st.integers(1, 25).map(str),
        "score": st.floats(-5, 5, allow_nan=False).map(repr),
        "k": st.sampled_from(["0", "1", "3"]),
    }
    header = ["user_id", "item_id", draw(st.sampled_from(["rank", "score"]))]
    if draw(st.booleans()):
        header.append("k")
    header = draw(st.permutations(header))
    if draw(st.integers(0, 4)) == 0:  # an odd header now and then
        header = draw(
            st.lists(
                st.one_of(
                    st.sampled_from([*good, "User_ID", " item_id ", "x"]), st.text(max_size=6)
                ),
                min_size=1,
                max_size=5,
            )
        )
    bad_rate = draw(st.sampled_from([0, 0, 0.05, 0.3]))
    odd = st.one_of(CELLS, st.floats(allow_nan=True, allow_infinity=True).map(repr))
    rows = []
    for _ in range(draw(st.integers(0, 40))):
        row = []
        for h in header:
            bad = draw(st.floats(0, 1)) < bad_rate
            row.append(draw(odd if bad or h not in good else good[h]))
        rows.append(row)
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def split_ids(exported):
    _, split = exported
    return ([str(u) for u in split.user_map.ids[:20]], [str(i) for i in split.item_map.ids[:20]])


@FUZZ
@given(data=st.data())
def test_any_recommendation_file_scores_or_raises_data_error(exported, split_ids, data):
    _, split = exported
    raw = data.draw(st.one_of(rec_files(split_ids), rec_files(split_ids), st.binary(max_size=300)))
    k_max = data.draw(st.integers(1, 30))
    try:
        res = evaluate_recommendation_file(raw, split, name="recs.csv", k_max=k_max, n_boot=0)
    except DataError as e:
        assert str(e)
        event("DataError")
        return
    event("scored")
    assert res.name == "recs.csv"
    values = np.array([m.value for m in res.metrics] if hasattr(res, "metrics") else [])
    assert np.all(np.isfinite(values[~np.isnan(values)])) if len(values) else True
