"""Fixtures for the AppTest tests: a tiny scenario and a run store with finished runs.

The scenario is the small books -> audiobooks sample in ``sample_data/`` (40 target
users, 30 target items, a source with 25 shared users) reshaped like the flagship
ML-1M -> ML-100K demo (see :func:`demo_shaped_dir`): 8 items shared by id, 8 linked by
title, a source "remake" whose title collides with a shared item, and two target items
with one title. The runs are made by the real pipeline with a random 32-d text tensor in
place of the language model, 2 epochs and 50 bootstrap samples, so the whole set-up
takes seconds.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
SAMPLE = ROOT / "sample_data"

SHARED_BY_ID = [f"ab-{i:03d}" for i in range(9, 17)]
"""Target items whose source copy carries the same id (bk-0009..16 renamed)."""
DUPLICATE_TITLE = "The Burning Orchard"
"""Title of both ab-029 and ab-030 in the demo-shaped target."""


@functools.cache
def demo_shaped_dir() -> Path:
    """The sample files, reshaped like the ML-1M -> ML-100K demo, in a temp folder.

    * bk-0009..bk-0016 take their audiobook's id (ab-009..ab-016): shared by id, as the
      demo's "Title (Year)" ids are; bk-0001..bk-0008 stay linked by title.
    * bk-0100 "The Golden Map" (1990), a remake titled like the shared ab-013 and listed
      first in the source (the demo's "101 Dalmatians" of 1961 against the 1996 film).
    * ab-030 is retitled "The Burning Orchard", ab-029's title (the demo's target has
      repeated titles too).
    """
    import pandas as pd

    out = Path(tempfile.mkdtemp(prefix="rtl-demo-shaped-"))
    atexit.register(shutil.rmtree, out, True)
    rename = {f"bk-{i:04d}": f"ab-{i:03d}" for i in range(9, 17)}
    s_items = pd.read_csv(SAMPLE / "source_items.csv", dtype=str, keep_default_na=False)
    s_items["item_id"] = s_items["item_id"].replace(rename)
    remake = s_items[s_items["item_id"] == "ab-013"].assign(item_id="bk-0100", year="1990")
    pd.concat([s_items, remake]).to_csv(out / "source_items.csv", index=False)
    s_inter = pd.read_csv(SAMPLE / "source_interactions.csv", dtype=str)
    s_inter["item_id"] = s_inter["item_id"].replace(rename)
    first = str(int(s_inter["timestamp"].astype(int).min()) - 86_400)
    early = pd.DataFrame(
        {"user_id": ["u0007", "u0047"], "item_id": "bk-0100", "rating": "4", "timestamp": first}
    )
    pd.concat([early, s_inter]).to_csv(out / "source_interactions.csv", index=False)
    t_items = pd.read_csv(SAMPLE / "target_items.csv", dtype=str, keep_default_na=False)
    t_items.loc[t_items["item_id"] == "ab-030", ["title", "year"]] = [DUPLICATE_TITLE, "2019"]
    t_items.to_csv(out / "target_items.csv", index=False)
    shutil.copy(SAMPLE / "target_interactions.csv", out / "target_interactions.csv")
    return out


def sample_spec(name: str = "sample"):
    from recsys_core.pipeline import ScenarioSpec

    data = demo_shaped_dir()
    return ScenarioSpec(
        target_interactions=str(data / "target_interactions.csv"),
        target_items=str(data / "target_items.csv"),
        source_interactions=str(data / "source_interactions.csv"),
        source_items=str(data / "source_items.csv"),
        name=name,
    )


def quick_request(*strategies: str, label: str | None = None):
    from recsys_core.pipeline import RunRequest
    from recsys_core.strategies.base import ModelSettings

    settings = ModelSettings(
        model="two-tower", dim=8, epochs=2, source_epochs=2, batch_size=128, patience=100
    )
    return RunRequest(
        strategies=strategies, settings=settings, device="cpu", n_boot=50, label=label
    )


@pytest.fixture(scope="session")
def env_dirs(tmp_path_factory: pytest.TempPathFactory):
    """RTL_RUN_STORE and RTL_CACHE_DIR in temp folders for the whole session."""
    store = tmp_path_factory.mktemp("runs")
    cache = tmp_path_factory.mktemp("cache")
    old = {k: os.environ.get(k) for k in ("RTL_RUN_STORE", "RTL_CACHE_DIR")}
    os.environ["RTL_RUN_STORE"] = str(store)
    os.environ["RTL_CACHE_DIR"] = str(cache)
    yield store, cache
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def scenario(env_dirs):
    from recsys_core.data.split_types import SplitConfig
    from recsys_core.pipeline import load_scenario

    split = SplitConfig()
    return load_scenario(sample_spec(), split, "before-target"), sample_spec(), split


@pytest.fixture(scope="session")
def text(scenario):
    import torch

    scn = scenario[0]
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.normalize(torch.randn(scn.n_items, 32, generator=g), dim=1)


@pytest.fixture(scope="session")
def finished_runs(env_dirs, scenario, text):
    """Three finished runs (popularity, target-only, fine-tune) in the session's store."""
    from dataclasses import asdict

    from recsys_core.pipeline import run_config, run_strategies
    from recsys_core.runs.store import RunStore

    scn, spec, _ = scenario
    store = RunStore(env_dirs[0])
    req = quick_request("popularity", "target-only", "fine-tune")
    # Created the way the app's JobManager creates them (with the spec, to rebuild the data).
    ids = [
        store.create_run(
            n, scn.name, {**run_config(scn, req, n), "spec": asdict(spec)}, scn.fingerprint()
        )
        for n in req.strategies
    ]
    outs = run_strategies(scn, req, store, text=text, run_ids=ids)
    assert [o.status for o in outs] == ["done", "done", "done"], [o.error for o in outs]
    return store, [o.run_id for o in outs]


@pytest.fixture()
def app(env_dirs):
    """A fresh AppTest of the whole app (st.navigation included)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=60)


@pytest.fixture()
def loaded_app(app, scenario):
    """The app with the sample scenario already loaded in its session."""
    from ui import state

    scn, spec, split = scenario
    app.session_state[state.SCENARIO] = scn
    app.session_state[state.SPEC] = spec
    app.session_state[state.SPLIT] = split
    app.session_state[state.SOURCE_HISTORY] = "before-target"
    return app


# --------------------------------------------------------------------------- helpers


def displayed(markdown: str) -> str:
    """What a Markdown string shows: backslash escapes (ui.text.md_escape) resolved, its
    invisible word joiners (which keep URLs from becoming links) left out."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def texts(node, kind: str) -> list[str]:
    """What every element of a kind ("markdown", "caption", ...) under a node shows
    (escapes resolved; ``e.value`` is the Markdown source)."""
    return [displayed(str(e.value)) for e in node.get(kind)]


def metric_values(at) -> dict[str, str]:
    """label -> displayed value of the first st.metric with that label on the page."""
    out: dict[str, str] = {}
    for m in at.metric:
        out.setdefault(m.label, m.value)
    return out


def frame_with(at, column: str):
    """The first st.dataframe on the page whose frame has ``column`` (as a DataFrame)."""
    for d in at.dataframe:
        v = d.value
        if hasattr(v, "columns") and column in v.columns:
            return v
    raise AssertionError(f"no dataframe with a column {column!r}")
