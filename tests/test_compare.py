"""The verdict weighs transfer runs against the best baseline of each segment."""

import pandas as pd

from recsys_core.compare import verdict


def _row(run_id, strategy, seg, value, seg_baseline, seg_delta=None, lo=None, hi=None):
    sig = lo is not None and (lo > 0 or hi < 0)
    return dict(run_id=run_id, strategy=strategy, segment=seg, metric="ndcg", k=10, value=value,
                seg_baseline=seg_baseline, seg_delta=seg_delta, seg_low=lo, seg_high=hi,
                seg_significant=sig)  # fmt: skip


def test_verdict_uses_the_best_baseline_per_segment():
    t = pd.DataFrame(
        [
            _row("p", "popularity", "warm_users", 0.07, "t"),
            _row("t", "target-only", "warm_users", 0.11, "t"),
            _row("f", "fine-tune", "warm_users", 0.12, "t", 0.01, 0.002, 0.018),
            _row("p", "popularity", "cold_users_k3", 0.43, "p"),
            _row("t", "target-only", "cold_users_k3", 0.31, "p"),
            _row("f", "fine-tune", "cold_users_k3", 0.34, "p", -0.09, -0.14, -0.04),
            _row("e", "external", "cold_users_k3", 0.50, "p"),
        ]
    )
    lines = verdict(t)
    assert lines[0].startswith(
        "warm_users: fine-tune beats the best baseline (target-only) by +0.0100"
    )
    assert "(+9%" in lines[0]
    # a transfer run better than target-only but worse than popularity is no gain
    assert lines[1] == (
        "cold_users_k3: no measurable gain from transfer over the best baseline (popularity); "
        "popularity is better here."
    )
    assert len(lines) == 2  # the external upload is neither baseline nor transfer
