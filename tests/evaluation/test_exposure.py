"""The exposure curve: offsets on untrained items trade warm for cold recall, on validation."""

import numpy as np
import torch

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.evaluation.exposure import ColdOffsetScorer, exposure_curve, shift_untrained
from tests.toy import toy_pair


def test_shift_adds_offset_times_row_std_to_untrained_columns_only():
    s = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    un = torch.tensor([False, True, False, True])
    out = shift_untrained(s, un, 2.0)
    sd = float(s[0].std())
    torch.testing.assert_close(out[0], torch.tensor([1.0, 2 + 2 * sd, 3.0, 4 + 2 * sd]))
    torch.testing.assert_close(out[1], s[1])  # a constant row has no scale: unchanged
    assert shift_untrained(s, un, 0.0) is s


class Popular:
    """Scores by training count: untrained items score 0, below every trained item."""

    def __init__(self, counts):
        self.row = torch.as_tensor(counts, dtype=torch.float32)

    def score(self, users, history):
        return self.row.expand(len(users), -1).clone()


def test_raising_new_items_trades_warm_recall_for_cold_recall():
    src, tgt = toy_pair()
    scn = build_scenario(
        tgt, src, SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1, valid_cold_item_frac=0.1)
    )
    split = scn.split
    counts = np.bincount(split.train["item"], minlength=split.n_items).astype(np.float32)
    curve, chosen = exposure_curve(Popular(counts), split)
    assert len(curve) == 21 and chosen in set(curve["offset"])
    c = curve.sort_values("offset")
    assert np.all(np.diff(c["cold_recall@20"]) >= -1e-12)  # more exposure, more new items
    assert np.all(np.diff(c["warm_recall@20"]) <= 1e-12)  # at the warm items' expense
    assert c["cold_recall@20"].iloc[-1] > c["cold_recall@20"].iloc[0]
    assert curve.loc[curve["offset"] == chosen, "ndcg@10"].iloc[0] == curve["ndcg@10"].max()
    # the scorer that keeps the chosen point ranks as the curve says
    shifted = ColdOffsetScorer(Popular(counts), ~split.trained_items(), 3.0)
    s = shifted.score(np.array([0]), None)[0]
    assert float(s[~torch.from_numpy(split.trained_items())].min()) > 0
