import pytest
import torch

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.strategies.base import Context, ModelSettings
from tests.toy import toy_pair, toy_text


@pytest.fixture(scope="session")
def toy_scenario():
    src, tgt = toy_pair()
    return build_scenario(
        tgt,
        src,
        SplitConfig(
            cold_user_frac=0.2,
            cold_item_frac=0.1,
            valid_cold_item_frac=0.05,
            cold_ks=(0, 1, 3),
            seed=0,
        ),
    )


@pytest.fixture()
def make_ctx(toy_scenario):
    def _make(**settings):
        base = dict(dim=8, epochs=3, source_epochs=2, batch_size=128, seed=0)
        base.update(settings)
        torch.manual_seed(0)
        return Context(toy_scenario, toy_text(toy_scenario.item_ids), ModelSettings(**base))

    return _make
