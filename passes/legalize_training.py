"""`legalize-training`: rewrite what onnxruntime-training cannot differentiate into exact equivalents.

Runs on a copy of the model that is only used for training (DESIGN §8). Rules live in
`onnxprune/ops/training_rules.py`; initializer names never change, so trained values map back to
the original model by name. An op with no gradient and no rule on a path from a trainable parameter
is an error naming the op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from onnxprune.errors import UserError
from onnxprune.ir import Graph
from onnxprune.ops.training_rules import Emitter, constant_weights, lacks_gradient, training_rule
from onnxprune.passmanager import PassResult, TransformPass

from .cost import FLOAT_TYPES
from .shapes import ShapesAnalysis


@dataclass(frozen=True)
class LegalizeTrainingOptions:
    """Options of `legalize-training`."""

    device: Literal["cpu", "cuda"] = "cpu"  # gradient kernels differ by device (ConvTranspose, Resize)
    input_shapes: tuple[str, ...] = ()  # NAME=DIMS bindings for rules that need static sizes


class LegalizeTraining(TransformPass):
    """Make every op onnxruntime-training meets differentiable: Constant weights become initializers,
    LayerNorm gets its statistics outputs, HardSwish/PRelu/Elu/Softplus/Sum/GlobalMaxPool/InstanceNorm/
    ... become exact decompositions. Fails, naming the op, where no rewrite exists."""

    name = "legalize-training"
    Options = LegalizeTrainingOptions

    def run(self, graph: Graph, am) -> PassResult:
        types = am.get(ShapesAnalysis, input_shapes=self.options.input_shapes)
        version = graph.version
        legalize(graph, types, self.options.device)
        return PassResult.changed() if graph.version != version else PassResult.unchanged()


def legalize(graph: Graph, types: dict, device: str = "cpu") -> None:
    """Apply every training rule to `graph` in place (see `LegalizeTraining`)."""
    constant_weights(graph)
    for op in graph.topological_order():
        rule = training_rule(op, device)
        if rule is not None:
            rule.rewrite(graph, op, Emitter(graph, op, types))
    check_differentiable(graph, device)


def check_differentiable(graph: Graph, device: str) -> None:
    """Refuse ops without a gradient that lie downstream of a floating-point parameter."""
    reached = {v for v in graph.initializers if v.tensor.data_type in FLOAT_TYPES and len(v.tensor.shape) >= 1}
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
        raise UserError(f"onnxruntime-training {'on ' + device.upper() + ' ' if device else ''}cannot differentiate "
                        f"{names}{more}, and onnxprune has no exact rewrite for it yet; these ops lie between "
                        "trainable weights and the outputs")
