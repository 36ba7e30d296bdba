"""`untie`: give every role of an initializer that an exporter shared its own initializer."""

from __future__ import annotations

from dataclasses import dataclass

from onnxprune.facts import FUNCTION_FACTS, Untying
from onnxprune.ir import Graph
from onnxprune.ops.sharing import untie
from onnxprune.passmanager import PassResult, TransformPass


@dataclass(frozen=True)
class UntieOptions:
    """Options of `untie`."""

    all: bool = False  # also split true weight tying (one tensor read directly by several ops)


class Untie(TransformPass):
    """Split initializers that torch's exporter de-duplicated (fed through Identity ops) and BatchNorm
    statistics read elsewhere, so unrelated layers no longer couple and training never trains one
    tensor for several roles. Keeps true weight tying unless `all=true`. The commands run it before
    analysis and training; what it split is the fact `Untying`."""

    name = "untie"
    Options = UntieOptions
    keeps = FUNCTION_FACTS  # computes the same function
    provides = (Untying,)

    def run(self, graph: Graph, am) -> PassResult:
        version = graph.version
        am.provide(Untying(tuple(untie(graph, everything=self.options.all))))
        return PassResult.changed() if graph.version != version else PassResult.unchanged()
