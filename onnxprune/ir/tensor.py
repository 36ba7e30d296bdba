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
#: Element types whose raw bytes can be sliced and zeroed as numpy arrays of the same width (bfloat16 and
#: float8 as their bit patterns, with +0.0 as all-zero bits): what compact and masking need to keep a
#: weight's type exactly. Packed 4-bit types are not here: a slice may split a byte.
STORAGE_DTYPES: dict[int, np.dtype] = {
    **RAW_NUMPY_DTYPES,
    TensorProto.BFLOAT16: np.dtype("<u2"),
    TensorProto.FLOAT8E4M3FN: np.dtype("u1"), TensorProto.FLOAT8E4M3FNUZ: np.dtype("u1"),
    TensorProto.FLOAT8E5M2: np.dtype("u1"), TensorProto.FLOAT8E5M2FNUZ: np.dtype("u1"),
}
#: Deferred tensors up to this size keep their computed bytes; larger ones are computed again on each use,
#: so a model's sliced weights are never all held at once.
DEFERRED_CACHE_BYTES = 16 * 1024 * 1024
_LITTLE_ENDIAN = sys.byteorder == "little"


class Tensor:
    """An initializer's data plus its header (dims, data type, doc string, metadata; no name).

    It holds one of four things: the raw little-endian bytes of any fixed-width type (a memoryview,
    often into a memory-mapped model file: nothing is copied; bfloat16, float8 and int4 included), a
    numpy array someone set, a function that computes its storage array when asked (a slice or masked
    copy of a large weight, made while the model is written, see `deferred`), or, for data kept in typed
    fields (`float_data`, strings, ...), the original TensorProto untouched. Tensors are immutable: to
    change a weight, make a new Tensor.
    """

    __slots__ = ("_array", "_compute", "_proto", "_raw", "_shape", "header")

    def __init__(self, header: TensorProto, *, raw=None, array: np.ndarray | None = None,
                 proto: TensorProto | None = None, compute=None) -> None:
        self.header = header
        self._raw = raw
        self._array = array
        self._proto = proto
        self._compute = compute
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
    def deferred(cls, like: Tensor, shape: tuple[int, ...], compute) -> Tensor:
        """A tensor of `like`'s type (and doc string, metadata) and `shape` whose storage array (see
        `storage`) `compute()` returns when it is read or written: a slice of a large weight is taken as
        the model is written, one tensor at a time, instead of being held from compact to save."""
        if like.data_type not in STORAGE_DTYPES:
            raise ValueError(f"no storage array for {onnx.helper.tensor_dtype_to_string(like.data_type)}")
        header = TensorProto()
        header.CopyFrom(like.header)
        del header.dims[:]
        header.dims.extend(shape)
        return cls(header, compute=compute)

    @classmethod
    def from_storage(cls, array: np.ndarray, like: Tensor) -> Tensor:
        """A tensor of `like`'s element type holding `array`, a storage array (see `storage`)."""
        header = TensorProto()
        header.CopyFrom(like.header)
        del header.dims[:]
        header.dims.extend(array.shape)
        data = np.ascontiguousarray(array, dtype=STORAGE_DTYPES[like.data_type])
        return cls(header, raw=memoryview(data.reshape(-1)).cast("B"))

    @property
    def is_deferred(self) -> bool:
        """True while the data are computed on use (`deferred`) rather than held."""
        return self._compute is not None and self._raw is None

    @property
    def storage(self) -> np.ndarray | None:
        """The data as stored, a read-only numpy array of the same bytes (bfloat16 and float8 as their
        unsigned bit patterns): slicing or zeroing it keeps the element type exactly. None for types
        with no such array (packed 4-bit types, strings) or big-endian hosts."""
        dtype = STORAGE_DTYPES.get(self.data_type)
        if dtype is None or not _LITTLE_ENDIAN:
            return None
        if self.is_deferred:
            array = np.ascontiguousarray(self._compute(), dtype=dtype)
            if array.shape != self.shape:
                raise ValueError(f"a deferred tensor computed shape {array.shape}, expected {self.shape}")
            if array.nbytes <= DEFERRED_CACHE_BYTES:
                self._raw = memoryview(array.reshape(-1)).cast("B")
            array.flags.writeable = False
            return array
        if self._raw is None and self._array is None:  # typed fields: convert once
            self._array = _typed_array(self._proto, dtype)
        if self._array is not None and self._raw is None:
            return self._array
        raw = memoryview(self._raw)
        if raw.nbytes != self.size * dtype.itemsize:
            raise ValueError(f"raw data has {raw.nbytes} bytes, expected {self.size * dtype.itemsize} "
                             f"for shape {self.shape} of {onnx.helper.tensor_dtype_to_string(self.data_type)}")
        array = np.frombuffer(raw, dtype=dtype).reshape(self.shape)
        array.flags.writeable = False
        return array

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
        if self._compute is not None:
            return self.size * STORAGE_DTYPES[self.data_type].itemsize
        if self._array is not None:
            return self._array.nbytes
        return self._proto.ByteSize()

    @property
    def array(self) -> np.ndarray:
        """The data as a read-only numpy array (a view of the file's bytes where possible)."""
        if self._array is not None:
            return self._array
        if self.data_type in RAW_NUMPY_DTYPES and _LITTLE_ENDIAN and (self._raw is not None or self.is_deferred):
            array = self.storage  # a view of the bytes (a deferred tensor: computed, kept only if small)
            if self._raw is not None:
                self._array = array
            return array
        if self.data_type == TensorProto.BFLOAT16 and self.storage is not None:  # exact: bfloat16 is float32's top half
            array = (self.storage.astype(np.uint32) << 16).view(np.float32)
        else:  # typed fields, or a raw type numpy has no dtype for (float8, int4): convert
            proto = self.to_proto("")  # kept alive: onnx's to_array may return a view of its bytes
            array = np.array(numpy_helper.to_array(proto), copy=True)
        array.flags.writeable = False
        if not self.is_deferred:
            self._array = array
        return array

    def raw_bytes(self):
        """The data as little-endian bytes (bytes-like, not copied where avoidable), or None if the
        tensor must be written as its original proto (typed fields, strings, ...)."""
        if self._raw is not None:
            return self._raw
        if self._compute is not None:  # computed for this use and dropped after it (unless small)
            return memoryview(np.ascontiguousarray(self.storage).reshape(-1)).cast("B")
        if self._array is not None and self.data_type in RAW_NUMPY_DTYPES:
            return memoryview(self._array.reshape(-1)).cast("B")
        return None

    @property
    def writes_raw(self) -> bool:
        """Whether `raw_bytes` has bytes to give (without computing a deferred tensor)."""
        return self._raw is not None or self._compute is not None or \
            (self._array is not None and self.data_type in RAW_NUMPY_DTYPES)

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


def _typed_array(proto: TensorProto, dtype: np.dtype) -> np.ndarray:
    """The storage array of a tensor kept in typed fields (bfloat16 and float8 bit patterns sit in
    int32_data, one element each)."""
    if proto.data_type in RAW_NUMPY_DTYPES:
        array = np.array(numpy_helper.to_array(proto), dtype=dtype, copy=True)
    else:
        array = np.asarray(proto.int32_data, dtype=np.int64).astype(dtype).reshape(tuple(proto.dims))
    array.flags.writeable = False
    return array


def _header_of(proto: TensorProto) -> TensorProto:
    header = TensorProto()
    header.dims.extend(proto.dims)
    header.data_type = proto.data_type
    header.doc_string = proto.doc_string
    header.metadata_props.extend(proto.metadata_props)
    return header
