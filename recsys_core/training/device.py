"""Which device to compute on: CUDA, then Apple MPS, then CPU, unless the user says.

The one resolver of the engine: training, evaluation (:class:`EvalConfig`, the
validation closure) and the id-only models (EASE, iALS, popularity) all ask here, so a
device name is spelled, checked and refused with one set of messages.
"""

from __future__ import annotations

import re
from typing import Literal

import torch

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]

# "cuda:N" addresses one GPU of several; the other names are torch's own device types.
_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def check_device_name(choice: str | torch.device) -> str:
    """Check how a device choice is spelled, without asking the hardware.

    For configs that validate in ``__post_init__``: a TOML file written on a GPU machine
    must still load on a laptop; whether the device exists is asked when work starts
    (:func:`choose_device`).

    Returns:
        the choice as a string ("auto", "cpu", "cuda", "cuda:N" or "mps").

    Raises:
        ValueError: any other name.
    """
    name = str(choice).strip() if isinstance(choice, (str, torch.device)) else None
    if name is None or not _NAME.match(name):
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, not {choice!r}")
    return name


def choose_device(choice: str | torch.device = "auto") -> torch.device:
    """Resolve a user's device choice; asking for an absent accelerator is a ValueError.

    "auto" takes CUDA, then Apple MPS, then the CPU.
    """
    name = check_device_name(choice)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} was asked for but no CUDA GPU is visible; use 'auto' or 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} was asked for but only {torch.cuda.device_count()} CUDA "
                "GPU(s) are visible; use 'cuda' or 'auto'"
            )
    if dev.type == "mps" and not _mps_available():
        raise ValueError(
            f"device {name!r} was asked for but Apple MPS is not available; use 'auto' or 'cpu'"
        )
    return dev


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (so faster than fp32):
    a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = torch.cpu
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, c, lambda: False)()) for c in checks)
    return False


def describe_device(device: torch.device) -> str:
    """Human label: the GPU's name, or 'CPU (n threads)'."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
