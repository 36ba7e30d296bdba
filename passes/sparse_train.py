"""`sparse-train`: train the model with HESSO, HESSO-CRIC or DHSPG so chosen groups become exactly zero (DESIGN §8).

The trained weights replace the model's initializers (names are kept); the groups that reached zero
become the Selection a following `compact` applies, so `sparse-train{data=d.npz},compact,verify` is
the whole Only-Train-Once pipeline inside any deployment pipeline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from onnxprune.bounds import PASS_BOUNDS, check_bounds, pass_option
from onnxprune.errors import UserError
from onnxprune.ir import Graph
from onnxprune.passmanager import PassResult, TransformPass
from onnxprune.space import Selection
from onnxprune.train.callbacks import ResumeOnInterrupt
from onnxprune.train.config import TrainConfig, TrainResult
from onnxprune.train.data import open_data, synthetic_data
from onnxprune.train.sparse import prepare_for_training, train_graph

from .erase_space import EraseSpaceAnalysis
from .prune_space import PruneSpaceAnalysis
from .shapes import ShapesAnalysis


@dataclass(frozen=True)
class SparseTrainOptions(TrainConfig):
    """TrainConfig plus where the data comes from (`data`, or `synthetic` random inputs to distil on)."""

    data: str = ""
    synthetic: int = 0


class SparseTrain(TransformPass):
    """Train with a group-sparse optimizer; leave the zero groups as the selection for `compact`."""

    name = "sparse-train"
    Options = SparseTrainOptions
    provides = (Selection, TrainResult)

    def __init__(self, options=None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        check_bounds(self.options, PASS_BOUNDS, pass_option(self.name))  # before any pass of the pipeline runs

    def run(self, graph: Graph, am) -> PassResult:
        options = self.options
        config = TrainConfig(**{f.name: getattr(options, f.name) for f in fields(TrainConfig)})
        if options.synthetic:
            data = synthetic_data(graph, options.synthetic, options.seed, input_shapes=am.input_shapes)
            config = TrainConfig(**{**asdict(config), "loss": "distill"})
        elif options.data:
            data = open_data(options.data)
        else:
            raise UserError("sparse-train needs data: sparse-train{data=FILE.npz} (or synthetic=N to distil on "
                            "random inputs)")
        prepare_for_training(graph)  # before the analyses: the manager makes them again for the edited graph
        erasing = am.get(EraseSpaceAnalysis) if config.target_erase else None
        result = train_graph(graph, am.get(PruneSpaceAnalysis), am.get(ShapesAnalysis), data, config,
                             callbacks=[ResumeOnInterrupt()], erasing=erasing, input_shapes=am.input_shapes)
        am.provide(result.selection)
        am.provide(result)
        return PassResult.changed()
