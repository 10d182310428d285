"""Which device to compute on: CUDA, then Apple MPS, then CPU, unless the user says."""

from __future__ import annotations

from typing import Literal

import torch

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]


def choose_device(choice: str = "auto") -> torch.device:
    """Resolve a user's device choice; asking for an absent accelerator is a ValueError."""
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was asked for but no CUDA GPU is visible; use 'auto' or 'cpu'"
        )
    if choice == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError(
            "device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'"
        )
    if choice not in ("cpu", "cuda", "mps") and not choice.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu, cuda or mps, not {choice!r}")
    return torch.device(choice)


def describe_device(device: torch.device) -> str:
    """Human label: the GPU's name, or 'CPU (n threads)'."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
