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
