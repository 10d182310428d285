"""A scenario: a source domain S, a target domain T, what links them, and T's split.

Cross-domain models work in one *joint* index space so that a shared item or user is
one row everywhere (the pretrained source embedding of a shared item *is* its target
embedding at initialisation):

* joint items: the target catalogue first (indices ``0..n_target_items-1``, identical to
  ``split.item_map``), then source-only items;
* joint users: the target users first (identical to ``split.user_map``), then source-only.

Items are linked by identical id, else by normalised title (lower case, punctuation and
spaces collapsed); users by identical id. The text encoder links everything else.

Time honesty (docs/design.md, "Time honesty"): with
``source_history="before-target"`` (the default) a shared user's source interactions are
cut at the moment the target evaluation starts for that user: a cold user keeps only what
they did before their first target interaction; a warm user keeps only what precedes their
last training interaction. ``"all"`` keeps everything, the setting of most published
cross-domain results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.schema import ITEM, TIME, USER, Domain, IdMap
from recsys_core.data.split_types import Split, SplitConfig
from recsys_core.data.splits import make_split
from recsys_core.errors import DataWarning

SourceHistory = Literal["before-target", "all"]


def normalise_title(s: pd.Series) -> pd.Series:
    """'The Matrix (1999)' and 'the  matrix(1999)' -> 'the matrix 1999'."""
    return (
        s.astype("string")
        .str.lower()
        .str.replace(r"[^\w]+", " ", regex=True)
        .str.strip()
        .fillna("")
    )


@dataclass(frozen=True)
class Links:
    """What connects S and T (counts over the target side)."""

    shared_users: int
    shared_items_by_id: int
    shared_items_by_title: int
    target_items: int
    target_users: int
    text_available: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Scenario:
    """Everything a strategy needs, already indexed.

    Attributes:
        split: the target split (target indices == joint indices for targets).
        item_ids: object array (n_joint_items,) original ids of joint items.
        item_domain: int8 array (n_joint_items,): 0 target only, 1 source only, 2 both.
        user_ids: object array (n_joint_users,).
        source_train: DataFrame (user, item) in joint indices: source interactions usable
            for training, already cut by ``source_history``.
        texts: list (n_joint_items,) of encoder texts ("title | genres | year").
    """

    name: str
    target: Domain
    source: Domain | None
    split: Split
    item_ids: np.ndarray
    item_domain: np.ndarray
    user_ids: np.ndarray
    source_train: pd.DataFrame
    texts: list[str]
    links: Links | None
    source_history: SourceHistory = "before-target"
    description: str = ""
    constructed: bool = False
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_target_items(self) -> int:
        return self.split.n_items

    @property
    def n_target_users(self) -> int:
        return self.split.n_users

    @property
    def has_source(self) -> bool:
        return self.source is not None and len(self.source_train) > 0

    def source_matrix(self) -> sp.csr_matrix:
        """(n_joint_users, n_joint_items) binary csr of usable source interactions."""
        st = self.source_train
        return sp.csr_matrix(
            (np.ones(len(st), np.float32), (st["user"].to_numpy(), st["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )

    def fingerprint(self) -> str:
        """Hash of the data and every setting that shapes what a model sees.

        Computed once per scenario (it hashes every interaction, and each cache key of a
        batch of strategies asks for it)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        h.update(self.target.fingerprint().encode())
        if self.source is not None:
            h.update(self.source.fingerprint().encode())
        h.update(json.dumps(self.split.config.to_dict(), sort_keys=True, default=str).encode())
        h.update(self.source_history.encode())
        fp = h.hexdigest()[:16]
        # frozen dataclass: memoise through __dict__ (the fields never change)
        self.__dict__["_fingerprint"] = fp
        return fp


def _item_titles(domain: Domain) -> pd.Series:
    """item_id -> title (falls back to the id) for title-based linking."""
    ids = pd.Series(pd.unique(domain.interactions[ITEM]), dtype=object)
    if domain.items is not None and "title" in domain.items.columns:
        t = domain.items.drop_duplicates(ITEM).set_index(ITEM)["title"]
        titles = t.reindex(ids).astype(object)
        titles = titles.where(titles.notna(), ids.to_numpy())
        return pd.Series(titles.to_numpy(), index=ids.to_numpy())
    return pd.Series(ids.to_numpy(), index=ids.to_numpy())


def build_scenario(
    target: Domain,
    source: Domain | None = None,
    split_config: SplitConfig = SplitConfig(),
    *,
    source_history: SourceHistory = "before-target",
    name: str = "custom",
    description: str = "",
    constructed: bool = False,
    split: Split | None = None,
) -> Scenario:
    """Split the target, index both domains jointly and apply the source-history cut.

    ``split``: use this ready-made split of the target (an imported one) instead of
    making one from ``split_config``.
    """
    if source_history not in ("before-target", "all"):
        raise ValueError(f"source_history must be 'before-target' or 'all', not {source_history!r}")
    if split is None:
        split = make_split(target, split_config)
    t_items, t_users = split.item_map.ids, split.user_map.ids
    n_ti = len(t_items)
    item_domain = np.zeros(n_ti, np.int8)
    item_ids = list(t_items)
    user_ids = list(t_users)
    source_train = pd.DataFrame({"user": np.zeros(0, np.int64), "item": np.zeros(0, np.int64)})
    links = None
    if source is not None:
        s_df = source.interactions
        s_items = pd.unique(s_df[ITEM])
        # Link source items to target items: same id first, then same normalised title.
        t_index = pd.Index(t_items)
        by_id = t_index.get_indexer(s_items)
        t_titles = normalise_title(_item_titles(target).reindex(t_items))
        s_titles = normalise_title(_item_titles(source).reindex(s_items))
        title_to_t = pd.Series(np.arange(n_ti), index=t_titles.to_numpy())
        title_to_t = title_to_t[~title_to_t.index.duplicated() & (title_to_t.index != "")]
        by_title = pd.Index(title_to_t.index).get_indexer(s_titles.to_numpy())
        by_title = np.where(by_title >= 0, title_to_t.to_numpy()[np.maximum(by_title, 0)], -1)
        # A same-id link always wins: a title match may not claim a target item that a
        # source item carries under its own id. (On the ML-1M -> ML-100K demo, titles have
        # no year, so "101 Dalmatians" of 1961 used to claim the 1996 film before the
        # source's own "101 Dalmatians (1996)" came, which then joined as a second joint
        # item with the same id.)
        by_title = np.where(np.isin(by_title, by_id[by_id >= 0]), -1, by_title)
        link = np.where(by_id >= 0, by_id, by_title)
        # Two source items mapping to one target item by title (title collisions): keep
        # the first. Ids are unique, so only title links can collide here.
        dup = pd.Series(link).duplicated() & (link >= 0)
        link = np.where(dup.to_numpy(), -1, link)
        only_src = link < 0
        s_joint = np.where(only_src, n_ti + np.cumsum(only_src) - 1, link)
        item_domain[link[link >= 0]] = 2
        item_ids += list(s_items[only_src])
        item_domain = np.concatenate([item_domain, np.ones(int(only_src.sum()), np.int8)])
        s_item_index = pd.Index(s_items)

        s_users = pd.unique(s_df[USER])
        u_by_id = pd.Index(t_users).get_indexer(s_users)
        only_src_u = u_by_id < 0
        n_tu = len(t_users)
        u_joint = np.where(only_src_u, n_tu + np.cumsum(only_src_u) - 1, u_by_id)
        user_ids += list(s_users[only_src_u])
        su = u_joint[pd.Index(s_users).get_indexer(s_df[USER])]
        si = s_joint[s_item_index.get_indexer(s_df[ITEM])]
        keep = np.ones(len(s_df), dtype=bool)
        split_has_time = len(split.first_time) == len(t_users) and bool(
            (split.first_time >= 0).any()
        )
        if (
            source_history == "before-target"
            and TIME in s_df.columns
            and target.has_time
            and split_has_time
        ):
            cutoff = np.full(len(user_ids), np.iinfo(np.int64).max, np.int64)
            last_train = split.train.groupby("user")[TIME].max()
            cutoff[last_train.index.to_numpy()] = last_train.to_numpy() + 1
            # Cold users: only what happened before their first target interaction.
            cutoff[split.cold_users] = split.first_time[split.cold_users]
            keep = s_df[TIME].to_numpy(np.int64) < cutoff[su]
        source_train = pd.DataFrame({"user": su[keep], "item": si[keep]}).drop_duplicates()
        links = Links(
            shared_users=int((~only_src_u).sum()),
            shared_items_by_id=int((by_id >= 0).sum()),
            shared_items_by_title=int(((by_id < 0) & (link >= 0)).sum()),
            target_items=n_ti,
            target_users=len(t_users),
            text_available=bool(target.text_fields) and bool(source.text_fields),
        )
    item_ids_arr = np.array(item_ids, dtype=object)
    texts = target.item_texts(item_ids_arr[:n_ti])
    if source is not None:
        texts += source.item_texts(item_ids_arr[n_ti:])
    return Scenario(
        name=name,
        target=target,
        source=source,
        split=split,
        item_ids=item_ids_arr,
        item_domain=item_domain,
        user_ids=np.array(user_ids, dtype=object),
        source_train=source_train.reset_index(drop=True),
        texts=texts,
        links=links,
        source_history=source_history,
        description=description,
        constructed=constructed,
    )


SPLIT_WARNING_CODES = frozenset({"random_order", "cold_segments_dropped", "fewer_cold_users"})
"""Codes of :func:`scenario_warnings` about the split this scenario made; they do not
apply once an imported split replaces it (``run --split``)."""


def scenario_has_text(scn: Scenario) -> bool:
    """Whether either domain has item text fields to encode."""
    return bool(scn.target.text_fields) or (scn.source is not None and bool(scn.source.text_fields))


def scenario_warnings(scn: Scenario) -> list[DataWarning]:
    """What a run on ``scn`` should say before its numbers, so that none of them misleads
    in silence.

    * the data warnings of both domains, as ``transfer-lab validate`` shows them (items
      without a row in the item table, single-interaction users, ...), cleaning notes
      of the demo loader excepted;
    * ``random_order``: the target has no timestamps, so the time-ordered protocols
      (cold-start, temporal) order each user's interactions at random (seeded);
    * ``source_history_uncut``: "before-target" needs timestamps in both domains; without
      them every source interaction is used, as with "all";
    * ``cold_segments_dropped`` / ``fewer_cold_users``: no user (or fewer than asked) has
      the ``max(cold_ks) + 1`` interactions a cold user needs, so the cold-user segments
      are missing from the results (or smaller).
    """
    from recsys_core.errors import CLEANING_CODES

    out: list[DataWarning] = []
    for dom in (scn.target, scn.source):
        if dom is None:
            continue
        for w in dom.warnings:
            if w.code not in CLEANING_CODES:
                out.append(replace(w, message=f"{dom.name}: {w.message}"))
    cfg = scn.split.config
    if not scn.target.has_time and cfg.protocol in ("cold-start", "temporal"):
        out.append(
            DataWarning(
                "random_order",
                f"the target has no timestamps, so the {cfg.protocol} protocol orders each "
                f"user's interactions at random (seed {cfg.seed}): the held-out 'latest' "
                "interactions"
                + (" and cold users' 'first' ones" if cfg.has_cold_segments else "")
                + " are random ones; add a timestamp column, or choose the recbole protocol, "
                "which is random by design",
            )
        )
    if (
        scn.source is not None
        and scn.source_history == "before-target"
        and not (scn.target.has_time and scn.source.has_time)
    ):
        which = "the target" if not scn.target.has_time else "the source"
        out.append(
            DataWarning(
                "source_history_uncut",
                f"{which} has no timestamps, so source histories cannot be cut at each "
                "user's first target interaction: every source interaction is used (as with "
                "source history 'all')",
            )
        )
    if cfg.has_cold_segments and cfg.cold_user_frac > 0:
        asked = round(cfg.cold_user_frac * scn.split.n_users)
        got = len(scn.split.cold_users)
        need = max(cfg.cold_ks) + 1
        longest = int(scn.target.interactions.groupby(USER).size().max())
        if asked and not got:
            segs = ", ".join(f"cold_users_k{k}" for k in cfg.cold_ks)
            out.append(
                DataWarning(
                    "cold_segments_dropped",
                    f"no user has the {need} interactions a cold user needs with support "
                    f"sizes up to {max(cfg.cold_ks)} (the longest history has {longest}), so "
                    f"the segments {segs} were dropped; choose smaller support sizes "
                    "(--cold-ks)",
                )
            )
        elif got < asked:
            out.append(
                DataWarning(
                    "fewer_cold_users",
                    f"only {got} of the {asked} cold users asked for have the {need} "
                    f"interactions a cold user needs with support sizes up to "
                    f"{max(cfg.cold_ks)}; the cold-user segments hold {got} users",
                )
            )
    return out


__all__ = [
    "SPLIT_WARNING_CODES",
    "IdMap",
    "Links",
    "Scenario",
    "build_scenario",
    "normalise_title",
    "scenario_warnings",
]
