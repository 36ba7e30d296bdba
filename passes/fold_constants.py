"""`fold-constants`: weights computed from constants become initializers."""

from __future__ import annotations

from onnxprune.facts import FUNCTION_FACTS
from onnxprune.ir import Graph
from onnxprune.ops.folding import fold_constant_weights
from onnxprune.passmanager import PassResult, TransformPass


class FoldConstants(TransformPass):
    """Evaluate pure ops whose inputs are all constant and whose output is a float weight (a
    ConstantOfShape bias, a Concat of constant pieces, arithmetic on constants) and store the outputs as
    initializers of the same names, so the analysis sees them as parameters. Relayouts and casts of a
    weight (the analysis follows them), DequantizeLinear (quantized weights keep their storage), integer
    shape arithmetic and results much larger than their inputs stay computed. The commands run it first."""

    name = "fold-constants"
    keeps = FUNCTION_FACTS  # computes the same function

    def run(self, graph: Graph, am) -> PassResult:
        return PassResult.changed() if fold_constant_weights(graph) else PassResult.unchanged()
