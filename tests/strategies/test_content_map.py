"""Content map: the ridge map by hand, and new items scored through it."""

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.strategies.content_map import ContentMapStrategy, ridge_map


def test_ridge_map_matches_the_closed_form():
    rng = np.random.default_rng(0)
    t = torch.from_numpy(rng.normal(size=(30, 5)))
    v = torch.from_numpy(rng.normal(size=(30, 3)))
    lam = 2.0
    want = np.linalg.solve(t.numpy().T @ t.numpy() + lam * np.eye(5), t.numpy().T @ v.numpy())
    np.testing.assert_allclose(ridge_map(t, v, lam).numpy(), want, rtol=1e-10)


def test_new_items_get_factors_from_text_and_rank_by_topic(make_ctx, toy_scenario):
    ctx = make_ctx()
    fitted = ContentMapStrategy().fit(ctx)
    s = toy_scenario.split
    untrained = ~s.trained_items()
    assert untrained.any()
    V = fitted.scorer.V.numpy()
    assert np.abs(V[untrained]).sum() > 0  # iALS alone gives them zero factors
    assert fitted.info["chosen"]["ridge"] in (1.0, 10.0, 100.0)
    # a stranger who liked items of one topic scores that topic's new items higher
    topic = np.array([int(str(i).lstrip("tx")) % 4 for i in toy_scenario.item_ids[: s.n_items]])
    liked = np.flatnonzero((topic == 0) & ~untrained)[:3]
    h = sp.csr_matrix((np.ones(3), (np.zeros(3), liked)), shape=(1, s.n_items))
    scores = fitted.scorer.as_cold().score(np.array([0]), h)[0].numpy()
    new = np.flatnonzero(untrained)
    same, other = new[topic[new] == 0], new[topic[new] != 0]
    if len(same) and len(other):
        assert scores[same].mean() > scores[other].mean()
    assert torch.isfinite(torch.from_numpy(scores)).all()
