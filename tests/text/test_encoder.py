"""Text encoder and embedding cache, on a tiny random BERT (the real model only in one slow test)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from recsys_core.errors import DataError
from recsys_core.text import (
    EmbeddingCache,
    EncodingCancelled,
    TextEncoder,
    TextEncoderConfig,
    mean_pool,
)

WORDS = [
    "toy",
    "story",
    "drama",
    "war",
    "animation",
    "comedy",
    "children",
    "the",
    "a",
    "list",
    "1995",
    "|",
    ",",
]


def _tiny_bert(tmp: Path) -> tuple[BertModel, BertTokenizerFast]:
    vocab = tmp / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return BertModel(cfg), tok


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[BertModel, BertTokenizerFast]:
    return _tiny_bert(tmp_path)


def _encoder(tiny, batch_size: int = 2, name: str = "tiny", max_length: int = 64) -> TextEncoder:
    model, tok = tiny
    return TextEncoder.from_model(
        model, tok, name, TextEncoderConfig(batch_size=batch_size, max_length=max_length)
    )


TEXTS = [
    "toy story | animation , children , comedy | 1995",
    "war",
    "the drama list",
    "a toy",
    "drama | war | 1995 the the the the",
]


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": 2}, "max_length"),
        ({"device": "gpu"}, "device"),
        ({"model_path": "  "}, "model_path"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        TextEncoderConfig(**kwargs)


def test_config_default_points_at_packaged_minilm() -> None:
    folder = TextEncoderConfig().resolved_model_path()
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()


def test_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"(?i)no text model found") as err:
        TextEncoder(TextEncoderConfig(model_path=str(tmp_path / "nope")))
    assert "nope" in str(err.value)
    assert "nothing is downloaded" in str(err.value)


# ------------------------------------------------------------------ pooling


def test_mean_pool_ignores_masked_tokens_and_normalises() -> None:
    hidden = torch.tensor(
        [
            [[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]],  # third token is padding
            [[0.0, 3.0], [4.0, 3.0], [0.0, 0.0]],
        ]
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = mean_pool(hidden, mask)
    # row 0: mean of (1,0),(3,0) = (2,0) -> (1,0); row 1: mean (4/3, 2) -> /|.| = (0.5547, 0.8321)
    np.testing.assert_allclose(out.numpy(), [[1.0, 0.0], [0.5547002, 0.8320503]], atol=1e-6)


# ------------------------------------------------------------------ encode


def test_encode_shape_dtype_unit_norm(tiny) -> None:
    enc = _encoder(tiny)
    v = enc.encode(TEXTS)
    assert enc.dim == 32
    assert v.shape == (5, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), np.ones(5), atol=1e-5)
    # different texts, different vectors (so the order test below means something)
    sims = v @ v.T
    assert np.all(sims[~np.eye(5, dtype=bool)] < 0.9999)


def test_padding_does_not_change_the_vector(tiny) -> None:
    enc = _encoder(tiny, batch_size=8)
    alone = enc.encode(["war"])[0]
    # in a batch with a long text, "war" is padded with many [PAD] tokens
    padded = enc.encode(["war", "toy story | animation , children , comedy | 1995 the the a a"])[0]
    np.testing.assert_allclose(padded, alone, atol=1e-5)


def test_order_is_restored_after_length_sorting(tiny) -> None:
    enc = _encoder(tiny, batch_size=2)
    batched = enc.encode(TEXTS)
    one_by_one = np.stack([enc.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_empty_input_gives_empty_matrix(tiny) -> None:
    assert _encoder(tiny).encode([]).shape == (0, 32)


def test_progress_reports_each_batch(tiny) -> None:
    calls: list[tuple[int, int]] = []
    _encoder(tiny, batch_size=2).encode(TEXTS, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]


def test_cancel_stops_between_batches(tiny) -> None:
    polls: list[int] = []
    seen: list[tuple[int, int]] = []

    def cancel() -> bool:
        polls.append(1)
        return len(polls) >= 2  # let the first batch through, stop before the second

    with pytest.raises(EncodingCancelled, match="after 2 of 5"):
        _encoder(tiny, batch_size=2).encode(
            TEXTS, progress=lambda d, t: seen.append((d, t)), cancel=cancel
        )
    assert seen == [(0, 5), (2, 5)]


def test_cancellation_is_the_engine_wide_cancelled() -> None:
    from recsys_core.training.callbacks import Cancelled

    assert issubclass(EncodingCancelled, Cancelled)


def test_truncation_to_max_length(tiny) -> None:
    enc = _encoder(tiny, batch_size=4, max_length=4)  # [CLS] toy story [SEP]
    a, b = enc.encode(["toy story war drama", "toy story comedy list the"])
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_data_error(tiny) -> None:
    model, tok = tiny
    with pytest.raises(DataError, match="no GPU is available"):
        TextEncoder.from_model(model, tok, "tiny", TextEncoderConfig(device="cuda"))


def test_from_model_identity_depends_on_name_and_max_length(tiny) -> None:
    a = _encoder(tiny, name="m1")
    assert a.identity == _encoder(tiny, name="m1").identity
    assert a.identity != _encoder(tiny, name="m2").identity
    assert a.identity != _encoder(tiny, name="m1", max_length=32).identity


def test_precision_is_part_of_the_identity_and_bf16_stays_close(tiny) -> None:
    model, tok = tiny

    def enc(precision):
        cfg = TextEncoderConfig(batch_size=4, precision=precision)
        return TextEncoder.from_model(model, tok, "tiny", cfg)

    f32, b16 = enc("float32"), enc("bfloat16")
    assert f32.identity != b16.identity and len(b16.identity) == len(f32.identity)
    assert b16.describe()["precision"] == "bfloat16"
    assert enc("auto").identity in (f32.identity, b16.identity)
    a, b = f32.encode(TEXTS), b16.encode(TEXTS)
    assert a.dtype == b.dtype == np.float32
    assert not np.array_equal(a, b)  # it really ran in bf16
    assert (a * b).sum(1).min() > 0.99


def test_loads_any_local_folder_offline(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    folder = tmp_path / "my-encoder"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    enc = TextEncoder(TextEncoderConfig(model_path=str(folder), batch_size=2))
    assert enc.name == "my-encoder" and enc.dim == 32
    np.testing.assert_allclose(enc.encode(TEXTS), _encoder(tiny).encode(TEXTS), atol=1e-5)
    again = TextEncoder(TextEncoderConfig(model_path=str(folder), batch_size=64))
    assert again.identity == enc.identity  # batch size does not change vectors
    longer = TextEncoder(TextEncoderConfig(model_path=str(folder), max_length=16))
    assert longer.identity != enc.identity


# ------------------------------------------------------------------ cache


class CountingEncoder:
    """Deterministic fake: a text's vector comes from its hash; records every text encoded."""

    def __init__(self, identity: str = "counting-v1", dim: int = 4) -> None:
        self.identity = identity
        self.dim = dim
        self.encoded: list[str] = []

    def encode(self, texts, progress=None, cancel=None) -> np.ndarray:
        if cancel is not None and cancel():
            raise EncodingCancelled("cancelled")
        self.encoded.extend(texts)
        rows = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        if progress is not None:
            progress(len(texts), len(texts))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


def test_cache_encodes_only_missing_texts(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb")
    enc = CountingEncoder()
    first = cache.get_or_encode(enc, ["a", "b", "a", "c"])
    assert enc.encoded == ["a", "b", "c"]  # the repeat is encoded once
    assert first.shape == (4, 4) and first.dtype == np.float32
    np.testing.assert_array_equal(first[0], first[2])

    enc.encoded.clear()
    second = cache.get_or_encode(enc, ["a", "b", "a", "c"])
    assert enc.encoded == []  # full hit
    np.testing.assert_array_equal(second, first)

    third = cache.get_or_encode(enc, ["c", "d", "a"])
    assert enc.encoded == ["d"]
    np.testing.assert_array_equal(third[[0, 2]], first[[3, 0]])
    np.testing.assert_array_equal(third[1], CountingEncoder().encode(["d"])[0])
    assert cache.count(enc) == 4


def test_cache_survives_a_new_process_and_separates_models(tmp_path: Path) -> None:
    enc = CountingEncoder()
    EmbeddingCache(tmp_path).get_or_encode(enc, ["x", "y"])
    enc.encoded.clear()
    EmbeddingCache(tmp_path).get_or_encode(enc, ["y", "x"])  # a fresh object reads the same disk
    assert enc.encoded == []

    other = CountingEncoder(identity="counting-v2")
    EmbeddingCache(tmp_path).get_or_encode(other, ["x"])
    assert other.encoded == ["x"]
    assert EmbeddingCache(tmp_path).count() == 3


def test_cache_files_are_one_shard_per_encoding_call(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = CountingEncoder()
    cache.get_or_encode(enc, ["a", "b"])
    cache.get_or_encode(enc, ["a", "b"])  # nothing new: no shard
    cache.get_or_encode(enc, ["c"])
    shards = sorted((tmp_path / "shards" / enc.identity).glob("*.safetensors"))
    assert len(shards) == 2
    assert (tmp_path / "index.sqlite").is_file()
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_reencodes_when_a_shard_is_lost(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = CountingEncoder()
    before = cache.get_or_encode(enc, ["a", "b"])
    for f in (tmp_path / "shards").rglob("*.safetensors"):
        f.unlink()
    enc.encoded.clear()
    after = cache.get_or_encode(enc, ["a", "b"])
    assert enc.encoded == ["a", "b"]
    np.testing.assert_array_equal(after, before)
    enc.encoded.clear()
    cache.get_or_encode(enc, ["a", "b"])
    assert enc.encoded == []  # re-indexed to the new shard


def test_cache_progress_counts_hits_as_done(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = CountingEncoder()
    cache.get_or_encode(enc, ["a", "b"])
    calls: list[tuple[int, int]] = []
    cache.get_or_encode(enc, ["a", "b", "c"], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 3)]  # 2 hits + 1 encoded, out of 3
    calls.clear()
    cache.get_or_encode(enc, ["a", "b", "c"], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 3)]


def test_cache_stores_nothing_when_cancelled(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = CountingEncoder()
    with pytest.raises(EncodingCancelled):
        cache.get_or_encode(enc, ["a"], cancel=lambda: True)
    assert cache.count(enc) == 0
    assert cache.cached_mask(enc, ["a"]).tolist() == [False]


def test_cached_mask(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = CountingEncoder()
    assert cache.cached_mask(enc, ["a", "b"]).tolist() == [False, False]
    cache.get_or_encode(enc, ["b"])
    assert cache.cached_mask(enc, ["a", "b", "b"]).tolist() == [False, True, True]


def test_cache_with_real_tiny_encoder_matches_direct_encoding(tiny, tmp_path: Path) -> None:
    enc = _encoder(tiny)
    cached = EmbeddingCache(tmp_path).get_or_encode(enc, TEXTS)
    np.testing.assert_allclose(cached, enc.encode(TEXTS), atol=1e-6)
    assert EmbeddingCache(tmp_path).cached_mask(enc, TEXTS).all()


# ------------------------------------------------------------------ real model


@pytest.mark.slow
def test_real_minilm_puts_related_movies_closer() -> None:
    enc = TextEncoder(TextEncoderConfig(batch_size=8))
    assert enc.dim == 384 and enc.name == "all-MiniLM-L6-v2"
    v = enc.encode(
        [
            "Toy Story (1995) | Animation, Children's, Comedy | 1995",
            "Toy Story 2 (1999) | Animation, Children's, Comedy | 1999",
            "Schindler's List (1993) | Drama, War | 1993",
        ]
    )
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    toy2, schindler = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert toy2 > 0.6 and schindler < 0.5 and toy2 > schindler + 0.2


def test_model_code_is_imported_on_a_daemon_thread_that_never_raises(monkeypatch):
    """A missing module ends the side thread quietly: the encoder's own import reports
    it where it is needed, with its message."""
    import sys

    from recsys_core.text import encoder

    monkeypatch.setattr(encoder, "_MODEL_MODULES", ("colorsys", "no_such_module_here", "this"))
    sys.modules.pop("colorsys", None)
    errors = []
    monkeypatch.setattr("threading.excepthook", lambda args: errors.append(args))
    thread = encoder.import_model_code_in_background()
    assert thread.daemon and thread.name == "import-text-model"
    thread.join(30)
    assert not thread.is_alive() and not errors
    assert "colorsys" in sys.modules and "this" not in sys.modules  # stopped at the failure


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_an_encoder_built_during_the_side_import_waits_for_it(tmp_path, delay):
    """Regression: transformers' lazy module is half set up while its __init__ runs on
    the side thread; an encoder built meanwhile got "cannot import name 'AutoModel'"
    (fine-tune failed on toy data, where the CLI reaches the encoder within 0.5 s). In a
    fresh interpreter, where transformers is not imported yet."""
    import subprocess
    import sys

    model, tok = _tiny_bert(tmp_path)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    code = (
        "import sys, time\n"
        "from recsys_core.text.encoder import TextEncoder, TextEncoderConfig, "
        "import_model_code_in_background\n"
        "assert 'transformers' not in sys.modules\n"
        "import_model_code_in_background()\n"
        f"time.sleep({delay})\n"
        f"TextEncoder(TextEncoderConfig(model_path={str(folder)!r}))\n"
        "print('built')\n"
    )
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "built", p.stderr[-1500:]
