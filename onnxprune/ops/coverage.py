"""What onnxprune knows of each standard ONNX op: one row per op, read from its registry record.

The rows put the fields of every record side by side against the ops the installed onnx defines, so
a gap is visible and countable (`onnxprune passes --ops`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import onnx

from .registry import REFUSED, REWRITTEN, record_for


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
    training: str  # on CPU: "rewritten", "onnxruntime" (its own gradient), "ends the path" or "refused"

    def known(self) -> bool:
        """True when pruning knows the op (a coupling rule)."""
        return self.coupling


def coverage() -> list[OpCoverage]:
    """Every op of the default ONNX domain that the installed onnx defines, in name order."""
    newest: dict[str, int] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx") and not schema.deprecated:
            newest[schema.name] = max(newest.get(schema.name, 0), schema.since_version)
    rows = []
    for op_type in sorted(newest):
        record = record_for(op_type)
        coupling = record.coupling if record is not None else None
        rows.append(OpCoverage(
            op_type, newest[op_type], record is not None and record.cost is not None, coupling is not None,
            getattr(coupling, "rewrite", None) is not None,
            record.zero.kind if record is not None and record.zero is not None else "",
            record is not None and record.fold,
            record.training.status("cpu") if record is not None else REFUSED))
    return rows


def format_coverage(rows: list[OpCoverage]) -> str:
    """The table as text, with the counts first."""
    total = len(rows)
    lines = [f"{sum(r.coupling for r in rows)} of {total} standard ONNX ops have a coupling rule, "
             f"{sum(r.cost for r in rows)} a cost, {sum(r.rewrite for r in rows)} a compact rewrite, "
             f"{sum(bool(r.erasing) for r in rows)} an erasing rule, {sum(r.foldable for r in rows)} fold, "
             f"{sum(r.training == REWRITTEN for r in rows)} a training rewrite "
             f"({sum(r.training == REFUSED for r in rows)} refused on a weight path when training on CPU)",
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
