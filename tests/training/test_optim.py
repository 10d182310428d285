import torch

from recsys_core.training.optim import Adam


def test_matches_torch_adam():
    torch.manual_seed(0)
    a = torch.randn(5, 3, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    target = torch.randn(5, 3)
    mine, ref = Adam([a], lr=0.01), torch.optim.Adam([b], lr=0.01)
    for _ in range(20):
        for p, opt in ((a, mine), (b, ref)):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_row_adam_equals_adam_when_every_row_is_touched():
    from recsys_core.training.optim import RowAdam

    torch.manual_seed(0)
    a = torch.randn(4, 3)
    b = a.clone()
    dense, lazy = Adam([a], lr=0.05), RowAdam([b], lr=0.05)
    for step in range(15):
        g = torch.randn(6, 3)
        rows = torch.tensor([0, 1, 2, 3, step % 4, (step + 1) % 4])  # repeats are summed
        a.grad = torch.zeros_like(a).index_add_(0, rows, g)
        dense.step()
        lazy.step_rows([(0, rows, g)])
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_row_adam_leaves_untouched_rows_alone():
    from recsys_core.training.optim import RowAdam

    b = torch.ones(5, 2)
    lazy = RowAdam([b], lr=0.1)
    for _ in range(3):
        lazy.step_rows([(0, torch.tensor([1, 3]), torch.ones(2, 2))])
    assert torch.equal(b[[0, 2, 4]], torch.ones(3, 2))
    assert (b[[1, 3]] < 1).all()
    # where dense Adam keeps moving a row on momentum after its last gradient
    c = torch.ones(5, 2)
    dense = Adam([c], lr=0.1)
    c.grad = torch.zeros_like(c).index_add_(0, torch.tensor([1, 3]), torch.ones(2, 2))
    dense.step()
    before = c.clone()
    c.grad = torch.zeros_like(c)
    dense.step()
    assert (c[[1, 3]] < before[[1, 3]]).all()


def test_fused_kernel_and_portable_path_agree():
    """The fused kernel (used where torch has it) and the _foreach_ sequence give the same
    weights, also when a parameter sits a step out (no gradient) and the step count must
    still be the optimizer's, not the parameter's."""
    torch.manual_seed(0)
    shapes = [(7, 3), (5,)]
    a = [torch.randn(*s) for s in shapes]
    b = [p.clone() for p in a]
    fused, plain = Adam(a, lr=0.05), Adam(b, lr=0.05)
    plain._fused = False
    assert fused._fused  # torch 2.x has torch._fused_adam_ for CPU tensors
    for step in range(12):
        grads = [torch.randn(*s) for s in shapes]
        for ps in (a, b):
            for i, (p, g) in enumerate(zip(ps, grads)):
                p.grad = None if (i == 1 and step % 3 == 1) else g.clone()
        fused.step()
        plain.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)
