"""The open StrideTwin frame for do-it-yourself boards (ESP32 + IMU) over a serial link.

The full specification, written for firmware authors, is ``docs/protocols/stridetwin-frame.md``; in short
(everything little-endian)::

    A5 5A | version=1 | type | length N | payload (N bytes) | CRC-16/CCITT-FALSE over version..payload (2 bytes)

Frame types: 0x01 sample (device → host), 0x02 device info (device → host), 0x81 request info and 0x82 set rate
(host → device). A sample carries a uint32 µs device timestamp, a uint16 sequence number, flags, float32
acceleration (m/s²) and angular velocity (rad/s), and by flag float32 magnetic field (µT), a float32 w-first
quaternion and a status block (battery %, clipping counters).

Decoding: the host searches for ``A5 5A``, checks the header (version 1; for known types a length that fits the
type and flags), waits for the whole frame, checks the CRC, and on any failure restarts the search one byte after
the false sync. Timestamp and sequence number are unwrapped across calls (:class:`CounterUnwrapper`).
"""

from __future__ import annotations

import binascii
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag

from sensor_drivers.blocks import ROW_WIDTH, ReadingBlock
from sensor_drivers.errors import ProtocolError
from sensor_drivers.frames import G_M_S2
from sensor_drivers.protocols.base import DecoderStats
from sensor_drivers.protocols.counters import CounterUnwrapper
from sensor_drivers.sample import DeviceReading, DeviceStatus

SYNC = b"\xa5\x5a"
VERSION = 1
HEADER_LEN = 5
CRC_LEN = 2
#: Bytes a frame adds around its payload.
FRAME_OVERHEAD = HEADER_LEN + CRC_LEN
MAX_PAYLOAD_LEN = 255

#: Battery byte meaning "not known"; clipping-counter value meaning "not known".
BATTERY_UNKNOWN = 0xFF
CLIP_COUNT_UNKNOWN = 0xFFFF


class FrameType(IntEnum):
    """Frame types of version 1. Types 0x80 and up go from host to device."""

    SAMPLE = 0x01
    DEVICE_INFO = 0x02
    REQUEST_INFO = 0x81
    SET_RATE = 0x82


class SampleFlags(IntFlag):
    """Flags byte of a sample frame: which optional blocks follow, and clipping in this sample."""

    MAG = 0x01
    QUAT = 0x02
    STATUS = 0x04
    ACC_CLIPPED = 0x08
    GYR_CLIPPED = 0x10


_SAMPLE_HEAD = struct.Struct("<IHB6f")
_VEC3 = struct.Struct("<3f")
_QUAT = struct.Struct("<4f")
_STATUS = struct.Struct("<BHH")
_INFO = struct.Struct("<3fQ16s16s")
_RATE = struct.Struct("<f")
_CRC = struct.Struct("<H")

SAMPLE_BASE_LEN = _SAMPLE_HEAD.size  # 31
DEVICE_INFO_LEN = _INFO.size  # 52
# Plain ints for the hot path: arithmetic on IntFlag members costs about a microsecond each.
_FLAG_MAG = int(SampleFlags.MAG)
_FLAG_QUAT = int(SampleFlags.QUAT)
_FLAG_STATUS = int(SampleFlags.STATUS)
_OPTIONAL_FLAGS = _FLAG_MAG | _FLAG_QUAT | _FLAG_STATUS
_TYPE_SAMPLE = int(FrameType.SAMPLE)
_TYPE_DEVICE_INFO = int(FrameType.DEVICE_INFO)


def sample_payload_len(flags: int) -> int:
    """Length of a sample payload with these flags."""
    return _SAMPLE_LEN_BY_FLAGS[flags & _OPTIONAL_FLAGS]


_SAMPLE_LEN_BY_FLAGS = tuple(
    SAMPLE_BASE_LEN
    + (_VEC3.size if f & _FLAG_MAG else 0)
    + (_QUAT.size if f & _FLAG_QUAT else 0)
    + (_STATUS.size if f & _FLAG_STATUS else 0)
    for f in range(_OPTIONAL_FLAGS + 1)
)
_SAMPLE_LENS = frozenset(_SAMPLE_LEN_BY_FLAGS)
#: Payload lengths a version-1 frame of a known type may have (a header claiming another is a false sync).
VALID_PAYLOAD_LENS: dict[int, frozenset[int]] = {
    FrameType.SAMPLE: _SAMPLE_LENS,
    FrameType.DEVICE_INFO: frozenset({DEVICE_INFO_LEN}),
    FrameType.REQUEST_INFO: frozenset({0}),
    FrameType.SET_RATE: frozenset({_RATE.size}),
}


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, init 0xFFFF, not reflected, xorout 0; ``b"123456789"`` → 0x29B1."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class StrideTwinSample:
    """Every field of one sample frame."""

    timestamp_us: int
    seq: int
    acc_m_s2: tuple[float, float, float]
    gyr_rad_s: tuple[float, float, float]
    mag_ut: tuple[float, float, float] | None = None
    quat_wxyz: tuple[float, float, float, float] | None = None
    #: Whether the frame carries the status block (battery and counters; each may still be unknown: ``None``).
    has_status: bool = False
    battery_pct: int | None = None
    acc_clip_count: int | None = None
    gyr_clip_count: int | None = None
    acc_clipped: bool = False
    gyr_clipped: bool = False


@dataclass(frozen=True)
class DeviceInfo:
    """The device-info frame: what the board is and how it is set up."""

    model: str
    firmware: str
    #: A number unique to the board (e.g. the ESP32's factory MAC), shown as 16 hex digits.
    sensor_id: int
    nominal_rate_hz: float
    #: Full scale of the accelerometer / gyroscope as configured (0 = not stated).
    acc_range_m_s2: float = 0.0
    gyr_range_rad_s: float = 0.0

    @property
    def sensor_id_hex(self) -> str:
        """The sensor id as 16 hex digits."""
        return f"{self.sensor_id:016x}"


def encode_frame(frame_type: int, payload: bytes = b"") -> bytes:
    """A complete frame around ``payload``."""
    if len(payload) > MAX_PAYLOAD_LEN:
        raise ValueError(f"StrideTwin payload of {len(payload)} bytes; at most {MAX_PAYLOAD_LEN}")
    body = bytes((VERSION, frame_type, len(payload))) + payload
    return SYNC + body + _CRC.pack(crc16_ccitt_false(body))


def encode_sample_payload(sample: StrideTwinSample) -> bytes:
    """The payload of a sample frame."""
    flags = SampleFlags(0)
    if sample.mag_ut is not None:
        flags |= SampleFlags.MAG
    if sample.quat_wxyz is not None:
        flags |= SampleFlags.QUAT
    if sample.has_status:
        flags |= SampleFlags.STATUS
    if sample.acc_clipped:
        flags |= SampleFlags.ACC_CLIPPED
    if sample.gyr_clipped:
        flags |= SampleFlags.GYR_CLIPPED
    head = _SAMPLE_HEAD.pack(
        sample.timestamp_us & 0xFFFFFFFF, sample.seq & 0xFFFF, flags, *sample.acc_m_s2, *sample.gyr_rad_s
    )
    parts = [head]
    if sample.mag_ut is not None:
        parts.append(_VEC3.pack(*sample.mag_ut))
    if sample.quat_wxyz is not None:
        parts.append(_QUAT.pack(*sample.quat_wxyz))
    if sample.has_status:
        parts.append(
            _STATUS.pack(
                BATTERY_UNKNOWN if sample.battery_pct is None else max(0, min(100, sample.battery_pct)),
                CLIP_COUNT_UNKNOWN if sample.acc_clip_count is None else min(0xFFFE, sample.acc_clip_count),
                CLIP_COUNT_UNKNOWN if sample.gyr_clip_count is None else min(0xFFFE, sample.gyr_clip_count),
            )
        )
    return b"".join(parts)


def encode_sample(sample: StrideTwinSample) -> bytes:
    """A complete sample frame."""
    return encode_frame(FrameType.SAMPLE, encode_sample_payload(sample))


def decode_sample_payload(payload: bytes) -> StrideTwinSample:
    """A sample payload → its fields; :class:`ProtocolError` if its length does not match its flags."""
    if len(payload) < SAMPLE_BASE_LEN:
        raise ProtocolError(f"StrideTwin sample payload of {len(payload)} bytes; at least {SAMPLE_BASE_LEN}")
    t_us, seq, flags, ax, ay, az, gx, gy, gz = _SAMPLE_HEAD.unpack_from(payload)
    expected = sample_payload_len(flags)
    if len(payload) != expected:
        raise ProtocolError(
            f"StrideTwin sample payload of {len(payload)} bytes with flags 0x{flags:02x}; expected {expected}"
        )
    offset = SAMPLE_BASE_LEN
    mag = quat = None
    if flags & _FLAG_MAG:
        mag = _VEC3.unpack_from(payload, offset)
        offset += _VEC3.size
    if flags & _FLAG_QUAT:
        quat = _QUAT.unpack_from(payload, offset)
        offset += _QUAT.size
    battery = acc_clips = gyr_clips = None
    if flags & _FLAG_STATUS:
        battery, acc_clips, gyr_clips = _STATUS.unpack_from(payload, offset)
        battery = None if battery > 100 else battery
        acc_clips = None if acc_clips == CLIP_COUNT_UNKNOWN else acc_clips
        gyr_clips = None if gyr_clips == CLIP_COUNT_UNKNOWN else gyr_clips
    return StrideTwinSample(
        timestamp_us=t_us,
        seq=seq,
        acc_m_s2=(ax, ay, az),
        gyr_rad_s=(gx, gy, gz),
        mag_ut=mag,
        quat_wxyz=quat,
        has_status=bool(flags & _FLAG_STATUS),
        battery_pct=battery,
        acc_clip_count=acc_clips,
        gyr_clip_count=gyr_clips,
        acc_clipped=bool(flags & SampleFlags.ACC_CLIPPED.value),
        gyr_clipped=bool(flags & SampleFlags.GYR_CLIPPED.value),
    )


def _text_field(text: str, name: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 16:
        raise ValueError(f"StrideTwin device-info {name} {text!r} is {len(raw)} bytes in UTF-8; at most 16")
    return raw


def encode_device_info(info: DeviceInfo) -> bytes:
    """A complete device-info frame."""
    payload = _INFO.pack(
        info.nominal_rate_hz,
        info.acc_range_m_s2,
        info.gyr_range_rad_s,
        info.sensor_id,
        _text_field(info.model, "model"),
        _text_field(info.firmware, "firmware"),
    )
    return encode_frame(FrameType.DEVICE_INFO, payload)


def decode_device_info_payload(payload: bytes) -> DeviceInfo:
    """A device-info payload → :class:`DeviceInfo`; :class:`ProtocolError` if malformed."""
    if len(payload) != DEVICE_INFO_LEN:
        raise ProtocolError(f"StrideTwin device-info payload of {len(payload)} bytes; expected {DEVICE_INFO_LEN}")
    rate, acc_range, gyr_range, sensor_id, model, firmware = _INFO.unpack(payload)
    return DeviceInfo(
        model=model.split(b"\0", 1)[0].decode("utf-8", "replace"),
        firmware=firmware.split(b"\0", 1)[0].decode("utf-8", "replace"),
        sensor_id=sensor_id,
        nominal_rate_hz=rate,
        acc_range_m_s2=acc_range,
        gyr_range_rad_s=gyr_range,
    )


def request_info_command() -> bytes:
    """Host → device: send a device-info frame now."""
    return encode_frame(FrameType.REQUEST_INFO)


def set_rate_command(rate_hz: float) -> bytes:
    """Host → device: sample at ``rate_hz`` (the device answers with a device-info frame stating the rate it uses)."""
    if not 0.0 < rate_hz <= 1000.0:
        raise ValueError(f"StrideTwin sample rate must be in (0, 1000] Hz, got {rate_hz!r}")
    return encode_frame(FrameType.SET_RATE, _RATE.pack(rate_hz))


#: Called for each CRC-valid frame: ``(frame type, buffer, payload offset, payload length)``; the buffer is only
#: valid during the call.
FrameHandler = Callable[[int, bytearray, int, int], None]

#: Called for each run of consecutive CRC-valid frames with the same header (type and length):
#: ``(frame type, buffer, payload offset of the first frame, payload length, number of frames)``; frame ``q``'s payload
#: is at ``offset + q·(length + FRAME_OVERHEAD)``. The buffer is only valid during the call.
RunHandler = Callable[[int, bytearray, int, int, int], None]


class FrameScanner:
    """Finds CRC-valid frames in a byte stream, resynchronising after garbage. Never raises on bad bytes.

    Keeps at most one partial frame (≤ 261 bytes) between calls.
    """

    def __init__(self, stats: DecoderStats | None = None) -> None:
        self.stats = stats if stats is not None else DecoderStats()
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """The bytes kept from earlier calls: the start of a frame still incomplete (or a trailing ``A5``)."""
        return bytes(self._buf)

    def keep(self, pending: bytes) -> None:
        """Replace the bytes kept for the next call (for a caller that consumed the rest itself, as the scan would
        have: ``pending`` must be what the scan would have kept)."""
        self._buf[:] = pending

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """``(frame type, payload)`` of every complete frame in ``data`` (after what earlier calls left)."""
        frames: list[tuple[int, bytes]] = []

        def collect(frame_type: int, buf: bytearray, start: int, length: int) -> None:
            frames.append((frame_type, bytes(buf[start : start + length])))

        self.scan(data, collect)
        return frames

    def scan(self, data: bytes, on_frame: FrameHandler) -> None:
        """Like :meth:`feed`, but hands each frame to ``on_frame`` in place (no copies)."""

        def each(frame_type: int, buf: bytearray, start: int, length: int, n_frames: int) -> None:
            step = length + FRAME_OVERHEAD
            for q in range(n_frames):
                on_frame(frame_type, buf, start + q * step, length)

        self.scan_runs(data, each)

    def scan_runs(self, data: bytes, on_run: RunHandler) -> None:
        """Like :meth:`scan`, but hands over runs of back-to-back frames with the same header at once (a device
        streams sample frames of one layout back to back, so a poll's bytes are usually one run: the decoder's
        hot path unpacks a run with one struct call). The same frames, in the same order, as :meth:`scan`."""
        stats = self.stats
        stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        n = len(buf)
        i = 0
        runs: list[tuple[int, int, int, int]] = []
        with memoryview(buf) as view:
            while True:
                j = buf.find(SYNC, i)
                if j < 0:
                    # A trailing A5 may be the first half of the next sync: keep it.
                    keep = 1 if n > i and buf[n - 1] == 0xA5 else 0
                    stats.bytes_discarded += n - i - keep
                    i = n - keep
                    break
                stats.bytes_discarded += j - i
                if n - j < HEADER_LEN:
                    i = j
                    break
                version = buf[j + 2]
                frame_type = buf[j + 3]
                length = buf[j + 4]
                valid_lens = VALID_PAYLOAD_LENS.get(frame_type)
                if version != VERSION or (valid_lens is not None and length not in valid_lens):
                    stats.bytes_discarded += 1
                    i = j + 1
                    continue
                step = length + FRAME_OVERHEAD
                end = j + step
                if n < end:
                    i = j
                    break
                if binascii.crc_hqx(view[j + 2 : end - 2], 0xFFFF) != buf[end - 2] | buf[end - 1] << 8:
                    stats.checksum_errors += 1
                    stats.bytes_discarded += 1
                    i = j + 1
                    continue
                # The frames that follow with the same header and a valid CRC join the run.
                header = bytes(view[j : j + HEADER_LEN])
                n_frames = 1
                while (
                    n - end >= step
                    and buf.startswith(header, end)
                    and binascii.crc_hqx(view[end + 2 : end + step - 2], 0xFFFF)
                    == buf[end + step - 2] | buf[end + step - 1] << 8
                ):
                    end += step
                    n_frames += 1
                stats.frames_ok += n_frames
                runs.append((frame_type, j + HEADER_LEN, length, n_frames))
                i = end
        # The handlers run after the scan, when no view of the buffer is held any more (one may keep a view of
        # its own while it decodes); the buffer is trimmed only after them.
        for frame_type, start, length, n_frames in runs:
            on_run(frame_type, buf, start, length, n_frames)
        if i:
            del buf[:i]


#: Per sample payload length: the optional-block flags (MAG, QUAT, STATUS) it implies, the number of floats in a
#: frame (acc and gyr, then mag and/or quat) and the struct of one whole frame: sync, version, type, length, time,
#: sequence, flags, the floats, [battery, clipping counters,] CRC.
def _sample_layout(flags: int) -> tuple[int, int, str]:
    n_floats = 6 + (3 if flags & _FLAG_MAG else 0) + (4 if flags & _FLAG_QUAT else 0)
    record = f"HBBBIHB{n_floats}f" + ("BHH" if flags & _FLAG_STATUS else "") + "H"
    assert struct.calcsize("<" + record) == sample_payload_len(flags) + FRAME_OVERHEAD
    return flags, n_floats, record


_LAYOUTS = {sample_payload_len(f): _sample_layout(f) for f in range(_OPTIONAL_FLAGS + 1)}
#: Where a frame's fields begin in its struct: time, sequence number, flags, floats (the header comes first).
_T, _SEQ, _FLAGS, _FLOATS = 4, 5, 6, 7
#: Frames unpacked by one struct call at most (a longer run is decoded in pieces, so the cache of structs, one per
#: layout and number of frames, stays small).
MAX_FRAMES_PER_UNPACK = 64
_RUN_STRUCTS: dict[tuple[int, int], struct.Struct] = {}
_SYNC_WORD = int.from_bytes(SYNC, "little")
_NAN3 = (math.nan,) * 3
_NAN4 = (math.nan,) * 4
_NAN7 = (math.nan,) * 7


def _run_struct(length: int, n_frames: int) -> struct.Struct:
    """The struct of ``n_frames`` back-to-back sample frames of payload ``length``."""
    key = (length, n_frames)
    frames = _RUN_STRUCTS.get(key)
    if frames is None:
        frames = _RUN_STRUCTS[key] = struct.Struct("<" + _LAYOUTS[length][2] * n_frames)
    return frames


class StrideTwinDecoder:
    """Incremental decoder of a StrideTwin serial stream into readings; keeps the latest device info.

    ``device_time_s`` is the unwrapped µs timestamp in seconds and ``seq`` the unwrapped sequence number, both
    continuing across calls (:attr:`clock`, :attr:`sequence`). Frames of unknown type are counted as ignored.

    :meth:`feed_blocks` is the hot path: every run of sample frames of one layout that arrived together is unpacked
    with one struct call into a :class:`~sensor_drivers.blocks.ReadingBlock`. In the steady state (what was kept from
    the last call and the new bytes are back-to-back, CRC-valid sample frames of one layout, then at most the start of
    the next one) the frames are checked and decoded in the same pass, without the scanner's search; anything else goes
    through the scanner. Either way the same readings and the same counts. :meth:`feed` gives the readings one by one.
    """

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._scanner = FrameScanner(self.stats)
        self.clock = CounterUnwrapper(32)
        self.sequence = CounterUnwrapper(16)
        #: The latest device-info frame, once one has arrived.
        self.device_info: DeviceInfo | None = None
        self._out: list[ReadingBlock] = []
        self._status_raw: tuple[int, int, int] | None = None
        self._status: DeviceStatus | None = None

    def feed(self, data: bytes) -> list[DeviceReading]:
        """Consume ``data``; return every reading completed by it."""
        return [reading for block in self.feed_blocks(data) for reading in block.readings()]

    def feed_blocks(self, data: bytes) -> list[ReadingBlock]:
        """Consume ``data``; return every reading completed by it, in blocks (a new block where the layout or the
        device status changes, or where other frames came between)."""
        self._out = out = []
        if not self._steady(data):
            self._scanner.scan_runs(data, self._on_run)
        return out

    def _steady(self, data: bytes) -> bool:
        """Decode ``data`` if, after the kept bytes, it continues a stream of back-to-back CRC-valid sample frames of
        one layout (and at most the start of the next frame, kept as the scan would keep it). False, with nothing
        consumed, for anything else."""
        scanner = self._scanner
        pending = scanner.pending
        buf = pending + data if pending else data
        n = len(buf)
        if n < HEADER_LEN or not buf.startswith(SYNC) or buf[2] != VERSION or buf[3] != _TYPE_SAMPLE:
            return False
        length = buf[4]
        if length not in _LAYOUTS:
            return False
        step = length + FRAME_OVERHEAD
        n_frames, n_rest = divmod(n, step)
        if not n_frames:
            return False
        if n_rest:
            # The scan keeps the start of a frame whole; anything else after the frames is for the scan to judge.
            rest = buf[n - n_rest :]
            if not (buf.startswith(rest) if n_rest <= HEADER_LEN else rest.startswith(buf[:HEADER_LEN])):
                return False
        runs = []
        with memoryview(buf) as view:
            for first in range(0, n_frames, MAX_FRAMES_PER_UNPACK):
                k = min(MAX_FRAMES_PER_UNPACK, n_frames - first)
                start = first * step
                fields = _run_struct(length, k).unpack_from(buf, start)
                width = len(fields) // k
                # Every frame has the header of the first, and its CRC (the scan's checks, frame by frame).
                if not (
                    fields[0::width].count(_SYNC_WORD) == k
                    and fields[1::width].count(VERSION) == k
                    and fields[2::width].count(_TYPE_SAMPLE) == k
                    and fields[3::width].count(length) == k
                    and [
                        binascii.crc_hqx(view[o : o + step - 4], 0xFFFF)
                        for o in range(start + 2, start + k * step, step)
                    ]
                    == list(fields[width - 1 :: width])
                ):
                    return False
                runs.append((fields, k))
        self.stats.bytes_in += len(data)
        self.stats.frames_ok += n_frames
        scanner.keep(buf[n - n_rest :] if n_rest else b"")
        for fields, k in runs:
            self._samples(fields, length, k)
        return True

    def _on_run(self, frame_type: int, buf: bytearray, start: int, length: int, n_frames: int) -> None:
        step = length + FRAME_OVERHEAD
        if frame_type == _TYPE_SAMPLE:
            for first in range(0, n_frames, MAX_FRAMES_PER_UNPACK):
                k = min(MAX_FRAMES_PER_UNPACK, n_frames - first)
                self._samples(_run_struct(length, k).unpack_from(buf, start - HEADER_LEN + first * step), length, k)
            return
        for q in range(n_frames):
            offset = start + q * step
            if frame_type == _TYPE_DEVICE_INFO:
                self.device_info = decode_device_info_payload(bytes(buf[offset : offset + length]))
            else:
                self.stats.frames_ignored += 1

    def _samples(self, fields: tuple[int | float, ...], length: int, n_frames: int) -> None:
        """Readings from the unpacked fields of ``n_frames`` CRC-valid sample frames of payload ``length``."""
        layout_flags, n_floats, _ = _LAYOUTS[length]
        width = len(fields) // n_frames
        starts = range(_FLOATS, len(fields), width)
        if n_floats == ROW_WIDTH:
            rows = [fields[o : o + 13] for o in starts]
        elif layout_flags & _FLAG_MAG:
            rows = [fields[o : o + 9] + _NAN4 for o in starts]
        elif layout_flags & _FLAG_QUAT:
            rows = [fields[o : o + 6] + _NAN3 + fields[o + 6 : o + 10] for o in starts]
        else:
            rows = [fields[o : o + 6] + _NAN7 for o in starts]
        t_us = fields[_T::width]
        seq = fields[_SEQ::width]
        statuses: list[tuple[int, int, int]] | None = None
        if layout_flags & _FLAG_STATUS:
            s0 = _FLOATS + n_floats
            battery, acc_clips, gyr_clips = fields[s0::width], fields[s0 + 1 :: width], fields[s0 + 2 :: width]
            if (
                battery.count(battery[0]) == n_frames
                and acc_clips.count(acc_clips[0]) == n_frames
                and gyr_clips.count(gyr_clips[0]) == n_frames
            ):
                statuses = [(battery[0], acc_clips[0], gyr_clips[0])]
            else:
                statuses = list(zip(battery, acc_clips, gyr_clips, strict=True))  # type: ignore[arg-type]
        flags = fields[_FLAGS::width]
        if flags.count(layout_flags) != n_frames:  # clipping bits set, or malformed frames
            # The scanner only checked that the length is one a sample can have; a CRC-valid frame whose length does
            # not match its own flags is a firmware bug: dropped and counted.
            good = [q for q, f in enumerate(flags) if f & _OPTIONAL_FLAGS == layout_flags]  # type: ignore[operator]
            self.stats.frames_malformed += n_frames - len(good)
            if len(good) < n_frames:
                if not good:
                    return
                rows = [rows[q] for q in good]
                t_us = tuple(t_us[q] for q in good)
                seq = tuple(seq[q] for q in good)
                if statuses is not None and len(statuses) > 1:
                    statuses = [statuses[q] for q in good]
        n = len(rows)
        device_time_s = tuple([t * 1e-6 for t in self.clock.unwrap_many(t_us)])  # type: ignore[arg-type]
        seq_unwrapped = tuple(self.sequence.unwrap_many(seq))  # type: ignore[arg-type]
        has_mag = bool(layout_flags & _FLAG_MAG)
        has_quat = bool(layout_flags & _FLAG_QUAT)
        if statuses is None or len(statuses) == 1:
            status = self._device_status(statuses[0]) if statuses else None
            self._out.append(ReadingBlock(tuple(rows), device_time_s, seq_unwrapped, has_mag, has_quat, status))  # type: ignore[arg-type]
        else:
            # The status changed within the run: one block per stretch of equal status.
            begin = 0
            for q in range(1, n + 1):
                if q == n or statuses[q] != statuses[begin]:
                    self._out.append(
                        ReadingBlock(
                            tuple(rows[begin:q]),  # type: ignore[arg-type]
                            device_time_s[begin:q],
                            seq_unwrapped[begin:q],
                            has_mag,
                            has_quat,
                            self._device_status(statuses[begin]),
                        )
                    )
                    begin = q
        self.stats.readings_out += n

    def _device_status(self, raw: tuple[int, int, int]) -> DeviceStatus | None:
        if raw != self._status_raw:  # one status object while nothing changes
            battery, acc_clips, gyr_clips = raw
            self._status_raw = raw
            self._status = DeviceStatus(
                battery_pct=None if battery > 100 else float(battery),
                acc_clip_count=None if acc_clips == CLIP_COUNT_UNKNOWN else acc_clips,
                gyr_clip_count=None if gyr_clips == CLIP_COUNT_UNKNOWN else gyr_clips,
            )
        return self._status


_DEFAULT_INFO = DeviceInfo(
    model="StrideTwin sim",
    firmware="sim-1",
    sensor_id=0,
    nominal_rate_hz=200.0,
    acc_range_m_s2=16.0 * G_M_S2,
    gyr_range_rad_s=math.radians(2000.0),
)


class StrideTwinEncoder:
    """The device side: readings → sample frames (with a device-info frame at start and every ``info_period_s``),
    and answers to host commands.

    Acceleration and angular velocity saturate at the ranges in ``info`` (when stated), setting the per-sample
    clipping flags and the clipping counters, as the firmware is asked to. Sequence number: ``reading.seq`` if set,
    else an own counter; timestamp: ``reading.device_time_s`` if set, else an own clock at the nominal rate.
    """

    def __init__(self, info: DeviceInfo = _DEFAULT_INFO, info_period_s: float = 10.0, send_status: bool = True) -> None:
        self.info = info
        self.info_period_s = info_period_s
        self.send_status = send_status
        self.n_acc_clipped = 0
        self.n_gyr_clipped = 0
        self._seq = 0
        self._clock_us = 0.0
        self._samples_since_info = math.inf  # an info frame first, as a board sends one at boot
        self._commands = FrameScanner()

    @property
    def sampling_rate_hz(self) -> float:
        """The rate the device currently samples at."""
        return self.info.nominal_rate_hz

    def encode_info(self) -> bytes:
        """The device-info frame."""
        return encode_device_info(self.info)

    def encode(self, reading: DeviceReading) -> bytes:
        """The bytes for one reading: a sample frame, preceded by a device-info frame when one is due."""
        prefix = b""
        if self._samples_since_info >= self.info_period_s * self.sampling_rate_hz:
            prefix = self.encode_info()
            self._samples_since_info = 0
        self._samples_since_info += 1
        acc, acc_clipped = _saturate(reading.acc_m_s2, self.info.acc_range_m_s2)
        gyr, gyr_clipped = _saturate(reading.gyr_rad_s, self.info.gyr_range_rad_s)
        self.n_acc_clipped += acc_clipped
        self.n_gyr_clipped += gyr_clipped
        if reading.seq is not None:
            seq = reading.seq
        else:
            seq = self._seq
            self._seq += 1
        if reading.device_time_s is not None:
            t_us = round(reading.device_time_s * 1e6)
        else:
            t_us = round(self._clock_us)
            self._clock_us += 1e6 / self.sampling_rate_hz
        battery = None
        if reading.status is not None and reading.status.battery_pct is not None:
            battery = round(reading.status.battery_pct)
        sample = StrideTwinSample(
            timestamp_us=t_us,
            seq=seq,
            acc_m_s2=acc,
            gyr_rad_s=gyr,
            mag_ut=reading.mag_ut,
            quat_wxyz=reading.quat_wxyz,
            has_status=self.send_status,
            battery_pct=battery,
            acc_clip_count=self.n_acc_clipped,
            gyr_clip_count=self.n_gyr_clipped,
            acc_clipped=acc_clipped,
            gyr_clipped=gyr_clipped,
        )
        return prefix + encode_sample(sample)

    def feed_command(self, data: bytes) -> bytes:
        """Apply host → device bytes; return the device's answers (device-info frames)."""
        answers = []
        for frame_type, payload in self._commands.feed(data):
            if frame_type == FrameType.REQUEST_INFO:
                answers.append(self.encode_info())
            elif frame_type == FrameType.SET_RATE:
                (rate_hz,) = _RATE.unpack(payload)
                if 0.0 < rate_hz <= 1000.0:
                    self.info = replace(self.info, nominal_rate_hz=rate_hz)
                answers.append(self.encode_info())
        return b"".join(answers)


def _saturate(vec: tuple[float, float, float], full_scale: float) -> tuple[tuple[float, float, float], bool]:
    if full_scale <= 0.0:
        return vec, False
    x, y, z = vec
    if -full_scale <= x <= full_scale and -full_scale <= y <= full_scale and -full_scale <= z <= full_scale:
        return vec, False
    return (
        max(-full_scale, min(full_scale, x)),
        max(-full_scale, min(full_scale, y)),
        max(-full_scale, min(full_scale, z)),
    ), True
