"""Movella (Xsens) DOT over BLE: measurement control, payload modes, battery and heading reset.

Per the Movella DOT BLE Service Specification (document XD0506P, revision C, July 2023); all fields little-endian:

- UUIDs ``1517xxxx-4947-11E9-8646-D663BD873D93``: configuration service 0x1000 (device info 0x1001, device control
  0x1002, report 0x1004), measurement service 0x2000 (control 0x2001, long/medium/short payload 0x2002/0x2003/0x2004,
  orientation reset control 0x2006, status 0x2007), battery service 0x3000 (battery 0x3001).
- Control (0x2001), 3 bytes: type (1 = measurement), action (0 stop, 1 start), payload mode (:class:`PayloadMode`).
  Notifications come on the long (> 40 bytes), medium (21-40) or short (≤ 20) payload characteristic by the mode's
  size; unused trailing bytes are 0.
- Output rate: device control (0x1002), 32 bytes: visit-index bitmask (bit 4 = output rate) then fields; the rate
  is a uint16 at offset 24. Streaming rates 1, 4, 10, 12, 15, 20, 30, 60 Hz (120 Hz only for recording); it cannot
  change while measuring.
- Data types: timestamp uint32 µs (wraps every 71.6 min); quaternion w,x,y,z float32; free acceleration x,y,z float32
  m/s² in the local earth frame with gravity removed; acceleration x,y,z float32 m/s² (calibrated, sensor frame);
  angular velocity x,y,z float32 in °/s; magnetic field x,y,z int16 fixed point in arbitrary units; status uint16
  bitmask; clipping counts uint8.
- Heading reset: write uint16 0x0001 to 0x2006 (0x0007 reverts to the default heading); battery (0x3001): level %
  uint8 and charging uint8, notified when the level changes.

Modes decoded here (sizes per the spec's tables 14-15): Extended (Quaternion) 36 B, Complete (Quaternion) 32 B,
Rate quantities (with mag) 34 B, Rate quantities 28 B, Custom mode 5 44 B. The spec marks Custom mode 4 and the
High Fidelity modes "SDK only" (undocumented high-fidelity data), so they are not decoded.

Conversions and assumptions (also in ``docs/protocols/README.md``):

- Angular velocity °/s → rad/s. Timestamp → seconds, unwrapped across notifications (:class:`CounterUnwrapper`).
- Magnetic field: int16 / 2**12 a.u. (the 2**12 divisor is from Movella's own DOT server example, ``bleHandler.js``
  ``getCalibratedMag``; the spec only says "fixed point"). The a.u. are normalised to the field magnitude at the
  sensor's magnetic calibration; the spec gives no µT scale, so we multiply by ``mag_ut_per_au`` (default: the
  magnitude of :data:`~sensor_drivers.frames.EARTH_FIELD_WORLD_UT`, 48.3 µT) — the direction is exact, the
  magnitude only as right as that assumption.
- Quaternion modes carry free acceleration, not the accelerometer: the sensor-frame specific force is rebuilt as
  ``R(q)ᵀ (free_acc + (0, 0, g))`` with ``g = gravity_m_s2`` (default :data:`~sensor_drivers.frames.G_M_S2`; the
  spec does not state the gravity value the DOT subtracts). They carry no angular velocity: ``gyr_rad_s`` is
  NaN there. Use Rate quantities (with mag) (the default) or Custom mode 5 where angular velocity matters.
- No packet counter: ``seq`` is ``None``. Clipping counts (Extended modes) go to ``DeviceStatus`` as reported; the
  spec does not say whether they are per packet or cumulative.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from sensor_drivers.errors import ProtocolError
from sensor_drivers.frames import EARTH_FIELD_WORLD_UT, G_M_S2
from sensor_drivers.protocols.base import BleNotification, DecoderStats, GattWrite, PeriodicWrite
from sensor_drivers.protocols.counters import CounterUnwrapper
from sensor_drivers.sample import DeviceReading, DeviceStatus


def dot_uuid(short_uuid: int) -> str:
    """The full 128-bit UUID of a DOT attribute from its 16-bit short form (lower case, as bleak reports them)."""
    return f"1517{short_uuid:04x}-4947-11e9-8646-d663bd873d93"


CONFIGURATION_SERVICE_UUID = dot_uuid(0x1000)
DEVICE_INFO_UUID = dot_uuid(0x1001)
DEVICE_CONTROL_UUID = dot_uuid(0x1002)
DEVICE_REPORT_UUID = dot_uuid(0x1004)
MEASUREMENT_SERVICE_UUID = dot_uuid(0x2000)
CONTROL_UUID = dot_uuid(0x2001)
LONG_PAYLOAD_UUID = dot_uuid(0x2002)
MEDIUM_PAYLOAD_UUID = dot_uuid(0x2003)
SHORT_PAYLOAD_UUID = dot_uuid(0x2004)
ORIENTATION_RESET_CONTROL_UUID = dot_uuid(0x2006)
ORIENTATION_RESET_STATUS_UUID = dot_uuid(0x2007)
BATTERY_SERVICE_UUID = dot_uuid(0x3000)
BATTERY_UUID = dot_uuid(0x3001)

#: Characteristic lengths of the payload characteristics (spec table 12).
PAYLOAD_CHAR_LEN = {LONG_PAYLOAD_UUID: 63, MEDIUM_PAYLOAD_UUID: 40, SHORT_PAYLOAD_UUID: 20}

#: Real-time streaming output rates, Hz (spec table 7; 120 Hz is for recording only).
STREAMING_RATES_HZ = (1, 4, 10, 12, 15, 20, 30, 60)

MEASUREMENT_TYPE = 1
ACTION_STOP = 0
ACTION_START = 1
HEADING_RESET = 0x0001
HEADING_REVERT = 0x0007
#: Device-control visit-index bit that makes the device apply the output-rate field.
VISIT_OUTPUT_RATE = 0x10
DEVICE_CONTROL_LEN = 32
_OUTPUT_RATE_OFFSET = 24

#: Divisor of the int16 magnetic field (Movella DOT server ``bleHandler.js``: ``/ Math.pow(2, 12)``).
MAG_AU_PER_LSB = 1.0 / 4096.0
#: Default µT per a.u.: the magnitude of the project's reference Earth field.
DEFAULT_MAG_UT_PER_AU = float(math.sqrt(sum(float(v) ** 2 for v in EARTH_FIELD_WORLD_UT)))
_DEG = math.pi / 180.0
_NAN3 = (math.nan, math.nan, math.nan)
_TIMESTAMP_MODULUS = 1 << 32


class PayloadMode(IntEnum):
    """Payload modes of the control characteristic (spec table 13)."""

    HIGH_FIDELITY_WITH_MAG = 1
    EXTENDED_QUATERNION = 2
    COMPLETE_QUATERNION = 3
    ORIENTATION_EULER = 4
    ORIENTATION_QUATERNION = 5
    FREE_ACCELERATION = 6
    EXTENDED_EULER = 7
    COMPLETE_EULER = 16
    HIGH_FIDELITY = 17
    DELTA_QUANTITIES_WITH_MAG = 18
    DELTA_QUANTITIES = 19
    RATE_QUANTITIES_WITH_MAG = 20
    RATE_QUANTITIES = 21
    CUSTOM_MODE_1 = 22
    CUSTOM_MODE_2 = 23
    CUSTOM_MODE_3 = 24
    CUSTOM_MODE_4 = 25
    CUSTOM_MODE_5 = 26


@dataclass(frozen=True)
class PayloadLayout:
    """Byte layout of one payload mode: its fields in order and the characteristic it arrives on."""

    mode: PayloadMode
    fields: tuple[str, ...]
    struct: struct.Struct
    char_uuid: str

    @property
    def size(self) -> int:
        """Bytes the mode fills (the rest of the characteristic is zero)."""
        return self.struct.size


# Field formats (spec table 17).
_FIELD_FORMATS = {
    "timestamp": "I",
    "quaternion": "4f",
    "free_acceleration": "3f",
    "acceleration": "3f",
    "angular_velocity": "3f",
    "magnetic_field": "3h",
    "status": "H",
    "clip_count_acc": "B",
    "clip_count_gyr": "B",
}


def _layout(mode: PayloadMode, *fields: str) -> PayloadLayout:
    fmt = struct.Struct("<" + "".join(_FIELD_FORMATS[f] for f in fields))
    char = LONG_PAYLOAD_UUID if fmt.size > 40 else MEDIUM_PAYLOAD_UUID if fmt.size > 20 else SHORT_PAYLOAD_UUID
    return PayloadLayout(mode, fields, fmt, char)


#: The modes this module decodes and encodes (spec tables 14 and 15).
PAYLOAD_LAYOUTS: dict[PayloadMode, PayloadLayout] = {
    layout.mode: layout
    for layout in (
        _layout(
            PayloadMode.EXTENDED_QUATERNION,
            "timestamp",
            "quaternion",
            "free_acceleration",
            "status",
            "clip_count_acc",
            "clip_count_gyr",
        ),
        _layout(PayloadMode.COMPLETE_QUATERNION, "timestamp", "quaternion", "free_acceleration"),
        _layout(
            PayloadMode.RATE_QUANTITIES_WITH_MAG, "timestamp", "acceleration", "angular_velocity", "magnetic_field"
        ),
        _layout(PayloadMode.RATE_QUANTITIES, "timestamp", "acceleration", "angular_velocity"),
        _layout(PayloadMode.CUSTOM_MODE_5, "timestamp", "quaternion", "acceleration", "angular_velocity"),
    )
}

#: Short names accepted in options (``ble:ADDR?protocol=dot&mode=rate-mag``).
MODE_NAMES: dict[str, PayloadMode] = {
    "extended-quaternion": PayloadMode.EXTENDED_QUATERNION,
    "complete-quaternion": PayloadMode.COMPLETE_QUATERNION,
    "rate-mag": PayloadMode.RATE_QUANTITIES_WITH_MAG,
    "rate": PayloadMode.RATE_QUANTITIES,
    "custom5": PayloadMode.CUSTOM_MODE_5,
}


def payload_layout(mode: PayloadMode | int | str) -> PayloadLayout:
    """The layout of a supported mode (by enum, number or short name); a clear error lists the supported ones."""
    if isinstance(mode, str):
        key = mode.strip().lower()
        if key not in MODE_NAMES:
            raise ValueError(f"unknown Movella DOT payload mode {mode!r}; supported: {', '.join(MODE_NAMES)}")
        mode = MODE_NAMES[key]
    try:
        layout = PAYLOAD_LAYOUTS.get(PayloadMode(mode))
    except ValueError:
        layout = None
    if layout is None:
        supported = ", ".join(f"{m.name.lower()} ({int(m)})" for m in PAYLOAD_LAYOUTS)
        raise ValueError(f"Movella DOT payload mode {mode!r} is not supported; supported: {supported}")
    return layout


@dataclass(frozen=True)
class DotPayload:
    """Every field of one measurement notification, in the DOT's own units (``None`` where the mode lacks it)."""

    timestamp_us: int
    quat_wxyz: tuple[float, float, float, float] | None = None
    free_acc_m_s2: tuple[float, float, float] | None = None
    acc_m_s2: tuple[float, float, float] | None = None
    gyr_deg_s: tuple[float, float, float] | None = None
    #: Raw int16 fixed-point magnetic field (× :data:`MAG_AU_PER_LSB` = a.u.).
    mag_raw: tuple[int, int, int] | None = None
    status: int | None = None
    clip_count_acc: int | None = None
    clip_count_gyr: int | None = None


#: Spec field name → :class:`DotPayload` attribute, and how many values it holds.
_PAYLOAD_ATTRS = {
    "timestamp": "timestamp_us",
    "quaternion": "quat_wxyz",
    "free_acceleration": "free_acc_m_s2",
    "acceleration": "acc_m_s2",
    "angular_velocity": "gyr_deg_s",
    "magnetic_field": "mag_raw",
    "status": "status",
    "clip_count_acc": "clip_count_acc",
    "clip_count_gyr": "clip_count_gyr",
}
_FIELD_WIDTHS = {name: int(fmt[0]) if len(fmt) == 2 else 1 for name, fmt in _FIELD_FORMATS.items()}


def decode_payload(mode: PayloadMode | int | str, data: bytes) -> DotPayload:
    """Decode one measurement notification of ``mode``; :class:`ProtocolError` if it is too short."""
    layout = payload_layout(mode)
    if len(data) < layout.size:
        raise ProtocolError(
            f"Movella DOT {layout.mode.name} notification of {len(data)} bytes; expected at least {layout.size}"
        )
    values = layout.struct.unpack_from(data)
    attrs: dict[str, object] = {}
    k = 0
    for name in layout.fields:
        width = _FIELD_WIDTHS[name]
        attrs[_PAYLOAD_ATTRS[name]] = values[k] if width == 1 else tuple(values[k : k + width])
        k += width
    return DotPayload(**attrs)


def encode_payload(mode: PayloadMode | int | str, payload: DotPayload) -> bytes:
    """The notification bytes of ``payload`` in ``mode``, zero-padded to the characteristic's length."""
    layout = payload_layout(mode)
    values: list[object] = []
    for name in layout.fields:
        value = getattr(payload, _PAYLOAD_ATTRS[name])
        if value is None:
            raise ValueError(f"Movella DOT {layout.mode.name} needs {name}, which the payload lacks")
        if isinstance(value, tuple):
            values.extend(value)
        else:
            values.append(value)
    body = layout.struct.pack(*values)
    return body + bytes(PAYLOAD_CHAR_LEN[layout.char_uuid] - len(body))


def control_command(start: bool, mode: PayloadMode | int) -> bytes:
    """Control characteristic value: start or stop measurement in ``mode``."""
    return bytes((MEASUREMENT_TYPE, ACTION_START if start else ACTION_STOP, int(mode)))


def output_rate_command(rate_hz: float) -> bytes:
    """Device-control value that sets only the output rate (visit index bit 4). ``60.0`` is accepted as ``60``."""
    if rate_hz not in STREAMING_RATES_HZ:
        raise ValueError(
            f"Movella DOT cannot stream at {rate_hz!r} Hz; accepted: {', '.join(map(str, STREAMING_RATES_HZ))}"
        )
    value = bytearray(DEVICE_CONTROL_LEN)
    value[0] = VISIT_OUTPUT_RATE
    struct.pack_into("<H", value, _OUTPUT_RATE_OFFSET, int(rate_hz))
    return bytes(value)


def heading_reset_command() -> bytes:
    """Orientation-reset control value: make the current heading zero."""
    return struct.pack("<H", HEADING_RESET)


def heading_revert_command() -> bytes:
    """Orientation-reset control value: back to the default heading (needed before a second reset)."""
    return struct.pack("<H", HEADING_REVERT)


def decode_battery(data: bytes) -> tuple[int, bool]:
    """Battery characteristic → (level %, charging); :class:`ProtocolError` if malformed."""
    if len(data) < 2 or data[0] > 100:
        raise ProtocolError(f"Movella DOT battery value {bytes(data).hex(' ')!r}; expected level 0..100, charging 0/1")
    return data[0], bool(data[1])


def encode_battery(level_pct: int, charging: bool = False) -> bytes:
    """Battery characteristic value."""
    return bytes((max(0, min(100, int(level_pct))), int(charging)))


def _rotate_inverse(q: Sequence[float], v: Sequence[float]) -> tuple[float, float, float]:
    """``R(q)ᵀ v`` for a unit w-first quaternion ``q`` (earth → sensor)."""
    w, x, y, z = q
    vx, vy, vz = v
    # v' = v + w t' + u × t' with u = -(x, y, z) and t' = 2 u × v (the conjugate's rotation).
    tx = 2.0 * (-y * vz + z * vy)
    ty = 2.0 * (-z * vx + x * vz)
    tz = 2.0 * (-x * vy + y * vx)
    return (
        vx + w * tx + (-y * tz + z * ty),
        vy + w * ty + (-z * tx + x * tz),
        vz + w * tz + (-x * ty + y * tx),
    )


def _rotate(q: Sequence[float], v: Sequence[float]) -> tuple[float, float, float]:
    """``R(q) v`` (sensor → earth)."""
    w, x, y, z = q
    return _rotate_inverse((w, -x, -y, -z), v)


# Plain ints for the per-sample dispatch.
_RATE_WITH_MAG = int(PayloadMode.RATE_QUANTITIES_WITH_MAG)
_RATE = int(PayloadMode.RATE_QUANTITIES)
_CUSTOM_5 = int(PayloadMode.CUSTOM_MODE_5)
_EXTENDED_QUATERNION = int(PayloadMode.EXTENDED_QUATERNION)


class DotProfile:
    """What a BLE driver needs for a Movella DOT; decodes its notifications into readings.

    ``payload_mode`` is one of :data:`PAYLOAD_LAYOUTS` (a :class:`PayloadMode`, its number, or a name from
    :data:`MODE_NAMES`); ``rate_hz`` one of :data:`STREAMING_RATES_HZ`.
    """

    name = "dot"

    def __init__(
        self,
        payload_mode: PayloadMode | int | str = PayloadMode.RATE_QUANTITIES_WITH_MAG,
        rate_hz: int = 60,
        mag_ut_per_au: float = DEFAULT_MAG_UT_PER_AU,
        gravity_m_s2: float = G_M_S2,
    ) -> None:
        self.layout = payload_layout(payload_mode)
        output_rate_command(rate_hz)  # a clear error now, not at connect time
        self.rate_hz = rate_hz
        self.mag_ut_per_au = mag_ut_per_au
        self.gravity_m_s2 = gravity_m_s2
        self.notify_uuids: Sequence[str] = (self.layout.char_uuid, BATTERY_UUID)
        self.stats = DecoderStats()
        self.clock = CounterUnwrapper(32)
        self.battery_pct: int | None = None
        self.charging: bool | None = None
        self._status: DeviceStatus | None = None
        self._mode = int(self.layout.mode)
        self._mag_scale = MAG_AU_PER_LSB * mag_ut_per_au

    @property
    def payload_mode(self) -> PayloadMode:
        """The payload mode the profile starts and decodes."""
        return self.layout.mode

    def start_writes(self) -> list[GattWrite]:
        """Set the output rate, then start measurement in the payload mode."""
        return [
            GattWrite(DEVICE_CONTROL_UUID, output_rate_command(self.rate_hz)),
            GattWrite(CONTROL_UUID, control_command(True, self.layout.mode)),
        ]

    def stop_writes(self) -> list[GattWrite]:
        """Stop measurement."""
        return [GattWrite(CONTROL_UUID, control_command(False, self.layout.mode))]

    def periodic_writes(self) -> list[PeriodicWrite]:
        """None: the DOT notifies battery changes by itself."""
        return []

    def heading_reset_writes(self) -> list[GattWrite]:
        """Revert then reset the heading (the DOT needs a revert before a new reset); only while measuring."""
        return [
            GattWrite(ORIENTATION_RESET_CONTROL_UUID, heading_revert_command()),
            GattWrite(ORIENTATION_RESET_CONTROL_UUID, heading_reset_command()),
        ]

    def heading_revert_writes(self) -> list[GattWrite]:
        """Back to the default heading."""
        return [GattWrite(ORIENTATION_RESET_CONTROL_UUID, heading_revert_command())]

    def decode(self, notification: BleNotification) -> list[DeviceReading]:
        """One reading per measurement notification; battery notifications update state and yield none."""
        uuid = notification.char_uuid.lower()
        data = notification.data
        self.stats.bytes_in += len(data)
        if uuid == BATTERY_UUID:
            self.battery_pct, self.charging = decode_battery(data)
            self._update_status(self.battery_pct, None, None)
            self.stats.frames_ok += 1
            return []
        layout = self.layout
        if uuid != layout.char_uuid:
            self.stats.bytes_discarded += len(data)
            raise ProtocolError(
                f"Movella DOT notification on {notification.char_uuid!r}; in {layout.mode.name} expected "
                f"{layout.char_uuid} or the battery {BATTERY_UUID}"
            )
        if len(data) < layout.size:
            self.stats.bytes_discarded += len(data)
            self.stats.frames_malformed += 1
            raise ProtocolError(
                f"Movella DOT {layout.mode.name} notification of {len(data)} bytes; expected at least {layout.size}"
            )
        reading = self._reading(layout.struct.unpack_from(data))
        self.stats.frames_ok += 1
        self.stats.readings_out += 1
        return [reading]

    def _update_status(self, battery_pct: float | None, clip_acc: int | None, clip_gyr: int | None) -> None:
        """Keep one status object while nothing changes (readings share it; no allocation per sample)."""
        old = self._status
        if old is not None:
            if battery_pct is None:
                battery_pct = old.battery_pct
            if clip_acc is None:
                clip_acc, clip_gyr = old.acc_clip_count, old.gyr_clip_count
            if (battery_pct, clip_acc, clip_gyr) == (old.battery_pct, old.acc_clip_count, old.gyr_clip_count):
                return
        self._status = DeviceStatus(battery_pct=battery_pct, acc_clip_count=clip_acc, gyr_clip_count=clip_gyr)

    def _reading(self, v: tuple) -> DeviceReading:
        mode = self._mode
        time_s = self.clock.unwrap(v[0]) * 1e-6
        if mode in (_RATE_WITH_MAG, _RATE):
            mag = None
            if mode == _RATE_WITH_MAG:
                s = self._mag_scale
                mag = (v[7] * s, v[8] * s, v[9] * s)
            return DeviceReading(
                acc_m_s2=(v[1], v[2], v[3]),
                gyr_rad_s=(v[4] * _DEG, v[5] * _DEG, v[6] * _DEG),
                device_time_s=time_s,
                mag_ut=mag,
                status=self._status,
            )
        quat = (v[1], v[2], v[3], v[4])
        if mode == _CUSTOM_5:
            return DeviceReading(
                acc_m_s2=(v[5], v[6], v[7]),
                gyr_rad_s=(v[8] * _DEG, v[9] * _DEG, v[10] * _DEG),
                device_time_s=time_s,
                quat_wxyz=quat,
                status=self._status,
            )
        # Quaternion modes: rebuild the specific force from the free acceleration; no angular velocity.
        g = self.gravity_m_s2
        acc = _rotate_inverse(quat, (v[5], v[6], v[7] + g))
        if mode == _EXTENDED_QUATERNION:
            self._update_status(None, v[9], v[10])
        return DeviceReading(acc_m_s2=acc, gyr_rad_s=_NAN3, device_time_s=time_s, quat_wxyz=quat, status=self._status)


class DotEmulator:
    """The device side of a Movella DOT, for the GATT-level fake.

    Honours start/stop and payload mode on the control characteristic, the output rate on device control (refused
    while measuring, as the spec says), heading reset/revert (applied to the quaternion and free acceleration it
    sends), and notifies the battery level when it changes. Timestamps come from ``reading.device_time_s`` (µs,
    wrapped to uint32), or from an internal clock at the output rate when the reading has none.
    """

    def __init__(
        self,
        rate_hz: int = 60,
        battery_pct: int = 100,
        mag_ut_per_au: float = DEFAULT_MAG_UT_PER_AU,
        gravity_m_s2: float = G_M_S2,
    ) -> None:
        output_rate_command(rate_hz)
        self._rate_hz = rate_hz
        self.mag_ut_per_au = mag_ut_per_au
        self.gravity_m_s2 = gravity_m_s2
        self.payload_mode: PayloadMode = PayloadMode.RATE_QUANTITIES_WITH_MAG
        self.battery_pct = battery_pct
        self.charging = False
        #: Result of the last heading reset, as the orientation-reset status characteristic would read.
        self.heading_reset_ok: bool | None = None
        self.n_rejected_writes = 0
        self._streaming = False
        self._heading_wxyz = (1.0, 0.0, 0.0, 0.0)  # yaw-only rotation removed from the output
        self._heading_is_reset = False
        self._last_quat: tuple[float, float, float, float] | None = None
        self._clock_us = 0.0

    @property
    def streaming(self) -> bool:
        """Whether measurement has been started."""
        return self._streaming

    @property
    def sampling_rate_hz(self) -> float:
        """The output rate currently configured."""
        return float(self._rate_hz)

    def on_write(self, write: GattWrite) -> list[BleNotification]:
        """Apply a write to the control, device-control or orientation-reset characteristic."""
        uuid = write.char_uuid.lower()
        data = bytes(write.data)
        if uuid == CONTROL_UUID:
            if len(data) != 3 or data[0] != MEASUREMENT_TYPE or data[1] not in (ACTION_STOP, ACTION_START):
                self.n_rejected_writes += 1
            elif data[1] == ACTION_START:
                if data[2] in PAYLOAD_LAYOUTS:
                    self.payload_mode = PayloadMode(data[2])
                    self._streaming = True
                else:
                    self.n_rejected_writes += 1
            else:
                self._streaming = False
        elif uuid == DEVICE_CONTROL_UUID:
            if len(data) != DEVICE_CONTROL_LEN or self._streaming:
                self.n_rejected_writes += 1
            elif data[0] & VISIT_OUTPUT_RATE:
                (rate,) = struct.unpack_from("<H", data, _OUTPUT_RATE_OFFSET)
                if rate in STREAMING_RATES_HZ:
                    self._rate_hz = rate
                else:
                    self.n_rejected_writes += 1
        elif uuid == ORIENTATION_RESET_CONTROL_UUID and len(data) == 2:
            (action,) = struct.unpack("<H", data)
            self._orientation_reset(action)
        else:
            self.n_rejected_writes += 1
        return []

    def _orientation_reset(self, action: int) -> None:
        if action == HEADING_REVERT:
            self._heading_wxyz = (1.0, 0.0, 0.0, 0.0)
            self._heading_is_reset = False
        elif action == HEADING_RESET:
            # Heading reset works only while measuring and only once until reverted (spec §3.6).
            ok = self._streaming and not self._heading_is_reset and self._last_quat is not None
            if ok:
                w, x, y, z = self._last_quat
                yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
                self._heading_wxyz = (math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0))
                self._heading_is_reset = True
            self.heading_reset_ok = ok
        else:
            self.n_rejected_writes += 1

    def set_battery(self, battery_pct: float, charging: bool = False) -> list[BleNotification]:
        """Change the battery state; returns the notification the DOT sends when the level changes."""
        level = max(0, min(100, round(battery_pct)))
        changed = level != self.battery_pct or charging != self.charging
        self.battery_pct, self.charging = level, charging
        return [BleNotification(BATTERY_UUID, encode_battery(level, charging))] if changed else []

    def notifications_for(self, reading: DeviceReading) -> list[BleNotification]:
        """The measurement notification for ``reading`` in the current mode (and a battery one if it changed)."""
        out: list[BleNotification] = []
        if reading.status is not None and reading.status.battery_pct is not None:
            out.extend(self.set_battery(reading.status.battery_pct, self.charging))
        if reading.quat_wxyz is not None:
            self._last_quat = reading.quat_wxyz
        if not self._streaming:
            return out
        if reading.device_time_s is not None:
            timestamp_us = round(reading.device_time_s * 1e6) % _TIMESTAMP_MODULUS
        else:
            timestamp_us = round(self._clock_us) % _TIMESTAMP_MODULUS
            self._clock_us += 1e6 / self._rate_hz
        layout = PAYLOAD_LAYOUTS[self.payload_mode]
        payload = self._payload(reading, timestamp_us)
        out.append(BleNotification(layout.char_uuid, encode_payload(self.payload_mode, payload)))
        return out

    def _payload(self, reading: DeviceReading, timestamp_us: int) -> DotPayload:
        mode = self.payload_mode
        fields = PAYLOAD_LAYOUTS[mode].fields
        gyr_deg_s = tuple(v / _DEG for v in reading.gyr_rad_s)
        mag_raw = None
        if "magnetic_field" in fields:
            if reading.mag_ut is None:
                raise ValueError(f"Movella DOT {mode.name} sends a magnetic field; the reading has none")
            scale = MAG_AU_PER_LSB * self.mag_ut_per_au
            mag_raw = tuple(max(-32768, min(32767, round(v / scale))) for v in reading.mag_ut)
        quat = free_acc = None
        if "quaternion" in fields:
            if reading.quat_wxyz is None:
                raise ValueError(f"Movella DOT {mode.name} sends a quaternion; the reading has none")
            hw, hx, hy, hz = self._heading_wxyz
            q = reading.quat_wxyz
            # Heading reset: q_out = h⁻¹ ⊗ q, with h the yaw-only rotation removed.
            quat = _quat_multiply((hw, -hx, -hy, -hz), q)
            if "free_acceleration" in fields:
                f = _rotate(quat, reading.acc_m_s2)
                free_acc = (f[0], f[1], f[2] - self.gravity_m_s2)
        status = clip_acc = clip_gyr = None
        if "status" in fields:
            status = 0
            clip_acc = clip_gyr = 0
            if reading.status is not None:
                clip_acc = min(255, reading.status.acc_clip_count or 0)
                clip_gyr = min(255, reading.status.gyr_clip_count or 0)
        return DotPayload(
            timestamp_us=timestamp_us,
            quat_wxyz=quat,
            free_acc_m_s2=free_acc,
            acc_m_s2=reading.acc_m_s2,
            gyr_deg_s=gyr_deg_s,
            mag_raw=mag_raw,
            status=status,
            clip_count_acc=clip_acc,
            clip_count_gyr=clip_gyr,
        )


def _quat_multiply(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Hamilton product ``a ⊗ b`` of w-first quaternions (plain floats: the emulator runs per sample)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )
