"""Tiny seeded two-domain data with planted structure, shared by the engine tests.

Items belong to ``n_topics`` topics; each user prefers one topic and mostly interacts
with its items, in time order. The source and target catalogues share a few items (same
id) and most users (same id). ``toy_text`` gives each item a text vector near its topic's
centre, so text carries real signal, as titles and genres do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recsys_core.data.schema import Domain


def toy_domain(
    name: str,
    n_users: int,
    n_items: int,
    per_user: int,
    seed: int,
    item_prefix: str,
    user_prefix: str = "u",
    n_topics: int = 4,
    t0: int = 1_000_000,
) -> Domain:
    rng = np.random.default_rng(seed)
    topic_of_item = np.arange(n_items) % n_topics
    rows = []
    for u in range(n_users):
        fav = u % n_topics
        n = per_user + int(rng.integers(0, per_user))
        liked = np.flatnonzero(topic_of_item == fav)
        other = np.flatnonzero(topic_of_item != fav)
        k_fav = min(len(liked), round(n * 0.8))
        picks = np.concatenate(
            [rng.choice(liked, k_fav, replace=False), rng.choice(other, n - k_fav, replace=False)]
        )
        rng.shuffle(picks)
        for j, i in enumerate(picks):
            rows.append(
                (
                    f"{user_prefix}{u}",
                    f"{item_prefix}{i}",
                    float(rng.integers(1, 6)),
                    t0 + 1000 * j + u,
                )
            )
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    inter["timestamp"] = inter["timestamp"].astype(np.int64)
    items = pd.DataFrame(
        {
            "item_id": [f"{item_prefix}{i}" for i in range(n_items)],
            "title": [f"Item {item_prefix}{i}" for i in range(n_items)],
            "genres": [f"topic{t}" for t in topic_of_item],
        }
    )
    return Domain(name, inter, items, None, ("title", "genres"))


def toy_pair(seed: int = 0) -> tuple[Domain, Domain]:
    """(source, target): 60 users in both, target thinner; items s0..s59 and t0..t39,
    with s0..s7 also named t-side as shared ids 'x0'..'x7'."""
    src = toy_domain("source", 60, 60, 20, seed, "s", t0=500_000)
    tgt = toy_domain("target", 60, 40, 8, seed + 1, "t")
    # Share items: rename s0..s7 and t0..t7 to the same ids x0..x7 (same topic: i % 4).
    for d in (src, tgt):
        prefix = "s" if d is src else "t"
        m = {f"{prefix}{i}": f"x{i}" for i in range(8)}
        d.interactions["item_id"] = d.interactions["item_id"].replace(m)
        d.items["item_id"] = d.items["item_id"].replace(m)
    return src, tgt


def toy_text(item_ids: np.ndarray, dim: int = 16, seed: int = 0) -> torch.Tensor:
    """Unit text vectors near a topic centre; topic = trailing number % 4."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim))
    topics = np.array(
        [int("".join(ch for ch in str(i) if ch.isdigit()) or 0) % 4 for i in item_ids]
    )
    x = centres[topics] + 0.3 * rng.normal(size=(len(item_ids), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.tensor(x, dtype=torch.float32)


def demo_shaped_pair(seed: int = 0) -> tuple[Domain, Domain]:
    """(source, target) with the ML-1M -> ML-100K demo's awkward shape on top of
    :func:`toy_pair`'s shared ids x0..x7:

    * a source-only "remake" ``s_remake`` whose title equals the target title of the
      shared item x1 and which the source lists first (the demo's "101 Dalmatians" of
      1961 against the 1996 film, both titled "101 Dalmatians");
    * two target items with the same title ("Item t8" for t8 and t9).
    """
    src, tgt = toy_pair(seed)
    x1_title = tgt.items.loc[tgt.items["item_id"] == "x1", "title"].iloc[0]
    remake = pd.DataFrame(
        {
            "user_id": ["u0", "u4", "u8"],
            "item_id": "s_remake",
            "rating": 4.0,
            "timestamp": np.int64(400_000),  # before every other source row: listed first
        }
    )
    s_inter = pd.concat([remake, src.interactions], ignore_index=True)
    s_items = pd.concat(
        [
            src.items,
            pd.DataFrame({"item_id": ["s_remake"], "title": [x1_title], "genres": ["topic1"]}),
        ],
        ignore_index=True,
    )
    t_items = tgt.items.copy()
    t_items.loc[t_items["item_id"] == "t9", "title"] = "Item t8"
    return (
        Domain(src.name, s_inter, s_items, None, src.text_fields),
        Domain(tgt.name, tgt.interactions, t_items, None, tgt.text_fields),
    )


def skewed_domain(seed: int = 0, n_users: int = 150, n_items: int = 60) -> Domain:
    """An id-only target whose users pick 12 items each with Zipf popularity (popular
    items are not the low indices): popularity is informative, as on MovieLens."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1)
    p = p / p.sum()
    perm = rng.permutation(n_items)
    rows = []
    for u in range(n_users):
        picks = perm[rng.choice(n_items, 12, replace=False, p=p)]
        rows += [(f"u{u}", f"i{i}", 1.0, 1000 * j + u) for j, i in enumerate(picks)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Domain("target", inter, None, None, ())
