"""The WitMotion register model and command side, shared by the serial (WT901, HWT901B, JY901) and the BLE 5.0
(WT901BLECL, BWT901BLE5.0) devices.

A command from the host is 5 bytes ``FF AA <register> <value lo> <value hi>``; a register read is a write to register
0x27 (``FF AA 27 <register> 00``). Settings only change after the unlock command (``FF AA 69 88 B5``: register 0x69
KEY = 0xB588) and persist across power cycles only after the save command (``FF AA 00 00 00``). The device re-locks
10 s after the unlock, so a transport sends unlock, the settings and save in one go, about 10 ms apart.

Sources: WitMotion "WIT Standard Communication Protocol" (wit-motion.gitbook.io/witmotion-sdk), the register map
``REG.h`` and ``wit_c_sdk.c`` of github.com/WITMOTION/WitStandardProtocol_JY901, and the BLE 5.0 SDK
(github.com/WITMOTION/WitBluetooth_BWT901BLE5_0, ``Bwt901bleProcessor.java``, ``DipSensorMagHelper.java``).
"""

from __future__ import annotations

import bisect
import math
import struct
from enum import IntEnum, IntFlag

from sensor_drivers.errors import ProtocolError

#: First two bytes of every host → device command.
COMMAND_HEADER = b"\xff\xaa"
COMMAND_LEN = 5
_COMMAND = struct.Struct("<2sBH")


class Register(IntEnum):
    """Registers used here (16-bit each; the full map has 0x90)."""

    SAVE = 0x00
    CALSW = 0x01
    #: Output content (which frames the serial device sends each cycle), see :class:`OutputContent`.
    RSW = 0x02
    #: Output rate code, see :data:`RATE_CODES`.
    RRATE = 0x03
    BAUD = 0x04
    #: Writing a register number here makes the device answer with that register and the ones after it.
    READADDR = 0x27
    VERSION = 0x2E
    AX = 0x34
    GX = 0x37
    HX = 0x3A
    HY = 0x3B
    HZ = 0x3C
    #: Temperature, 0.01 °C.
    TEMP = 0x40
    Q0 = 0x51
    Q1 = 0x52
    Q2 = 0x53
    Q3 = 0x54
    #: BLE 5.0 devices: battery voltage, 0.01 V (on serial devices this address is REFROLL).
    BATTERY_VOLTAGE = 0x64
    KEY = 0x69
    #: Magnetometer chip type; selects the µT scale (:data:`MAG_UT_PER_LSB_BY_SENSOR_TYPE`).
    MAGSENSOR = 0x72


#: Value of the KEY register that unlocks writes.
KEY_UNLOCK = 0xB588
#: Value of the SAVE register that stores the current settings.
SAVE_PARAMETERS = 0x0000


class OutputContent(IntFlag):
    """Bits of the RSW register: which frames a serial device sends in each output cycle."""

    TIME = 0x001
    ACC = 0x002
    GYRO = 0x004
    ANGLE = 0x008
    MAG = 0x010
    PORT = 0x020
    PRESSURE = 0x040
    GPS = 0x080
    VELOCITY = 0x100
    QUATERNION = 0x200
    GSA = 0x400


#: Output-rate codes of the RRATE register, by rate in Hz (125 Hz exists only on the WT931).
RATE_CODES: dict[float, int] = {
    0.2: 0x01,
    0.5: 0x02,
    1.0: 0x03,
    2.0: 0x04,
    5.0: 0x05,
    10.0: 0x06,
    20.0: 0x07,
    50.0: 0x08,
    100.0: 0x09,
    125.0: 0x0A,
    200.0: 0x0B,
}
#: RRATE code: send one cycle, then stop.
RATE_CODE_ONCE = 0x0C
#: RRATE code: send nothing.
RATE_CODE_NONE = 0x0D
_RATE_BY_CODE = {code: rate for rate, code in RATE_CODES.items()}

#: Baud-rate codes of the BAUD register (serial devices ship at 9600 baud).
BAUD_CODES: dict[int, int] = {
    4800: 1,
    9600: 2,
    19200: 3,
    38400: 4,
    57600: 5,
    115200: 6,
    230400: 7,
    460800: 8,
    921600: 9,
}

#: Full scales of the int16 outputs (raw / 32768 × full scale).
ACC_FULL_SCALE_G = 16.0
GYR_FULL_SCALE_DEG_S = 2000.0
ANGLE_FULL_SCALE_DEG = 180.0

#: Magnetometer µT per LSB by the chip type in register 0x72, as WitMotion's BLE 5.0 SDK converts it
#: (``DipSensorMagHelper.GetMagToUt``). Type 2 (0.15 µT/LSB) is the AK8963 of the MPU9250 in 16-bit mode.
MAG_UT_PER_LSB_BY_SENSOR_TYPE: dict[int, float] = {
    2: 0.15,
    3: 0.013,
    4: 0.058,
    5: 0.098,
    6: 1.0 / 150.0,
    7: 0.020,
}
#: Fallback scale while the chip type is unknown: the WT901BLECL datasheet (v20-0707, §6.1.2.1) gives the magnetic
#: field registers in mG (1 mG = 0.1 µT); its worked example (x=360, y=105, z=122 → 39 µT) is a plausible Earth field.
MAG_UT_PER_LSB_DATASHEET = 0.1

#: Battery voltage → charge, WitMotion BLE 5.0 SDK (``Bwt901bleProcessor.getEqPercent``): one Li-ion cell below
#: 5.5 V, two cells above.
_ONE_CELL_V = (3.4, 3.5, 3.68, 3.7, 3.73, 3.77, 3.79, 3.82, 3.87, 3.93, 3.96, 3.99)
_ONE_CELL_PCT = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 75.0, 90.0, 100.0)
_TWO_CELL_V = (6.5, 6.8, 7.35, 7.75, 8.5, 8.8)
_TWO_CELL_PCT = (0.0, 10.0, 30.0, 60.0, 90.0, 100.0)


def _interp(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Piecewise-linear interpolation, clamped at both ends (like the SDK's ``Interp``)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    k = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
    return y0 + (x - x0) / (x1 - x0) * (y1 - y0)


def battery_pct_from_voltage(voltage_v: float) -> float:
    """Battery charge in % from the battery-voltage register (0x64 / 100), by WitMotion's table."""
    if voltage_v > 5.5:
        return _interp(voltage_v, _TWO_CELL_V, _TWO_CELL_PCT)
    return _interp(voltage_v, _ONE_CELL_V, _ONE_CELL_PCT)


def voltage_from_battery_pct(battery_pct: float) -> float:
    """The one-cell voltage WitMotion's table maps to ``battery_pct`` (the inverse, for device emulators)."""
    return _interp(battery_pct, _ONE_CELL_PCT, _ONE_CELL_V)


def rate_code(rate_hz: float) -> int:
    """The RRATE code for an output rate; a clear error lists the rates the devices accept."""
    code = RATE_CODES.get(float(rate_hz))
    if code is None:
        accepted = ", ".join(f"{r:g}" for r in RATE_CODES)
        raise ValueError(f"WitMotion devices cannot output at {rate_hz!r} Hz; accepted rates (Hz): {accepted}")
    return code


def rate_hz_from_code(code: int) -> float | None:
    """The output rate of an RRATE code; ``0.0`` for "none" and "once", ``None`` for an unknown code."""
    if code in (RATE_CODE_NONE, RATE_CODE_ONCE):
        return 0.0
    return _RATE_BY_CODE.get(code)


def write_register_command(register: int, value: int) -> bytes:
    """``FF AA <register> <value lo> <value hi>``; ``value`` is a uint16 or an int16 (stored two's complement)."""
    if not 0 <= register <= 0xFF:
        raise ValueError(f"WitMotion register must be 0x00..0xFF, got {register!r}")
    if not -0x8000 <= value <= 0xFFFF:
        raise ValueError(f"WitMotion register value must fit 16 bits, got {value!r}")
    return _COMMAND.pack(COMMAND_HEADER, register, value & 0xFFFF)


def unlock_command() -> bytes:
    """``FF AA 69 88 B5``: allow register writes for the next 10 s."""
    return write_register_command(Register.KEY, KEY_UNLOCK)


def save_command() -> bytes:
    """``FF AA 00 00 00``: store the current settings in flash."""
    return write_register_command(Register.SAVE, SAVE_PARAMETERS)


def read_register_command(register: int) -> bytes:
    """``FF AA 27 <register> 00``: ask for ``register`` and the registers after it (4 on serial, 8 on BLE)."""
    return write_register_command(Register.READADDR, register)


def rate_command(rate_hz: float) -> bytes:
    """Set the output rate (needs unlock before and save after to persist)."""
    return write_register_command(Register.RRATE, rate_code(rate_hz))


def output_content_command(content: OutputContent) -> bytes:
    """Set which frames a serial device sends each cycle (RSW)."""
    return write_register_command(Register.RSW, int(content))


def baud_command(baud: int) -> bytes:
    """Set the serial baud rate (takes effect at once: reopen the port at the new rate)."""
    code = BAUD_CODES.get(baud)
    if code is None:
        raise ValueError(f"WitMotion devices cannot use {baud!r} baud; accepted: {', '.join(map(str, BAUD_CODES))}")
    return write_register_command(Register.BAUD, code)


def configure_commands(rate_hz: float, content: OutputContent | None = None, save: bool = True) -> list[bytes]:
    """The command sequence that sets the output rate (and content): unlock, settings, save. Send about 10 ms apart."""
    commands = [unlock_command(), rate_command(rate_hz)]
    if content is not None:
        commands.append(output_content_command(content))
    if save:
        commands.append(save_command())
    return commands


def parse_commands(data: bytes) -> tuple[list[tuple[int, int]], bytes]:
    """Split host → device bytes into ``(register, value)`` commands, for device emulators.

    Resynchronises on the ``FF AA`` header; returns the commands and the unconsumed tail (a partial command) to
    prepend to the next call.
    """
    commands: list[tuple[int, int]] = []
    i = 0
    n = len(data)
    while True:
        j = data.find(COMMAND_HEADER, i)
        if j < 0:
            # Keep a trailing 0xFF: it may be the first half of the next header.
            tail = data[-1:] if n and data[-1] == 0xFF else b""
            return commands, bytes(tail)
        if n - j < COMMAND_LEN:
            return commands, bytes(data[j:])
        _, register, value = _COMMAND.unpack_from(data, j)
        commands.append((register, value))
        i = j + COMMAND_LEN


def parse_command(data: bytes) -> tuple[int, int]:
    """One 5-byte command → ``(register, value)``; :class:`ProtocolError` if it is not one."""
    if len(data) != COMMAND_LEN or data[:2] != COMMAND_HEADER:
        raise ProtocolError(
            f"not a WitMotion command: {bytes(data).hex(' ')!r}; expected 5 bytes 'ff aa <reg> <lo> <hi>'"
        )
    _, register, value = _COMMAND.unpack(data)
    return register, value


#: Registers in the device's map (0x00..0x8F).
REGISTER_COUNT = 0x90


class RegisterFile:
    """The device side of the register protocol, for device emulators: unlock, register writes, save and reads.

    Values are stored as uint16 (int16 registers in two's complement). Writes other than unlock and reads are
    refused until the unlock command, as on the real device (whose 10 s re-lock timeout is not modelled).
    """

    def __init__(self) -> None:
        self.values = [0] * REGISTER_COUNT
        self.unlocked = False
        #: Save commands received (a real device writes its flash each time).
        self.n_saves = 0
        #: Writes refused because the device was locked.
        self.n_rejected_writes = 0

    def set(self, register: int, value: int) -> None:
        """Set a register from the device side (sensor data, battery voltage)."""
        self.values[register] = value & 0xFFFF

    def signed(self, register: int) -> int:
        """A register read as int16."""
        value = self.values[register]
        return value - 0x10000 if value & 0x8000 else value

    def handle(self, register: int, value: int) -> int | None:
        """Apply one host command; returns the first register of a requested read, else ``None``."""
        if register == Register.KEY:
            self.unlocked = value == KEY_UNLOCK
            return None
        if register == Register.READADDR:
            start = value & 0xFF
            return start if start < REGISTER_COUNT else None
        if not self.unlocked or register >= REGISTER_COUNT:
            self.n_rejected_writes += 1
            return None
        if register == Register.SAVE:
            if value == SAVE_PARAMETERS:
                self.n_saves += 1
            return None
        self.values[register] = value & 0xFFFF
        return None

    def read(self, start: int, count: int) -> tuple[int, ...]:
        """``count`` registers from ``start`` as int16 (zeros past the end of the map)."""
        return tuple(self.signed(r) if r < REGISTER_COUNT else 0 for r in range(start, start + count))


def euler_zyx_deg(quat_wxyz: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """Roll (x), pitch (y), yaw (z) in degrees of a w-first quaternion, Z-Y-X (yaw, then pitch, then roll).

    WitMotion calls its angles roll about X, pitch about Y and yaw about Z but does not state the sequence; Z-Y-X is
    the aerospace convention its pitch range (±90°) implies. Only the device emulators use this (to produce the
    angle bytes); decoders do not turn angles into orientation.
    """
    w, x, y, z = quat_wxyz
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    sin_pitch = max(-1.0, min(1.0, 2.0 * (w * y - z * x)))
    pitch = math.asin(sin_pitch)
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return math.degrees(roll), math.degrees(pitch), math.degrees(yaw)


def to_int16(value: float) -> int:
    """Round to the nearest integer and saturate at the int16 range, as a device's full-scale output does."""
    if value != value:  # NaN: a device cannot send one; send zero
        return 0
    if value >= 32767.0:
        return 32767
    if value <= -32768.0:
        return -32768
    return round(value)
