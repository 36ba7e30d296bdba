"""The IR: an ONNX model as a networkx graph of ops and values, with lossless load and save."""

from .graph import Graph, Op, Value
from .serde import MAX_ORT_IR_VERSION, load, save, to_onnx
from .shapes import TensorType, infer_shapes
from .tensor import FLOAT_TYPES, Tensor
from .validate import custom_domains, validate

__all__ = [
           "FLOAT_TYPES",
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
