"""The split of a target domain: the contract between data, training and evaluation.

All frames hold contiguous indices (``user``, ``item``: int64) into ``user_map`` and
``item_map``; original ids are recovered with ``IdMap.decode``.

Segments (docs/design.md, "Domain words" and "Evaluation"):

* warm users: users with training interactions; tested on ``test`` rows with
  ``cold_user == False`` (cold items included, full catalogue ranking).
* cold users: users held out of training entirely. For each k in ``config.cold_ks`` the
  user reveals its first k interactions by time (``support[k]``) and is tested on the
  interactions after the first ``max(cold_ks)`` ones, so every k is scored on the same
  test items and the few-shot curve isolates the effect of k.
* cold items: items with no training interaction at all; every interaction of a warm
  user with them is a test row with ``cold_item == True``.
* validation cold items (``config.valid_cold_item_frac``): held out of training the same
  way, but their rows from warm users are ``valid`` rows; they have no test rows. They
  are untrained too, so ``cold_items`` lists them as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
import pandas as pd

from recsys_core.data.schema import IdMap

Protocol = Literal["cold-start", "recbole", "temporal"]


@dataclass(frozen=True)
class SplitConfig:
    """How the target domain is split. Validates itself on construction."""

    protocol: Protocol = "cold-start"
    """cold-start: temporal per-user split plus cold users and cold items (the default);
    recbole: random order 8:1:1 per user, no cold segments (checks against published
    tables); temporal: last interactions to test, no cold segments."""
    valid_frac: float = 0.1
    """fraction of each warm user's interactions (latest by time) used for validation."""
    test_frac: float = 0.1
    """fraction of each warm user's interactions (the latest) used for test."""
    cold_user_frac: float = 0.1
    """fraction of eligible users held out of training as cold users."""
    cold_ks: tuple[int, ...] = (0, 1, 3, 5)
    """support sizes revealed by cold users at test time."""
    cold_item_frac: float = 0.05
    """fraction of items held out of training as cold items (their rows are test rows)."""
    valid_cold_item_frac: float | None = None
    """fraction of items held out of training whose rows become *validation* rows (None:
    the same as cold_item_frac). Validation then holds new items in the same share as
    test does, so early stopping and every choice made on validation (a fusion weight,
    how new items are scored) see them too; without them validation would reward never
    recommending a new item (DropoutNet, Volkovs et al. 2017, splits items the same way)."""
    min_rating: float | None = None
    """if set, only interactions with rating >= min_rating count as positives."""
    k_core: int = 0
    """iteratively drop users and items with fewer interactions (0 = off)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in ("cold-start", "recbole", "temporal"):
            raise ValueError(
                f"protocol must be 'cold-start', 'recbole' or 'temporal', not {self.protocol!r}"
            )
        for name in ("valid_frac", "test_frac"):
            v = getattr(self, name)
            if not 0.0 < v < 0.5:
                raise ValueError(f"{name} must be between 0 and 0.5 (exclusive), got {v}")
        if not 0.0 <= self.cold_user_frac < 0.9:
            raise ValueError(f"cold_user_frac must be in [0, 0.9), got {self.cold_user_frac}")
        if not 0.0 <= self.cold_item_frac < 0.5:
            raise ValueError(f"cold_item_frac must be in [0, 0.5), got {self.cold_item_frac}")
        if self.valid_cold_item_frac is None:
            object.__setattr__(self, "valid_cold_item_frac", self.cold_item_frac)
        if not 0.0 <= self.valid_cold_item_frac < 0.5:
            raise ValueError(
                f"valid_cold_item_frac must be in [0, 0.5), got {self.valid_cold_item_frac}"
            )
        if self.cold_item_frac + self.valid_cold_item_frac >= 0.5:
            raise ValueError(
                "cold_item_frac + valid_cold_item_frac must stay below 0.5, got "
                f"{self.cold_item_frac} + {self.valid_cold_item_frac}"
            )
        if not self.cold_ks or any(
            (not isinstance(k, int)) or k < 0 or k > 50 for k in self.cold_ks
        ):
            raise ValueError(f"cold_ks must be integers between 0 and 50, got {self.cold_ks}")
        if len(set(self.cold_ks)) != len(self.cold_ks):
            raise ValueError(f"cold_ks has repeated values: {self.cold_ks}")
        if self.k_core < 0:
            raise ValueError(f"k_core must be >= 0, got {self.k_core}")
        object.__setattr__(self, "cold_ks", tuple(sorted(self.cold_ks)))

    @property
    def has_cold_segments(self) -> bool:
        return self.protocol == "cold-start"

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Split:
    """A split of the target domain into train / valid / test with segment labels.

    Attributes:
        user_map, item_map: index <-> original id for the target domain.
        train: DataFrame (user, item, timestamp) of warm users' training interactions,
            no cold item inside.
        valid: DataFrame (user, item) of warm users' validation interactions.
        test: DataFrame (user, item, cold_user: bool, cold_item: bool).
        support: k -> DataFrame (user, item) of cold users' first k interactions.
        cold_users: int64 array of user indices held out of training.
        cold_items: int64 array of item indices held out of training.
        first_time: int64 array (n_users,) of each user's first target timestamp (or -1),
            used to cut cross-domain histories at the honest moment.
        config_inferred: True for a split imported from a folder without our split.json
            (another tool's): only ``config.protocol`` and ``config.cold_ks`` were read
            from its files; the other settings are defaults, not what made the split,
            and an export says so instead of recording them.
    """

    config: SplitConfig
    user_map: IdMap
    item_map: IdMap
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    support: dict[int, pd.DataFrame] = field(default_factory=dict)
    cold_users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    notes: tuple[str, ...] = ()
    """what was done to the split beyond its files (e.g. a validation share carved out of
    an imported train file), shown with every run made on it."""
    config_inferred: bool = False

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def trained_items(self) -> np.ndarray:
        """bool (n_items,): items with at least one training interaction."""
        out = np.zeros(self.n_items, dtype=bool)
        out[self.train["item"].to_numpy(np.int64)] = True
        return out

    def valid_cold_items(self) -> np.ndarray:
        """int64 sorted indices of the validation cold items: rows in valid, none in train."""
        items = np.unique(self.valid["item"].to_numpy(np.int64))
        return items[~self.trained_items()[items]]

    @property
    def warm_items(self) -> np.ndarray:
        """bool (n_items,): item has at least one training interaction."""
        m = np.zeros(self.n_items, dtype=bool)
        m[self.train["item"].to_numpy()] = True
        return m

    @property
    def warm_users(self) -> np.ndarray:
        """bool (n_users,): user has at least one training interaction."""
        m = np.zeros(self.n_users, dtype=bool)
        m[self.train["user"].to_numpy()] = True
        return m

    def segment_sizes(self) -> pd.DataFrame:
        """One row per segment: users and test interactions (for previews)."""
        t = self.test
        rows = [("warm_users", t.loc[~t.cold_user, "user"].nunique(), int((~t.cold_user).sum()))]
        for k in self.support:
            rows.append(
                (f"cold_users_k{k}", t.loc[t.cold_user, "user"].nunique(), int(t.cold_user.sum()))
            )
        if len(self.cold_items):
            ci = t.cold_item & ~t.cold_user
            rows.append(("cold_items", t.loc[ci, "user"].nunique(), int(ci.sum())))
        return pd.DataFrame(rows, columns=["segment", "users", "test_interactions"])
