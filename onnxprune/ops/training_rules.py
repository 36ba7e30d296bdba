"""Which ops onnxruntime-training can train through, and `legalize`: make a graph trainable.

What is known of each op lives in its registry record (`Training`, `records.py`): onnxruntime has a
gradient for it, or `legalize-training` rewrites it exactly (`legalizations.py`), or its outputs are
integer or boolean and end every gradient path. It is an allow-list: an op without such a statement
(an op nobody recorded included) is refused when it lies between trained weights and the outputs,
with one line naming it, instead of failing later inside onnxruntime's artifact generation. Elsewhere
(shape arithmetic) it is fine.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UserError
from ..ir import FLOAT_TYPES, Graph, Op, Value
from .legalizations import Emitter, constant_weights
from .registry import REFUSED, REWRITTEN, Training, record_of

__all__ = ["check_differentiable", "constant_weights", "differentiable_slot", "gradient_reachable", "lacks_gradient",
           "legalize", "training_of"]


def training_of(op: Op) -> Training | None:
    """The training record of a standard op; None for an op of another domain (left to onnxruntime)."""
    if op.domain not in ("", "ai.onnx"):
        return None
    record = record_of(op)
    return record.training if record is not None else Training()  # unrecorded: refused (fail closed)


def differentiable_slot(op: Op, slot: int, device: str) -> bool:
    """True if a tensor read by `op` at input `slot` can be trained (gets a gradient)."""
    training = training_of(op)
    if training is None or lacks_gradient(op, device) or training.ends_path:
        return False
    if op.op_type == "Cast" and op.attr("to") not in FLOAT_TYPES:
        return False  # a cast to integers ends every gradient path
    return slot not in training.constant_slots


def gradient_reachable(graph: Graph, device: str, outputs: list[Value],
                       differentiable: Callable[[Op, int], bool] | None = None) -> set[Value]:
    """Values from which a gradient flows to `outputs`: walking back from them through differentiable
    input slots only (so constants feeding shape arithmetic or dead branches are not among them).
    `differentiable(op, slot)` says which slots pass a gradient (default: onnxruntime-training's)."""
    differentiable = differentiable or (lambda op, slot: differentiable_slot(op, slot, device))
    reached = set(outputs)
    for op in reversed(graph.topological_order()):
        if not any(v in reached for v in graph.outputs_of(op) if v is not None):
            continue
        for slot, value in enumerate(graph.inputs_of(op)):
            if value is not None and differentiable(op, slot):
                reached.add(value)
    return reached


def lacks_gradient(op: Op, device: str) -> bool:
    """True if onnxruntime-training cannot differentiate `op` on `device` and no rewrite makes it so."""
    training = training_of(op)
    return training is not None and training.status(device) == REFUSED


def legalize(graph: Graph, types: dict, device: str = "cpu") -> set[str]:
    """Apply every training rule to `graph` in place: Constant weights become initializers, each op
    with a rule is rewritten, and ops without a gradient on a weight path are refused. Returns the
    names of the constants the rewrites added (fixed kernels and shapes: never trained)."""
    constant_weights(graph)
    added: set[str] = set()
    for op in graph.topological_order():
        training = training_of(op)
        if training is not None and training.status(device) == REWRITTEN:
            training.rewrite(graph, op, Emitter(graph, op, types, added))
    check_differentiable(graph, device, exclude=added)
    return added


def check_differentiable(graph: Graph, device: str, exclude: set[str] = frozenset()) -> None:
    """Refuse ops without a gradient that lie downstream of a floating-point parameter (other than the
    `exclude`d constants)."""
    reached = {v for v in graph.initializers
               if v.tensor.data_type in FLOAT_TYPES and len(v.tensor.shape) >= 1 and v.name not in exclude}
    blocked = []
    for op in graph.topological_order():
        if not any(v in reached for v in graph.inputs_of(op) if v is not None):
            continue
        if lacks_gradient(op, device):
            blocked.append(op)
            continue
        reached.update(v for v in graph.outputs_of(op) if v is not None)
    if blocked:
        names = ", ".join(op.label for op in blocked[:5])
        more = f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
        raise UserError(f"onnxruntime-training on {device.upper()} cannot differentiate {names}{more}, and onnxprune "
                        "has no exact rewrite for it yet; these ops lie between trainable weights and the outputs")
