"""WitMotion serial protocol (WT901, HWT901B, JY901 family): 11-byte ``0x55`` frames, decoded into readings.

Frame: ``55 <type> <d0 lo> <d0 hi> <d1 lo> <d1 hi> <d2 lo> <d2 hi> <d3 lo> <d3 hi> <sum>``, four little-endian int16
words, ``sum`` = low byte of the sum of the first 10 bytes. Types used here:

=====  ============  ==============================================  =====================================
type   content       scale                                           4th word
=====  ============  ==============================================  =====================================
0x50   on-chip time  bytes YY MM DD hh mm ss, uint16 ms (20YY)      (part of the time)
0x51   acceleration  raw / 32768 × 16 g                              temperature, 0.01 °C
0x52   angular vel.  raw / 32768 × 2000 °/s                          temperature, 0.01 °C
0x53   angle         raw / 32768 × 180° (roll x, pitch y, yaw z)     firmware version
0x54   magnetometer  raw LSB × ``mag_ut_per_lsb`` (see below)        temperature, 0.01 °C
0x59   quaternion    raw / 32768, w first                            (the 4th component)
=====  ============  ==============================================  =====================================

Units out: m/s² with ``g`` = :data:`~sensor_drivers.frames.G_M_S2` (WitMotion's docs say "g, 9.8 m/s²": 0.07 %
apart), rad/s, µT, w-first quaternion. Device time: the on-chip clock as seconds since 2000-01-01 00:00:00 where the
device sends time frames (RSW bit TIME), else ``None``. No packet counter: ``seq`` is ``None``.

Magnetometer scale: the serial datasheets give the 0x54 words without a unit; WitMotion's SDK converts them by the
magnetometer chip type in register 0x72 (:data:`~.witmotion_registers.MAG_UT_PER_LSB_BY_SENSOR_TYPE`) and the
WT901BLECL datasheet states mG. We default to mG (0.1 µT/LSB) and take the scale as a parameter: read register 0x72
once (``read_register_command(0x72)``, answered by a 0x5F frame) and pass the table value for other chips.

Output cycle: a device sends, per sample, one frame of each enabled type in increasing type order (time, acc, gyro,
angle, mag, …, quaternion). The decoder closes a cycle when a frame's type is not greater than the previous frame's
(the order restarts), and emits it if it holds acceleration and angular velocity (else it counts it in
``stats.readings_incomplete``; the partial cycle caught when a port opens mid-cycle is one). To avoid a one-frame
delay it also learns the cycle's set of types and emits a cycle as soon as that set is complete: the set grows with
every cycle that has more, and shrinks only after a cycle with fewer types and no skipped bytes (a cycle that lost a
frame to line noise does not shrink it). Frames of other types (0x55 port,
0x56 pressure, 0x57 GPS, 0x5F register values, …) are counted as ignored and do not affect cycles.

Resynchronisation: bytes are skipped until a ``0x55`` followed by a type in 0x50..0x5F; a candidate whose checksum
fails is counted and the search restarts one byte later. An 8-bit checksum cannot catch everything: in random
garbage about one false frame in 2**24 bytes passes, and a false frame that straddles a real one swallows it.

Sources: WT901 datasheet v20-0702 §5.1, HWT905 protocol page (docs.wit-motion.com), WitMotion "WIT Standard
Communication Protocol", ``wit_c_sdk.c`` (github.com/WITMOTION/WitStandardProtocol_JY901).
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

from sensor_drivers.errors import ProtocolError
from sensor_drivers.frames import G_M_S2
from sensor_drivers.protocols.base import DecoderStats
from sensor_drivers.protocols.witmotion_registers import (
    ACC_FULL_SCALE_G,
    ANGLE_FULL_SCALE_DEG,
    GYR_FULL_SCALE_DEG_S,
    MAG_UT_PER_LSB_DATASHEET,
    OutputContent,
    Register,
    RegisterFile,
    euler_zyx_deg,
    parse_commands,
    rate_code,
    rate_hz_from_code,
    to_int16,
)
from sensor_drivers.sample import DeviceReading

SYNC = 0x55
FRAME_LEN = 11

TYPE_TIME = 0x50
TYPE_ACC = 0x51
TYPE_GYRO = 0x52
TYPE_ANGLE = 0x53
TYPE_MAG = 0x54
TYPE_QUATERNION = 0x59
#: Answer to a register read: 4 registers from the requested one.
TYPE_REGISTERS = 0x5F

#: What a WT901 sends by default (RSW 0x1E).
DEFAULT_CONTENT = OutputContent.ACC | OutputContent.GYRO | OutputContent.ANGLE | OutputContent.MAG

ACC_M_S2_PER_LSB = ACC_FULL_SCALE_G * G_M_S2 / 32768.0
GYR_RAD_S_PER_LSB = math.radians(GYR_FULL_SCALE_DEG_S) / 32768.0
ANGLE_DEG_PER_LSB = ANGLE_FULL_SCALE_DEG / 32768.0
QUAT_PER_LSB = 1.0 / 32768.0

_WORDS = struct.Struct("<hhhh")
_TIME = struct.Struct("<BBBBBBH")
_FRAME_BODY = struct.Struct("<BBhhhh")
_TIME_BODY = struct.Struct("<BBBBBBBBH")

#: Types that make up an output cycle, as bits of a cycle mask.
_CYCLE_BIT = {TYPE_TIME: 1, TYPE_ACC: 2, TYPE_GYRO: 4, TYPE_ANGLE: 8, TYPE_MAG: 16, TYPE_QUATERNION: 32}
#: Per byte value of a frame's type: -1 not a frame type, 0 a frame outside output cycles, else its cycle bit.
_BIT_BY_TYPE = tuple(_CYCLE_BIT.get(t, 0) if 0x50 <= t <= 0x5F else -1 for t in range(256))
#: The frames a cycle needs to make a reading.
_READING_BITS = _CYCLE_BIT[TYPE_ACC] | _CYCLE_BIT[TYPE_GYRO]
_EPOCH_DAYS_2000 = 10957  # days from 1970-01-01 to 2000-01-01


class WitFrame(NamedTuple):
    """One decoded frame: its type and its four int16 words (raw, unscaled)."""

    frame_type: int
    words: tuple[int, int, int, int]


def checksum(body: bytes) -> int:
    """Low byte of the sum of the first 10 bytes of a frame."""
    return sum(body[:10]) & 0xFF


def decode_frame(frame: bytes) -> WitFrame:
    """One 11-byte frame → its type and raw words; :class:`ProtocolError` naming what is wrong otherwise."""
    if len(frame) != FRAME_LEN:
        raise ProtocolError(f"WitMotion frame must be {FRAME_LEN} bytes, got {len(frame)}")
    if frame[0] != SYNC:
        raise ProtocolError(f"WitMotion frame must start with 0x55, got 0x{frame[0]:02x}")
    if checksum(frame) != frame[10]:
        raise ProtocolError(f"WitMotion frame checksum 0x{frame[10]:02x} != computed 0x{checksum(frame):02x}")
    return WitFrame(frame[1], _WORDS.unpack_from(frame, 2))


def encode_frame(frame_type: int, w0: int, w1: int, w2: int, w3: int) -> bytes:
    """An 11-byte frame from four int16 words (already quantised)."""
    body = _FRAME_BODY.pack(SYNC, frame_type, w0, w1, w2, w3)
    return body + bytes((sum(body) & 0xFF,))


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-compatible low-level date
    algorithms", days_from_civil)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of :func:`_days_from_civil` (Hinnant, civil_from_days)."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def time_frame_seconds(yy: int, month: int, day: int, hour: int, minute: int, second: int, ms: int) -> float | None:
    """Seconds since 2000-01-01 00:00:00 of a time frame's fields, or ``None`` if they are not a valid time."""
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60 and ms < 1000):
        return None
    days = _days_from_civil(2000 + yy, month, day) - _EPOCH_DAYS_2000
    return days * 86400.0 + hour * 3600.0 + minute * 60.0 + second + ms * 1e-3


def encode_time_frame(device_time_s: float) -> bytes:
    """The 0x50 frame for a device clock in seconds since 2000-01-01 (to the millisecond; years 2000-2255)."""
    total_ms = round(device_time_s * 1000.0)
    if not 0 <= total_ms < 256 * 366 * 86_400_000:
        raise ValueError(f"WitMotion time frames hold 2000-01-01 .. 2255; got {device_time_s!r} s since 2000")
    days, ms_of_day = divmod(total_ms, 86_400_000)
    year, month, day = _civil_from_days(days + _EPOCH_DAYS_2000)
    seconds, ms = divmod(ms_of_day, 1000)
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    body = _TIME_BODY.pack(SYNC, TYPE_TIME, year - 2000, month, day, hour, minute, second, ms)
    return body + bytes((sum(body) & 0xFF,))


class WitmotionSerialDecoder:
    """Incremental decoder of a WitMotion serial byte stream into one reading per output cycle.

    Never raises on bad bytes: skipped bytes, checksum failures, ignored frame types and incomplete cycles are
    counted in :attr:`stats`. Keeps at most 10 bytes of a partial frame between calls.

    ``content``: the output content the device was configured with, if known; it lets the very first cycle be
    emitted as soon as it is complete (otherwise the first cycle waits for the next one to start).
    """

    def __init__(self, mag_ut_per_lsb: float = MAG_UT_PER_LSB_DATASHEET, content: OutputContent | None = None) -> None:
        self.mag_ut_per_lsb = mag_ut_per_lsb
        self.stats = DecoderStats()
        #: Latest temperature from an acceleration frame, °C.
        self.temperature_c: float | None = None
        #: Latest register-read answer: the four int16 values (the device does not repeat which register it was).
        self.last_registers: tuple[int, int, int, int] | None = None
        self._buf = bytearray()
        self._angle_raw: tuple[int, int, int, int] | None = None
        self._day_cache: tuple[tuple[int, int, int], float | None] = ((-1, -1, -1), None)
        self._new_cycle()
        self._last_type = -1
        # The cycle's set of frame types: known from the configured output content, else learned.
        self._signature = 0
        if content is not None:
            for frame_type, bit in _CYCLE_BIT.items():
                if content & (1 << (frame_type - TYPE_TIME)):
                    self._signature |= bit

    @property
    def angle_deg(self) -> tuple[float, float, float] | None:
        """Latest roll, pitch, yaw from an angle frame, degrees (not part of readings; see the module docstring)."""
        if self._angle_raw is None:
            return None
        r, p, y, _version = self._angle_raw
        return (r * ANGLE_DEG_PER_LSB, p * ANGLE_DEG_PER_LSB, y * ANGLE_DEG_PER_LSB)

    def _time_s(self, yy: int, month: int, day: int, hour: int, minute: int, second: int, ms: int) -> float | None:
        # The date changes once a day: cache its seconds (the calendar arithmetic costs a microsecond).
        date = (yy, month, day)
        cached_date, day_s = self._day_cache
        if date != cached_date:
            day_s = time_frame_seconds(yy, month, day, 0, 0, 0, 0)
            self._day_cache = (date, day_s)
        if day_s is None or hour >= 24 or minute >= 60 or second >= 60 or ms >= 1000:
            return None
        return day_s + hour * 3600.0 + minute * 60.0 + second + ms * 1e-3

    def _new_cycle(self) -> None:
        self._mask = 0
        self._emitted = False
        self._clean = True
        self._acc: tuple[int, int, int, int] | None = None
        self._gyr: tuple[int, int, int, int] | None = None
        self._mag: tuple[int, int, int, int] | None = None
        self._quat: tuple[int, int, int, int] | None = None
        self._cycle_time_s: float | None = None

    def feed(self, data: bytes) -> list[DeviceReading]:
        """Consume ``data``; return the readings of every output cycle it completes."""
        stats = self.stats
        stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        out: list[DeviceReading] = []
        n = len(buf)
        i = 0
        n_ok = 0
        find = buf.find
        unpack = _WORDS.unpack_from
        while True:
            j = find(SYNC, i)
            if j < 0:
                self._discard(n - i)
                i = n
                break
            if j > i:
                self._discard(j - i)
            if n - j < FRAME_LEN:
                i = j
                break
            frame_type = buf[j + 1]
            bit = _BIT_BY_TYPE[frame_type]
            if bit < 0:  # not a frame type: this 0x55 is not a frame start
                self._discard(1)
                i = j + 1
                continue
            if sum(buf[j : j + 10]) & 0xFF != buf[j + 10]:
                stats.checksum_errors += 1
                self._discard(1)
                i = j + 1
                continue
            n_ok += 1
            i = j + FRAME_LEN
            if not bit:
                if frame_type == TYPE_REGISTERS:
                    self.last_registers = unpack(buf, j + 2)
                stats.frames_ignored += 1
                continue
            if self._mask and frame_type <= self._last_type:
                self._close_cycle(out)
            self._last_type = frame_type
            if frame_type == TYPE_ACC:
                self._acc = unpack(buf, j + 2)
            elif frame_type == TYPE_GYRO:
                self._gyr = unpack(buf, j + 2)
            elif frame_type == TYPE_MAG:
                self._mag = unpack(buf, j + 2)
            elif frame_type == TYPE_ANGLE:
                self._angle_raw = unpack(buf, j + 2)
            elif frame_type == TYPE_QUATERNION:
                self._quat = unpack(buf, j + 2)
            else:  # TYPE_TIME
                self._cycle_time_s = self._time_s(*_TIME.unpack_from(buf, j + 2))
            mask = self._mask = self._mask | bit
            signature = self._signature
            if signature and mask & signature == signature and not self._emitted:
                self._emit(out)
        stats.frames_ok += n_ok
        if i:
            del buf[:i]
        return out

    def _discard(self, n_bytes: int) -> None:
        self.stats.bytes_discarded += n_bytes
        # Bytes lost while a cycle is open: it may be missing a frame, so it does not teach the cycle's shape.
        if self._mask:
            self._clean = False

    def _close_cycle(self, out: list[DeviceReading]) -> None:
        if not self._emitted:
            self._emit(out)
        mask = self._mask
        # Learn the cycle's shape from cycles that make a reading. Growing is always safe (at worst one cycle emits
        # late); shrinking only when no bytes were lost during the cycle, since a cycle with a corrupted frame looks
        # like a smaller one.
        if mask & _READING_BITS == _READING_BITS and (mask & self._signature == self._signature or self._clean):
            self._signature = mask
        self._new_cycle()

    def _emit(self, out: list[DeviceReading]) -> None:
        self._emitted = True
        acc = self._acc
        gyr = self._gyr
        if acc is None or gyr is None:
            self.stats.readings_incomplete += 1
            return
        self.temperature_c = acc[3] * 0.01
        mag = self._mag
        mag_ut = None
        if mag is not None:
            s = self.mag_ut_per_lsb
            mag_ut = (mag[0] * s, mag[1] * s, mag[2] * s)
        quat = self._quat
        quat_wxyz = None
        if quat is not None:
            quat_wxyz = (quat[0] * QUAT_PER_LSB, quat[1] * QUAT_PER_LSB, quat[2] * QUAT_PER_LSB, quat[3] * QUAT_PER_LSB)
        a = ACC_M_S2_PER_LSB
        g = GYR_RAD_S_PER_LSB
        out.append(
            DeviceReading(
                acc_m_s2=(acc[0] * a, acc[1] * a, acc[2] * a),
                gyr_rad_s=(gyr[0] * g, gyr[1] * g, gyr[2] * g),
                device_time_s=self._cycle_time_s,
                seq=None,
                mag_ut=mag_ut,
                quat_wxyz=quat_wxyz,
            )
        )
        self.stats.readings_out += 1


_RSW_TIME = int(OutputContent.TIME)
_RSW_ACC = int(OutputContent.ACC)
_RSW_GYRO = int(OutputContent.GYRO)
_RSW_ANGLE = int(OutputContent.ANGLE)
_RSW_MAG = int(OutputContent.MAG)
_RSW_QUATERNION = int(OutputContent.QUATERNION)
_AX, _GX, _HX, _Q0 = int(Register.AX), int(Register.GX), int(Register.HX), int(Register.Q0)


class WitmotionSerialEncoder:
    """The device side: readings → the exact frames a WT901 sends, plus its answers to host commands.

    Each value is quantised to int16 and saturates at full scale (±16 g, ±2000 °/s), as on the device. Frames are
    sent in increasing type order for the enabled output content. Frames whose data the reading lacks are left out:
    time (no ``device_time_s``), magnetometer (no ``mag_ut``), angle and quaternion (no ``quat_wxyz``).

    :meth:`feed_command` takes the bytes the host writes (unlock, rate, content, save, register reads) and returns
    the device's answer, so a pseudo-terminal server can honour the driver's configuration.
    """

    def __init__(
        self,
        content: OutputContent = DEFAULT_CONTENT,
        rate_hz: float = 200.0,
        mag_ut_per_lsb: float = MAG_UT_PER_LSB_DATASHEET,
        temperature_c: float = 25.0,
        firmware_version: int = 0x1F,
    ) -> None:
        self.registers = RegisterFile()
        self.registers.set(Register.RSW, int(content))
        self.registers.set(Register.RRATE, rate_code(rate_hz))
        self.registers.set(Register.VERSION, firmware_version)
        self.registers.set(Register.TEMP, round(temperature_c * 100))
        self.mag_ut_per_lsb = mag_ut_per_lsb
        self._command_tail = b""

    @property
    def content(self) -> OutputContent:
        """The output content currently configured (RSW)."""
        return OutputContent(self.registers.values[Register.RSW] & 0x7FF)

    @property
    def sampling_rate_hz(self) -> float:
        """The output rate currently configured (0 while the host has set "none" or "once")."""
        return rate_hz_from_code(self.registers.values[Register.RRATE]) or 0.0

    def encode(self, reading: DeviceReading) -> bytes:
        """The bytes of one output cycle for ``reading``."""
        regs = self.registers
        values = regs.values
        content = values[Register.RSW]  # a plain int: IntFlag arithmetic is slow in a per-sample path
        temp = regs.signed(Register.TEMP)
        parts: list[bytes] = []
        if content & _RSW_TIME and reading.device_time_s is not None:
            parts.append(encode_time_frame(reading.device_time_s))
        if content & _RSW_ACC:
            ax, ay, az = (to_int16(v / ACC_M_S2_PER_LSB) for v in reading.acc_m_s2)
            values[_AX : _AX + 3] = (ax & 0xFFFF, ay & 0xFFFF, az & 0xFFFF)
            parts.append(encode_frame(TYPE_ACC, ax, ay, az, temp))
        if content & _RSW_GYRO:
            gx, gy, gz = (to_int16(v / GYR_RAD_S_PER_LSB) for v in reading.gyr_rad_s)
            values[_GX : _GX + 3] = (gx & 0xFFFF, gy & 0xFFFF, gz & 0xFFFF)
            parts.append(encode_frame(TYPE_GYRO, gx, gy, gz, temp))
        quat = reading.quat_wxyz
        if content & _RSW_ANGLE and quat is not None:
            roll, pitch, yaw = (to_int16(v / ANGLE_DEG_PER_LSB) for v in euler_zyx_deg(quat))
            parts.append(encode_frame(TYPE_ANGLE, roll, pitch, yaw, regs.signed(Register.VERSION)))
        if content & _RSW_MAG and reading.mag_ut is not None:
            hx, hy, hz = (to_int16(v / self.mag_ut_per_lsb) for v in reading.mag_ut)
            values[_HX : _HX + 3] = (hx & 0xFFFF, hy & 0xFFFF, hz & 0xFFFF)
            parts.append(encode_frame(TYPE_MAG, hx, hy, hz, temp))
        if content & _RSW_QUATERNION and quat is not None:
            q = [to_int16(v / QUAT_PER_LSB) for v in quat]
            values[_Q0 : _Q0 + 4] = [v & 0xFFFF for v in q]
            parts.append(encode_frame(TYPE_QUATERNION, q[0], q[1], q[2], q[3]))
        return b"".join(parts)

    def feed_command(self, data: bytes) -> bytes:
        """Apply host → device bytes; return the device's answers (0x5F frames for register reads)."""
        commands, self._command_tail = parse_commands(self._command_tail + bytes(data))
        answers = []
        for register, value in commands:
            start = self.registers.handle(register, value)
            if start is not None:
                answers.append(encode_frame(TYPE_REGISTERS, *self.registers.read(start, 4)))
        return b"".join(answers)
