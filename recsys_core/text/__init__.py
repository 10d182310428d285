"""Pretrained text encoder and the on-disk cache of its vectors.

``TextEncoder(TextEncoderConfig())`` loads the packaged all-MiniLM-L6-v2 (384-d) from a
local folder, never from the network; ``EmbeddingCache(dir).get_or_encode(encoder,
texts)`` encodes each text once per model.
"""

from recsys_core.text.cache import EmbeddingCache, text_key
from recsys_core.text.encoder import (
    EncodingCancelled,
    TextEncoder,
    TextEncoderConfig,
    folder_identity,
    mean_pool,
)

__all__ = [
    "EmbeddingCache",
    "EncodingCancelled",
    "TextEncoder",
    "TextEncoderConfig",
    "folder_identity",
    "mean_pool",
    "text_key",
]
