"""Embedding shift: how item and user vectors move between stages of a run.

:mod:`~recsys_core.embeddings.shift` holds the numbers (CKA, Procrustes drift, k-NN
overlap, MMD, alignment and uniformity); :mod:`~recsys_core.embeddings.projection` the
joint 2-D maps (PCA at once, UMAP cached on disk); :mod:`~recsys_core.embeddings.maps`
the Embeddings page's default map of a run, computed ahead and cached
(``docs/projection_cache.md``).
"""

from recsys_core.embeddings.maps import precompute_projection
from recsys_core.embeddings.projection import cached_projection, project_2d
from recsys_core.embeddings.shift import (
    align_by_ids,
    alignment,
    knn_overlap,
    linear_cka,
    mmd_rbf,
    mmd_unbiased,
    procrustes_drift,
    shift_report,
    uniformity,
)

__all__ = [
    "align_by_ids",
    "alignment",
    "cached_projection",
    "knn_overlap",
    "linear_cka",
    "mmd_rbf",
    "mmd_unbiased",
    "precompute_projection",
    "procrustes_drift",
    "project_2d",
    "shift_report",
    "uniformity",
]
