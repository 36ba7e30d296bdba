"""The IR: an ONNX model as a networkx graph of ops and values, with lossless load and save."""

from .graph import Graph, Op, Value
from .serde import MAX_ORT_IR_VERSION, load, save, to_onnx
from .shapes import TensorType, infer_shapes
from .tensor import Tensor
from .validate import custom_domains, validate

__all__ = ["Graph", "Op", "Value", "Tensor", "TensorType", "load", "save", "to_onnx", "infer_shapes",
           "validate", "custom_domains", "MAX_ORT_IR_VERSION"]
