"""WitMotion BLE 5.0 (WT901BLECL, BWT901BLE5.0): 20-byte notifications on one characteristic, polled registers.

GATT: service ``0000ffe5-…``, notify ``0000ffe4-…``, write ``0000ffe9-…`` (all on the Bluetooth base UUID
``-0000-1000-8000-00805f9a34fb``; WitMotion SDK ``BleUUID.java``).

Notifications (little-endian int16 words, no checksum):

- ``55 61`` + acceleration x,y,z (raw / 32768 × 16 g) + angular velocity x,y,z (raw / 32768 × 2000 °/s)
  + angle roll,pitch,yaw (raw / 32768 × 180°): sent at the output rate, one per sample.
- ``55 71 <reg lo> <reg hi>`` + 8 registers from ``reg``: the answer to a read command ``FF AA 27 <reg> 00``
  written to the write characteristic.

The device sends no magnetometer, time or battery on its own. The profile polls the magnetometer registers
0x3A-0x3C every ``mag_poll_period_s`` and the battery-voltage register 0x64 every ``battery_poll_period_s``, and reads
the magnetometer chip type (0x72) once at start to pick the µT scale (WitMotion SDK table; until known, the
datasheet's mG). A fresh magnetometer answer is attached to the next reading only (``mag_ut`` is ``None`` on the
others, so downstream sees the true, lower magnetometer rate rather than held values). The battery voltage becomes
a charge in % by WitMotion's table (:func:`~.witmotion_registers.battery_pct_from_voltage`) and is attached to every
reading once known. No device clock and no packet counter: ``device_time_s`` and ``seq`` are ``None``. Angles are
kept in :attr:`WitmotionBleProfile.angle_deg`, not turned into a quaternion.

A notification may carry several 20-byte packets (the SDK's resolver splits them); each is decoded. A notification
that is not a whole number of packets, or holds no packet at all, raises :class:`ProtocolError`.

Sources: WT901BLECL datasheet v20-0707 §6 (packet layout and the worked magnetometer example), WitMotion BLE 5.0 SDK
(github.com/WITMOTION/WitBluetooth_BWT901BLE5_0: ``Bwt901bleResolver.java``, ``Bwt901bleProcessor.java``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from sensor_drivers.errors import ProtocolError
from sensor_drivers.frames import G_M_S2
from sensor_drivers.protocols.base import BleNotification, DecoderStats, GattWrite, PeriodicWrite
from sensor_drivers.protocols.witmotion_registers import (
    ACC_FULL_SCALE_G,
    ANGLE_FULL_SCALE_DEG,
    GYR_FULL_SCALE_DEG_S,
    MAG_UT_PER_LSB_BY_SENSOR_TYPE,
    MAG_UT_PER_LSB_DATASHEET,
    RATE_CODE_NONE,
    RATE_CODE_ONCE,
    Register,
    RegisterFile,
    battery_pct_from_voltage,
    euler_zyx_deg,
    parse_commands,
    rate_code,
    rate_command,
    rate_hz_from_code,
    read_register_command,
    save_command,
    to_int16,
    unlock_command,
    voltage_from_battery_pct,
)
from sensor_drivers.sample import DeviceReading, DeviceStatus

SERVICE_UUID = "0000ffe5-0000-1000-8000-00805f9a34fb"
NOTIFY_UUID = "0000ffe4-0000-1000-8000-00805f9a34fb"
WRITE_UUID = "0000ffe9-0000-1000-8000-00805f9a34fb"

PACKET_LEN = 20
HEADER = 0x55
FLAG_DATA = 0x61
FLAG_REGISTERS = 0x71
#: Registers per read answer.
N_REGISTERS_PER_READ = 8

ACC_M_S2_PER_LSB = ACC_FULL_SCALE_G * G_M_S2 / 32768.0
GYR_RAD_S_PER_LSB = math.radians(GYR_FULL_SCALE_DEG_S) / 32768.0
ANGLE_DEG_PER_LSB = ANGLE_FULL_SCALE_DEG / 32768.0

_DATA = struct.Struct("<BB9h")
_REGISTERS = struct.Struct("<BBH8h")


def decode_data_packet(packet: bytes) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """A ``55 61`` packet → raw (acc, gyr, angle) int16 triples; :class:`ProtocolError` if it is not one."""
    if len(packet) != PACKET_LEN or packet[0] != HEADER or packet[1] != FLAG_DATA:
        raise ProtocolError(f"not a WitMotion BLE data packet: {bytes(packet).hex(' ')!r}; expected 20 bytes '55 61 …'")
    words = _DATA.unpack(packet)[2:]
    return words[0:3], words[3:6], words[6:9]


def encode_data_packet(acc: Sequence[int], gyr: Sequence[int], angle: Sequence[int]) -> bytes:
    """A ``55 61`` packet from raw int16 triples."""
    return _DATA.pack(HEADER, FLAG_DATA, *acc, *gyr, *angle)


def decode_register_packet(packet: bytes) -> tuple[int, tuple[int, ...]]:
    """A ``55 71`` packet → (first register, 8 int16 values); :class:`ProtocolError` if it is not one."""
    if len(packet) != PACKET_LEN or packet[0] != HEADER or packet[1] != FLAG_REGISTERS:
        raise ProtocolError(
            f"not a WitMotion BLE register packet: {bytes(packet).hex(' ')!r}; expected 20 bytes '55 71 …'"
        )
    _, _, start, *values = _REGISTERS.unpack(packet)
    return start, tuple(values)


def encode_register_packet(start: int, values: Sequence[int]) -> bytes:
    """A ``55 71`` packet: ``start`` and the 8 int16 register values from it."""
    return _REGISTERS.pack(HEADER, FLAG_REGISTERS, start, *values)


class WitmotionBleProfile:
    """What a BLE driver needs for a WitMotion BLE 5.0 device; decodes its notifications into readings."""

    name = "witmotion-ble"
    notify_uuids: Sequence[str] = (NOTIFY_UUID,)

    def __init__(
        self,
        rate_hz: float = 100.0,
        mag_poll_period_s: float = 0.1,
        battery_poll_period_s: float = 10.0,
        save_settings: bool = True,
    ) -> None:
        rate_code(rate_hz)  # a clear error now, not at connect time
        self.rate_hz = rate_hz
        self.mag_poll_period_s = mag_poll_period_s
        self.battery_poll_period_s = battery_poll_period_s
        self.save_settings = save_settings
        self.stats = DecoderStats()
        #: Magnetometer scale in use: the datasheet's mG until the chip type (register 0x72) is known.
        self.mag_ut_per_lsb = MAG_UT_PER_LSB_DATASHEET
        self.mag_sensor_type: int | None = None
        self.battery_voltage_v: float | None = None
        self.battery_pct: float | None = None
        #: Latest roll, pitch, yaw, degrees.
        self.angle_deg: tuple[float, float, float] | None = None
        #: Every register value seen in read answers, by register.
        self.registers: dict[int, int] = {}
        self._fresh_mag: tuple[int, int, int] | None = None
        self._status: DeviceStatus | None = None

    def start_writes(self) -> list[GattWrite]:
        """Unlock, set the rate (and save), then read the magnetometer chip type."""
        commands = [unlock_command(), rate_command(self.rate_hz)]
        if self.save_settings:
            commands.append(save_command())
        commands.append(read_register_command(Register.MAGSENSOR))
        return [GattWrite(WRITE_UUID, c, response=True) for c in commands]

    def stop_writes(self) -> list[GattWrite]:
        """None: the device streams whenever connected; disconnecting is enough."""
        return []

    def periodic_writes(self) -> list[PeriodicWrite]:
        """Magnetometer and battery-voltage register reads."""
        return [
            PeriodicWrite(self.mag_poll_period_s, GattWrite(WRITE_UUID, read_register_command(Register.HX), False)),
            PeriodicWrite(
                self.battery_poll_period_s,
                GattWrite(WRITE_UUID, read_register_command(Register.BATTERY_VOLTAGE), False),
            ),
        ]

    def decode(self, notification: BleNotification) -> list[DeviceReading]:
        """Readings in one notification (register answers update state and yield none)."""
        data = notification.data
        n = len(data)
        self.stats.bytes_in += n
        if notification.char_uuid.lower() != NOTIFY_UUID:
            self.stats.bytes_discarded += n
            raise ProtocolError(f"WitMotion BLE notification on {notification.char_uuid!r}; expected {NOTIFY_UUID}")
        if n == 0 or n % PACKET_LEN:
            self.stats.bytes_discarded += n
            raise ProtocolError(f"WitMotion BLE notification of {n} bytes; expected a multiple of {PACKET_LEN}")
        out: list[DeviceReading] = []
        n_ok = 0
        for offset in range(0, n, PACKET_LEN):
            header = data[offset]
            flag = data[offset + 1]
            if header == HEADER and flag == FLAG_DATA:
                n_ok += 1
                out.append(self._reading(_DATA.unpack_from(data, offset)))
            elif header == HEADER and flag == FLAG_REGISTERS:
                n_ok += 1
                self._registers(_REGISTERS.unpack_from(data, offset))
            else:
                self.stats.bytes_discarded += PACKET_LEN
        self.stats.frames_ok += n_ok
        self.stats.readings_out += len(out)
        if not n_ok:
            raise ProtocolError(
                f"WitMotion BLE notification without a packet: starts {bytes(data[:4]).hex(' ')!r}; expected "
                "'55 61' (data) or '55 71' (registers)"
            )
        return out

    def _reading(self, words: tuple[int, ...]) -> DeviceReading:
        _, _, ax, ay, az, gx, gy, gz, roll, pitch, yaw = words
        self.angle_deg = (roll * ANGLE_DEG_PER_LSB, pitch * ANGLE_DEG_PER_LSB, yaw * ANGLE_DEG_PER_LSB)
        mag_ut = None
        if self._fresh_mag is not None:
            s = self.mag_ut_per_lsb
            hx, hy, hz = self._fresh_mag
            mag_ut = (hx * s, hy * s, hz * s)
            self._fresh_mag = None
        a = ACC_M_S2_PER_LSB
        g = GYR_RAD_S_PER_LSB
        return DeviceReading(
            acc_m_s2=(ax * a, ay * a, az * a),
            gyr_rad_s=(gx * g, gy * g, gz * g),
            device_time_s=None,
            seq=None,
            mag_ut=mag_ut,
            status=self._status,
        )

    def _registers(self, words: tuple[int, ...]) -> None:
        start = words[2]
        values = words[3:]
        for k, value in enumerate(values):
            self.registers[start + k] = value
        if start <= Register.HX and start + N_REGISTERS_PER_READ > Register.HZ:
            k = Register.HX - start
            self._fresh_mag = (values[k], values[k + 1], values[k + 2])
        if start <= Register.MAGSENSOR < start + N_REGISTERS_PER_READ:
            self.mag_sensor_type = values[Register.MAGSENSOR - start]
            self.mag_ut_per_lsb = MAG_UT_PER_LSB_BY_SENSOR_TYPE.get(self.mag_sensor_type, MAG_UT_PER_LSB_DATASHEET)
        if start <= Register.BATTERY_VOLTAGE < start + N_REGISTERS_PER_READ:
            self.battery_voltage_v = (values[Register.BATTERY_VOLTAGE - start] & 0xFFFF) * 0.01
            self.battery_pct = battery_pct_from_voltage(self.battery_voltage_v)
            self._status = DeviceStatus(battery_pct=self.battery_pct)


class WitmotionBleEmulator:
    """The device side of a WitMotion BLE 5.0 sensor, for the GATT-level fake.

    Streams ``55 61`` packets at the configured rate whenever the rate is not "none"; answers register reads with
    the current magnetometer (from the last reading), battery voltage, chip type and settings; applies rate writes
    only after the unlock command, as the device does.
    """

    def __init__(
        self,
        rate_hz: float = 10.0,
        battery_pct: float = 90.0,
        mag_sensor_type: int = 2,
        firmware_version: int = 0x1F,
    ) -> None:
        if mag_sensor_type not in MAG_UT_PER_LSB_BY_SENSOR_TYPE:
            known = sorted(MAG_UT_PER_LSB_BY_SENSOR_TYPE)
            raise ValueError(f"unknown WitMotion magnetometer type {mag_sensor_type!r}; known: {known}")
        self.registers = RegisterFile()
        self.registers.set(Register.RRATE, rate_code(rate_hz))
        self.registers.set(Register.MAGSENSOR, mag_sensor_type)
        self.registers.set(Register.VERSION, firmware_version)
        self.mag_ut_per_lsb = MAG_UT_PER_LSB_BY_SENSOR_TYPE[mag_sensor_type]
        self.set_battery(battery_pct)
        self._command_tail = b""

    def set_battery(self, battery_pct: float) -> None:
        """Set the charge the battery-voltage register reports."""
        self.registers.set(Register.BATTERY_VOLTAGE, round(voltage_from_battery_pct(battery_pct) * 100))

    @property
    def streaming(self) -> bool:
        """Streaming unless the host set the rate to "none" or "once"."""
        return self.registers.values[Register.RRATE] not in (RATE_CODE_NONE, RATE_CODE_ONCE)

    @property
    def sampling_rate_hz(self) -> float:
        """The output rate currently configured."""
        return rate_hz_from_code(self.registers.values[Register.RRATE]) or 0.0

    def on_write(self, write: GattWrite) -> list[BleNotification]:
        """Apply commands written to the write characteristic; answer register reads with ``55 71`` packets."""
        if write.char_uuid.lower() != WRITE_UUID:
            return []
        commands, self._command_tail = parse_commands(self._command_tail + bytes(write.data))
        answers = []
        for register, value in commands:
            start = self.registers.handle(register, value)
            if start is not None:
                packet = encode_register_packet(start, self.registers.read(start, N_REGISTERS_PER_READ))
                answers.append(BleNotification(NOTIFY_UUID, packet))
        return answers

    def notifications_for(self, reading: DeviceReading) -> list[BleNotification]:
        """The ``55 61`` packet for ``reading`` (and register updates: magnetometer, battery, quaternion)."""
        regs = self.registers
        if reading.mag_ut is not None:
            for k, v in enumerate(reading.mag_ut):
                regs.set(Register.HX + k, to_int16(v / self.mag_ut_per_lsb))
        if reading.status is not None and reading.status.battery_pct is not None:
            self.set_battery(reading.status.battery_pct)
        if not self.streaming:
            return []
        acc = [to_int16(v / ACC_M_S2_PER_LSB) for v in reading.acc_m_s2]
        gyr = [to_int16(v / GYR_RAD_S_PER_LSB) for v in reading.gyr_rad_s]
        # A device always reports angles; with no orientation in the reading the emulator reports zeros.
        angle = [0, 0, 0]
        if reading.quat_wxyz is not None:
            angle = [to_int16(v / ANGLE_DEG_PER_LSB) for v in euler_zyx_deg(reading.quat_wxyz)]
            for k, v in enumerate(reading.quat_wxyz):
                regs.set(Register.Q0 + k, to_int16(v * 32768.0))
        for k in range(3):
            regs.set(Register.AX + k, acc[k])
            regs.set(Register.GX + k, gyr[k])
        return [BleNotification(NOTIFY_UUID, encode_data_packet(acc, gyr, angle))]
