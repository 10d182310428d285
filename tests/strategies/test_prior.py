"""The popularity prior for short histories: weights by history length, chosen on
validation users treated as cold."""

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.strategies.prior import PriorBlendScorer, as_cold, choose_prior_weights


class Fixed:
    """A scorer returning the same scores for every user."""

    def __init__(self, row):
        self.row = torch.as_tensor(row, dtype=torch.float32)

    def score(self, users, history):
        return self.row.expand(len(users), -1).clone()


def test_weight_follows_the_largest_calibrated_k_and_stops_beyond_the_last():
    s = PriorBlendScorer(Fixed([0.0, 0.0]), np.array([1.0, 2.0]), {0: 1.0, 1: 0.5, 3: 0.2})
    np.testing.assert_allclose(
        s.weight_for(np.array([0, 1, 2, 3, 4, 50])), [1, 0.5, 0.5, 0.2, 0, 0]
    )


def test_blend_is_popularity_at_w1_and_the_model_at_w0():
    counts = np.array([1.0, 50.0, 10.0, 0.0])
    model = Fixed([4.0, 1.0, 2.0, 3.0])  # the reverse of popularity
    s = PriorBlendScorer(model, counts, {0: 1.0, 1: 0.0})
    empty = sp.csr_matrix((1, 4), dtype=np.float32)
    one = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, 4))
    assert torch.argsort(s.score(np.array([0]), empty)[0], descending=True).tolist() == [1, 2, 0, 3]
    torch.testing.assert_close(s.score(np.array([0]), one), model.score([0], one))


def _skewed_split(seed: int = 0):
    from recsys_core.data.scenario import build_scenario
    from recsys_core.data.split_types import SplitConfig
    from tests.toy import skewed_domain

    cfg = SplitConfig(cold_user_frac=0.2, cold_item_frac=0.0, valid_cold_item_frac=0.0,
                      cold_ks=(0, 1, 3), seed=seed)  # fmt: skip
    return build_scenario(skewed_domain(seed), None, cfg).split


def test_an_uninformed_model_gets_popularity_at_every_k():
    split = _skewed_split()
    counts = np.bincount(split.train["item"], minlength=split.n_items).astype(np.float32)
    flat = Fixed(np.zeros(split.n_items))
    weights, table = choose_prior_weights(flat, split, counts, [0, 1, 3])
    assert set(weights) == {0, 1, 3} and all(w > 0 for w in weights.values())
    # popularity itself: every w ranks the same, the prior is kept (w = 1)
    pop = Fixed(np.log1p(counts))
    weights, table = choose_prior_weights(pop, split, counts, [0, 1, 3])
    assert weights == {0: 1.0, 1: 1.0, 3: 1.0}
    by_k = {}
    for row in table:
        by_k.setdefault(row["k"], []).append(row["val_ndcg@10"])
    assert all(max(v) - min(v) < 1e-12 for v in by_k.values())


def test_chosen_weight_is_at_least_as_good_as_popularity_on_validation(make_ctx, toy_scenario):
    from recsys_core.strategies.registry import get_strategy

    split = toy_scenario.split
    counts = np.bincount(split.train["item"], minlength=split.n_items).astype(np.float32)
    fitted = get_strategy("target-only").fit(make_ctx())
    weights, table = choose_prior_weights(fitted.scorer, split, counts, [0, 1, 3])
    for k, w in weights.items():
        rows = {r["w"]: r["val_ndcg@10"] for r in table if r["k"] == k}
        assert rows[w] >= rows[1.0] - 1e-12  # never below popularity on validation


def test_one_se_rule_keeps_the_prior_unless_the_model_is_measurably_better():
    from recsys_core.strategies.prior import one_se_choice

    rng = np.random.default_rng(0)
    base = rng.random(400)
    noise = rng.normal(0, 0.05, 400)
    # w = 0 ahead by 0.002 with a paired SE of ~0.0025: within one SE, the prior is kept
    close = np.stack([base + 0.002 + noise, base + 0.001, base])
    assert one_se_choice(close) == 2
    # w = 0 ahead by 0.05: measurable, the model is kept
    far = np.stack([base + 0.05 + noise, base + 0.01, base])
    assert one_se_choice(far) == 0
    # the middle candidate is best and the prior is far behind: the middle one
    mid = np.stack([base, base + 0.05 + noise, base - 0.05])
    assert one_se_choice(mid) == 1


def test_as_cold_drops_the_id_vector_of_a_trained_user(make_ctx, toy_scenario):
    from recsys_core.strategies.registry import get_strategy

    scorer = get_strategy("target-only").fit(make_ctx()).scorer
    split = toy_scenario.split
    users = np.unique(split.train["user"])[:3]
    empty = sp.csr_matrix((3, split.n_items), dtype=np.float32)
    warm = scorer.score(users, empty)
    cold = as_cold(scorer).score(users, empty)
    assert not torch.allclose(warm[0], warm[1])  # trained users differ by their id vector
    torch.testing.assert_close(cold[0], cold[1])  # strangers with no history are the same
