"""What onnxprune knows of each standard ONNX op: one row per op, read from the tables that hold it.

The knowledge still lives in several tables (cost and coupling in `table.py`, the erasing walk in
`zeroing.py`, folding in `folding.py`, training in `training_rules.py`); this view puts it side by
side, so a gap is visible and countable (`onnxprune passes --ops`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import onnx

from . import _BY_TYPE
from .folding import FOLDABLE
from .training_rules import NO_GRADIENT, RULES as TRAINING_RULES
from .zeroing import ALL, ANY, FIRST, PRODUCERS


@dataclass(frozen=True)
class OpCoverage:
    """One op type and what each part of onnxprune knows of it."""

    op_type: str
    since: int  # the opset of its newest definition
    cost: bool  # a cost formula (FLOPs, MACs)
    coupling: bool  # a coupling rule: its channels can join a prunable family
    rewrite: bool  # compact rewrites its attributes or size constants
    erasing: str  # how a region ending in it is zeroed: producers, first, any, all, or "" (stops the walk)
    foldable: bool  # fold-constants evaluates it when its inputs are constant
    training: str  # "rewritten" (legalize-training), "no gradient", or "onnxruntime" (left to its gradient)

    def known(self) -> bool:
        """True when pruning knows the op (a coupling rule)."""
        return self.coupling


def coverage() -> list[OpCoverage]:
    """Every op of the default ONNX domain that the installed onnx defines, in name order."""
    legalized = {t for rule in TRAINING_RULES for t in rule.op_types}
    newest: dict[str, int] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx") and not schema.deprecated:
            newest[schema.name] = max(newest.get(schema.name, 0), schema.since_version)
    rows = []
    for op_type in sorted(newest):
        rule = _BY_TYPE.get(("", op_type))
        coupling = getattr(rule, "coupling", None) if rule is not None else None
        erasing = ("producers" if op_type in PRODUCERS else "any" if op_type in ANY else "all" if op_type in ALL
                   else "first" if op_type in FIRST else "")
        training = "rewritten" if op_type in legalized else "no gradient" if op_type in NO_GRADIENT else "onnxruntime"
        rows.append(OpCoverage(op_type, newest[op_type], rule is not None, coupling is not None,
                               getattr(coupling, "rewrite", None) is not None, erasing, op_type in FOLDABLE, training))
    return rows


def format_coverage(rows: list[OpCoverage]) -> str:
    """The table as text, with the counts first."""
    total = len(rows)
    lines = [f"{sum(r.coupling for r in rows)} of {total} standard ONNX ops have a coupling rule, "
             f"{sum(r.cost for r in rows)} a cost, {sum(r.rewrite for r in rows)} a compact rewrite, "
             f"{sum(bool(r.erasing) for r in rows)} an erasing rule, {sum(r.foldable for r in rows)} fold, "
             f"{sum(r.training == 'rewritten' for r in rows)} a training rewrite "
             f"({sum(r.training == 'no gradient' for r in rows)} known to have no gradient)",
             "",
             f"{'op':<28}{'since':>6}  {'cost':<5}{'couple':<7}{'rewrite':<8}{'erase':<10}{'fold':<5}training"]
    mark = {True: "yes", False: "-"}
    for r in rows:
        lines.append(f"{r.op_type:<28}{r.since:>6}  {mark[r.cost]:<5}{mark[r.coupling]:<7}{mark[r.rewrite]:<8}"
                     f"{r.erasing or '-':<10}{mark[r.foldable]:<5}{r.training}")
    return "\n".join(lines)


def coverage_json(rows: list[OpCoverage]) -> list[dict]:
    """The table as plain data."""
    return [asdict(r) for r in rows]
