"""The training loop: the closed-form BPR step equals autograd, negatives are never
positives, and training lowers the loss."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.models.two_tower import TwoTower, TwoTowerConfig
from recsys_core.training.loop import (
    DomainData,
    TrainConfig,
    _bpr_mf_step,
    _bpr_negatives,
    _DeviceDomain,
    _rec_loss,
    mark_trained,
    train,
)


def _toy(n_users=7, n_items=9, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 3)
    # item 8 never appears in training: an untrained item that is still in the pool
    items = np.concatenate([rng.choice(8, 3, replace=False) for _ in range(n_users)])
    hist = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    return DomainData("target", users, items, np.arange(n_items), hist)


def _mf(n_users=7, n_items=9):
    torch.manual_seed(0)
    cfg = TwoTowerConfig(dim=4, use_text=False, use_history=False, init_std=0.5)
    return TwoTower(n_users, n_items, cfg)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_closed_form_bpr_step_equals_autograd(wd):
    data = _toy()
    model = _mf()
    mark_trained(model, [data])
    with torch.no_grad():
        model.item_bias.copy_(torch.linspace(-1, 1, 9))
    d = _DeviceDomain(data, torch.device("cpu"))
    cfg = TrainConfig(loss="bpr", weight_decay=wd)
    u = torch.from_numpy(data.users)
    i = torch.from_numpy(data.items)

    # autograd path, as the general loop computes it
    uv = model.user_vectors_from_sum(u, None, None)
    iv = model.item_vectors()
    ref = _rec_loss(d, cfg, u, uv, i, iv, model.item_biases(), torch.Generator().manual_seed(3))
    ref = ref + wd * (uv.pow(2).sum(1).mean() + iv[i].pow(2).sum(1).mean())
    ref.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None

    got_loss = _bpr_mf_step(model, d, cfg, u, i, torch.Generator().manual_seed(3))
    torch.testing.assert_close(got_loss, ref.detach())
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], msg=n)
    # the untrained item's rows get no gradient (its id part is masked when scoring)
    assert float(model.item_emb.grad[8].abs().sum()) == 0.0


def test_negatives_are_not_positives_of_the_user():
    data = _toy()
    d = _DeviceDomain(data, torch.device("cpu"))
    assert d.pos_dense is not None  # a small grid takes the bitmap path
    gen = torch.Generator().manual_seed(0)
    u = torch.from_numpy(data.users).repeat(50)
    neg = _bpr_negatives(d, u, gen)
    known = set(zip(data.users.tolist(), data.items.tolist()))
    hits = sum((a, b) in known for a, b in zip(u.tolist(), neg.tolist()))
    # 3 redraws leave a positive with probability (3/9)^4 ~ 1%: far fewer than the
    # third a plain uniform draw would give
    assert hits < 0.03 * len(u)
    # the binary-search path answers the same question the same way
    d.pos_dense = None
    assert torch.equal(
        d.is_positive(u, neg),
        torch.tensor([(a, b) in known for a, b in zip(u.tolist(), neg.tolist())]),
    )


def _train_twice(sparse_adam: bool):
    """Two identical BPR-MF runs on the toy data: (loss curve, final item tables)."""
    data = _toy(n_users=20, n_items=9)
    finals = []
    for _ in range(2):
        model = _mf(20, 9)
        cfg = TrainConfig(
            loss="bpr", epochs=30, batch_size=16, lr=0.05, patience=0, sparse_adam=sparse_adam
        )
        res = train(model, [data], cfg)
        finals.append(model.item_emb.detach().clone())
    return [r["loss"] for r in res.history], finals


def test_bpr_mf_training_lowers_the_loss_and_repeats_exactly():
    losses, finals = _train_twice(sparse_adam=False)
    assert losses[-1] < 0.7 * losses[0]
    torch.testing.assert_close(finals[0], finals[1], rtol=0, atol=0)


def test_sparse_adam_bpr_trains_and_repeats():
    losses, finals = _train_twice(sparse_adam=True)
    assert losses[-1] < 0.7 * losses[0]
    torch.testing.assert_close(finals[0], finals[1], rtol=0, atol=0)
    # the untrained item (8) is never a positive and its masked negatives carry no
    # gradient, so lazy Adam never moves its row
    start = _mf(20, 9).item_emb.detach()[8]
    torch.testing.assert_close(finals[0][8], start, rtol=0, atol=0)


def test_full_softmax_loss_matches_cross_entropy():
    """The fused loss (issue 13) has the value and gradients of the composite."""
    import torch.nn.functional as F

    from recsys_core.training.loop import FullSoftmaxLoss

    g = torch.Generator().manual_seed(3)
    for temperature in (1.0, 0.5):
        u = torch.randn(7, 4, generator=g, requires_grad=True)
        v = torch.randn(11, 4, generator=g, requires_grad=True)
        b = torch.randn(11, generator=g, requires_grad=True)
        y = torch.randint(11, (7,), generator=g)
        ref = F.cross_entropy(torch.addmm(b, u, v.T) / temperature, y)
        ref.backward()
        want = [t.grad.clone() for t in (u, v, b)]
        for t in (u, v, b):
            t.grad = None
        got = FullSoftmaxLoss.apply(u, v, b, y, temperature)
        got.backward()
        assert torch.allclose(got, ref, atol=1e-6)
        for t, w in zip((u, v, b), want):
            assert torch.allclose(t.grad, w, atol=1e-6)


def test_full_softmax_loss_in_blocks_matches_cross_entropy(monkeypatch):
    """Blocks of 16 rows over 40 (the last one short), a loss weight (the backward's
    incoming gradient) and a frozen item table: the value and gradients of the composite."""
    import torch.nn.functional as F

    from recsys_core.training.loop import FullSoftmaxLoss

    monkeypatch.setattr(FullSoftmaxLoss, "BLOCK_BYTES", 16 * 4 * 13)  # 16 rows of 13 items
    g = torch.Generator().manual_seed(5)
    for frozen_items in (False, True):
        u = torch.randn(40, 6, generator=g, requires_grad=True)
        v = torch.randn(13, 6, generator=g, requires_grad=not frozen_items)
        b = torch.randn(13, generator=g, requires_grad=True)
        y = torch.randint(13, (40,), generator=g)
        ref = 0.7 * F.cross_entropy(torch.addmm(b, u, v.T) / 0.8, y)
        ref.backward()
        want = [None if t.grad is None else t.grad.clone() for t in (u, v, b)]
        for t in (u, v, b):
            t.grad = None
        got = 0.7 * FullSoftmaxLoss.apply(u, v, b, y, 0.8)
        got.backward()
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
        for t, w in zip((u, v, b), want):
            if w is None:
                assert t.grad is None
            else:
                torch.testing.assert_close(t.grad, w, rtol=1e-5, atol=1e-6)


def test_full_softmax_loss_with_bfloat16_products(monkeypatch):
    """``low`` (CPU autocast, issue 13): the products take bf16 inputs, the rest stays
    float32. The value and gradients stay within bf16 rounding of the float32 composite,
    and each gradient comes back in its input's dtype (the tower's bf16 output too)."""
    import torch.nn.functional as F

    from recsys_core.training.loop import FullSoftmaxLoss

    monkeypatch.setattr(FullSoftmaxLoss, "BLOCK_BYTES", 16 * 4 * 13)  # 16 rows of 13 items
    g = torch.Generator().manual_seed(8)
    u32 = torch.randn(40, 6, generator=g)
    v = torch.randn(13, 6, generator=g, requires_grad=True)
    b = torch.randn(13, generator=g, requires_grad=True)
    y = torch.randint(13, (40,), generator=g)
    u_ref = u32.clone().requires_grad_(True)
    ref = 0.7 * F.cross_entropy(torch.addmm(b, u_ref, v.T), y)
    ref.backward()
    want = [u_ref.grad.clone(), v.grad.clone(), b.grad.clone()]
    v.grad = b.grad = None
    u = u32.bfloat16().requires_grad_(True)  # as the user tower returns it under autocast
    got = 0.7 * FullSoftmaxLoss.apply(u, v, b, y, 1.0, True)
    got.backward()
    assert got.dtype == torch.float32 and u.grad.dtype == torch.bfloat16
    assert v.grad.dtype == b.grad.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=1e-2)
    for t, w in zip((u, v, b), want):
        torch.testing.assert_close(t.grad.float(), w, rtol=5e-2, atol=1e-2)
    # and the float32 path is not the bf16 one: its error is float32 rounding
    u.grad = v.grad = b.grad = None
    exact = 0.7 * FullSoftmaxLoss.apply(u32, v, b, y, 1.0, False)
    torch.testing.assert_close(exact, ref, rtol=1e-6, atol=1e-6)
    assert (got - ref).abs() > (exact - ref).abs()
    # the products themselves take bf16 (the speed-up): a float32 u under ``low`` is
    # rounded too, so its loss is off by bf16 rounding, not float32's
    low32 = 0.7 * FullSoftmaxLoss.apply(u32, v, b, y, 1.0, True)
    assert (low32 - ref).abs() > 1e-4 > (exact - ref).abs()


def _two_tower_toy():
    data = _toy()
    torch.manual_seed(0)
    cfg = TwoTowerConfig(dim=4, use_text=False, use_history=True, init_std=0.5)
    return data, TwoTower(7, 9, cfg)


@pytest.mark.parametrize("amp", [True, False])
def test_training_precision_follows_the_device(monkeypatch, amp):
    """Where the CPU computes bf16 natively, ``amp`` trains the two-tower under bf16
    autocast and says so; amp=False, or a CPU without bf16, trains in float32. Either
    way the weights stay float32 and the loss goes down."""
    import recsys_core.training.loop as loop

    monkeypatch.setattr(loop, "native_bf16", lambda device: True)
    data, model = _two_tower_toy()
    cfg = TrainConfig(loss="full-softmax", epochs=15, batch_size=8, lr=0.05, patience=0, amp=amp)
    seen = []
    real = loop._rec_loss

    def spy(*a, **k):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(*a, **k)

    monkeypatch.setattr(loop, "_rec_loss", spy)
    res = train(model, [data], cfg)
    assert res.precision == ("bfloat16-mixed" if amp else "float32")
    assert set(seen) == {amp}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    monkeypatch.setattr(loop, "native_bf16", lambda device: False)
    assert train(_two_tower_toy()[1], [data], cfg).precision == "float32"


def test_plain_bpr_mf_keeps_its_float32_closed_form_under_amp(monkeypatch):
    """On a CPU with bf16, BPR-MF (ids only) still takes the closed-form float32 step
    (RecBole's setting, and faster than any autocast step)."""
    import recsys_core.training.loop as loop

    monkeypatch.setattr(loop, "native_bf16", lambda device: True)
    steps = []
    real = loop._bpr_mf_step
    monkeypatch.setattr(loop, "_bpr_mf_step", lambda *a, **k: steps.append(1) or real(*a, **k))
    cfg = TrainConfig(loss="bpr", epochs=2, batch_size=8, lr=0.05, patience=0, amp=True)
    res = train(_mf(), [_toy()], cfg)
    assert steps and res.precision == "float32"
