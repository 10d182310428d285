"""Popularity baseline and the shared full-ranking helper, on hand-made matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.models import full_ranking_metrics
from recsys_core.models.popularity import Popularity, PopularityConfig


def _train() -> sp.csr_matrix:
    # 4 users x 5 items; item 4 never interacted with (cold). Item 1 has a strength-5
    # cell that must still count as one interaction.
    dense = np.array(
        [
            [1, 5, 0, 0, 0],
            [1, 0, 1, 0, 0],
            [1, 0, 0, 1, 0],
            [0, 1, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    return sp.csr_matrix(dense)


def test_scores_are_interaction_counts_for_every_user() -> None:
    model = Popularity().fit(_train())
    scores = model.score(np.array([0, 3, 7]), sp.csr_matrix((3, 5)))
    expected = torch.tensor([3.0, 2.0, 1.0, 1.0, 0.0])
    assert scores.shape == (3, 5)
    assert scores.dtype == torch.float32
    for row in scores:
        assert torch.equal(row, expected)


def test_cold_item_scores_exactly_zero() -> None:
    scores = Popularity().fit(_train()).score(np.array([0]), sp.csr_matrix((1, 5)))
    assert scores[0, 4].item() == 0.0


def test_default_copy_protects_the_model_from_in_place_masking() -> None:
    model = Popularity().fit(_train())
    scores = model.score(np.array([0]), sp.csr_matrix((1, 5)))
    scores[0, 0] = float("-inf")  # what an evaluator does to mask seen items
    again = model.score(np.array([0]), sp.csr_matrix((1, 5)))
    assert again[0, 0].item() == 3.0


def test_view_is_an_expanded_view_without_copy() -> None:
    model = Popularity().fit(_train())
    scores = model.score(np.arange(4), sp.csr_matrix((4, 5)), view=True)
    assert scores.stride(0) == 0
    assert scores.data_ptr() == model.counts.data_ptr()


def test_history_shape_is_checked() -> None:
    model = Popularity().fit(_train())
    with pytest.raises(ValueError, match="one row per user"):
        model.score(np.array([0, 1]), sp.csr_matrix((2, 4)))


def test_unknown_device_is_rejected() -> None:
    with pytest.raises(ValueError, match="device"):
        PopularityConfig(device="gpu0")


def test_full_ranking_metrics_hand_computed() -> None:
    model = Popularity().fit(_train())
    # User 0 has seen item 0 (masked). Popularity order of the rest: 1 (2), then 2 and 3
    # (1 each), then the cold item 4. Target {2}: at rank 2 or 3 depending on the tie;
    # make it unambiguous with target {1} (rank 1) and a user whose target is item 4.
    users = np.array([0, 1])
    hist = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0]], dtype=np.float32))
    targets = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 1]], dtype=np.float32))
    m = full_ranking_metrics(model, users, hist, hist, targets, k=2)
    # user 0: item 1 at rank 1 is a hit, item 4 (score 0) is not in the top 2:
    #   DCG = 1, IDCG = 1 + 1/log2(3), recall = 1/2.
    # user 1: top 2 are items 2 and 3, no hit: NDCG = recall = 0.
    ndcg0 = 1.0 / (1.0 + 1.0 / math.log2(3))
    assert m["ndcg@2"] == pytest.approx(ndcg0 / 2)
    assert m["recall@2"] == pytest.approx(0.25)
    assert m["users"] == 2
