"""The two-tower scorer: cold-item calibration of the content path."""

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.models.two_tower import TwoTower, TwoTowerConfig


def _model():
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(5, 6), dim=1)
    text[4] = text[0]  # item 4 (untrained) reads exactly like item 0 (trained)
    m = TwoTower(3, 5, TwoTowerConfig(dim=4, use_history=False, init_std=0.5), text)
    with torch.no_grad():
        m.item_bias.copy_(torch.tensor([2.0, 0.5, -0.5, 1.0, 0.0]))
        m.text_bias.weight.normal_()
    m.trained_user[:] = True
    m.trained_item[:4] = True
    return m


def test_untrained_items_take_their_content_path_on_the_trained_scale():
    m = _model()
    users = np.arange(3)
    hist = sp.csr_matrix((3, 5))
    untrained = torch.tensor([False, False, False, False, True])
    raw = m.score_users(users, hist, 5)
    cal = m.score_users(users, hist, 5, untrained=untrained)
    torch.testing.assert_close(cal[:, :4], raw[:, :4])  # trained items untouched
    # by hand: z of the content path among the trained items, mapped to their full scores
    uv = m.user_emb.detach()
    content = uv @ m.text_proj(m.text).detach().T + m.text_bias(m.text).detach().squeeze(1)
    z = (content[:, 4] - content[:, :4].mean(1)) / content[:, :4].std(1)
    want = raw[:, :4].mean(1) + raw[:, :4].std(1) * z
    torch.testing.assert_close(cal[:, 4], want)
    # item 4 reads like item 0, so it lands where item 0's content path sits
    z0 = (content[:, 0] - content[:, :4].mean(1)) / content[:, :4].std(1)
    torch.testing.assert_close(z, z0)
    # no untrained item, or an id-only model: nothing changes
    none = torch.zeros(5, dtype=torch.bool)
    torch.testing.assert_close(m.score_users(users, hist, 5, untrained=none), raw)


def test_sampled_history_pools_the_sampled_rows_without_the_positive():
    """Each row's sum is the sum of its sampled history vectors, the positive left out;
    the gradient reaches exactly those rows (issue 13: pooled with embedding_bag)."""
    import numpy as np
    import scipy.sparse as sp

    from recsys_core.models.two_tower import TwoTower, TwoTowerConfig

    model = TwoTower(3, 5, TwoTowerConfig(dim=2, history_len=4), None)
    h = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], np.float32))
    indptr = torch.from_numpy(h.indptr.astype(np.int64))
    indices = torch.from_numpy(h.indices.astype(np.int64))
    vecs = torch.arange(10, dtype=torch.float32).reshape(5, 2).requires_grad_()
    users = torch.tensor([0, 1, 2])
    positives = torch.tensor([0, 4, 1])
    s, c = model.sampled_history(users, positives, indptr, indices, vecs, torch.Generator())
    # user 0 samples from {0, 1}, drops item 0 (its positive); user 1 always item 2;
    # user 2 has no history
    n1 = int(c[0])
    assert torch.allclose(s[0], n1 * vecs[1].detach())
    assert c[1] == 4 and torch.allclose(s[1], 4 * vecs[2].detach())
    assert c[2] == 0 and torch.all(s[2] == 0)
    s.sum().backward()
    assert vecs.grad[0].abs().sum() == 0 and vecs.grad[3].abs().sum() == 0
    assert torch.allclose(vecs.grad[2], torch.full((2,), 4.0))


def test_history_pool_gradient_is_embedding_bags():
    """The CPU history pooling (a sparse product in the backward, issue 13) has
    embedding_bag's value and gradient: repeated items, zero weights, an item no row
    reads, and a loss weight on the incoming gradient."""
    import torch.nn.functional as F

    from recsys_core.models.two_tower import _HistoryPool

    g = torch.Generator().manual_seed(11)
    idx = torch.randint(6, (9, 4), generator=g)  # items 0..5 of 8: 6 and 7 never read
    idx[0] = 2  # one row reads the same item four times
    w = (torch.rand(9, 4, generator=g) > 0.3).float()
    v1 = torch.randn(8, 5, generator=g, requires_grad=True)
    v2 = v1.detach().clone().requires_grad_(True)
    ref = F.embedding_bag(idx.reshape(-1), v1, torch.arange(0, 36, 4), mode="sum",
                          per_sample_weights=w.reshape(-1))  # fmt: skip
    got = _HistoryPool.apply(idx, v2, w)
    torch.testing.assert_close(got, ref)
    up = torch.randn(9, 5, generator=g)
    (0.3 * (ref * up).sum()).backward()
    (0.3 * (got * up).sum()).backward()
    torch.testing.assert_close(v2.grad, v1.grad)
    assert torch.equal(v2.grad[6:], torch.zeros(2, 5))
