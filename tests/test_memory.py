"""Allocations that grow with the catalogue are sized before they happen."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.evaluation.ranking import topk_full_ranking
from recsys_core.memory import RANKING_ENV, ranking_batch
from recsys_core.models.ease import EASE


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
