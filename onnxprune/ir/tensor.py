"""`Tensor`: the contents of an initializer, held without copying where the bytes allow it."""

from __future__ import annotations

import math
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# Element types whose raw_data is a plain little-endian array numpy can view without conversion.
RAW_NUMPY_DTYPES: dict[int, np.dtype] = {
    TensorProto.FLOAT: np.dtype("<f4"),
    TensorProto.DOUBLE: np.dtype("<f8"),
    TensorProto.FLOAT16: np.dtype("<f2"),
    TensorProto.INT8: np.dtype("i1"),
    TensorProto.INT16: np.dtype("<i2"),
    TensorProto.INT32: np.dtype("<i4"),
    TensorProto.INT64: np.dtype("<i8"),
    TensorProto.UINT8: np.dtype("u1"),
    TensorProto.UINT16: np.dtype("<u2"),
    TensorProto.UINT32: np.dtype("<u4"),
    TensorProto.UINT64: np.dtype("<u8"),
    TensorProto.BOOL: np.dtype("?"),
}
#: Floating-point element types: the ones that hold weights and count as FLOPs (the rest are integer
#: shape arithmetic, indices, masks and quantized storage).
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16})
_LITTLE_ENDIAN = sys.byteorder == "little"


class Tensor:
    """An initializer's data plus its header (dims, data type, doc string, metadata; no name).

    It holds one of three things: the raw little-endian bytes of any fixed-width type (a memoryview,
    often into a memory-mapped model file: nothing is copied; bfloat16, float8 and int4 included), a
    numpy array someone set, or, for data kept in typed fields (`float_data`, strings, ...), the
    original TensorProto untouched. Tensors are immutable: to change a weight, make a new Tensor.
    """

    __slots__ = ("_array", "_proto", "_raw", "_shape", "header")

    def __init__(self, header: TensorProto, *, raw=None, array: np.ndarray | None = None,
                 proto: TensorProto | None = None) -> None:
        self.header = header
        self._raw = raw
        self._array = array
        self._proto = proto
        self._shape = tuple(header.dims)

    @classmethod
    def from_proto(cls, proto: TensorProto) -> Tensor:
        """Wrap an in-memory TensorProto (its raw bytes are viewed, not copied)."""
        if proto.HasField("raw_data") and proto.data_location != TensorProto.EXTERNAL:
            header = TensorProto()
            header.CopyFrom(proto)
            header.ClearField("raw_data")
            header.ClearField("name")
            return cls(header, raw=memoryview(proto.raw_data))
        return cls(_header_of(proto), proto=proto)

    @classmethod
    def from_raw(cls, header: TensorProto, raw) -> Tensor:
        """A tensor whose data are the little-endian bytes `raw` (header has no data fields)."""
        return cls(header, raw=raw)

    @classmethod
    def from_array(cls, array: np.ndarray, like: Tensor | None = None) -> Tensor:
        """A tensor holding `array`; `like`'s doc string and metadata are kept."""
        array = np.asarray(array)
        proto = numpy_helper.from_array(array[()] if array.ndim == 0 else array)
        header = TensorProto()
        if like is not None:
            header.doc_string = like.header.doc_string
            header.metadata_props.extend(like.header.metadata_props)
        header.dims.extend(proto.dims)
        header.data_type = proto.data_type
        if proto.data_type in RAW_NUMPY_DTYPES and _LITTLE_ENDIAN:
            frozen = np.ascontiguousarray(array, dtype=RAW_NUMPY_DTYPES[proto.data_type])
            frozen.flags.writeable = False
            return cls(header, array=frozen)
        return cls(header, proto=proto)

    @property
    def data_type(self) -> int:
        """The ONNX element type (TensorProto.FLOAT, ...)."""
        return self.header.data_type

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's dimensions."""
        return self._shape

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of data when stored raw (an estimate for types without a raw numpy form)."""
        if self._raw is not None:
            return memoryview(self._raw).nbytes
        if self._array is not None:
            return self._array.nbytes
        return self._proto.ByteSize()

    @property
    def array(self) -> np.ndarray:
        """The data as a read-only numpy array (a view of the file's bytes where possible)."""
        if self._array is None:
            if self._raw is not None and self.data_type in RAW_NUMPY_DTYPES and _LITTLE_ENDIAN:
                dtype = RAW_NUMPY_DTYPES[self.data_type]
                raw = memoryview(self._raw)
                if raw.nbytes != self.size * dtype.itemsize:
                    raise ValueError(f"raw data has {raw.nbytes} bytes, expected {self.size * dtype.itemsize} "
                                     f"for shape {self.shape} of {onnx.helper.tensor_dtype_to_string(self.data_type)}")
                array = np.frombuffer(raw, dtype=dtype).reshape(self.shape)
            else:  # typed fields, or a raw type numpy has no dtype for (bfloat16, float8, int4): convert
                array = numpy_helper.to_array(self.to_proto(""))
            array.flags.writeable = False
            self._array = array
        return self._array

    def raw_bytes(self):
        """The data as little-endian bytes (bytes-like, not copied where avoidable), or None if the
        tensor must be written as its original proto (typed fields, strings, ...)."""
        if self._raw is not None:
            return self._raw
        if self._array is not None and self.data_type in RAW_NUMPY_DTYPES:
            return memoryview(self._array.reshape(-1)).cast("B")
        return None

    def to_proto(self, name: str) -> TensorProto:
        """A complete TensorProto named `name` (this copies the data)."""
        if self._proto is not None:
            proto = TensorProto()
            proto.CopyFrom(self._proto)
        else:
            proto = TensorProto()
            proto.CopyFrom(self.header)
            proto.raw_data = bytes(self.raw_bytes())
        proto.name = name
        return proto

    def header_proto(self, name: str) -> TensorProto:
        """The header named `name`, for streaming writers that append raw_data themselves."""
        proto = TensorProto()
        proto.CopyFrom(self.header)
        proto.name = name
        return proto

    def equals(self, other: Tensor) -> bool:
        """True when both hold the same element type, shape and bytes."""
        if self.data_type != other.data_type or self.shape != other.shape:
            return False
        a, b = self.raw_bytes(), other.raw_bytes()
        if a is not None and b is not None:
            return bytes(a) == bytes(b)
        return self.to_proto("") == other.to_proto("")


def _header_of(proto: TensorProto) -> TensorProto:
    header = TensorProto()
    header.dims.extend(proto.dims)
    header.data_type = proto.data_type
    header.doc_string = proto.doc_string
    header.metadata_props.extend(proto.metadata_props)
    return header
