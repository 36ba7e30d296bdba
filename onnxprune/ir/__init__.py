"""The IR: an ONNX model as a networkx graph of ops and values, with lossless load and save."""

from .graph import Graph, Op, Value
from .serde import MAX_ORT_IR_VERSION, load, save, to_onnx
from .shapes import TensorType, infer_shapes
from .tensor import Tensor
from .validate import custom_domains, validate

__all__ = [
           "MAX_ORT_IR_VERSION",
           "Graph",
           "Op",
           "Tensor",
           "TensorType",
           "Value",
           "custom_domains",
           "infer_shapes",
           "load",
           "save",
           "to_onnx",
           "validate",
]
