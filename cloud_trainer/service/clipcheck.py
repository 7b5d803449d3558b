"""Checking an uploaded clip before the trainer accepts it, streaming: memory stays flat for a clip of any size.

It walks the framed records of ``docs/clip-format.md`` with the byte-level functions of
:mod:`sensor_drivers.recording.format` (the same code the capture app writes with), reading one record at a time, and
checks what the trainer relies on: a supported schema major version (else :class:`UnsupportedSchemaError`), every
record's CRC-32, a finished clip whose footer SHA-256 matches, no identifying metadata
(:func:`sensor_drivers.recording.privacy.check_no_identity`), finite timestamps, no infinite measurement, enough
samples per sensor and not too many in all (else :class:`InvalidClipError` or :class:`TooLargeError`).
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from cloud_trainer.service.config import Limits
from cloud_trainer.service.errors import InvalidClipError, TooLargeError, UnsupportedSchemaError
from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording import format as fmt
from sensor_drivers.recording.privacy import IdentifyingDataError, check_no_identity

#: Measurement columns that must never hold an infinity (NaN marks "not measured" and is allowed in moderation).
_MEASUREMENT_FIELDS = ("acc_m_s2", "gyr_rad_s", "mag_ut", "quat_wxyz", "free_acc_m_s2")


@dataclass
class _SensorTally:
    sensor_id: str
    site: str
    n_samples: int = 0
    n_acc_missing: int = 0
    n_gyr_missing: int = 0
    host_time_first_s: float = math.inf
    host_time_last_s: float = -math.inf


@dataclass(frozen=True)
class ClipSummary:
    """What the trainer learned about a valid clip while checking it."""

    schema_version: str
    pseudonym: str
    n_sensors: int
    n_samples: int
    #: Last sample minus first sample over all sensors, on the host clock.
    duration_s: float
    #: Sensor sites in declaration order.
    sites: tuple[str, ...]
    #: Records of types this version does not know (a newer minor version), skipped.
    n_unknown_records: int = 0
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class _Reader:
    """Exact reads from a stream, with the bytes before the footer hashed as they pass (the footer's SHA-256)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.offset = 0
        self.body_hash = hashlib.sha256()

    def at_end(self) -> bool:
        return not self._stream.read(1)

    def read(self, n: int, what: str, *, hash_it: bool = True) -> bytes:
        data = self._stream.read(n)
        if len(data) != n:
            raise InvalidClipError(
                f"unfinished clip: {what} at byte {self.offset} needs {n} bytes, {len(data)} left (the clip was not "
                "closed cleanly; `stridetwin recover FILE` writes a finished copy to upload instead)"
            )
        if hash_it:
            self.body_hash.update(data)
        self.offset += n
        return data


def check_clip(stream: BinaryIO, limits: Limits | None = None) -> ClipSummary:
    """Check the clip read from ``stream`` (positioned at its first byte) and summarise it.

    Raises :class:`UnsupportedSchemaError`, :class:`InvalidClipError` or :class:`TooLargeError` naming the problem
    and where it is.
    """
    limits = limits or Limits()
    reader = _Reader(stream)
    head = reader.read(fmt.HEADER.size, "the 16-byte header")
    magic, major, minor, _ = fmt.HEADER.unpack(head)
    if magic != fmt.MAGIC or major not in fmt.SUPPORTED_MAJORS:
        try:
            fmt.decode_header(head, "clip")
        except RecordingFormatError as exc:
            cls = UnsupportedSchemaError if magic == fmt.MAGIC else InvalidClipError
            raise cls(str(exc)) from None
    metadata: dict[str, Any] = {}
    sensors: dict[int, _SensorTally] = {}
    n_unknown = 0
    n_total = 0
    while True:
        record_offset = reader.offset
        rhead = reader.read(fmt.RECORD_HEAD.size, "a record head", hash_it=False)
        record_type, length = fmt.RECORD_HEAD.unpack(rhead)
        if length > fmt.MAX_PAYLOAD_BYTES:
            raise InvalidClipError(
                f"damaged clip: the record at byte {record_offset} declares {length} bytes (at most "
                f"{fmt.MAX_PAYLOAD_BYTES} exist in a valid clip)"
            )
        is_footer = record_type == fmt.RecordType.FOOTER
        if not is_footer:
            reader.body_hash.update(rhead)
        payload = reader.read(length, f"record of type 0x{record_type:02X}", hash_it=not is_footer)
        (crc,) = fmt.CRC.unpack(reader.read(fmt.CRC.size, "a record's CRC", hash_it=not is_footer))
        if zlib.crc32(payload, zlib.crc32(rhead)) != crc:
            raise InvalidClipError(
                f"damaged clip: the record of type 0x{record_type:02X} at byte {record_offset} fails its CRC-32"
            )
        what = f"record at byte {record_offset}"
        if is_footer:
            _check_footer(reader, payload, record_offset)
            break
        if record_type == fmt.RecordType.METADATA:
            patch = _json(payload, what)
            if not isinstance(patch, dict):
                raise InvalidClipError(f"malformed clip: {what}: metadata must be a JSON object")
            _no_identity(patch, "metadata", in_metadata=True)
            metadata = _merge(metadata, patch)
        elif record_type == fmt.RecordType.SENSOR:
            info = _json(payload, what)
            _no_identity(info, "sensor record", in_metadata=False)
            try:
                index, sensor_id, site = int(info["index"]), str(info["sensor_id"]), str(info["site"])
            except (KeyError, TypeError, ValueError):
                raise InvalidClipError(
                    f"malformed clip: {what}: a sensor record needs index, sensor_id and site"
                ) from None
            if index not in sensors:
                sensors[index] = _SensorTally(sensor_id, site)
        elif record_type == fmt.RecordType.SAMPLES:
            n_total += _check_block(payload, sensors, what)
            if n_total > limits.max_clip_samples:
                raise TooLargeError(
                    f"clip holds more than {limits.max_clip_samples} samples over all sensors (the most this trainer "
                    "processes); split the recording"
                )
        elif record_type == fmt.RecordType.LINK_EVENT:
            _json(payload, what)
        elif record_type == fmt.RecordType.SECTION:
            try:
                name, _mode, value = fmt.decode_section(memoryview(payload), what)
            except RecordingFormatError as exc:
                raise InvalidClipError(f"malformed clip: {exc}") from None
            if not (isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values())):
                _no_identity(value, f"section {name!r}", in_metadata=False)
        else:
            n_unknown += 1
    return _summarise(metadata, (major, minor), sensors, n_total, n_unknown, limits)


def _check_footer(reader: _Reader, payload: bytes, footer_offset: int) -> None:
    if len(payload) < fmt.FOOTER_DIGEST_BYTES:
        raise InvalidClipError(f"damaged clip: the footer at byte {footer_offset} is shorter than its SHA-256")
    if payload[: fmt.FOOTER_DIGEST_BYTES] != reader.body_hash.digest():
        raise InvalidClipError(
            f"damaged clip: the SHA-256 of bytes 0-{footer_offset} does not match the one in the clip's footer "
            "(the file was altered after the app finished it)"
        )
    trailer = reader.read(fmt.TRAILER.size, "the 16-byte end trailer", hash_it=False)
    if fmt.TRAILER.unpack(trailer) != (footer_offset, fmt.END_MAGIC):
        raise InvalidClipError(f"damaged clip: the footer at byte {footer_offset} is not followed by a valid trailer")
    if not reader.at_end():
        raise InvalidClipError(f"damaged clip: bytes follow the end trailer at byte {reader.offset}")


def _check_block(payload: bytes, sensors: dict[int, _SensorTally], what: str) -> int:
    try:
        view = fmt.decode_block_head(payload, 0, len(payload), what)
    except RecordingFormatError as exc:
        raise InvalidClipError(f"malformed clip: {exc}") from None
    tally = sensors.get(view.sensor_index)
    if tally is None:
        raise InvalidClipError(f"malformed clip: {what}: samples of sensor #{view.sensor_index}, never declared")
    n = view.n_samples
    if n == 0:
        return 0
    for name, (start, _end) in view.column_spans.items():
        field = fmt.FIELDS_BY_NAME[name]
        col = np.frombuffer(payload, field.dtype, n * field.width, start).reshape(n, field.width)
        if name == "host_time_s":
            if not np.all(np.isfinite(col)):
                raise InvalidClipError(
                    f"malformed clip: {what}: sensor {tally.sensor_id} ({tally.site}) has a host_time_s that is NaN "
                    "or infinite; every sample needs a finite receive time"
                )
            tally.host_time_first_s = min(tally.host_time_first_s, float(col[0, 0]))
            tally.host_time_last_s = max(tally.host_time_last_s, float(col[-1, 0]))
        elif name in _MEASUREMENT_FIELDS:
            if np.any(np.isinf(col)):
                raise InvalidClipError(
                    f"malformed clip: {what}: sensor {tally.sensor_id} ({tally.site}) has an infinite {name}; "
                    "a missing value is NaN, a measured one finite"
                )
            if name == "acc_m_s2":
                tally.n_acc_missing += int(np.count_nonzero(np.isnan(col).any(axis=1)))
            elif name == "gyr_rad_s":
                tally.n_gyr_missing += int(np.count_nonzero(np.isnan(col).any(axis=1)))
    spans = view.column_spans
    if "acc_m_s2" not in spans:
        tally.n_acc_missing += n
    if "gyr_rad_s" not in spans:
        tally.n_gyr_missing += n
    tally.n_samples += n
    return n


def _summarise(
    metadata: dict[str, Any],
    version: tuple[int, int],
    sensors: dict[int, _SensorTally],
    n_total: int,
    n_unknown: int,
    limits: Limits,
) -> ClipSummary:
    if not metadata:
        raise InvalidClipError("malformed clip: no metadata record (the first record of every clip)")
    declared = str(metadata.get("schema_version", ""))
    if declared.split(".")[0] != str(version[0]):
        raise InvalidClipError(
            f"malformed clip: metadata says schema_version {declared!r}, the header {version[0]}.{version[1]}"
        )
    if not sensors:
        raise InvalidClipError("clip declares no sensor; the trainer needs the kit's IMU samples")
    for tally in sensors.values():
        name = f"sensor {tally.sensor_id} ({tally.site})"
        if tally.n_samples < limits.min_samples_per_sensor:
            raise InvalidClipError(
                f"{name} has {tally.n_samples} samples; at least {limits.min_samples_per_sensor} are needed"
            )
        if tally.n_acc_missing == tally.n_samples and tally.n_gyr_missing == tally.n_samples:
            raise InvalidClipError(f"{name} carries no accelerometer or gyroscope sample (all NaN)")
        missing = tally.n_acc_missing / tally.n_samples
        if missing > limits.max_missing_acc_fraction:
            raise InvalidClipError(
                f"{name}: {100 * missing:.0f} % of accelerometer samples are NaN; at most "
                f"{100 * limits.max_missing_acc_fraction:.0f} % are accepted"
            )
    first = min(t.host_time_first_s for t in sensors.values())
    last = max(t.host_time_last_s for t in sensors.values())
    patient = metadata.get("patient") if isinstance(metadata.get("patient"), dict) else {}
    return ClipSummary(
        schema_version=f"{version[0]}.{version[1]}",
        pseudonym=str(patient.get("pseudonym") or ""),
        n_sensors=len(sensors),
        n_samples=n_total,
        duration_s=max(0.0, last - first),
        sites=tuple(sensors[i].site for i in sorted(sensors)),
        n_unknown_records=n_unknown,
        metadata=metadata,
    )


def _json(payload: bytes, what: str) -> Any:
    try:
        return fmt.decode_json(payload, what)
    except RecordingFormatError as exc:
        raise InvalidClipError(f"malformed clip: {exc}") from None


def _no_identity(value: Any, where: str, *, in_metadata: bool) -> None:
    try:
        check_no_identity(value, where, in_metadata=in_metadata)
    except IdentifyingDataError as exc:
        raise InvalidClipError(f"identifying data refused: {exc}") from None


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
