"""Just enough of protobuf's wire format to split a model's bulk tensor bytes from its structure.

Parsing a whole ModelProto copies every weight into the parsed message, and serialising it copies them
again; for a model of N bytes that costs 3N of memory. Instead the loader walks the top-level fields of
ModelProto, GraphProto and each initializer's TensorProto, parses only the small structural parts with
protobuf, and leaves `raw_data` where it lies in the memory-mapped file. The saver writes the same layout
back, streaming tensor bytes straight from their arrays. Field numbers are onnx.proto's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# onnx.proto field numbers used here.
MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
TENSOR_RAW_DATA = 9

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not well-formed protobuf (truncated, or not protobuf at all)."""


@dataclass(frozen=True)
class Field:
    """One top-level field of a message: its number, wire type, and byte spans within the buffer.

    `start:end` covers the whole field (tag included); `value_start:end` is the payload of a
    length-delimited field.
    """

    number: int
    wire_type: int
    start: int
    value_start: int
    end: int


def read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at `pos`; return (value, position after it)."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int as a protobuf varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited_header(number: int, length: int) -> bytes:
    """The tag and length prefix of a length-delimited field."""
    return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(length)


def iter_fields(buf, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """Yield the top-level fields of the message in `buf[start:end]`, checking every span is in bounds."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        field_start = pos
        tag, pos = read_varint(buf, pos, end)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == VARINT:
            _, pos = read_varint(buf, pos, end)
            value_start = pos
        elif wire_type == FIXED64:
            value_start, pos = pos, pos + 8
        elif wire_type == FIXED32:
            value_start, pos = pos, pos + 4
        elif wire_type == LENGTH_DELIMITED:
            length, value_start = read_varint(buf, pos, end)
            pos = value_start + length
        else:  # groups (3, 4) are not used by onnx.proto; 6, 7 are invalid
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > end:
            raise WireError("field runs past the end of the data (truncated file?)")
        yield Field(number, wire_type, field_start, value_start, pos)


def write_length_delimited(out: BinaryIO, number: int, parts: list) -> int:
    """Write field `number` whose payload is the concatenation of `parts` (bytes-like); return bytes written."""
    length = sum(memoryview(p).nbytes for p in parts)
    header = length_delimited_header(number, length)
    out.write(header)
    for p in parts:
        out.write(p)
    return len(header) + length
