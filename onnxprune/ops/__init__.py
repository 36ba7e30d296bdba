"""Per-op knowledge, one rule per op family, looked up by (domain, op_type).

Adding support for an op means adding it to one rule's table (or one new rule) and a test.
"""

from __future__ import annotations

from ..ir import Op
from .rule import Cost, OpRule, OpView, numel
from .table import RULES

_BY_TYPE: dict[tuple[str, str], OpRule] = {}
for _rule in RULES:
    for _op_type in _rule.op_types:
        key = (_rule.domain, _op_type)
        if key in _BY_TYPE:
            raise AssertionError(f"two rules claim {key}")
        _BY_TYPE[key] = _rule


def rule_for(op: Op) -> OpRule | None:
    """The rule covering `op`, or None if onnxprune has none (the op is then treated as opaque)."""
    domain = "" if op.domain == "ai.onnx" else op.domain
    return _BY_TYPE.get((domain, op.op_type))


__all__ = ["Cost", "OpRule", "OpView", "numel", "rule_for"]
