"""Per-op knowledge: one record per op type in the registry (`registry.py`, filled from `records.py`).

Adding support for an op means adding its record to `records.py` and its entry to the conformance
test (`tests/test_conformance.py`).
"""

from __future__ import annotations

from ..ir import Op
from . import records  # noqa: F401  (installs the op table into the registry)
from .registry import OpRecord, record_of
from .rule import Cost, OpView, numel


def rule_for(op: Op) -> OpRecord | None:
    """The record covering `op` (its `cost` and `coupling` may be None), or None if onnxprune has none
    (the op is then treated as opaque)."""
    return record_of(op)


__all__ = ["Cost", "OpRecord", "OpView", "numel", "rule_for"]
