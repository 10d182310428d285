"""recsys_core/training/scores.py: both ways of scoring candidates give the gathered
scores and their gradients."""

from __future__ import annotations

import pytest
import torch

from recsys_core.training import scores


def _reference(u, V, b, cand):
    return (u.unsqueeze(1) * V[cand]).sum(-1) + b[cand]


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("frozen_items", [False, True])
def test_candidate_scores_match_the_gather(monkeypatch, dense, frozen_items):
    # 16-row blocks over 37 rows (the last one short); repeated candidates in a row
    monkeypatch.setattr(scores, "BLOCK_BYTES", 16 * 4 * 12)
    monkeypatch.setattr(scores, "DENSE_RATIO", 100 if dense else 0)
    g = torch.Generator().manual_seed(7)
    u1 = torch.randn(37, 5, generator=g, requires_grad=True)
    V1 = torch.randn(12, 5, generator=g, requires_grad=not frozen_items)
    b1 = torch.randn(12, generator=g, requires_grad=True)
    cand = torch.randint(12, (37, 6), generator=g)
    cand[3] = 4  # one row scores item 4 six times
    u2, V2, b2 = (t.detach().clone().requires_grad_(t.requires_grad) for t in (u1, V1, b1))
    weight = torch.randn(37, 6, generator=g)
    want = _reference(u1, V1, b1, cand)
    got = scores.candidate_scores(u2, V2, b2, cand)
    torch.testing.assert_close(got, want)
    (want * weight).sum().backward()
    (got * weight).sum().backward()
    for a, c in ((u1, u2), (V1, V2), (b1, b2)):
        if a.grad is None:
            assert c.grad is None
        else:
            torch.testing.assert_close(c.grad, a.grad, rtol=1e-5, atol=1e-6)


def test_a_large_catalogue_keeps_the_gather(monkeypatch):
    """C > DENSE_RATIO x K: no (rows, C) block is built."""
    called = []
    monkeypatch.setattr(scores._BlockedCandidateScores, "apply", lambda *a: called.append(a))
    u, V, b = torch.randn(4, 3), torch.randn(500, 3), torch.randn(500)
    out = scores.candidate_scores(u, V, b, torch.randint(500, (4, 2)))
    assert out.shape == (4, 2) and not called


def test_dense_candidate_scores_under_cpu_autocast(monkeypatch):
    """Under CPU autocast the blocks stay (issue 13) with bf16 products: the scores are
    float32 within bf16 rounding of the gather, and gradients come back in each input's
    dtype."""
    monkeypatch.setattr(scores, "BLOCK_BYTES", 16 * 4 * 12)
    monkeypatch.setattr(scores, "DENSE_RATIO", 100)
    g = torch.Generator().manual_seed(9)
    u32 = torch.randn(37, 5, generator=g)
    V = torch.randn(12, 5, generator=g, requires_grad=True)
    b = torch.randn(12, generator=g, requires_grad=True)
    cand = torch.randint(12, (37, 6), generator=g)
    weight = torch.randn(37, 6, generator=g)
    u_ref = u32.clone().requires_grad_(True)
    want = _reference(u_ref, V, b, cand)
    (want * weight).sum().backward()
    grads = [u_ref.grad, V.grad.clone(), b.grad.clone()]
    V.grad = b.grad = None
    u = u32.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = scores.candidate_scores(u, V, b, cand)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want.detach(), rtol=2e-2, atol=5e-2)
    (got * weight).sum().backward()
    assert u.grad.dtype == torch.bfloat16 and V.grad.dtype == torch.float32
    for t, w in zip((u, V, b), grads):
        torch.testing.assert_close(t.grad.float(), w, rtol=5e-2, atol=5e-2)
    # the products themselves take bf16 (the speed-up): float32 inputs are rounded too
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low32 = scores.candidate_scores(u32, V, b, cand)
    assert (low32 - want.detach()).abs().max() > 1e-3
