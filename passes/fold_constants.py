"""`fold-constants`: weights computed from constants become initializers."""

from __future__ import annotations

from onnxprune.ir import Graph
from onnxprune.ops.folding import fold_constant_weights
from onnxprune.passmanager import PassResult, TransformPass


class FoldConstants(TransformPass):
    """Evaluate pure ops whose inputs are all constant (Cast of fp16 weights, Transpose/Reshape of an
    initializer, ConstantOfShape, ...) and store their outputs as initializers of the same names, so the
    analysis sees them as parameters. DequantizeLinear stays (quantized weights keep their storage);
    results much larger than their inputs stay computed. The commands run it before analysis."""

    name = "fold-constants"

    def run(self, graph: Graph, am) -> PassResult:
        return PassResult.changed() if fold_constant_weights(graph) else PassResult.unchanged()
