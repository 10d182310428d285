"""Embedding shift: how item and user vectors move between stages of a run.

:mod:`~recsys_core.embeddings.shift` holds the numbers (CKA, Procrustes drift, k-NN
overlap, MMD, alignment and uniformity); :mod:`~recsys_core.embeddings.projection` the
joint 2-D maps (PCA at once, UMAP cached on disk).
"""

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
    "procrustes_drift",
    "project_2d",
    "shift_report",
    "uniformity",
]
