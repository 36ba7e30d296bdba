"""Analyses that run the model on the user's calibration inputs (`onnxprune.calibration` computes
them): the activation importance of every channel and head group, and the block influence of every
erasable region. As analyses they are cached per graph version and calibration file, so a selection
tried several times (`--round-to auto`, both rankings) runs the data through onnxruntime once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxprune.calibration import activation_importance, block_influence, read_calibration
from onnxprune.ir import Graph
from onnxprune.passmanager import AnalysisPass

from .erase_space import EraseSpaceAnalysis
from .prune_space import PruneSpaceAnalysis


@dataclass(frozen=True)
class CalibratedOptions:
    """Options of the calibrated analyses."""

    calibration: str = ""  # .npz (an array per model input) or .npy (token ids of a one-input model)


class ActivationImportanceAnalysis(AnalysisPass):
    """Per prunable family, each group's activation importance on the calibration inputs
    (`calibration.activation_importance`; families no weight reads are absent)."""

    name = "activation-importance"
    Options = CalibratedOptions

    def run(self, graph: Graph, am) -> dict[int, np.ndarray]:
        data = read_calibration(self.options.calibration, graph)
        return activation_importance(graph, am.get(PruneSpaceAnalysis), data.scoring)


class BlockInfluenceAnalysis(AnalysisPass):
    """Each erasable region's block influence on the calibration inputs (`calibration.block_influence`)."""

    name = "block-influence"
    Options = CalibratedOptions

    def run(self, graph: Graph, am) -> np.ndarray:
        data = read_calibration(self.options.calibration, graph)
        return block_influence(graph, am.get(PruneSpaceAnalysis), am.get(EraseSpaceAnalysis), data.scoring)
