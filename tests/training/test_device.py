"""One device resolver: training, evaluation and the id-only models spell, check and
refuse device names the same way."""

import pytest
import torch

from recsys_core.data.scenario import build_scenario
from recsys_core.data.split_types import SplitConfig
from recsys_core.evaluation.evaluate import EvalConfig, ValidationSet
from recsys_core.models.popularity import PopularityConfig
from recsys_core.training.device import check_device_name, choose_device
from tests.toy import toy_pair


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_names_are_checked_without_asking_the_hardware(name):
    assert check_device_name(name) == name


@pytest.mark.parametrize("name", ["gpu0", "", "cuda:x", "tpu", 3])
def test_unknown_names_are_refused(name):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda, cuda:N or mps"):
        check_device_name(name)


def test_auto_and_cpu_resolve():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")
    # auto prefers CUDA, then MPS, then the CPU
    expected = {"cuda"} if torch.cuda.is_available() else {"mps", "cpu"}
    assert choose_device("auto").type in expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_cuda_is_one_message_everywhere():
    _, tgt = toy_pair()
    toy_split = build_scenario(tgt, None, SplitConfig(seed=0)).split
    msg = "device 'cuda' was asked for but no CUDA GPU is visible"
    with pytest.raises(ValueError, match=msg):
        choose_device("cuda")
    with pytest.raises(ValueError, match=msg):
        PopularityConfig(device="cuda")
    with pytest.raises(ValueError, match=msg):
        ValidationSet(toy_split, device="cuda")
    # a config names a device; availability is asked when work starts (a TOML written
    # on a GPU machine still loads on a laptop)
    assert EvalConfig(device="cuda").device == "cuda"


def test_model_configs_refuse_auto():
    with pytest.raises(ValueError, match="not 'auto'"):
        PopularityConfig(device="auto")
