"""Recommendations from a stored run for a profile that was never trained on.

The two-tower scorer treats a new user exactly like a cold user with k support items:
the mean of the history's item vectors, dotted with every target item vector, plus the
item bias. Those vectors are stored with the run (``vectors_final``), so an analyst can
type a few titles and see what each run recommends at once, without retraining.
"Because you liked X": X is the history item whose vector is most cosine-similar to
the recommended item.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class NoVectorsError(ValueError):
    """The run's model keeps no item vectors (popularity, EASE, iALS)."""


def _stage(store, run_id: str) -> dict[str, np.ndarray]:
    arts = set(store.list_artifacts(run_id))
    names = [n for n in ("vectors_final", "vectors_text") if f"{n}.safetensors" in arts]
    if not names:
        strategy = store.get_run(run_id).get("strategy", "this run")
        raise NoVectorsError(
            f"{strategy} keeps no item vectors, so it cannot score a new profile here; "
            "pick a two-tower run (target-only, fine-tune, distill, adapt) or text-zero-shot"
        )
    return store.load_tensors(run_id, names[0])


def recommend_for_history(
    store,
    run_id: str,
    item_ids: list[str],
    k: int = 10,
    new_item_offset: float | None = None,
    prior: bool = True,
) -> pd.DataFrame:
    """Top-k target items for a new user who liked ``item_ids`` (original ids), scored as
    the run's evaluation scored a cold user with that many support items.

    ``prior``: blend in the popularity prior with the weight the run chose for this
    history length (:mod:`recsys_core.strategies.prior`). ``new_item_offset``: items
    without training interactions get ``offset * std`` of the user's scores added
    (:mod:`recsys_core.evaluation.exposure`); None keeps the offset the run chose on
    validation (0 for runs without an exposure curve).

    Returns a DataFrame [rank, item_id, text, score, because_item_id, because_text].
    """
    items = store.load_table(run_id, "items")  # joint items: item_id, domain, text
    vec = _stage(store, run_id)
    V = vec["items"].astype(np.float32)
    bias = vec.get("item_bias")
    hist = joint_rows(items, item_ids)
    unknown = [i for i, h in zip(item_ids, hist) if h < 0]
    if unknown:
        raise ValueError(f"unknown item id(s): {', '.join(map(str, unknown[:5]))}")
    n_target = int((items["domain"] != 1).sum())
    target = np.flatnonzero(items["domain"].to_numpy() != 1)[:n_target]
    if len(hist) == 0:
        u = np.zeros(V.shape[1], np.float32)
    else:
        u = V[hist].mean(0)
    if bias is None:
        # text zero-shot: cosine between normalised vectors
        Vn = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
        un = u / max(np.linalg.norm(u), 1e-12)
        scores = Vn[target] @ un
    else:
        scores = V[target] @ u + (bias[target] if bias is not None else 0.0)
        untrained = _calibrated_untrained(store, run_id, items, vec, target)
        if untrained is not None:
            import torch

            from recsys_core.models.two_tower import calibrate_untrained

            content = vec["content"][target] @ u + vec["content_bias"][target]
            scores = calibrate_untrained(
                torch.from_numpy(scores[None].astype(np.float32)),
                torch.from_numpy(content[None].astype(np.float32)),
                torch.from_numpy(untrained),
            )[0].numpy()
    info = (store.get_run(run_id).get("extra") or {}).get("info") or {}
    weights = info.get("popularity_prior") or {}
    if prior and weights and "train_count" in items.columns:
        from recsys_core.strategies.prior import PriorBlendScorer

        blend = PriorBlendScorer(_Scores(scores), items["train_count"].to_numpy()[target], weights)
        h = np.zeros((1, len(target)), np.float32)
        h[0, : len(hist)] = 1  # only the history's length matters to the blend
        import scipy.sparse as sp

        scores = blend.score(np.zeros(1, np.int64), sp.csr_matrix(h))[0].numpy()
    offset = chosen_offset(store, run_id) if new_item_offset is None else new_item_offset
    if offset and "trained" in items.columns:
        untrained = ~items["trained"].to_numpy(bool)[target]
        scores = scores + untrained * offset * float(np.std(scores, ddof=1))
    scores = scores.astype(np.float64)
    scores[np.isin(target, hist)] = -np.inf  # never recommend what the user gave
    order = np.argsort(-scores, kind="stable")[:k]
    rec = target[order]
    because = explain(V, hist, rec)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(rec) + 1),
            "item_id": items["item_id"].to_numpy()[rec],
            "text": items["text"].to_numpy()[rec],
            "score": scores[order],
            "because_item_id": [items["item_id"].iloc[b] if b >= 0 else None for b in because],
            "because_text": [items["text"].iloc[b] if b >= 0 else None for b in because],
        }
    )


def joint_rows(items: pd.DataFrame, item_ids: list[str]) -> np.ndarray:
    """Joint row of each id in ``item_ids`` (-1 when unknown), target rows first.

    items: the run's joint item table [item_id, domain, ...]. Runs stored before
    :func:`~recsys_core.data.scenario.build_scenario` gave same-id links priority over
    title links can list a shared id twice (once as a target item, once as a source-only
    item); the target row is the one a new user of the target domain means.
    """
    ids = items["item_id"].astype(str).to_numpy()
    is_source_only = items["domain"].to_numpy() == 1
    order = np.argsort(is_source_only, kind="stable")  # target rows first, else by row
    first = pd.Series(order, index=ids[order])
    first = first[~first.index.duplicated(keep="first")]
    return first.reindex([str(i) for i in item_ids]).fillna(-1).to_numpy(np.int64)


def _calibrated_untrained(
    store, run_id: str, items: pd.DataFrame, vec: dict, target
) -> np.ndarray | None:
    """bool (len(target),) of untrained target items when the run scored new items by the
    calibrated content path (as its evaluation did), else None."""
    if "content" not in vec or "trained" not in items.columns:
        return None  # a run saved before these were stored, or an id-only model
    run = store.get_run(run_id)
    chosen = ((run.get("extra") or {}).get("info") or {}).get("cold_item_scores") or {}
    setting = ((run.get("config") or {}).get("settings") or {}).get("cold_item_scores")
    calibrated = chosen.get("chosen") == "calibrated" or (not chosen and setting == "calibrated")
    if not calibrated:
        return None
    return ~items["trained"].to_numpy(bool)[target]


def explain(V: np.ndarray, history: np.ndarray, recs: np.ndarray) -> np.ndarray:
    """For each recommended joint item, the history item with the most similar vector.

    V: (n_items, d) item vectors; history, recs: joint item indices. Returns (len(recs),)
    joint indices (-1 when the history is empty).
    """
    if len(history) == 0:
        return np.full(len(recs), -1, np.int64)
    Vn = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    sim = Vn[recs] @ Vn[history].T  # (R, H)
    return np.asarray(history)[sim.argmax(1)]


def explain_run(store, run_id: str, history_items: np.ndarray, rec_items: np.ndarray) -> np.ndarray:
    """ "Because you liked" for a stored run: joint indices in, joint indices out (-1 if no vectors)."""
    try:
        V = _stage(store, run_id)["items"]
    except NoVectorsError:
        return np.full(len(rec_items), -1, np.int64)
    return explain(V, np.asarray(history_items, np.int64), np.asarray(rec_items, np.int64))


def chosen_offset(store, run_id: str) -> float:
    """The new-item exposure offset a run kept on validation (0 when it has none)."""
    info = (store.get_run(run_id).get("extra") or {}).get("info") or {}
    return float((info.get("exposure") or {}).get("chosen_offset") or 0.0)


class _Scores:
    """A fixed score row as a Scorer (the blend of a saved run's scores)."""

    def __init__(self, row: np.ndarray) -> None:
        import torch

        self.row = torch.as_tensor(np.asarray(row, dtype=np.float32))[None, :]

    def score(self, users, history):
        return self.row.expand(len(users), -1).clone()
