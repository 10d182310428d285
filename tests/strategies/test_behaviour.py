"""Each strategy's distinctive part does what it claims."""

import numpy as np
import pytest
import torch

from recsys_core.strategies.alignment import DomainClassifier, coral, grad_reverse, mmd_loss
from recsys_core.strategies.base import pretrain_source
from recsys_core.strategies.distill import kd_loss
from recsys_core.strategies.fine_tune import FineTuneConfig, FineTuneStrategy, l2sp_term
from recsys_core.strategies.registry import get_strategy


def test_frozen_text_tower_does_not_change(make_ctx):
    ctx = make_ctx()
    src, _ = pretrain_source(ctx)
    before = src.text_proj.weight.detach().clone()
    fitted = FineTuneStrategy(FineTuneConfig(freeze="text")).fit(ctx)
    after = fitted.weights["text_proj.weight"]
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    # and without freezing it does move
    moved = FineTuneStrategy(FineTuneConfig()).fit(ctx).weights["text_proj.weight"]
    assert (moved - before).abs().max() > 1e-4


def test_l2sp_pulls_toward_source_weights(make_ctx):
    ctx = make_ctx(epochs=4)
    src, _ = pretrain_source(ctx)
    anchor = {n: p.detach().clone() for n, p in src.named_parameters()}

    def dist(weights):
        return sum(
            float((weights[n] - anchor[n]).pow(2).sum())
            for n in ("text_proj.weight", "item_emb", "user_emb")
        )

    free = dist(FineTuneStrategy(FineTuneConfig(l2sp=0.0)).fit(ctx).weights)
    tied = dist(FineTuneStrategy(FineTuneConfig(l2sp=1.0)).fit(ctx).weights)
    assert tied < 0.5 * free


def test_l2sp_term_value_by_hand():
    m = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 2.0]]))
    anchor = {"weight": torch.tensor([[0.0, 0.0]])}
    assert float(l2sp_term(m, anchor, {}).detach()) == pytest.approx(5.0)


def test_kd_loss_zero_when_equal_and_positive_otherwise():
    t = torch.randn(4, 10)
    assert float(kd_loss(t, t, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(torch.zeros(4, 10), t, 2.0)) > 0


def test_distillation_loss_falls(make_ctx):
    ctx = make_ctx(epochs=6)
    fitted = get_strategy("distill", {"teacher_dim": 16, "student_dim": 4, "alpha": 0.9}).fit(ctx)
    student = [r["loss"] for r in fitted.history if r["stage"] == "student"]
    assert student[-1] < student[0]
    assert fitted.info["student_parameters"] < fitted.info["teacher_parameters"]
    assert fitted.info["student_users_per_s"] > 0


def _shifted_pair(seed=0, n=200, d=8):
    """Source and target differ by a mean shift along two of the eight directions:
    a map that ignores those directions makes the domains indistinguishable."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randn(n, d, generator=g)
    y[:, :2] += 3.0
    return x, y


def test_mmd_and_coral_detect_shift():
    x, y = _shifted_pair()
    x2, _ = _shifted_pair(seed=1)
    assert float(mmd_loss(x, y)) > 10 * float(mmd_loss(x, x2))
    # CORAL compares covariances: blind to the mean shift, sensitive to a scale change
    assert float(coral(x, 2.0 * x2)) > 10 * float(coral(x, x2))


@pytest.mark.parametrize("method", ["mmd", "coral", "dann"])
def test_alignment_shrinks_domain_gap_on_shifted_toy_pair(method):
    """A shared linear map trained only on the alignment loss brings domains together."""
    torch.manual_seed(0)
    x, y = _shifted_pair()
    f = torch.nn.Linear(8, 4)
    clf = DomainClassifier(4, 16)
    opt = torch.optim.Adam(list(f.parameters()) + list(clf.parameters()), lr=0.01)
    with torch.no_grad():
        gap0 = float(mmd_loss(f(x), f(y)))
    losses = []
    for _ in range(300):
        fx, fy = f(x), f(y)
        if method == "mmd":
            loss = mmd_loss(fx, fy)
        elif method == "coral":
            loss = coral(fx, fy) + (fx.mean(0) - fy.mean(0)).pow(2).sum()
        else:
            loss = clf.loss(grad_reverse(fx), grad_reverse(fy))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        gap1 = float(mmd_loss(f(x), f(y)))
    assert gap1 < 0.5 * gap0
    if method != "dann":  # the DANN classifier loss rises as the domains merge
        assert np.mean(losses[-20:]) < np.mean(losses[:20])


@pytest.mark.parametrize("method", ["mmd", "coral"])
def test_adapt_leaves_domains_closer_than_joint_training_alone(make_ctx, method):
    """Source-only items get text shifted off in one direction (a domain gap in the
    features): with the alignment term the trained item vectors of the two domains end
    closer than joint training alone leaves them."""

    def shifted_ctx():
        ctx = make_ctx(epochs=25, patience=0, lr=0.02)
        src_only = torch.from_numpy(ctx.scenario.item_domain == 1)
        text = ctx.text.clone()
        text[src_only, :4] += 1.5
        ctx.text = torch.nn.functional.normalize(text, dim=1)
        return ctx

    opts = {"method": method, "align_samples": 64, "schedule": "constant"}
    aligned = get_strategy("adapt", {**opts, "weight": 20.0}).fit(shifted_ctx())
    plain = get_strategy("adapt", {**opts, "weight": 0.0}).fit(shifted_ctx())
    assert aligned.info["item_mmd_after"] < 0.8 * plain.info["item_mmd_after"]


def test_fusion_picks_beta_on_validation(make_ctx):
    fitted = get_strategy("fusion", {"betas": (0.0, 0.5, 1.0)}).fit(make_ctx())
    grid = fitted.info["grid"]
    best = max(grid, key=lambda r: r["val_ndcg@10"])
    assert fitted.info["chosen"]["beta"] == best["beta"]


class _Fixed:
    def __init__(self, rows):
        self.rows = torch.tensor(rows, dtype=torch.float32)

    def score(self, users, history):
        return self.rows[users]


def test_fusion_ranks_untrained_items_by_their_text():
    from recsys_core.strategies.fusion import FusionScorer

    # item 3 is untrained: its collaborative score (-50) is an artefact, its text score
    # is the user's best; items 0-2 are trained.
    collab = _Fixed([[3.0, 2.0, 1.0, -50.0]])
    text = _Fixed([[0.1, 0.2, 0.3, 0.9]])
    untrained = torch.tensor([False, False, False, True])
    users = np.array([0])
    plain = FusionScorer(collab, text, 0.0).score(users, None)
    assert int(plain.argmin()) == 3  # without the fallback it ranks last
    fused = FusionScorer(collab, text, 0.0, untrained).score(users, None)
    # warm items keep their collaborative order, standardised over the warm items only
    torch.testing.assert_close(fused[0, :3], torch.tensor([1.0, 0.0, -1.0]))
    # the untrained item takes its text z-score: (0.9 - 0.375) / std of the text row
    t = text.rows[0]
    torch.testing.assert_close(fused[0, 3], (t[3] - t.mean()) / t.std())
    assert int(fused.argmax()) == 3
    # with no untrained item the scorer is the plain blend
    same = FusionScorer(collab, text, 0.3, torch.zeros(4, dtype=torch.bool)).score(users, None)
    torch.testing.assert_close(same, FusionScorer(collab, text, 0.3).score(users, None))


def test_two_tower_calibrates_cold_items_and_validation_judges_it(make_ctx):
    from recsys_core.evaluation.evaluate import validation_metric
    from recsys_core.strategies.base import target_matrix

    ctx = make_ctx()
    s = ctx.scenario
    sc = get_strategy("target-only").fit(ctx).scorer
    assert sc.untrained is not None and bool(sc.untrained.any())
    users = np.unique(s.split.train["user"].to_numpy())[:6]
    hist = target_matrix(s)[users][:, : s.n_target_items]
    raw, cal = sc.raw().score(users, hist), sc.score(users, hist)
    warm = ~sc.untrained
    torch.testing.assert_close(cal[:, warm], raw[:, warm])
    assert not torch.allclose(cal[:, ~warm], raw[:, ~warm])
    # validation holds cold items of its own, so it does see (and judge) the calibration
    vcold = set(s.split.valid["item"]) - set(s.split.train["item"])
    assert vcold and all(bool(sc.untrained[i]) for i in vcold)
    assert validation_metric(sc, s.split) != validation_metric(sc.raw(), s.split)


def test_auto_keeps_the_cold_item_scoring_that_validates_better(make_ctx):
    from recsys_core.evaluation.evaluate import ValidationSet
    from recsys_core.pipeline import choose_cold_item_scores

    ctx = make_ctx()
    s = ctx.scenario
    fitted = get_strategy("target-only").fit(ctx)
    cal = fitted.scorer
    check = ValidationSet(s.split)
    choose_cold_item_scores(fitted, check, ctx.settings)
    got = fitted.info["cold_item_scores"]
    assert got["val_calibrated"] == check(cal) and got["val_raw"] == check(cal.raw())
    best = "raw" if got["val_raw"] > got["val_calibrated"] else "calibrated"
    assert got["chosen"] == best
    assert fitted.scorer.calibrate_cold == (best == "calibrated")
    # early stopping saw only the rows of trained items
    warm = ValidationSet(s.split, rows="warm-items")
    assert len(warm.users) <= len(check.users) and warm.truth.nnz < check.truth.nnz
    # a fixed choice is left alone
    fixed = get_strategy("target-only").fit(make_ctx(cold_item_scores="raw"))
    choose_cold_item_scores(fixed, check, make_ctx(cold_item_scores="raw").settings)
    assert "cold_item_scores" not in fixed.info and not fixed.scorer.calibrate_cold


def test_adapt_reported_mmd_matches_the_embeddings_page(make_ctx):
    """adapt's "MMD after" and the Embeddings page's "MMD source↔target" of its final
    stage are one estimator on the same vectors: they agree to float precision. The
    training loss (mmd_loss, biased) is a different quantity on another scale."""
    from recsys_core.embeddings.shift import mmd_unbiased, shift_report

    ctx = make_ctx()
    fitted = get_strategy("adapt", {"align_samples": 32}).fit(ctx)
    items = fitted.stages["final"]["items"]
    labels = {0: "target", 1: "source"}
    # the page's labels: shared items (2) belong to both domains and are left out
    domains = {i: labels[d] for i, d in enumerate(ctx.scenario.item_domain) if d in labels}
    rep = shift_report({"final": (np.arange(len(items)), items)}, domains=domains)
    page = rep[rep.measure == "mmd_source_target"].value.iloc[0]
    assert fitted.info["item_mmd_after"] == pytest.approx(page, rel=1e-9, abs=1e-12)
    src = items[ctx.scenario.item_domain == 1]
    tgt = items[ctx.scenario.item_domain == 0]
    assert page == pytest.approx(mmd_unbiased(src, tgt), rel=1e-12)
    biased = float(mmd_loss(torch.from_numpy(src), torch.from_numpy(tgt)))
    assert biased != pytest.approx(page, rel=1e-3)


def test_fused_mmd_loss_has_the_reference_value_and_gradient():
    """The written-out gradient (issue 13) against autograd through the definition:
    unequal sample counts, a repeated sample (a zero distance off the diagonal), and all
    samples equal (no positive distance: bandwidth 1, loss 0)."""
    from recsys_core.strategies.alignment import mmd_loss_reference

    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 6, generator=g)
    y = torch.randn(45, 6, generator=g) + 0.5
    y[7] = x[3]
    for a, b in ((x, y), (x[:1].repeat(4, 1), x[:1].repeat(3, 1))):
        a1, b1 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        a2, b2 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        want = mmd_loss_reference(a1, b1)
        got = mmd_loss(a2, b2)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        (0.7 * want).backward()
        (0.7 * got).backward()
        torch.testing.assert_close(a2.grad, a1.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(b2.grad, b1.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mmd", "coral"])
def test_alignment_losses_stay_float32_under_autocast(name):
    """Under bf16 autocast (the CPU's mixed precision, issue 13) MMD and CORAL give the
    float32 value: both subtract nearly equal sums, which bf16 products would cancel."""

    loss = mmd_loss if name == "mmd" else coral
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 8, generator=g) * 3 + 5
    y = torch.randn(50, 8, generator=g) * 3 + 5.2
    want = loss(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(x, y)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "rates", [[0.1, 0.2, 0.4, 0.8, 1.6], [1.6, 0.4, 0.2, 0.8, 0.1], [0.1, 0.3]]
)
def test_kernel_sums_equal_one_exponential_per_kernel(rates):
    """Doubling bandwidths (the default) square one exponential (issue 13), in any
    order; any other set takes one exponential each. Sums and derivatives as direct."""
    from recsys_core.strategies.alignment import _kernel_sums

    d2 = torch.rand(60, 60, generator=torch.Generator().manual_seed(1)) * 8
    k, dk = _kernel_sums(d2, rates)
    torch.testing.assert_close(k, sum(torch.exp(-r * d2) for r in rates), rtol=1e-5, atol=1e-6)
    want = sum(-r * torch.exp(-r * d2) for r in rates)
    torch.testing.assert_close(dk, want, rtol=1e-5, atol=1e-6)
