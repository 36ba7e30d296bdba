"""Per-index sums over a tensor's slices and their totals per group: the arithmetic under every
importance score (weight norms in `passes/importance.py`, activation energy in `calibration.py`)."""

from __future__ import annotations

import numpy as np


def per_index(array: np.ndarray, axis: int, criterion: str = "l2") -> np.ndarray:
    """For each index of `axis`, the sum over its slice of |x| (criterion l1) or x² (l2), in float64."""
    # accumulate in float64 without a float64 copy of the tensor: for a VGG classifier (100M weights)
    # the copy took seconds and gigabytes; einsum and sum(dtype=) cast as they stream
    array = np.asarray(array)
    flat = np.moveaxis(array, axis, 0).reshape(array.shape[axis], array.size // max(array.shape[axis], 1))
    if criterion == "l1":
        return np.abs(flat).sum(axis=1, dtype=np.float64)
    return np.einsum("ij,ij->i", flat, flat, dtype=np.float64)


def row_sums(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per group (row of a Member table: the group's indices, -1 for none), the sum of `values` at its indices."""
    valid = table >= 0
    return np.where(valid, values[np.where(valid, table, 0)], 0.0).sum(axis=1)
