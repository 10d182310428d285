"""The CUDA path (run by `make gpu-check` on a machine with a card; skipped elsewhere)."""

import numpy as np
import pytest
import torch

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.pipeline import RunRequest, run_strategies
from recsys_core.runs.store import RunStore
from recsys_core.strategies.base import ModelSettings
from tests.toy import toy_pair, toy_text

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _scn():
    src, tgt = toy_pair()
    return build_scenario(tgt, src, SplitConfig(cold_user_frac=0.2, cold_item_frac=0.1))


def test_every_two_tower_strategy_trains_and_evaluates_on_cuda(tmp_path):
    """bf16 autocast on the card (the composite softmax loss, embedding_bag pooling in
    float32), one worker, figures close to the CPU's."""
    scn = _scn()
    text = toy_text(scn.item_ids)
    names = ("target-only", "fine-tune", "distill", "adapt", "fusion")
    settings = ModelSettings(dim=16, epochs=3)
    outs = {}
    for dev in ("cuda", "cpu"):
        outs[dev] = run_strategies(
            scn,
            RunRequest(names, settings, n_boot=10, device=dev, baselines="none"),
            RunStore(tmp_path / dev),
            text=text,
        )
    for g, c in zip(outs["cuda"], outs["cpu"]):
        assert g.status == "done", g.error
        assert "CUDA" in g.device or "cuda" in g.device.lower()
        assert "parallel" not in g.info  # one worker on a GPU
        ng = [m["value"] for m in g.metrics if m["metric"] == "ndcg" and m["segment"] == "all"]
        nc = [m["value"] for m in c.metrics if m["metric"] == "ndcg" and m["segment"] == "all"]
        assert all(np.isfinite(ng))
        # bf16 changes the last digits of training, not what the model learns
        assert abs(ng[0] - nc[0]) < 0.15


def test_bpr_mf_trains_on_cuda(tmp_path):
    scn = _scn()
    out = run_strategies(
        scn,
        RunRequest(
            ("target-only",),
            ModelSettings(model="bpr-mf", dim=16, epochs=5),
            n_boot=10,
            device="cuda",
            baselines="none",
        ),
        RunStore(tmp_path),
    )[0]
    assert out.status == "done", out.error


def test_text_vectors_on_cuda_match_the_cpu():
    from recsys_core.text.encoder import TextEncoder, TextEncoderConfig

    texts = ["Toy Story (1995)", "Heat", "a film about a heist", ""]
    cpu = TextEncoder(TextEncoderConfig(device="cpu", precision="float32")).encode(texts)
    gpu = TextEncoder(TextEncoderConfig(device="cuda")).encode(texts)
    cos = (cpu * gpu).sum(1)
    assert cos.min() > 0.98, cos
