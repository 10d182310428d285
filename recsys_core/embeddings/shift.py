"""How far embeddings moved between the stages of a run, in numbers an analyst can read.

A "stage" is one set of vectors with their ids: the source model, the target-only model,
the model after transfer. Every measure here takes vectors as numpy arrays of shape
(n, d), one row per id, and works in float64 internally whatever the input dtype.
Measures that compare two stages need the rows of both arrays to describe the same ids in
the same order: :func:`align_by_ids` does that.

Measures:

* :func:`linear_cka`: do two models arrange the items the same way? (Kornblith et al.
  2019, "Similarity of Neural Network Representations Revisited").
* :func:`procrustes_drift`: per-item cosine distance after the best rotation of one space
  onto the other (orthogonal Procrustes), i.e. how much each item moved *relative to the
  others*.
* :func:`knn_overlap`: per-item share of the k nearest neighbours kept.
* :func:`mmd_unbiased`: are two sets of vectors (source items vs target items) drawn from
  the same distribution? (Gretton et al. 2012, "A Kernel Two-Sample Test"). The one MMD
  the product reports; the adapt strategy's training loss is a different, biased
  quantity (:func:`recsys_core.strategies.alignment.mmd_loss`).
* :func:`alignment`, :func:`uniformity`: the two properties of normalised embeddings of
  Wang & Isola 2020, "Understanding Contrastive Representation Learning through Alignment
  and Uniformity on the Hypersphere".
* :func:`shift_report`: all of the above for every pair of stages, as one table with a
  plain sentence per measure.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

DomainLabel = Literal["source", "target"]

# Rows whose norm is below this are treated as zero vectors (cosine undefined): they are
# kept as zeros rather than blown up into noise by a division.
_EPS = 1e-12

# Default multiples of the median-heuristic bandwidth for the MMD kernel. A sum of RBF
# kernels over a range of widths is less sensitive to the one width being wrong than a
# single kernel (Gretton et al. 2012 use the median heuristic; multi-kernel sums as in
# Long et al. 2015, DAN).
_MMD_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)


def _as_matrix(X: np.ndarray, name: str = "X") -> np.ndarray:
    """Float64 copy-if-needed of a 2-D array, with a clear error otherwise."""
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or infinite values; drop or fix those rows first")
    return A


def _check_paired(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    A, B = _as_matrix(X, "X"), _as_matrix(Y, "Y")
    if A.shape[0] != B.shape[0]:
        raise ValueError(
            f"X and Y must have the same rows (one per id, same order), got {A.shape[0]} and "
            f"{B.shape[0]} rows; use align_by_ids first"
        )
    if A.shape[0] < 2:
        raise ValueError(f"need at least 2 rows to compare two spaces, got {A.shape[0]}")
    return A, B


def _normalize_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero. Shape (n, d)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, _EPS)


def align_by_ids(
    ids_a: Sequence[Hashable] | np.ndarray,
    X_a: np.ndarray,
    ids_b: Sequence[Hashable] | np.ndarray,
    X_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ids present in both stages, with rows in the same order.

    Args:
        ids_a: ids of the rows of ``X_a``, shape (n_a,), no duplicates.
        X_a: vectors of stage a, shape (n_a, d_a).
        ids_b: ids of the rows of ``X_b``, shape (n_b,), no duplicates.
        X_b: vectors of stage b, shape (n_b, d_b); d_b may differ from d_a.

    Returns:
        ``(common_ids, A, B)``: ``common_ids`` an object array of shape (m,) in the order
        they appear in ``ids_a``; ``A`` float64 (m, d_a) and ``B`` float64 (m, d_b), row i
        of both describing ``common_ids[i]``.
    """
    A_all, B_all = _as_matrix(X_a, "X_a"), _as_matrix(X_b, "X_b")
    ia = pd.Index(np.asarray(ids_a, dtype=object))
    ib = pd.Index(np.asarray(ids_b, dtype=object))
    for name, idx, M in (("ids_a", ia, A_all), ("ids_b", ib, B_all)):
        if len(idx) != M.shape[0]:
            raise ValueError(f"{name} has {len(idx)} ids but its matrix has {M.shape[0]} rows")
        if idx.has_duplicates:
            dup = idx[idx.duplicated()].unique()[:5].tolist()
            raise ValueError(f"{name} has repeated ids (e.g. {dup}); each row needs its own id")
    pos_b = ib.get_indexer(ia)
    keep = np.flatnonzero(pos_b >= 0)
    return ia.to_numpy()[keep], A_all[keep], B_all[pos_b[keep]]


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear centred kernel alignment between two representations of the same rows.

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred
    Xc, Yc (Kornblith et al. 2019, eq. for linear CKA in feature space). It is 1 for
    identical arrangements, invariant to orthogonal transforms and isotropic scaling of
    either side (but not to arbitrary invertible linear maps, which is what makes it
    discriminative when n > d), and defined when the dimensions differ. For independent
    random representations it is close to 0 (about d/n for n >> d).

    Args:
        X: shape (n, d_x), row i one id.
        Y: shape (n, d_y), row i the same id.

    Returns:
        A float in [0, 1]; NaN when either side has no variance at all.
    """
    A, B = _check_paired(X, Y)
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    # Feature-space form: d x d products instead of n x n Gram matrices, so the cost is
    # O(n d^2) and memory O(d^2) even for 100k items.
    cross = np.linalg.norm(B.T @ A, "fro") ** 2
    norm_a = np.linalg.norm(A.T @ A, "fro")
    norm_b = np.linalg.norm(B.T @ B, "fro")
    if norm_a < _EPS or norm_b < _EPS:
        return float("nan")
    return float(np.clip(cross / (norm_a * norm_b), 0.0, 1.0))


def _pad_to(A: np.ndarray, d: int) -> np.ndarray:
    if A.shape[1] == d:
        return A
    return np.hstack([A, np.zeros((A.shape[0], d - A.shape[1]))])


def procrustes_drift(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-row cosine distance between X and Y after rotating X onto Y.

    Both sides are centred and scaled to unit Frobenius norm, the smaller dimension is
    zero-padded to the larger, and the orthogonal matrix R minimising ||X R - Y||_F is
    found by SVD (orthogonal Procrustes, Schönemann 1966; reflections allowed). A model
    whose space is merely rotated, shifted or rescaled therefore shows no drift: what is
    left is how each item moved relative to the others.

    Args:
        X: shape (n, d_x), row i one id (e.g. the source model).
        Y: shape (n, d_y), row i the same id (e.g. after transfer).

    Returns:
        float64 array of shape (n,): 1 - cos(x_i R, y_i), in [0, 2]; 0 means item i sits
        in the same direction (relative to the centre) in both spaces. A row that is
        exactly at the centre of either space gets 1 (no direction to compare).
    """
    A, B = _check_paired(X, Y)
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    A = A / max(np.linalg.norm(A), _EPS)
    B = B / max(np.linalg.norm(B), _EPS)
    d = max(A.shape[1], B.shape[1])
    A, B = _pad_to(A, d), _pad_to(B, d)
    U, _, Vt = np.linalg.svd(A.T @ B, full_matrices=False)
    A_rot = A @ (U @ Vt)
    cos = np.sum(_normalize_rows(A_rot) * _normalize_rows(B), axis=1)
    return np.clip(1.0 - cos, 0.0, 2.0)


def _knn_indices(Xn: np.ndarray, k: int) -> np.ndarray:
    """k nearest neighbours by cosine of each row of row-normalised Xn, self excluded.

    Computed in blocks of rows so memory stays at about 128 MB (2^24 similarities)
    rather than O(n^2). Returns int64 (n, k), neighbours unordered.
    """
    n = Xn.shape[0]
    block = max(1, min(n, 2**24 // max(n, 1)))
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        sims = Xn[start:stop] @ Xn.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        out[start:stop] = np.argpartition(sims, n - k, axis=1)[:, n - k :]
    return out


def _overlap_from_indices(na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """Per-row share of shared neighbours between two (n, k) index arrays."""
    # Rows of na/nb hold distinct indices, so the overlap per row is the number of
    # duplicates in the concatenation: sort, then count equal neighbours.
    both = np.sort(np.concatenate([na, nb], axis=1), axis=1)
    return np.sum(both[:, 1:] == both[:, :-1], axis=1) / na.shape[1]


def knn_overlap(X: np.ndarray, Y: np.ndarray, k: int = 10) -> np.ndarray:
    """Share of each row's k nearest neighbours (cosine) that are the same in both spaces.

    Args:
        X: shape (n, d_x), row i one id.
        Y: shape (n, d_y), row i the same id.
        k: neighbours per row (the row itself excluded); capped at n - 1.

    Returns:
        float64 array of shape (n,) with values in {0, 1/k, ..., 1}: 1 means the item kept
        all its neighbours, 0 none. Independent random spaces give about k / (n - 1).
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    A, B = _check_paired(X, Y)
    k = int(min(k, A.shape[0] - 1))
    return _overlap_from_indices(
        _knn_indices(_normalize_rows(A), k), _knn_indices(_normalize_rows(B), k)
    )


def _sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, shape (len(A), len(B)), clipped at 0."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d2, 0.0)


def _subsample(X: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    if X.shape[0] <= max_points:
        return X
    return X[np.sort(rng.choice(X.shape[0], size=max_points, replace=False))]


# Subsample size and seed of every reported MMD: the Embeddings page and adapt's
# "MMD before/after" use the same ones, so the two figures agree on the same vectors.
REPORT_MAX_POINTS = 2000
REPORT_SEED = 0


def mmd_unbiased(
    X: np.ndarray,
    Y: np.ndarray,
    bandwidths: Sequence[float] | None = None,
    max_points: int = REPORT_MAX_POINTS,
    seed: int = REPORT_SEED,
) -> float:
    """Unbiased squared maximum mean discrepancy between two samples (Gretton et al. 2012).

    The kernel is the mean of RBF kernels exp(-||x - y||^2 / (2 s^2)) over the bandwidths
    s; a mean rather than a plain sum keeps the value on the same scale (at most 2)
    whatever the number of kernels. The unbiased estimator drops the i == j terms, so it
    is about 0 (and may be slightly negative) when both samples come from one
    distribution.

    Args:
        X: shape (n_x, d), e.g. source-domain item vectors.
        Y: shape (n_y, d), e.g. target-domain item vectors of the same model; rows need
            not be paired and n_x may differ from n_y.
        bandwidths: kernel widths s in the units of the vectors. None: the median pairwise
            distance of the pooled sample (median heuristic) times 0.25, 0.5, 1, 2, 4.
        max_points: each sample is randomly subsampled to at most this many rows, which
            keeps the cost at O(max_points^2 d).
        seed: seed of the subsampling.

    Returns:
        MMD^2 as a float: about 0 for the same distribution, larger for more shift.
    """
    A, B = _as_matrix(X, "X"), _as_matrix(Y, "Y")
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"MMD compares two samples in one space: X has {A.shape[1]} dimensions and Y has "
            f"{B.shape[1]}"
        )
    if A.shape[0] < 2 or B.shape[0] < 2:
        raise ValueError(
            f"MMD needs at least 2 rows on each side, got {A.shape[0]} and {B.shape[0]}"
        )
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    rng = np.random.default_rng(seed)
    A, B = _subsample(A, max_points, rng), _subsample(B, max_points, rng)
    m, n = A.shape[0], B.shape[0]
    d_aa, d_bb, d_ab = _sq_dists(A, A), _sq_dists(B, B), _sq_dists(A, B)
    if bandwidths is None:
        # Median pairwise distance over (a subsample of) the pooled points: a width
        # estimate needs no precision, and the median of millions of values is slow.
        pooled = np.vstack([A, B])
        if len(pooled) > 1000:
            pooled = pooled[rng.choice(len(pooled), size=1000, replace=False)]
        median = float(
            np.sqrt(np.median(_sq_dists(pooled, pooled)[np.triu_indices(len(pooled), 1)]))
        )
        if median < _EPS:  # every point identical: any width gives the same (zero) answer
            median = 1.0
        widths = [median * f for f in _MMD_MULTIPLES]
    else:
        widths = [float(s) for s in bandwidths]
        if not widths or any(s <= 0 for s in widths):
            raise ValueError(f"bandwidths must be positive numbers, got {list(bandwidths)}")

    def kmean(d2: np.ndarray) -> np.ndarray:
        return sum(np.exp(-d2 / (2.0 * s * s)) for s in widths) / len(widths)

    k_aa, k_bb, k_ab = kmean(d_aa), kmean(d_bb), kmean(d_ab)
    term_aa = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    term_bb = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(term_aa + term_bb - 2.0 * k_ab.mean())


# The name this function had before the adapt loss was renamed ``mmd_loss``; kept so
# existing imports work. Same function, same (unbiased) figure.
mmd_rbf = mmd_unbiased


def alignment(X_user_or_a: np.ndarray, X_pos_b: np.ndarray, alpha: float = 2.0) -> float:
    """Alignment of positive pairs (Wang & Isola 2020): E ||f(a) - f(b)||^alpha.

    Vectors are L2-normalised first, so for alpha = 2 each pair contributes
    2 - 2 cos(a_i, b_i): 0 for the same direction, 4 for opposite ones.

    Args:
        X_user_or_a: shape (n, d), e.g. user vectors, or items in stage a.
        X_pos_b: shape (n, d), row i the positive partner of row i (the item the user
            interacted with, or the same item in stage b).
        alpha: exponent of the distance (the paper's default is 2).

    Returns:
        Mean over the n pairs, a float in [0, 2^alpha]; lower is better aligned.
    """
    A, B = _as_matrix(X_user_or_a, "X_user_or_a"), _as_matrix(X_pos_b, "X_pos_b")
    if A.shape != B.shape:
        raise ValueError(
            f"alignment needs paired rows of one dimension, got {A.shape} and {B.shape}"
        )
    if A.shape[0] == 0:
        raise ValueError("alignment needs at least one pair")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    dist = np.linalg.norm(_normalize_rows(A) - _normalize_rows(B), axis=1)
    return float(np.mean(dist**alpha))


def uniformity(X: np.ndarray, t: float = 2.0, max_points: int = 2000, seed: int = 0) -> float:
    """Uniformity on the hypersphere (Wang & Isola 2020): log E_{i != j} exp(-t ||x_i - x_j||^2).

    Vectors are L2-normalised first. Values are at most 0; lower (more negative) means the
    vectors spread more evenly over the sphere, 0 means they all collapse to one point.
    For t = 2 the lowest reachable value is about -4 (antipodal pairs).

    Args:
        X: shape (n, d), n >= 2.
        t: temperature of the Gaussian potential (the paper's default is 2).
        max_points: random subsample size above which pairs are estimated (cost
            O(max_points^2 d)).
        seed: seed of the subsampling.

    Returns:
        The log of the mean pairwise potential over distinct pairs, a float <= 0.
    """
    A = _as_matrix(X, "X")
    if A.shape[0] < 2:
        raise ValueError(f"uniformity needs at least 2 rows, got {A.shape[0]}")
    if t <= 0:
        raise ValueError(f"t must be positive, got {t}")
    A = _normalize_rows(_subsample(A, max_points, np.random.default_rng(seed)))
    n = A.shape[0]
    logits = -t * _sq_dists(A, A)[np.triu_indices(n, 1)]
    # log-mean-exp, shifted by the max so large t does not underflow to log(0).
    top = logits.max()
    return float(top + np.log(np.mean(np.exp(logits - top))))


# One plain sentence per measure, shown next to the numbers in the app.
_EXPLAIN = {
    "linear_cka": (
        "CKA near 1 means the two models arrange the items the same way (up to rotation and "
        "scale); near 0 means the arrangements are unrelated."
    ),
    "procrustes_drift_mean": (
        "Average cosine distance of an item between the two models after the best rotation: "
        "0 means items kept their relative place, 1 means they moved to unrelated positions."
    ),
    "procrustes_drift_p90": (
        "The drift that only the 10% most-moved items exceed: a high value with a low "
        "average means a few items moved a lot."
    ),
    "knn_overlap_mean": (
        "Share of each item's 10 nearest neighbours that are the same in both models: 1 means "
        "the same similar items, near 0 means entirely different ones."
    ),
    "alignment": (
        "Average squared distance between each item's normalised vector in the two models, "
        "without any rotation (0 to 4): low means the second model kept the first one's "
        "coordinates, which only makes sense when it started from them."
    ),
    "uniformity": (
        "How evenly the items spread over the sphere (log scale, 0 to about -4): closer to 0 "
        "means the vectors bunch together, more negative means they use the space well."
    ),
    "mmd_source_target": (
        "MMD between source-domain and target-domain items in this model: near 0 means the "
        "two catalogues occupy the same region of the space, larger means they sit apart."
    ),
}


def _row(measure: str, a: str, b: str | None, value: float, explanation: str | None = None) -> dict:
    return {
        "measure": measure,
        "stage_a": a,
        "stage_b": b,
        "value": float(value),
        "explanation": explanation or _EXPLAIN[measure],
    }


def shift_report(
    stages: Mapping[str, tuple[Sequence[Hashable] | np.ndarray, np.ndarray]],
    domains: Mapping[Hashable, DomainLabel] | None = None,
    k: int = 10,
    max_points: int = REPORT_MAX_POINTS,
    seed: int = REPORT_SEED,
) -> pd.DataFrame:
    """Every shift measure for every stage and pair of stages, as one table for the app.

    Args:
        stages: stage name -> ``(ids, X)`` with ``ids`` of shape (n,) and ``X`` of shape
            (n, d); insertion order sets the order of pairs (a before b). Dimensions may
            differ between stages.
        domains: optional id -> "source" or "target"; when given, each stage also gets the
            MMD between its source and its target items (ids not in the mapping ignored).
        k: neighbours for the k-NN overlap.
        max_points: subsample size for MMD and uniformity.
        seed: seed of those subsamples.

    Returns:
        DataFrame with columns [measure, stage_a, stage_b, value, explanation]. Single-stage
        measures (uniformity, then mmd_source_target when ``domains`` is given) have
        ``stage_b`` None and come first, in stage order. Then, for each pair (a, b) in
        stage order, on the ids the two stages share: linear_cka, procrustes_drift_mean,
        procrustes_drift_p90, knn_overlap_mean and, when both stages have the same
        dimension, alignment. A pair with fewer than 3 shared ids gets NaN values and an
        explanation that says so.
    """
    names = list(stages)
    cols = ["measure", "stage_a", "stage_b", "value", "explanation"]
    rows: list[dict] = []
    for name in names:
        ids, X = stages[name]
        X = _as_matrix(X, f"stage '{name}'")
        if X.shape[0] >= 2:
            rows.append(
                _row("uniformity", name, None, uniformity(X, max_points=max_points, seed=seed))
            )
        if domains is not None:
            labels = pd.Series(np.asarray(ids, dtype=object)).map(dict(domains)).to_numpy()
            src, tgt = X[labels == "source"], X[labels == "target"]
            if len(src) >= 2 and len(tgt) >= 2:
                value = mmd_unbiased(src, tgt, max_points=max_points, seed=seed)
                rows.append(_row("mmd_source_target", name, None, value))
            else:
                rows.append(
                    _row(
                        "mmd_source_target",
                        name,
                        None,
                        float("nan"),
                        f"Not computed: stage '{name}' has {len(src)} source and {len(tgt)} "
                        "target items, and MMD needs at least 2 of each.",
                    )
                )
    # Neighbour lists of each whole stage, computed once and reused by every pair whose
    # shared ids cover both stages (the usual case: one catalogue, several models).
    knn_cache: dict[str, np.ndarray] = {}

    def stage_knn(name: str, k_eff: int) -> np.ndarray:
        if name not in knn_cache:
            knn_cache[name] = _knn_indices(_normalize_rows(_as_matrix(stages[name][1])), k_eff)
        return knn_cache[name]

    def pair_knn(a: str, b: str, common: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        m = len(common)
        if m != len(stages[a][1]) or m != len(stages[b][1]):
            return knn_overlap(A, B, k=k)
        k_eff = int(min(k, m - 1))
        # Rows of A are stage a in its own order; rows of B are stage b reordered by pos,
        # so b's neighbour indices are translated into A's row numbers through inv.
        pos = pd.Index(np.asarray(stages[b][0], dtype=object)).get_indexer(common)
        inv = np.empty(m, dtype=np.int64)
        inv[pos] = np.arange(m)
        return _overlap_from_indices(stage_knn(a, k_eff), inv[stage_knn(b, k_eff)[pos]])

    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    for a, b in itertools.combinations(names, 2):
        common, A, B = align_by_ids(stages[a][0], stages[a][1], stages[b][0], stages[b][1])
        pair_measures = [
            "linear_cka",
            "procrustes_drift_mean",
            "procrustes_drift_p90",
            "knn_overlap_mean",
        ]
        if A.shape[1] == B.shape[1]:
            pair_measures.append("alignment")
        if len(common) < 3:
            why = (
                f"Not computed: stages '{a}' and '{b}' share only {len(common)} ids; at least 3 "
                "are needed to compare them."
            )
            rows.extend(_row(m, a, b, float("nan"), why) for m in pair_measures)
            continue
        drift = procrustes_drift(A, B)
        values = {
            "linear_cka": linear_cka(A, B),
            "procrustes_drift_mean": float(drift.mean()),
            "procrustes_drift_p90": float(np.quantile(drift, 0.9)),
            "knn_overlap_mean": float(pair_knn(a, b, common, A, B).mean()),
        }
        if "alignment" in pair_measures:
            values["alignment"] = alignment(A, B)
        for m in pair_measures:
            text = _EXPLAIN[m]
            if m == "knn_overlap_mean" and k != 10:
                text = text.replace("10 nearest", f"{k} nearest")
            rows.append(_row(m, a, b, values[m], text))
    return pd.DataFrame(rows, columns=cols)
