"""`legalize-training`: rewrite what onnxruntime-training cannot differentiate into exact equivalents.

Runs on a copy of the model that is only used for training (DESIGN §8). Rules live in
`onnxprune/ops/training_rules.py`; initializer names never change, so trained values map back to
the original model by name. An op with no gradient and no rule on a path from a trainable parameter
is an error naming the op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from onnxprune.facts import FUNCTION_FACTS
from onnxprune.ir import Graph
from onnxprune.ops.training_rules import legalize
from onnxprune.passmanager import PassResult, TransformPass

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
    keeps = FUNCTION_FACTS  # computes the same function

    def run(self, graph: Graph, am) -> PassResult:
        types = am.get(ShapesAnalysis, input_shapes=self.options.input_shapes)
        version = graph.version
        legalize(graph, types, self.options.device)
        return PassResult.changed() if graph.version != version else PassResult.unchanged()
