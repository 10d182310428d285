"""Allocations that grow with the catalogue are sized before they happen."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.evaluation.ranking import topk_full_ranking
from recsys_core.memory import MODEL_ENV, RANKING_ENV, knn_block_columns, ranking_batch
from recsys_core.models.ease import EASE
from recsys_core.models.two_tower import TwoTower, TwoTowerConfig
from recsys_core.strategies.item_knn import ItemKNN
from recsys_core.training.callbacks import Callbacks
from recsys_core.training.loop import DomainData, TrainConfig, train


def test_ease_refuses_a_catalogue_its_matrices_cannot_fit(monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_MAX_MODEL_MB", "1")
    X = sp.random(50, 400, density=0.05, format="csr", random_state=0, dtype=np.float32)
    # 3 x 400 x 400 x 4 bytes = 1.8 MiB > 1 MiB: refused before allocating anything
    with pytest.raises(
        ValueError, match=r"EASE's item-item matrices for 400 items .*over the limit"
    ):
        EASE().fit(X)
    monkeypatch.setenv("TRANSFER_LAB_MAX_MODEL_MB", "4")
    assert EASE().fit(X).B.shape == (400, 400)


def test_ranking_batches_shrink_to_their_budget_and_rank_the_same(monkeypatch):
    assert ranking_batch(1024, 10_000_000) == 1024 * 1024 * 1024 // (3 * 10_000_000 * 4)
    assert ranking_batch(1024, 100) == 1024
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.random((300, 500)).astype(np.float32))

    class Fixed:
        def score(self, users, history):
            return scores[np.asarray(users)]

    hist = sp.csr_matrix((300, 500), dtype=np.float32)
    whole = topk_full_ranking(Fixed(), np.arange(300), hist, hist, 10, batch_size=1024)
    monkeypatch.setenv(RANKING_ENV, "0.1")  # 104,857 bytes: 17 users of 500 items a batch
    assert ranking_batch(1024, 500) == 17
    small = topk_full_ranking(Fixed(), np.arange(300), hist, hist, 10, batch_size=1024)
    np.testing.assert_array_equal(whole, small)


def _knn_peak(X) -> tuple[ItemKNN, int]:
    tracemalloc.start()
    try:
        model = ItemKNN(neighbours=10, shrink=10.0).fit(X)
        return model, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_item_knn_blocks_shrink_to_the_model_budget_and_give_the_same_neighbours(monkeypatch):
    X = sp.random(300, 3000, density=0.01, format="csr", random_state=0, dtype=np.float32)
    whole, peak_whole = _knn_peak(X)  # default 4 GiB: one block of 1,024 columns
    # 2 MiB: the kept lists take 3,000 x 10 x 48 bytes = 1.37 MiB, the block the rest:
    # (2 MiB - 1.37 MiB) / (3,000 x 24 bytes) = 9 columns at a time
    monkeypatch.setenv(MODEL_ENV, "2")
    assert knn_block_columns(3000, 10, 1024) == 9
    small, peak_small = _knn_peak(X)
    assert (whole.S != small.S).nnz == 0
    # numpy reports its buffers to tracemalloc: a 3,000 x 1,024 block is tens of MB
    assert peak_whole > 40 * 2**20 and peak_small < 4 * 2**20


def test_item_knn_refuses_a_catalogue_its_neighbours_cannot_fit(monkeypatch):
    X = sp.random(50, 3000, density=0.01, format="csr", random_state=0, dtype=np.float32)
    monkeypatch.setenv(MODEL_ENV, "1")
    # 3,000 items x 10 neighbours x 48 bytes = 1.37 MiB > 1 MiB
    with pytest.raises(ValueError, match=r"item-kNN's neighbour lists for 3,000 items x 10 "
                       r"neighbours would take 1\.4 MiB, over the limit of 1\.0 MiB.*TRANSFER_LAB_MAX_MODEL_MB"):  # fmt: skip
        ItemKNN(neighbours=10).fit(X)
    # lists that fit but leave less than one column of block: refused too
    monkeypatch.setenv(MODEL_ENV, "0.2")
    with pytest.raises(ValueError, match=r"even one item at a time"):
        ItemKNN(neighbours=1).fit(X)


def _two_tower_data(n_users=40, n_items=400, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 5)
    items = rng.integers(0, n_items, len(users))
    hist = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    model = TwoTower(n_users, n_items, TwoTowerConfig(dim=4, use_text=False, use_history=False))
    return model, DomainData("target", users, items, np.arange(n_items), hist)


def test_full_softmax_too_large_for_memory_is_refused_before_training(monkeypatch):
    model, data = _two_tower_data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    events = []
    cfg = TrainConfig(epochs=1, batch_size=200, loss="full-softmax", patience=0)
    # a step is 3 x 200 rows x 400 items x 4 bytes = 0.92 MiB
    monkeypatch.setenv(MODEL_ENV, "0.5")
    with pytest.raises(ValueError, match=r"full softmax over the 400 items of domain 'target' "
                       r"would take 0\.9 MiB a training step at a batch of 200.*--loss softmax.*at most 109 "
                       r"\(--batch-size\).*TRANSFER_LAB_MAX_MODEL_MB"):  # fmt: skip
        train(model, [data], cfg, callbacks=Callbacks(on_progress=events.append))
    assert events == []  # nothing started
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the sampled softmax, or a batch within the budget, trains
    train(model, [data], TrainConfig(epochs=1, batch_size=200, loss="softmax", patience=0))
    train(model, [data], TrainConfig(epochs=1, batch_size=100, loss="full-softmax", patience=0))
    monkeypatch.setenv(MODEL_ENV, "1")
    assert train(model, [data], cfg).epochs_run == 1
