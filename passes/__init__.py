"""onnxprune's built-in passes (installed as `onnxprune.passes`), one module each.

The registry loads `BUILTIN_PASSES`; nothing in the framework imports these modules directly.
"""

from .calibrated import ActivationImportanceAnalysis, BlockInfluenceAnalysis
from .check import Check
from .cleanup import Cleanup
from .compact import Compact
from .cost import CostAnalysis
from .erase_space import EraseSpaceAnalysis
from .fold_constants import FoldConstants
from .legalize_training import LegalizeTraining
from .prune_space import PruneSpaceAnalysis
from .select import Select
from .shapes import InferShapes, ShapesAnalysis
from .sparse_train import SparseTrain
from .untie import Untie
from .verify import Verify

BUILTIN_PASSES = (ShapesAnalysis, InferShapes, Cleanup, Check, CostAnalysis, PruneSpaceAnalysis, Select, Compact, Verify,
                  LegalizeTraining, SparseTrain, EraseSpaceAnalysis, Untie, FoldConstants, ActivationImportanceAnalysis,
                  BlockInfluenceAnalysis)

__all__ = ["BUILTIN_PASSES", "ActivationImportanceAnalysis", "BlockInfluenceAnalysis", "Check", "Cleanup", "Compact", "CostAnalysis", "EraseSpaceAnalysis", "FoldConstants", "InferShapes", "LegalizeTraining", "PruneSpaceAnalysis", "Select", "ShapesAnalysis", "SparseTrain", "Untie", "Verify"]
