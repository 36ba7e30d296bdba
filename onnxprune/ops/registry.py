"""The op registry: one `OpRecord` per op type (and opset range), everything onnxprune knows of the op.

A record holds, for one op type of one domain over a range of opsets:

- `cost`: the cost formula (FLOPs, MACs; conventions in `rule.py`), None if there is none;
- `coupling`: the `CouplingRule` (how the op ties the axes of its tensors, and the compact rewrite of
  its attributes and size constants), None to freeze every axis it touches;
- `zero`: how the op's whole output becomes exactly zero (`Zero`), from which the erasing walk
  (`zeroing.py`) finds the parameters that silence a region; None stops the walk;
- `transparent`: a relayout that keeps every value (Transpose, Reshape, Cast, ...): the analysis
  follows a weight through it to the op that reads it;
- `fold`: `fold-constants` evaluates it when its inputs are constant weights (`folding.py`);
- `evaluate`: the static shape evaluator computes it on integer shape arithmetic (`rule.py`);
- `training`: how onnxruntime-training treats it (`Training`): an allow-list, so an op nobody stated
  is refused on a weight path instead of failing inside artifact generation.

The table itself lives in `records.py` and is installed here when `onnxprune.ops` is imported (the
rule modules it names read this registry back, so the registry cannot import them). Lookups take the
model's opset: a record covers `since <= opset <= until`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: Ways an op's whole output becomes zero (the erasing walk, `zeroing.py`).
PRODUCERS = "producers"  # when the input slots `Zero.slots` (weights, biases, norm scale and shift) are zero
ANY = "any"  # when any input is zero (Mul)
ALL = "all"  # when every input is zero (Add, Sum, Concat)
FIRST = "first"  # when input 0 is: the op maps 0 to 0 (activations, layout ops, pooling)


@dataclass(frozen=True)
class Zero:
    """How an op's whole output is exactly zero: `kind` is PRODUCERS, ANY, ALL or FIRST."""

    kind: str
    slots: tuple[int, ...] = ()  # PRODUCERS: the parameter slots that silence it


#: Training statuses, as `Training.status` reports them per device.
GRADIENT = "onnxruntime"  # onnxruntime-training 1.19 differentiates it
REWRITTEN = "rewritten"  # legalize-training rewrites it into ops that have a gradient
NO_GRADIENT_NEEDED = "ends the path"  # its outputs are integer or boolean: no gradient flows through it
REFUSED = "refused"  # neither: on a weight path, training refuses the model naming the op


@dataclass(frozen=True)
class Training:
    """How onnxruntime-training 1.19 trains through an op (ORT_TRAINING_NOTES.md, and the gradient
    builders its wheel registers). `gradient`: the devices where onnxruntime has a gradient for it;
    `rewrite(graph, op, emitter)`: the exact rewrite `legalize-training` applies on `rewrite_devices`
    (`why` says why it is needed); `ends_path`: the outputs carry no gradient (shapes, masks);
    `constant_slots`: input slots that hold shapes, indices, bounds or statistics, never a trained tensor."""

    gradient: tuple[str, ...] = ()
    rewrite: Callable | None = None
    rewrite_devices: tuple[str, ...] = ("cpu", "cuda")
    why: str = "no gradient builder in onnxruntime-training 1.19"
    ends_path: bool = False
    constant_slots: frozenset[int] = frozenset()

    def status(self, device: str) -> str:
        """GRADIENT, REWRITTEN, NO_GRADIENT_NEEDED or REFUSED on `device`."""
        if self.rewrite is not None and device in self.rewrite_devices:
            return REWRITTEN
        if device in self.gradient:
            return GRADIENT
        return NO_GRADIENT_NEEDED if self.ends_path else REFUSED


ALL_DEVICES = ("cpu", "cuda")
#: onnxruntime has a gradient for it on every device.
DIFFERENTIABLE = Training(gradient=ALL_DEVICES)
#: Neither a gradient nor a rewrite.
NOT_TRAINABLE = Training()


@dataclass(frozen=True)
class OpRecord:
    """Everything onnxprune knows of one op type over the opsets `since..until` (see the module doc)."""

    op_type: str
    cost: Callable | None = None
    coupling: object = None  # a CouplingRule
    zero: Zero | None = None
    transparent: bool = False
    fold: bool = False
    evaluate: bool = False
    training: Training = field(default=NOT_TRAINABLE)
    domain: str = ""
    since: int = 1
    until: int | None = None

    def covers(self, opset: int | None) -> bool:
        """True if this record describes the op at `opset` (None: any opset)."""
        return opset is None or (self.since <= opset and (self.until is None or opset <= self.until))


_TABLE: dict[tuple[str, str], tuple[OpRecord, ...]] = {}


def install(records: Iterable[OpRecord]) -> None:
    """Fill the registry (once, from `records.py`); two records for one op whose opsets overlap are an
    error, so a lookup never has to choose."""
    for record in records:
        key = (record.domain, record.op_type)
        for other in _TABLE.get(key, ()):
            if _overlap(record, other):
                raise AssertionError(f"two records claim {key} at overlapping opsets")
        _TABLE[key] = tuple(sorted((*_TABLE.get(key, ()), record), key=lambda r: r.since))


def _overlap(a: OpRecord, b: OpRecord) -> bool:
    a_end = a.until if a.until is not None else 10**6
    b_end = b.until if b.until is not None else 10**6
    return a.since <= b_end and b.since <= a_end


def record_for(op_type: str, domain: str = "", opset: int | None = None) -> OpRecord | None:
    """The record of `op_type` in `domain` at `opset` (None: the newest record), or None if unknown."""
    found = _TABLE.get(("" if domain == "ai.onnx" else domain, op_type))
    if not found:
        return None
    if opset is None:
        return found[-1]  # sorted by `since` (the analyses ask per op, many times: keep this cheap)
    return next((r for r in reversed(found) if r.covers(opset)), None)


def record_of(op, opset: int | None = None) -> OpRecord | None:
    """The record of an IR op (an `Op`: op_type and domain)."""
    return record_for(op.op_type, op.domain, opset)


def all_records() -> list[OpRecord]:
    """Every record, by domain, op type and opset."""
    return sorted((r for rs in _TABLE.values() for r in rs), key=lambda r: (r.domain, r.op_type, r.since))


def is_transparent(op) -> bool:
    """True if `op` only relayouts its first input (a weight seen through it is still the weight)."""
    record = record_of(op)
    return record is not None and record.transparent


def evaluates(op) -> bool:
    """True if the static shape evaluator computes `op` (small integer shape arithmetic)."""
    record = record_of(op)
    return record is not None and record.evaluate
