"""onnxprune's built-in passes (installed as `onnxprune.passes`), one module each.

The registry loads `BUILTIN_PASSES`; nothing in the framework imports these modules directly.
"""

from .check import Check
from .cleanup import Cleanup
from .cost import CostAnalysis
from .shapes import InferShapes, ShapesAnalysis

BUILTIN_PASSES = (ShapesAnalysis, InferShapes, Cleanup, Check, CostAnalysis)

__all__ = ["BUILTIN_PASSES", "Check", "Cleanup", "CostAnalysis", "InferShapes", "ShapesAnalysis"]
