"""The byte layer of the StrideTwin clip format (``.stclip``): constants and pure encode/decode functions.

Layout (all integers little-endian; the full description is ``docs/clip-format.md``)::

    file    = header record* [footer trailer]
    header  = magic(8) major(u16) minor(u16) reserved(u32)                          16 bytes
    record  = type(u8) length(u32) payload(length bytes) crc32(u32)                 crc over type+length+payload
    trailer = footer_offset(u64) end_magic(8)                                       16 bytes

Nothing here touches a file: :mod:`sensor_drivers.recording.clipfile` does the I/O.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.sample import ImuSample

#: First 8 bytes of every clip. Like PNG's: a high-bit byte catches 7-bit transfers, CR LF and LF catch newline
#: conversion, Ctrl-Z stops a ``type`` on Windows.
MAGIC = b"\x89STC\r\n\x1a\n"
#: Last 8 bytes of a finished clip.
END_MAGIC = b"\x89STCEND\n"
FILE_EXTENSION = ".stclip"

#: The schema version this code writes.
SCHEMA_MAJOR = 1
SCHEMA_MINOR = 0
#: Major versions this code reads. A minor bump only adds record types, sample fields or JSON keys (skippable).
SUPPORTED_MAJORS: tuple[int, ...] = (1,)

HEADER = struct.Struct("<8sHHI")
RECORD_HEAD = struct.Struct("<BI")
CRC = struct.Struct("<I")
TRAILER = struct.Struct("<Q8s")
#: Bytes a record adds around its payload.
RECORD_OVERHEAD = RECORD_HEAD.size + CRC.size
#: Largest payload a reader accepts; a larger length field means a damaged record (writers stay far below).
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024

BLOCK_HEAD = struct.Struct("<HHII")  # sensor_index, reserved, n_samples, field_mask
SECTION_HEAD = struct.Struct("<H")  # name length, then name, then kind(u8) mode(u8)
SECTION_KIND_MODE = struct.Struct("<BB")
ARRAY_MANIFEST_LEN = struct.Struct("<I")
FOOTER_DIGEST_BYTES = 32


class RecordType(IntEnum):
    """Record types of schema 1. A reader skips types it does not know."""

    METADATA = 0x01
    SENSOR = 0x02
    SAMPLES = 0x03
    LINK_EVENT = 0x04
    SECTION = 0x05
    FOOTER = 0xF0


class SectionKind(IntEnum):
    JSON = 0
    ARRAYS = 1


class SectionMode(IntEnum):
    #: The record's value replaces any earlier value of the section.
    REPLACE = 0
    #: JSON: a list is extended (any other value appended); arrays: concatenated along axis 0.
    APPEND = 1


@dataclass(frozen=True)
class SampleField:
    """One column of a sample block."""

    name: str
    #: Bit in the block's field mask; columns are stored in ascending bit order.
    bit: int
    dtype: str
    #: Values per sample (3 for a vector, 4 for a quaternion).
    width: int

    @property
    def fill(self) -> float | int:
        """The value meaning "absent": NaN for floats, -1 for integers."""
        return math.nan if self.dtype[1] == "f" else -1

    @property
    def bytes_per_sample(self) -> int:
        return np.dtype(self.dtype).itemsize * self.width


#: The sample columns of schema 1. New fields may only be added at higher bits (a minor version bump): a reader
#: stops at the first bit it does not know, which is safe because the unknown columns all come after known ones.
SAMPLE_FIELDS: tuple[SampleField, ...] = (
    SampleField("device_time_s", 0, "<f8", 1),
    SampleField("host_time_s", 1, "<f8", 1),
    SampleField("seq", 2, "<i8", 1),
    SampleField("acc_m_s2", 3, "<f4", 3),
    SampleField("gyr_rad_s", 4, "<f4", 3),
    SampleField("mag_ut", 5, "<f4", 3),
    SampleField("quat_wxyz", 6, "<f4", 4),
    #: Acceleration in the device's world frame with gravity removed (Movella DOT "free acceleration"); not a
    #: specific force, so never stored in ``acc_m_s2``.
    SampleField("free_acc_m_s2", 7, "<f4", 3),
    SampleField("battery_pct", 8, "<f4", 1),
    SampleField("rssi_dbm", 9, "<f4", 1),
    SampleField("acc_clip_count", 10, "<i4", 1),
    SampleField("gyr_clip_count", 11, "<i4", 1),
)
FIELDS_BY_NAME: dict[str, SampleField] = {f.name: f for f in SAMPLE_FIELDS}
HOST_TIME_BIT = FIELDS_BY_NAME["host_time_s"].bit
KNOWN_FIELD_MASK = sum(1 << f.bit for f in SAMPLE_FIELDS)

_ALLOWED_ARRAY_KINDS = "fiub"


# ---------------------------------------------------------------------------------------------------------- framing
def encode_header(major: int = SCHEMA_MAJOR, minor: int = SCHEMA_MINOR) -> bytes:
    return HEADER.pack(MAGIC, major, minor, 0)


def decode_header(data: bytes | memoryview, source: str) -> tuple[int, int]:
    """``(major, minor)`` from the first 16 bytes; raises RecordingFormatError for anything that is not a clip."""
    if len(data) < HEADER.size or bytes(data[:8]) != MAGIC:
        raise RecordingFormatError(f"{source}: not a StrideTwin clip ({_guess_kind(bytes(data[:64]))})")
    _, major, minor, _reserved = HEADER.unpack_from(data, 0)
    if major not in SUPPORTED_MAJORS:
        supported = ", ".join(f"{m}.x" for m in SUPPORTED_MAJORS)
        newer = "newer than" if major > max(SUPPORTED_MAJORS) else "not one of"
        raise RecordingFormatError(
            f"{source}: clip schema version {major}.{minor} is {newer} the versions this StrideTwin reads "
            f"({supported}); open it with a StrideTwin that supports schema {major}"
        )
    return major, minor


def _guess_kind(head: bytes) -> str:
    """A hint for a file that is not a clip, so the user knows what to do instead."""
    if not head:
        return "the file is empty; a clip starts with the 8 magic bytes 89 53 54 43 0D 0A 1A 0A"
    text = head.lstrip(b"\xef\xbb\xbf")
    if text.startswith((b"sep=", b"PacketCounter", b"//", b"# stridetwin", b"sensor_id")):
        return "it looks like a CSV/text export: convert it with `stridetwin import xsens|dot|csv`"
    if head.startswith(MAGIC[:4]):
        return "the file is shorter than the 16-byte clip header"
    return f"it does not start with the clip magic bytes 89 53 54 43 0D 0A 1A 0A (found {head[:8].hex(' ')})"


def encode_record(record_type: int, payload: bytes) -> bytes:
    """One framed record: type, length, payload, CRC-32 (zlib/PNG polynomial) of type+length+payload."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"record payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    head = RECORD_HEAD.pack(record_type, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, payload, CRC.pack(crc)))


@dataclass(frozen=True, slots=True)
class RecordSpan:
    """Where one valid record lies in a buffer."""

    record_type: int
    offset: int
    payload_start: int
    payload_end: int

    @property
    def end(self) -> int:
        return self.payload_end + CRC.size


class RecordProblemError(Exception):
    """Why the record at an offset is not valid (internal; the reader turns it into RecordingFormatError)."""

    def __init__(self, offset: int, what: str, truncated: bool) -> None:
        super().__init__(what)
        self.offset = offset
        self.what = what
        self.truncated = truncated


def parse_record(buf: memoryview, offset: int) -> RecordSpan:
    """The record starting at ``offset``; raises :class:`RecordProblemError` if it is cut short or damaged."""
    left = len(buf) - offset
    if left < RECORD_OVERHEAD:
        raise RecordProblemError(offset, f"{left} byte(s) at the end are too short for a record", truncated=True)
    record_type, length = RECORD_HEAD.unpack_from(buf, offset)
    if length > MAX_PAYLOAD_BYTES:
        raise RecordProblemError(offset, f"record length field {length} exceeds the limit (damaged)", truncated=False)
    end = offset + RECORD_HEAD.size + length + CRC.size
    if end > len(buf):
        raise RecordProblemError(
            offset, f"record of type 0x{record_type:02X} needs {end - offset} bytes, {left} left", truncated=True
        )
    payload_start = offset + RECORD_HEAD.size
    payload_end = payload_start + length
    (crc_stored,) = CRC.unpack_from(buf, payload_end)
    if zlib.crc32(buf[offset:payload_end]) != crc_stored:
        raise RecordProblemError(offset, f"record of type 0x{record_type:02X} fails its CRC-32", truncated=False)
    return RecordSpan(record_type, offset, payload_start, payload_end)


# ---------------------------------------------------------------------------------------------------------- JSON
def encode_json(value: Any) -> bytes:
    """Strict JSON (no NaN/Infinity, which other languages' parsers reject), UTF-8."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except ValueError as exc:
        raise ValueError(f"cannot store {value!r:.200} as strict JSON: {exc} (use null for a missing number)") from None


def decode_json(payload: bytes | memoryview, what: str) -> Any:
    try:
        return json.loads(bytes(payload))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingFormatError(f"{what} holds invalid JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------------------- samples
_NAN3 = (math.nan, math.nan, math.nan)
_NAN4 = (math.nan, math.nan, math.nan, math.nan)


def columns_from_samples(samples: Sequence[ImuSample]) -> dict[str, NDArray]:
    """Turn samples of one sensor into the block columns they carry (optional fields only where any sample has them).

    The hot path of recording: one list comprehension per field, no per-sample Python branches beyond ``or``.
    """
    n = len(samples)
    cols: dict[str, NDArray] = {
        "host_time_s": np.fromiter((s.host_time_s for s in samples), np.float64, n),
        "acc_m_s2": np.array([s.acc_m_s2 for s in samples], np.float32),
        "gyr_rad_s": np.array([s.gyr_rad_s for s in samples], np.float32),
    }
    device = [s.device_time_s for s in samples]
    if any(t is not None for t in device):
        cols["device_time_s"] = np.array(device, np.float64)  # None → NaN
    seq = [s.seq for s in samples]
    if any(q is not None for q in seq):
        cols["seq"] = np.array([-1 if q is None else q for q in seq], np.int64)
    mag = [s.mag_ut for s in samples]
    if any(m is not None for m in mag):
        cols["mag_ut"] = np.array([m or _NAN3 for m in mag], np.float32)
    quat = [s.quat_wxyz for s in samples]
    if any(q is not None for q in quat):
        cols["quat_wxyz"] = np.array([q or _NAN4 for q in quat], np.float32)
    status = [s.status for s in samples]
    if any(st is not None for st in status):
        for name, fill in (("battery_pct", None), ("rssi_dbm", None), ("acc_clip_count", -1), ("gyr_clip_count", -1)):
            values = [getattr(st, name) if st is not None else None for st in status]
            if any(v is not None for v in values):
                if fill is None:
                    cols[name] = np.array(values, np.float32)
                else:
                    cols[name] = np.array([fill if v is None else v for v in values], np.int32)
    return cols


def encode_block(sensor_index: int, columns: Mapping[str, NDArray]) -> bytes:
    """A SAMPLES payload: block head, then each present column in ascending bit order, little-endian, C order."""
    if "host_time_s" not in columns:
        raise ValueError("a sample block needs host_time_s")
    n = len(columns["host_time_s"])
    mask = 0
    parts: list[bytes] = []
    for field in SAMPLE_FIELDS:
        col = columns.get(field.name)
        if col is None:
            continue
        arr = np.ascontiguousarray(col, dtype=field.dtype)
        expected_shape = (n,) if field.width == 1 else (n, field.width)
        if arr.shape != expected_shape:
            raise ValueError(f"column {field.name} has shape {arr.shape}, expected {expected_shape}")
        mask |= 1 << field.bit
        parts.append(arr.tobytes())
    unknown = set(columns) - set(FIELDS_BY_NAME)
    if unknown:
        raise ValueError(f"unknown sample column(s) {sorted(unknown)}; known: {[f.name for f in SAMPLE_FIELDS]}")
    return BLOCK_HEAD.pack(sensor_index, 0, n, mask) + b"".join(parts)


@functools.lru_cache(maxsize=1024)
def block_layout(n_samples: int, field_mask: int) -> tuple[dict[str, tuple[int, int]], int]:
    """Where each known column of a block lies relative to the payload start (offset, size in bytes), and the payload
    size the head and the known columns need. Blocks of one sensor mostly share one layout, hence the cache."""
    layout: dict[str, tuple[int, int]] = {}
    pos = BLOCK_HEAD.size
    for field in SAMPLE_FIELDS:
        if field_mask & (1 << field.bit):
            size = n_samples * field.bytes_per_sample
            layout[field.name] = (pos, size)
            pos += size
    return layout, pos


@dataclass(frozen=True, slots=True)
class BlockView:
    """A decoded block head: which sensor, how many samples, which columns, where its payload starts."""

    sensor_index: int
    n_samples: int
    field_mask: int
    payload_start: int

    @property
    def column_spans(self) -> dict[str, tuple[int, int]]:
        """name → (start, end) byte offsets of each known column in the buffer."""
        layout, _ = block_layout(self.n_samples, self.field_mask)
        return {k: (self.payload_start + off, self.payload_start + off + size) for k, (off, size) in layout.items()}


def decode_block_head(buf: memoryview | bytes, start: int, end: int, what: str) -> BlockView:
    """Locate a block's columns without copying them; checks that the record holds exactly what the head says."""
    if end - start < BLOCK_HEAD.size:
        raise RecordingFormatError(f"{what}: sample block shorter than its {BLOCK_HEAD.size}-byte head")
    sensor_index, _reserved, n, mask = BLOCK_HEAD.unpack_from(buf, start)
    if not mask & (1 << HOST_TIME_BIT):
        raise RecordingFormatError(f"{what}: sample block without host_time_s")
    _, needed = block_layout(n, mask & KNOWN_FIELD_MASK)
    has_unknown = bool(mask & ~KNOWN_FIELD_MASK)
    if start + needed > end or (start + needed < end and not has_unknown):
        raise RecordingFormatError(
            f"{what}: sample block of {n} samples with field mask 0x{mask:X} needs {needed} bytes, "
            f"the record holds {end - start}"
        )
    return BlockView(sensor_index, n, mask & KNOWN_FIELD_MASK, start)


# ---------------------------------------------------------------------------------------------------------- sections
def encode_section(name: str, value: Any, mode: SectionMode = SectionMode.REPLACE) -> bytes:
    """A SECTION payload. ``value`` is JSON-able, or a mapping of column name → numpy array (an arrays section)."""
    name_bytes = name.encode()
    if not name or len(name_bytes) > 255:
        raise ValueError(f"section name {name!r} must be 1-255 UTF-8 bytes")
    head = SECTION_HEAD.pack(len(name_bytes)) + name_bytes
    if isinstance(value, Mapping) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        columns = []
        blobs = []
        for col_name, arr in value.items():
            if arr.dtype.kind not in _ALLOWED_ARRAY_KINDS:
                raise ValueError(f"section {name!r} column {col_name!r}: dtype {arr.dtype} is not numeric or bool")
            le = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype)
            columns.append({"name": str(col_name), "dtype": le.dtype.str, "shape": list(le.shape)})
            blobs.append(le.tobytes())
        manifest = encode_json({"columns": columns})
        kind_mode = SECTION_KIND_MODE.pack(SectionKind.ARRAYS, mode)
        return b"".join([head, kind_mode, ARRAY_MANIFEST_LEN.pack(len(manifest)), manifest, *blobs])
    return head + SECTION_KIND_MODE.pack(SectionKind.JSON, mode) + encode_json(value)


def decode_section(payload: memoryview, what: str) -> tuple[str, SectionMode, Any]:
    """``(name, mode, value)``; arrays sections decode to a dict of numpy arrays (copies)."""
    try:
        (name_len,) = SECTION_HEAD.unpack_from(payload, 0)
        pos = SECTION_HEAD.size
        name = bytes(payload[pos : pos + name_len]).decode()
        pos += name_len
        kind, mode = SECTION_KIND_MODE.unpack_from(payload, pos)
        pos += SECTION_KIND_MODE.size
        mode = SectionMode(mode)
        if kind == SectionKind.JSON:
            return name, mode, decode_json(payload[pos:], f"{what} (section {name!r})")
        if kind != SectionKind.ARRAYS:
            raise RecordingFormatError(f"{what}: section {name!r} has unknown kind {kind}; known: 0 (JSON), 1 (arrays)")
        (manifest_len,) = ARRAY_MANIFEST_LEN.unpack_from(payload, pos)
        pos += ARRAY_MANIFEST_LEN.size
        manifest = decode_json(payload[pos : pos + manifest_len], f"{what} (section {name!r} manifest)")
        pos += manifest_len
        arrays: dict[str, NDArray] = {}
        for col in manifest["columns"]:
            dtype = np.dtype(col["dtype"])
            shape = tuple(int(s) for s in col["shape"])
            size = dtype.itemsize * math.prod(shape)
            if pos + size > len(payload):
                raise RecordingFormatError(f"{what}: section {name!r} column {col['name']!r} runs past its record")
            arrays[col["name"]] = np.frombuffer(payload, dtype, math.prod(shape), pos).reshape(shape).copy()
            pos += size
        return name, mode, arrays
    except (struct.error, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, RecordingFormatError):
            raise
        raise RecordingFormatError(f"{what}: malformed section record ({exc})") from None
