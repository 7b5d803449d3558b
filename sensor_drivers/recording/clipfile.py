"""Writing, reading and recovering StrideTwin clips (``.stclip``); the byte layout is in :mod:`.format`.

- :class:`ClipWriter` streams samples to disk as they arrive: per-sensor blocks of at most ``block_samples`` samples
  or ``max_block_age_s`` seconds, each appended as one ``write`` to the OS, and an ``fsync`` at most every
  ``fsync_interval_s``. Memory stays flat (only the unwritten blocks are held); a crash of the process loses at most
  ``max_block_age_s`` of samples, a power loss at most ``max_block_age_s + fsync_interval_s`` (0.75 s by default).
- :func:`read_clip` verifies every record's CRC-32 and the footer's SHA-256 and returns numpy arrays per sensor.
- :func:`recover` turns an unfinished or damaged clip into a finished one marked ``recovered``, leaving the original
  untouched.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.drivers.base import SensorInfo
from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording import format as fmt
from sensor_drivers.recording.privacy import check_no_identity
from sensor_drivers.sample import ImuSample, LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import Site

_log = logging.getLogger(__name__)

DEFAULT_BLOCK_SAMPLES = 64
DEFAULT_MAX_BLOCK_AGE_S = 0.25
DEFAULT_FSYNC_INTERVAL_S = 0.5
#: Largest block :meth:`ClipWriter.write_arrays` writes (importers); 4096 samples × 104 bytes ≈ 0.4 MB.
BULK_BLOCK_SAMPLES = 4096


class UnfinishedClipError(RecordingFormatError):
    """A clip that was never closed (crash, power loss, still being written): :func:`recover` makes it readable."""


def _app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stridetwin")
    except PackageNotFoundError:
        return "0.0.0+source"


def default_metadata() -> dict[str, Any]:
    """The metadata every clip starts with; the capture app fills the ``None`` fields."""
    return {
        "schema_version": f"{fmt.SCHEMA_MAJOR}.{fmt.SCHEMA_MINOR}",
        "app": "stridetwin",
        "app_version": _app_version(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "patient": {"pseudonym": None, "height_m": None, "mass_kg": None, "affected_side": None},
        "protocol": {"test": "walkway", "walkway_length_m": None},
        "recovered": False,
    }


def deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``patch``: nested dicts merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------- index
@dataclass
class _SensorCount:
    sensor_id: str
    n_samples: int = 0
    n_blocks: int = 0
    host_time_first_s: float | None = None
    host_time_last_s: float | None = None


class _IndexBuilder:
    """Counts what has been written, for the footer's index (so a reader can summarise without decoding blocks)."""

    def __init__(self) -> None:
        self.n_records = 0
        self.sensors: dict[int, _SensorCount] = {}
        self.sections: dict[str, int] = {}
        self.n_link_events = 0
        self.n_metadata = 0

    def observe(self, record_type: int, payload: bytes | memoryview) -> None:
        self.n_records += 1
        if record_type == fmt.RecordType.SAMPLES:
            view = fmt.decode_block_head(memoryview(payload), 0, len(payload), "sample block")
            count = self.sensors.setdefault(view.sensor_index, _SensorCount(sensor_id=""))
            count.n_samples += view.n_samples
            count.n_blocks += 1
            if view.n_samples:
                start, end = view.column_spans["host_time_s"]
                first = float(np.frombuffer(payload, "<f8", 1, start)[0])
                last = float(np.frombuffer(payload, "<f8", 1, end - 8)[0])
                if count.host_time_first_s is None:
                    count.host_time_first_s = first
                count.host_time_last_s = last
        elif record_type == fmt.RecordType.SENSOR:
            info = fmt.decode_json(payload, "sensor record")
            self.sensors.setdefault(int(info["index"]), _SensorCount(sensor_id="")).sensor_id = info["sensor_id"]
        elif record_type == fmt.RecordType.SECTION:
            (name_len,) = fmt.SECTION_HEAD.unpack_from(payload, 0)
            name = bytes(payload[fmt.SECTION_HEAD.size : fmt.SECTION_HEAD.size + name_len]).decode()
            self.sections[name] = self.sections.get(name, 0) + 1
        elif record_type == fmt.RecordType.LINK_EVENT:
            self.n_link_events += 1
        elif record_type == fmt.RecordType.METADATA:
            self.n_metadata += 1

    def as_json(self, data_bytes: int, recovered: bool) -> dict[str, Any]:
        return {
            "data_bytes": data_bytes,
            "n_records": self.n_records,
            "n_metadata_records": self.n_metadata,
            "sensors": [{"index": i, **asdict(c)} for i, c in sorted(self.sensors.items())],
            "sections": self.sections,
            "n_link_events": self.n_link_events,
            "recovered": recovered,
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }


class _RecordFile:
    """An append-only clip file: header, framed records, a running SHA-256, and the footer on finish."""

    def __init__(self, path: Path, *, overwrite: bool, major: int = fmt.SCHEMA_MAJOR, minor: int = fmt.SCHEMA_MINOR):
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL) | getattr(os, "O_BINARY", 0)
        try:
            self._fd: int | None = os.open(path, flags, 0o640)
        except FileExistsError:
            raise FileExistsError(f"{path} already exists; a clip is never overwritten (choose another name)") from None
        self._sha = hashlib.sha256()
        self.offset = 0
        self.index = _IndexBuilder()
        self.dirty = False
        self.n_fsyncs = 0
        self._write(fmt.encode_header(major, minor))

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: the clip is already finished")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._sha.update(data)
        self.offset += len(data)
        self.dirty = True

    def write_record(self, record_type: int, payload: bytes) -> None:
        self._write(fmt.encode_record(record_type, payload))
        self.index.observe(record_type, payload)

    def write_raw_record(self, record_bytes: bytes | memoryview, record_type: int, payload: memoryview) -> None:
        """Copy an already framed, CRC-checked record verbatim (recovery)."""
        self._write(bytes(record_bytes))
        self.index.observe(record_type, payload)

    def sync(self) -> None:
        if self._fd is not None and self.dirty:
            os.fsync(self._fd)
            self.n_fsyncs += 1
            self.dirty = False

    def finish(self, recovered: bool) -> None:
        """Footer (SHA-256 of every byte so far + index), trailer, fsync, close."""
        if self._fd is None:
            return
        footer_offset = self.offset
        index = fmt.encode_json(self.index.as_json(footer_offset, recovered))
        self._write(fmt.encode_record(fmt.RecordType.FOOTER, self._sha.digest() + index))
        self._write(fmt.TRAILER.pack(footer_offset, fmt.END_MAGIC))
        self.sync()
        os.close(self._fd)
        self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None


# ---------------------------------------------------------------------------------------------------------- writer
@dataclass
class _SensorState:
    index: int
    info: dict[str, Any]
    pending: list[ImuSample] = field(default_factory=list)
    #: Writer clock when the oldest pending sample arrived.
    pending_since: float | None = None


def _sensor_record(index: int, info: SensorInfo | Mapping[str, Any]) -> dict[str, Any]:
    data = asdict(info) if isinstance(info, SensorInfo) else dict(info)
    if "sensor_id" not in data or "site" not in data:
        raise ValueError(f"sensor info needs at least sensor_id and site, got keys {sorted(data)}")
    data["site"] = str(data["site"])
    data["index"] = index
    return data


class ClipWriter:
    """Streams one recording into a clip file. Not thread-safe: call it from one thread (the event loop).

    Usage::

        with ClipWriter(path, metadata={"patient": {"pseudonym": "P-0042"}}, sensors=driver.sensors) as writer:
            async for item in driver.stream():
                writer.add(item)  # ImuSample or LinkEvent
            writer.write_section("quality_log", [...])

    Call :meth:`poll` periodically (e.g. every 0.1 s) when samples may stop arriving, so that pending blocks still
    reach the disk in time. Leaving the ``with`` block (normally or by an exception) finishes the clip: everything
    added so far is kept.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        sensors: Iterable[SensorInfo | Mapping[str, Any]] = (),
        *,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        max_block_age_s: float = DEFAULT_MAX_BLOCK_AGE_S,
        fsync_interval_s: float = DEFAULT_FSYNC_INTERVAL_S,
        overwrite: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if block_samples < 1:
            raise ValueError(f"block_samples must be ≥ 1, got {block_samples}")
        self.path = Path(path)
        self.block_samples = block_samples
        self.max_block_age_s = max_block_age_s
        self.fsync_interval_s = fsync_interval_s
        self._clock = clock
        meta = deep_merge(default_metadata(), metadata or {})
        meta["schema_version"] = f"{fmt.SCHEMA_MAJOR}.{fmt.SCHEMA_MINOR}"
        check_no_identity(meta, "metadata", in_metadata=True)
        payload = fmt.encode_json(meta)
        self._file = _RecordFile(self.path, overwrite=overwrite)
        self._file.write_record(fmt.RecordType.METADATA, payload)
        self._sensors: dict[str, _SensorState] = {}
        self._oldest_pending: float | None = None
        #: Malformed samples that could not be stored (see :meth:`_encode_salvaging`).
        self.n_rejected = 0
        for info in sensors:
            self.add_sensor(info)
        self._file.sync()
        _fsync_dir(self.path.parent.resolve())
        self._last_sync = self._clock()

    # -- declarations
    def add_sensor(self, info: SensorInfo | Mapping[str, Any]) -> None:
        """Declare a sensor (site, device info, protocol, nominal rate) or update its record (e.g. firmware)."""
        record = _sensor_record(len(self._sensors), info)
        state = self._sensors.get(record["sensor_id"])
        if state is not None:
            record = deep_merge(state.info, {**record, "index": state.index})
        check_no_identity(record, f"sensor {record['sensor_id']}", in_metadata=False)
        payload = fmt.encode_json(record)
        if state is None:
            if len(self._sensors) >= 0xFFFF:
                raise ValueError("a clip holds at most 65535 sensors")
            state = _SensorState(index=record["index"], info=record)
            self._sensors[record["sensor_id"]] = state
        else:
            state.info = record
        self._file.write_record(fmt.RecordType.SENSOR, payload)

    def update_metadata(self, patch: Mapping[str, Any]) -> None:
        """Append a metadata patch (deep-merged over the earlier metadata by readers), e.g. the patient's height."""
        check_no_identity(patch, "metadata", in_metadata=True)
        self._file.write_record(fmt.RecordType.METADATA, fmt.encode_json(dict(patch)))

    def write_section(self, name: str, value: Any, *, append: bool = False) -> None:
        """A named section: JSON-able data, or a dict of numpy arrays (e.g. ``calibration``, ``quality_log``,
        ``events``, ``metrics``, ``truth``). ``append`` extends the section instead of replacing it."""
        if not isinstance(value, Mapping) or not all(isinstance(v, np.ndarray) for v in value.values()):
            check_no_identity(value, f"section {name!r}", in_metadata=False)
        mode = fmt.SectionMode.APPEND if append else fmt.SectionMode.REPLACE
        self._file.write_record(fmt.RecordType.SECTION, fmt.encode_section(name, value, mode))

    # -- streaming
    def add(self, item: StreamItem) -> None:
        """Record one driver item: an :class:`ImuSample` is buffered, a :class:`LinkEvent` written at once."""
        if isinstance(item, ImuSample):
            self.add_sample(item)
        elif isinstance(item, LinkEvent):
            self.add_link_event(item)
        else:
            raise TypeError(f"ClipWriter.add takes ImuSample or LinkEvent, got {type(item).__name__}")

    def add_sample(self, sample: ImuSample) -> None:
        state = self._sensors.get(sample.sensor_id)
        if state is None:
            self.add_sensor({"sensor_id": sample.sensor_id, "site": sample.site})
            state = self._sensors[sample.sensor_id]
        pending = state.pending
        if not pending:
            state.pending_since = now = self._clock()
            if self._oldest_pending is None:
                self._oldest_pending = now
        pending.append(sample)
        if len(pending) >= self.block_samples:
            self._write_block(state)
        self.poll()

    def add_link_event(self, event: LinkEvent) -> None:
        state = self._sensors.get(event.sensor_id)
        if state is None:
            self.add_sensor({"sensor_id": event.sensor_id, "site": event.site})
        else:
            self._write_block(state)  # keep the file in arrival order around the event
        record = {
            "sensor_id": event.sensor_id,
            "site": str(event.site),
            "state": str(event.state),
            "host_time_s": event.host_time_s,
            "reason": event.reason,
            "n_missing": event.n_missing,
        }
        self._file.write_record(fmt.RecordType.LINK_EVENT, fmt.encode_json(record))
        self.poll()

    def write_arrays(self, sensor_id: str, columns: Mapping[str, NDArray]) -> None:
        """Append whole columns for a declared sensor (importers). Keys are sample field names; ``host_time_s`` is
        required; absent values are NaN (floats) or -1 (integers)."""
        state = self._sensors.get(sensor_id)
        if state is None:
            raise ValueError(f"sensor {sensor_id!r} is not declared; call add_sensor first")
        self._write_block(state)
        n = len(columns["host_time_s"])
        # A column without a single value is not stored: the reader reports the field as absent.
        columns = {
            k: v
            for k, v in columns.items()
            if k == "host_time_s" or not np.all(np.isnan(v) if np.asarray(v).dtype.kind == "f" else np.asarray(v) < 0)
        }
        for start in range(0, n, BULK_BLOCK_SAMPLES):
            chunk = {k: v[start : start + BULK_BLOCK_SAMPLES] for k, v in columns.items()}
            self._file.write_record(fmt.RecordType.SAMPLES, fmt.encode_block(state.index, chunk))
        self.poll()

    def _write_block(self, state: _SensorState) -> None:
        if not state.pending:
            return
        try:
            payload = fmt.encode_block(state.index, fmt.columns_from_samples(state.pending))
        except (ValueError, TypeError):
            payload = self._encode_salvaging(state)
        state.pending = []
        state.pending_since = None
        self._file.write_record(fmt.RecordType.SAMPLES, payload)
        times = [s.pending_since for s in self._sensors.values() if s.pending_since is not None]
        self._oldest_pending = min(times) if times else None

    def _encode_salvaging(self, state: _SensorState) -> bytes:
        """A block of the pending samples that can be stored; malformed ones (a driver bug: a vector of the wrong
        length, a non-number) are counted in ``n_rejected`` and logged instead of blocking every later block."""
        good = []
        for sample in state.pending:
            try:
                fmt.encode_block(state.index, fmt.columns_from_samples([sample]))
            except (ValueError, TypeError) as exc:
                self.n_rejected += 1
                _log.warning("%s: sample of %s not recorded (%s): %r", self.path, sample.sensor_id, exc, sample)
            else:
                good.append(sample)
        if not good:
            return fmt.encode_block(state.index, {"host_time_s": np.empty(0)})
        return fmt.encode_block(state.index, fmt.columns_from_samples(good))

    def poll(self) -> None:
        """Write blocks older than ``max_block_age_s`` and fsync if ``fsync_interval_s`` has passed. Cheap."""
        now = self._clock()
        if self._oldest_pending is not None and now - self._oldest_pending >= self.max_block_age_s:
            for state in self._sensors.values():
                self._write_block(state)
        if self._file.dirty and now - self._last_sync >= self.fsync_interval_s:
            self._file.sync()
            self._last_sync = now

    def flush(self) -> None:
        """Write every pending block and fsync now."""
        for state in self._sensors.values():
            self._write_block(state)
        self._file.sync()
        self._last_sync = self._clock()

    # -- finishing
    def close(self) -> None:
        """Finish the clip: pending blocks, footer with checksum and index. Safe to call twice."""
        if self._file.closed:
            return
        for state in self._sensors.values():
            self._write_block(state)
        self._file.finish(recovered=False)

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def n_fsyncs(self) -> int:
        return self._file.n_fsyncs

    @property
    def bytes_written(self) -> int:
        return self._file.offset

    def n_samples(self, sensor_id: str) -> int:
        """Samples of one sensor written to disk so far (excluding the pending block)."""
        state = self._sensors[sensor_id]
        count = self._file.index.sensors.get(state.index)
        return count.n_samples if count else 0

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------- reader
@dataclass
class SensorStream:
    """All samples of one sensor in a clip, as arrays of equal length ``n_samples``.

    ``device_time_s`` is NaN and ``seq`` is -1 where absent; ``acc_m_s2`` / ``gyr_rad_s`` are NaN where the source
    did not measure them (an export without gyroscope). Optional fields are ``None`` when no sample has them and
    otherwise NaN (floats) or -1 (counters) for the samples without.
    """

    index: int
    sensor_id: str
    #: A :class:`Site`; a site name this version does not know is kept as a string.
    site: Site | str
    #: The sensor record: transport, protocol, address, nominal_rate_hz, device_model, firmware, extra …
    info: dict[str, Any]
    host_time_s: NDArray[np.float64]
    device_time_s: NDArray[np.float64]
    seq: NDArray[np.int64]
    acc_m_s2: NDArray[np.float32]
    gyr_rad_s: NDArray[np.float32]
    mag_ut: NDArray[np.float32] | None = None
    quat_wxyz: NDArray[np.float32] | None = None
    free_acc_m_s2: NDArray[np.float32] | None = None
    battery_pct: NDArray[np.float32] | None = None
    rssi_dbm: NDArray[np.float32] | None = None
    acc_clip_count: NDArray[np.int32] | None = None
    gyr_clip_count: NDArray[np.int32] | None = None
    #: Fields that at least one block carried.
    fields_present: frozenset[str] = frozenset()

    @property
    def n_samples(self) -> int:
        return len(self.host_time_s)

    @property
    def nominal_rate_hz(self) -> float | None:
        rate = self.info.get("nominal_rate_hz")
        return float(rate) if rate else None


@dataclass(frozen=True)
class SkippedRecord:
    """A record the reader did not use: an unknown type (newer minor version) or, in recovery, a damaged span."""

    offset: int
    n_bytes: int
    reason: str


@dataclass
class Clip:
    """A clip as read: metadata, per-sensor arrays, link events and named sections."""

    path: Path
    schema_version: tuple[int, int]
    metadata: dict[str, Any]
    #: By sensor id, in declaration order.
    sensors: dict[str, SensorStream]
    link_events: list[LinkEvent]
    #: By name: JSON values, or dicts of numpy arrays.
    sections: dict[str, Any]
    #: Whether the clip has a valid footer (False only when read with ``allow_unfinished``).
    finished: bool
    n_records: int
    skipped_records: list[SkippedRecord] = field(default_factory=list)
    #: Footer index (empty for an unfinished clip).
    index: dict[str, Any] = field(default_factory=dict)
    #: For an unfinished clip read with ``allow_unfinished``: why reading stopped.
    stopped_reading: str | None = None

    @property
    def recovered(self) -> bool:
        return bool(self.metadata.get("recovered"))

    def at_site(self, site: Site | str) -> SensorStream | None:
        """The stream of the sensor on ``site`` (the first, if a clip has two), or ``None``."""
        return next((s for s in self.sensors.values() if str(s.site) == str(site)), None)


def _parse_site(text: str) -> Site | str:
    try:
        return Site(text)
    except ValueError:
        return text


@dataclass
class _Scan:
    """Valid records of a clip, in file order."""

    major: int
    minor: int
    spans: list[fmt.RecordSpan]
    footer: fmt.RecordSpan | None
    problem: fmt.RecordProblemError | None


def _scan(buf: memoryview, source: str, *, stop_at_problem: bool = True) -> _Scan:
    major, minor = fmt.decode_header(buf, source)
    spans: list[fmt.RecordSpan] = []
    offset = fmt.HEADER.size
    footer = None
    problem = None
    while offset < len(buf):
        try:
            span = fmt.parse_record(buf, offset)
        except fmt.RecordProblemError as exc:
            problem = exc
            break
        if span.record_type == fmt.RecordType.FOOTER:
            footer = span
            break
        spans.append(span)
        offset = span.end
    return _Scan(major, minor, spans, footer, problem)


def read_clip(path: str | os.PathLike[str], *, allow_unfinished: bool = False) -> Clip:
    """Read and verify a clip.

    Raises :class:`RecordingFormatError` naming what is wrong (not a clip, unsupported schema version, a damaged
    record, a checksum mismatch), or :class:`UnfinishedClipError` for a clip that was never finished, unless
    ``allow_unfinished`` (then everything up to the first incomplete record is returned, ``finished=False``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise RecordingFormatError(f"{path}: is a directory, not a clip file") from None
    buf = memoryview(data)
    scan = _scan(buf, str(path))
    finished = False
    index: dict[str, Any] = {}
    stopped = None
    if scan.footer is not None:
        footer = scan.footer
        trailer_ok = len(buf) == footer.end + fmt.TRAILER.size and fmt.TRAILER.unpack_from(buf, footer.end) == (
            footer.offset,
            fmt.END_MAGIC,
        )
        if not trailer_ok:
            raise RecordingFormatError(
                f"{path}: corrupted: the footer at byte {footer.offset} is not followed by the 16-byte end trailer "
                f"({len(buf) - footer.end} bytes follow it); run `stridetwin recover` to salvage the data"
            )
        digest = bytes(buf[footer.payload_start : footer.payload_start + fmt.FOOTER_DIGEST_BYTES])
        actual = hashlib.sha256(buf[: footer.offset]).digest()
        if digest != actual:
            raise RecordingFormatError(
                f"{path}: checksum mismatch: the SHA-256 of bytes 0-{footer.offset} is {actual.hex()[:16]}…, the "
                f"footer says {digest.hex()[:16]}… (the file was altered after it was finished)"
            )
        index = fmt.decode_json(buf[footer.payload_start + fmt.FOOTER_DIGEST_BYTES : footer.payload_end], "footer")
        finished = True
    elif scan.problem is not None and not scan.problem.truncated and buf[-8:] == fmt.END_MAGIC:
        raise RecordingFormatError(
            f"{path}: corrupted: {scan.problem.what} at byte {scan.problem.offset}; "
            "run `stridetwin recover` to salvage the valid records"
        )
    else:
        if scan.problem is not None:
            kind = "truncated" if scan.problem.truncated else "damaged"
            stopped = f"{kind} record at byte {scan.problem.offset}: {scan.problem.what}"
        else:
            stopped = f"no footer after {len(buf)} bytes"
        if not allow_unfinished:
            raise UnfinishedClipError(
                f"{path}: unfinished clip ({stopped}): it was not closed cleanly (crash, power loss, or still "
                "being recorded); `stridetwin recover FILE` writes a finished copy with everything up to there"
            )
    clip = _assemble(path, buf, scan, finished, index)
    clip.stopped_reading = stopped
    return clip


def _assemble(path: Path, buf: memoryview, scan: _Scan, finished: bool, index: dict[str, Any]) -> Clip:
    metadata: dict[str, Any] = {}
    sensor_records: dict[int, dict[str, Any]] = {}
    blocks: dict[int, list[fmt.BlockView]] = {}
    link_events: list[LinkEvent] = []
    sections: dict[str, Any] = {}
    skipped: list[SkippedRecord] = []
    for n, span in enumerate(scan.spans):
        what = f"{path}: record #{n} at byte {span.offset}"
        payload = buf[span.payload_start : span.payload_end]
        rtype = span.record_type
        if rtype == fmt.RecordType.METADATA:
            patch = fmt.decode_json(payload, what)
            if not isinstance(patch, dict):
                raise RecordingFormatError(f"{what}: metadata must be a JSON object")
            metadata = deep_merge(metadata, patch)
        elif rtype == fmt.RecordType.SENSOR:
            info = fmt.decode_json(payload, what)
            try:
                idx = int(info["index"])
                str(info["sensor_id"])
                sensor_records[idx] = deep_merge(sensor_records.get(idx, {}), info)
            except (KeyError, TypeError, ValueError):
                raise RecordingFormatError(f"{what}: sensor record without a valid index and sensor_id") from None
        elif rtype == fmt.RecordType.SAMPLES:
            view = fmt.decode_block_head(buf, span.payload_start, span.payload_end, what)
            if view.sensor_index not in sensor_records:
                raise RecordingFormatError(f"{what}: samples for sensor #{view.sensor_index}, which is not declared")
            blocks.setdefault(view.sensor_index, []).append(view)
        elif rtype == fmt.RecordType.LINK_EVENT:
            link_events.append(_link_event(payload, what))
        elif rtype == fmt.RecordType.SECTION:
            name, mode, value = fmt.decode_section(payload, what)
            sections[name] = _apply_section(sections.get(name), mode, value, what)
        else:
            skipped.append(SkippedRecord(span.offset, span.end - span.offset, f"unknown record type 0x{rtype:02X}"))
    sensors: dict[str, SensorStream] = {}
    for idx in sorted(sensor_records):
        info = sensor_records[idx]
        sensors[info["sensor_id"]] = _sensor_stream(buf, idx, info, blocks.get(idx, []))
    return Clip(
        path=path,
        schema_version=(scan.major, scan.minor),
        metadata=metadata,
        sensors=sensors,
        link_events=link_events,
        sections=sections,
        finished=finished,
        n_records=len(scan.spans),
        skipped_records=skipped,
        index=index,
    )


def _link_event(payload: memoryview | bytes, what: str) -> LinkEvent:
    """A LINK_EVENT record; a state this version does not know is kept as its string."""
    ev = fmt.decode_json(payload, what)
    try:
        try:
            state: LinkState | str = LinkState(ev["state"])
        except ValueError:
            state = str(ev["state"])
        return LinkEvent(
            sensor_id=str(ev["sensor_id"]),
            site=_parse_site(str(ev["site"])),  # type: ignore[arg-type]
            state=state,  # type: ignore[arg-type]
            host_time_s=float(ev["host_time_s"]),
            reason=str(ev.get("reason") or ""),
            n_missing=ev.get("n_missing"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingFormatError(
            f"{what}: malformed link event ({exc!r}); needs sensor_id, site, state, host_time_s"
        ) from None


def _apply_section(current: Any, mode: fmt.SectionMode, value: Any, what: str) -> Any:
    """A section's value after one more record: replace it, or append (list extend / array concatenation)."""
    if mode == fmt.SectionMode.REPLACE:
        return value
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        if current is None:
            return value
        if not isinstance(current, dict) or set(current) != set(value):
            raise RecordingFormatError(f"{what}: appended columns {sorted(value)} do not match the section's")
        return {k: np.concatenate([current[k], value[k]]) for k in current}
    items = value if isinstance(value, list) else [value]
    if current is None:
        return list(items)
    return (current if isinstance(current, list) else [current]) + items


def _sensor_stream(buf: memoryview, idx: int, info: dict[str, Any], views: list[fmt.BlockView]) -> SensorStream:
    """Concatenate a sensor's blocks into arrays: each block's column is one contiguous run of bytes in the file and in
    the output, so assembling is one memory copy per block and column."""
    n_total = sum(v.n_samples for v in views)
    first_rows = np.cumsum([0] + [v.n_samples for v in views])[:-1].tolist()
    keys = [(v.n_samples, v.field_mask) for v in views]
    layouts = {key: fmt.block_layout(*key)[0] for key in set(keys)}
    n_blocks = sum(1 for v in views if v.n_samples)
    columns: dict[str, NDArray | None] = {}
    present: set[str] = set()
    for fld in fmt.SAMPLE_FIELDS:
        shape = (n_total,) if fld.width == 1 else (n_total, fld.width)
        where = {key: layout[fld.name] for key, layout in layouts.items() if key[0] and fld.name in layout}
        runs = [
            (first_row * fld.bytes_per_sample, v.payload_start, where[key])
            for first_row, v, key in zip(first_rows, views, keys, strict=True)
            if key in where
        ]
        if not runs:
            required = fld.name in ("host_time_s", "device_time_s", "seq", "acc_m_s2", "gyr_rad_s")
            columns[fld.name] = np.full(shape, fld.fill, fld.dtype) if required else None
            continue
        present.add(fld.name)
        out = np.empty(shape, fld.dtype) if len(runs) == n_blocks else np.full(shape, fld.fill, fld.dtype)
        dst = memoryview(out).cast("B")
        for d, payload_start, (offset, size) in runs:
            start = payload_start + offset
            dst[d : d + size] = buf[start : start + size]
        dst.release()
        native = np.dtype(fld.dtype).newbyteorder("=")
        columns[fld.name] = out.astype(native, copy=False)  # a no-op on little-endian machines
    return SensorStream(
        index=idx,
        sensor_id=info["sensor_id"],
        site=_parse_site(str(info.get("site", ""))),
        info=info,
        fields_present=frozenset(present),
        **columns,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------------------- recovery
@dataclass
class RecoveryReport:
    """What :func:`recover` did."""

    source: Path
    #: The finished copy, or ``None`` when the source was already a valid finished clip.
    out_path: Path | None
    n_records_kept: int
    n_bytes_kept: int
    #: Damaged or truncated spans left out (offset, bytes, why).
    dropped: list[SkippedRecord]
    #: Samples per sensor id in the recovered clip.
    n_samples: dict[str, int]
    #: Last host time per sensor id in the recovered clip, s.
    last_host_time_s: dict[str, float]

    @property
    def n_bytes_dropped(self) -> int:
        return sum(d.n_bytes for d in self.dropped)


def _resync(buf: memoryview, start: int) -> int | None:
    """The next offset ≥ ``start`` where a valid record of a known type begins, or ``None``.

    A false match needs a known type byte, a plausible length and a matching CRC-32 (≈ 2⁻³² per candidate).
    """
    known = np.array([int(t) for t in fmt.RecordType], np.uint8)
    raw = np.frombuffer(buf, np.uint8)
    pos = start
    chunk = 1 << 20
    while pos < len(raw):
        window = raw[pos : pos + chunk]
        for rel in np.flatnonzero(np.isin(window, known)):
            try:
                fmt.parse_record(buf, pos + int(rel))
            except fmt.RecordProblemError:
                continue
            return pos + int(rel)
        pos += chunk
    return None


def _recoverable(span: fmt.RecordSpan, payload: memoryview, declared: set[int], writer: _RecordFile) -> bool:
    """Whether a CRC-valid record can go into the recovered clip. A sample block whose sensor record was lost gets a
    placeholder declaration (``sensor-<index>``, site unknown) so that its samples are kept."""
    try:
        if span.record_type == fmt.RecordType.SENSOR:
            info = fmt.decode_json(payload, "sensor record")
            str(info["sensor_id"])
            declared.add(int(info["index"]))
        elif span.record_type == fmt.RecordType.SAMPLES:
            view = fmt.decode_block_head(payload, 0, len(payload), "sample block")
            if view.sensor_index not in declared:
                placeholder = {"index": view.sensor_index, "sensor_id": f"sensor-{view.sensor_index}", "site": ""}
                placeholder["extra"] = {"recovery": "sensor record lost; placeholder"}
                writer.write_record(fmt.RecordType.SENSOR, fmt.encode_json(placeholder))
                declared.add(view.sensor_index)
        elif span.record_type == fmt.RecordType.METADATA:
            if not isinstance(fmt.decode_json(payload, "metadata"), dict):
                return False
        elif span.record_type == fmt.RecordType.LINK_EVENT:
            _link_event(payload, "link event")
        elif span.record_type == fmt.RecordType.SECTION:
            fmt.decode_section(payload, "section")
    except (RecordingFormatError, KeyError, TypeError, ValueError):
        return False
    return True


def recover(
    path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None, *, salvage: bool = True
) -> RecoveryReport:
    """Write a finished copy of an unfinished or damaged clip, marked ``recovered: true``.

    Keeps every valid record up to the first truncated or damaged one; with ``salvage`` it then looks for the next
    valid record and carries on, so one damaged block does not cost the rest of the walk. The original file is
    never modified; the copy (default ``NAME.recovered.stclip`` beside it) is verified with :func:`read_clip`
    before this returns, and removed again if that fails.
    """
    path = Path(path)
    data = path.read_bytes()
    buf = memoryview(data)
    major, minor = fmt.decode_header(buf, str(path))
    try:
        clip = read_clip(path)
    except RecordingFormatError:
        pass
    else:
        return RecoveryReport(
            path,
            None,
            clip.n_records,
            len(data),
            [],
            {k: s.n_samples for k, s in clip.sensors.items()},
            {k: float(s.host_time_s[-1]) for k, s in clip.sensors.items() if s.n_samples},
        )
    out = Path(out_path) if out_path is not None else path.with_name(path.name.removesuffix(fmt.FILE_EXTENSION))
    if out_path is None:
        out = out.with_name(out.name + ".recovered" + fmt.FILE_EXTENSION)
    if out.resolve() == path.resolve():
        raise ValueError(f"{out}: the recovered copy must not overwrite the original")
    dropped: list[SkippedRecord] = []
    declared: set[int] = set()
    writer = _RecordFile(out, overwrite=False, major=major, minor=minor)
    try:
        offset = fmt.HEADER.size
        while offset < len(buf):
            try:
                span = fmt.parse_record(buf, offset)
            except fmt.RecordProblemError as exc:
                nxt = _resync(buf, offset + 1) if salvage and not exc.truncated else None
                end = nxt if nxt is not None else len(buf)
                dropped.append(SkippedRecord(offset, end - offset, exc.what))
                offset = end
                continue
            if span.record_type == fmt.RecordType.FOOTER:
                tail = len(buf) - span.end
                if tail != fmt.TRAILER.size:
                    dropped.append(SkippedRecord(span.end, tail, "bytes after the footer"))
                break
            payload = buf[span.payload_start : span.payload_end]
            if not _recoverable(span, payload, declared, writer):
                dropped.append(SkippedRecord(span.offset, span.end - span.offset, "record with undecodable content"))
            else:
                writer.write_raw_record(buf[span.offset : span.end], span.record_type, payload)
            offset = span.end
        recovery = {
            "source": path.name,
            "recovered_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "n_bytes_kept": writer.offset - fmt.HEADER.size,
            "n_bytes_dropped": sum(d.n_bytes for d in dropped),
            "dropped": [asdict(d) for d in dropped],
        }
        writer.write_record(fmt.RecordType.METADATA, fmt.encode_json({"recovered": True, "recovery": recovery}))
        writer.finish(recovered=True)
        clip = read_clip(out)
    except BaseException:
        if not writer.closed:
            writer.finish(recovered=True)
        out.unlink(missing_ok=True)
        raise
    return RecoveryReport(
        path,
        out,
        clip.n_records,
        int(recovery["n_bytes_kept"]),
        dropped,
        {k: s.n_samples for k, s in clip.sensors.items()},
        {k: float(s.host_time_s[-1]) for k, s in clip.sensors.items() if s.n_samples},
    )


def find_unfinished(directory: str | os.PathLike[str]) -> list[Path]:
    """Clips in ``directory`` without a valid end trailer (for the app to offer recovery on its next start).

    Cheap: reads only each file's last 16 bytes; files that already have a ``.recovered`` copy are left out.
    """
    found = []
    for p in sorted(Path(directory).glob(f"*{fmt.FILE_EXTENSION}")):
        if p.name.endswith(".recovered" + fmt.FILE_EXTENSION):
            continue
        if p.with_name(p.name.removesuffix(fmt.FILE_EXTENSION) + ".recovered" + fmt.FILE_EXTENSION).exists():
            continue
        with p.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size >= fmt.HEADER.size + fmt.TRAILER.size:
                fh.seek(size - fmt.TRAILER.size)
                offset, magic = fmt.TRAILER.unpack(fh.read(fmt.TRAILER.size))
                if magic == fmt.END_MAGIC and offset < size:
                    continue
        found.append(p)
    return found


__all__ = [
    "DEFAULT_BLOCK_SAMPLES",
    "DEFAULT_FSYNC_INTERVAL_S",
    "DEFAULT_MAX_BLOCK_AGE_S",
    "Clip",
    "ClipWriter",
    "RecoveryReport",
    "SensorStream",
    "SkippedRecord",
    "UnfinishedClipError",
    "default_metadata",
    "find_unfinished",
    "read_clip",
    "recover",
]
