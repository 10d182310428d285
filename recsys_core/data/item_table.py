"""Item tables for display: one row per joint item with its title, genre, domain,
popularity bucket and cold status.

The Embeddings and Users pages colour maps and label lists with these columns; they are
computed here, from the scenario and its split, so the pages only render them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.scenario import Scenario

DOMAIN_NAMES = {0: "target", 1: "source", 2: "both"}
"""``Scenario.item_domain`` codes -> the label shown."""


def item_frame(scn: Scenario) -> pd.DataFrame:
    """One row per joint item of a scenario: id, title, first genre, domain, training
    popularity bucket and cold status (for colouring maps and labelling lists).

    Returns:
        DataFrame of shape (n_joint_items, 7), row i = joint item index i, columns:
        item_id, title, genre, domain (target/source/both), popularity ("top 10%",
        "10-50%", "bottom 50%" of training interactions, or "never in training"), cold
        status ("warm item", "cold item", "source only") and train_count (target train
        plus usable source interactions).
    """
    ids = np.asarray(scn.item_ids, dtype=object)
    n, nt = len(ids), scn.n_target_items
    titles = pd.Series(ids.astype(str), dtype=object)
    genres = pd.Series(["(none)"] * n, dtype=object)
    for dom, sl in ((scn.target, slice(0, nt)), (scn.source, slice(nt, n))):
        if dom is None or dom.items is None:
            continue
        table = dom.items.drop_duplicates("item_id").set_index("item_id")
        part = pd.Index(ids[sl])
        if "title" in table.columns:
            t = table["title"].reindex(part)
            titles.iloc[sl] = np.where(
                t.notna() & (t.astype(str) != ""), t.astype(str), ids[sl].astype(str)
            )
        if "genres" in table.columns:
            g = table["genres"].reindex(part).fillna("").astype(str)
            first = g.str.split(r"[,|]", regex=True).str[0].str.strip()
            genres.iloc[sl] = np.where(first != "", first, "(none)")
    # Source items that are also target items carry the target title; for linked items
    # the target row is the one shown.
    domain = pd.Series(scn.item_domain).map(DOMAIN_NAMES).to_numpy()
    counts = np.zeros(n, dtype=np.int64)
    tr = scn.split.train["item"].to_numpy()
    np.add.at(counts, tr, 1)
    if scn.has_source:
        np.add.at(counts, scn.source_train["item"].to_numpy(), 1)
    pop = np.full(n, "never in training", dtype=object)
    seen = counts > 0
    if seen.any():
        ranks = pd.Series(counts[seen]).rank(pct=True, ascending=False).to_numpy()
        pop[seen] = np.where(
            ranks <= 0.1, "top 10%", np.where(ranks <= 0.5, "10-50%", "bottom 50%")
        )
    cold = np.where(np.arange(n) < nt, "warm item", "source only").astype(object)
    cold[np.asarray(scn.split.cold_items, dtype=np.int64)] = "cold item"
    return pd.DataFrame(
        {
            "item_id": ids,
            "title": titles.to_numpy(),
            "genre": genres.to_numpy(),
            "domain": domain,
            "popularity": pop,
            "cold status": cold,
            "train_count": counts,
        }
    )


def item_frame_from_artifact(items: pd.DataFrame) -> pd.DataFrame:
    """The same columns from a run's ``items`` artifact when its scenario is not loaded
    (title and genre read from the "title | genres | year" text; no popularity).

    Args:
        items: the artifact's frame with columns item_id, text, domain (0/1/2).
    """
    parts = items["text"].astype(str).str.split(" | ", regex=False)
    title = parts.str[0]
    genre = parts.str[1].fillna("(none)").str.split(",").str[0].str.strip()
    return pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str).to_numpy(),
            "title": title.to_numpy(),
            "genre": genre.replace("", "(none)").to_numpy(),
            "domain": items["domain"].map(DOMAIN_NAMES).to_numpy(),
            "popularity": "unknown",
            "cold status": np.where(items["domain"].to_numpy() == 1, "source only", "unknown"),
            "train_count": 0,
        }
    )
