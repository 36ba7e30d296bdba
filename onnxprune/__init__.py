"""onnxprune: structured pruning of ONNX models as a compiler pass framework.

    >>> import onnxprune
    >>> graph = onnxprune.load("model.onnx")
    >>> onnxprune.save(graph, "copy.onnx")
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from .errors import (
    CheckFailed,
    Interrupted,
    IRError,
    ModelError,
    OnnxpruneError,
    PipelineError,
    UserError,
    VerifyFailed,
)
from .ir import Graph, Op, Value, load, save

try:
    __version__ = _version("onnxprune")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "CheckFailed",
    "Interrupted",
    "Graph",
    "IRError",
    "ModelError",
    "OnnxpruneError",
    "Op",
    "PipelineError",
    "UserError",
    "VerifyFailed",
    "Value",
    "__version__",
    "load",
    "save",
]
