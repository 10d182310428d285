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
