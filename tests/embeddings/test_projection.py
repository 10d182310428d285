"""2-D projections: PCA geometry, the content-hash cache, and (slow) UMAP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys_core.embeddings import projection
from recsys_core.embeddings.projection import cache_key, cached_projection, project_2d


def test_pca_of_a_line_gives_collinear_points() -> None:
    t = np.linspace(-1.0, 1.0, 50)
    direction = np.array([1.0, -2.0, 0.5, 3.0])
    X = 4.0 + t[:, None] * direction[None, :]
    Y = project_2d(X, method="pca")
    assert Y.shape == (50, 2) and Y.dtype == np.float64
    # Everything on the first axis, spread preserved: length of the segment = 2 |direction|.
    np.testing.assert_allclose(Y[:, 1], 0.0, atol=1e-10)
    assert np.ptp(Y[:, 0]) == pytest.approx(2.0 * np.linalg.norm(direction))
    # Order along the line is kept (monotone), and the sign convention is deterministic.
    assert np.all(np.diff(Y[:, 0]) > 0) or np.all(np.diff(Y[:, 0]) < 0)
    np.testing.assert_array_equal(Y, project_2d(X.copy(), method="pca"))


def test_pca_keeps_distances_of_planar_data() -> None:
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(40, 2)) * [3.0, 1.0]
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    X = np.hstack([plane, np.zeros((40, 3))]) @ q
    Y = project_2d(X, method="pca")
    d_x = np.linalg.norm(X[:, None] - X[None], axis=-1)
    d_y = np.linalg.norm(Y[:, None] - Y[None], axis=-1)
    np.testing.assert_allclose(d_y, d_x, atol=1e-9)


def test_pca_handles_one_dimension_and_one_point() -> None:
    Y = project_2d(np.array([[1.0], [2.0], [4.0]]), method="pca")
    np.testing.assert_allclose(np.abs(Y[:, 0]), [4 / 3, 1 / 3, 5 / 3])
    np.testing.assert_array_equal(Y[:, 1], 0.0)
    np.testing.assert_array_equal(project_2d(np.ones((1, 3)), method="pca"), [[0.0, 0.0]])


def test_cache_serves_second_call_without_refitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = projection._fit_pca

    def counting(X: np.ndarray, seed: int = 0) -> np.ndarray:
        calls.append(len(X))
        return real(X, seed)

    monkeypatch.setattr(projection, "_fit_pca", counting)
    X = np.random.default_rng(1).normal(size=(30, 6)).astype(np.float32)
    assert cached_projection(X, "pca", tmp_path) is None
    first = project_2d(X, method="pca", cache_dir=tmp_path)
    assert calls == [30]
    again = cached_projection(X, "pca", tmp_path)
    second = project_2d(X.copy(), method="pca", cache_dir=tmp_path)
    assert calls == [30]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, again)
    # One safetensors file (no pickle), no temp file left behind.
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("pca-") and files[0].endswith(".safetensors")
    # Different content -> a new fit; same values in another dtype are another key.
    project_2d(X + 1e-3, method="pca", cache_dir=tmp_path)
    project_2d(X.astype(np.float64), method="pca", cache_dir=tmp_path)
    assert calls == [30, 30, 30]


def test_cache_key_depends_only_on_relevant_params() -> None:
    X = np.random.default_rng(2).normal(size=(10, 3))
    assert cache_key(X, "pca", n_neighbors=5) == cache_key(X, "pca", n_neighbors=30)
    assert cache_key(X, "umap", n_neighbors=5) != cache_key(X, "umap", n_neighbors=30)
    assert cache_key(X, "umap", seed=0) != cache_key(X, "umap", seed=1)
    assert cache_key(X, "umap") != cache_key(X, "pca")


def test_corrupt_cache_file_is_recomputed(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    X = np.random.default_rng(3).normal(size=(12, 4))
    first = project_2d(X, method="pca", cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    good = path.read_bytes()
    flipped = good[:-1] + bytes([good[-1] ^ 0x40])  # one coordinate changed, still finite
    for damaged in (b"not a safetensors file", good[: len(good) // 2], flipped):
        path.write_bytes(damaged)
        assert cached_projection(X, "pca", tmp_path) is None
        np.testing.assert_array_equal(project_2d(X, method="pca", cache_dir=tmp_path), first)
        np.testing.assert_array_equal(load_file(str(path))["xy"], first)


def test_a_file_of_another_key_is_not_served(tmp_path: Path) -> None:
    """A valid file under the name of another input (planted, or a truncated-name
    collision) is recomputed: the full key in the header must match."""
    from safetensors.numpy import load_file

    X = np.random.default_rng(3).normal(size=(12, 4))
    Z = X[::-1].copy()
    first = project_2d(X, method="pca", cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    other = projection._cache_path(tmp_path, "pca", cache_key(Z, "pca"))
    other.write_bytes(path.read_bytes())
    assert cached_projection(Z, "pca", tmp_path) is None
    Yz = project_2d(Z, method="pca", cache_dir=tmp_path)
    assert not np.allclose(Yz, first)
    np.testing.assert_array_equal(load_file(str(other))["xy"], Yz)


def test_bad_arguments_raise_value_error() -> None:
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="'umap' or 'pca'"):
        project_2d(X, method="tsne")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        project_2d(np.zeros(5), method="pca")
    with pytest.raises(ValueError, match="NaN"):
        project_2d(np.array([[np.nan, 1.0], [0.0, 1.0]]), method="pca")
    with pytest.raises(ValueError, match="n_neighbors"):
        project_2d(X, method="umap", n_neighbors=1)


@pytest.mark.slow
def test_umap_separates_clusters_and_is_cached(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(2, 16)) * 5.0
    X = np.vstack([c + rng.normal(size=(100, 16)) for c in centres])
    Y = project_2d(X, method="umap", cache_dir=tmp_path, seed=0)
    assert Y.shape == (200, 2) and np.all(np.isfinite(Y))
    # The two clusters land apart: every point is nearer its own cluster's centroid.
    c0, c1 = Y[:100].mean(0), Y[100:].mean(0)
    own = np.linalg.norm(Y[:100] - c0, axis=1) < np.linalg.norm(Y[:100] - c1, axis=1)
    assert own.mean() > 0.95
    np.testing.assert_array_equal(cached_projection(X, "umap", tmp_path, seed=0), Y)


def test_group_rare_keeps_the_most_frequent_labels() -> None:
    from recsys_core.embeddings.projection import group_rare

    labels = ["Drama"] * 5 + ["Adventure"] * 4 + ["Comedy"] * 4 + ["War", "Film-Noir"] + ["users"]
    grouped, cats = group_rare(labels, keep=3, fixed=("users",))
    # ties keep the first seen: Adventure before Comedy
    assert cats == ["Drama", "Adventure", "Comedy", "other", "users"]
    assert grouped.tolist() == [*labels[:13], "other", "other", "users"]
    same, cats2 = group_rare(labels[:9], keep=3)
    assert cats2 == ["Drama", "Adventure"] and same.tolist() == labels[:9]  # nothing grouped
    with pytest.raises(ValueError, match="keep"):
        group_rare(labels, keep=0)


def test_umap_layout_epochs_become_progress_and_a_cancel_stops_it() -> None:
    """umap-learn's epoch bar, written to the sink, turns into progress events; a cancel
    raises in the fitting thread only (tqdm's monitor thread writes too)."""
    import threading

    from recsys_core.training.callbacks import Callbacks, Cancelled

    events, stop = [], []
    sink = projection._EpochSink(
        Callbacks(on_progress=events.append, should_cancel=lambda: bool(stop)), t0=0.0
    )
    sink.write("\r0/200")
    sink.write("\r50/200")
    sink.write("\r")  # a bare refresh: no event
    assert [(e.stage, e.epoch, e.epochs) for e in events] == [
        ("UMAP: layout", 0, 200),
        ("UMAP: layout", 50, 200),
    ]
    share = projection.UMAP_GRAPH_SHARE
    assert events[0].fraction == share
    assert events[1].fraction == pytest.approx(share + (1 - share) * 0.25)
    stop.append(True)
    other = threading.Thread(target=sink.write, args=("\r60/200",))
    other.start()
    other.join()  # no exception there: the monitor thread is left alone
    with pytest.raises(Cancelled):
        sink.write("\r70/200")


@pytest.mark.slow
def test_umap_reports_the_graph_then_the_epochs_and_stops_when_asked(tmp_path: Path) -> None:
    from recsys_core.training.callbacks import Callbacks, Cancelled

    X = np.random.default_rng(5).normal(size=(300, 8))
    events = []
    project_2d(X, "umap", tmp_path, callbacks=Callbacks(on_progress=events.append))
    assert events[0].stage == "UMAP: neighbour graph" and events[0].fraction == 0.0
    layout = [e for e in events if e.stage == "UMAP: layout"]
    assert layout and layout[-1].fraction == 1.0
    assert [e.fraction for e in layout] == sorted(e.fraction for e in layout)
    # stopped during the layout: an exception, and nothing cached
    Z = X + 1.0
    seen = []

    def after_some_epochs() -> bool:
        return any(e.stage == "UMAP: layout" and e.epoch >= 1 for e in seen)

    with pytest.raises(Cancelled):
        project_2d(Z, "umap", tmp_path,
                   callbacks=Callbacks(on_progress=seen.append, should_cancel=after_some_epochs))  # fmt: skip
    assert cached_projection(Z, "umap", tmp_path) is None


def test_one_umap_fit_at_a_time_and_a_map_cached_meanwhile_is_not_fitted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fit waits for the one under way (or the warm-up), saying so, and can be stopped
    while it waits; when its turn comes it reads the map another session cached."""
    import threading

    from recsys_core.training.callbacks import Callbacks, Cancelled

    fits: list[int] = []
    monkeypatch.setattr(
        projection, "_fit_umap", lambda X, *a, **k: fits.append(len(X)) or -projection._fit_pca(X)
    )
    X = np.random.default_rng(6).normal(size=(20, 4))
    events, out = [], {}
    with projection.FIT_LOCK:  # another fit under way
        t = threading.Thread(
            target=lambda: out.update(Y=project_2d(X, "umap", tmp_path,
                                                   callbacks=Callbacks(on_progress=events.append))),
        )  # fmt: skip
        t.start()
        while not events:
            t.join(0.05)
        assert events[0].stage == projection.UMAP_WAIT_STAGE
        other = np.arange(40.0).reshape(20, 2)  # what the other session cached
        projection._cache(projection._cache_path(tmp_path, "umap", cache_key(X, "umap")),
                          cache_key(X, "umap"), other, "umap", 0, 15, 0.1)  # fmt: skip
        with pytest.raises(Cancelled):
            project_2d(X + 1, "umap", tmp_path, callbacks=Callbacks(should_cancel=lambda: True))
    t.join(10)
    np.testing.assert_array_equal(out["Y"], other)
    assert fits == []
