"""A GATT-level fake of bleak's client, for what cannot run here: a Bluetooth radio.

It fakes at the lowest layer the driver sees. :class:`FakeBleakClient` implements exactly the part of
:class:`bleak.BleakClient` that :class:`~sensor_drivers.drivers.ble.BleDriver` uses (``connect``, ``disconnect``,
``is_connected``, ``start_notify``, ``stop_notify``, ``write_gatt_char``, ``read_gatt_char``, the
``disconnected_callback``), raises bleak's own exceptions, and passes bleak's own characteristic objects to the
notification callbacks. Behind it a :class:`FakePeripheral` hosts a protocol's
:class:`~sensor_drivers.protocols.base.BleDeviceEmulator`: the central's writes go to the emulator, and the emulator's
notification bytes for each ``(time_s, DeviceReading)`` are delivered at the readings' pace (real time or ``speed``
times faster). A :class:`FakeRadio` is one adapter with the peripherals in range; its
:meth:`~FakeRadio.client_factory` plugs into ``BleDriver(client_factory=…)``.

Faults it can play: a device not found ``n_not_found`` times, refusing the connection ``n_refusals`` times, link drops
for a given time (scheduled on the readings' clock, or now with :meth:`FakePeripheral.drop_link`), and BlueZ's
refusal of a second connection attempt on an adapter while one is in progress (``org.bluez.Error.InProgress``), which
is why the driver connects one device at a time per adapter.

Conventions: UUIDs are compared in bleak's normalised form (lower-case 128-bit); the emulator receives writes and
returns notifications with UUIDs in that form. All durations (drops) are on the readings' clock, so at ``speed=10`` a
2 s drop lasts 0.2 s of wall time. The device's clock starts when its emulator first reports ``streaming``; readings
that fall due while the link is down or the device is not streaming are lost (counted), as over the air.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.service import BleakGATTService
from bleak.exc import BleakCharacteristicNotFoundError, BleakDBusError, BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_str

from sensor_drivers.protocols.base import BleDeviceEmulator, BleNotification, GattWrite
from sensor_drivers.sample import DeviceReading

log = logging.getLogger(__name__)

NotifyCallback = Callable[[BleakGATTCharacteristic, bytearray], Awaitable[None] | None]

#: The fake service every emulated characteristic hangs off (bleak needs a service for each characteristic).
_FAKE_SERVICE_UUID = "0000fe00-0000-1000-8000-00805f9b34fb"


class FakePeripheral:
    """One emulated BLE device: a protocol emulator, a timed source of readings, and a fault schedule.

    Parameters
    ----------
    emulator
        The protocol's device side.
    readings
        ``(time_s, reading)`` pairs in time order (any origin): what the device measures and when.
    speed
        Time scale (> 0, finite): 1.0 is real time.
    characteristics
        UUIDs the device has (writes, notifications, reads to others fail like on a real device); ``None`` accepts any.
    read_values
        Values returned by ``read_gatt_char`` per characteristic UUID.
    n_not_found
        The first ``n_not_found`` connection attempts fail with ``BleakDeviceNotFoundError`` (not advertising).
    n_refusals
        The next ``n_refusals`` attempts fail with ``BleakError`` (connection refused / aborted).
    connect_delay_s
        Wall time one connection attempt takes (a real one takes 0.5-3 s).
    link_drops
        ``(at_time_s, duration_s)`` on the readings' clock: the link drops at that reading and the device cannot be
        reached until the duration has passed.
    name
        Advertised name, for logs.
    """

    def __init__(
        self,
        emulator: BleDeviceEmulator,
        readings: Iterable[tuple[float, DeviceReading]],
        *,
        speed: float = 1.0,
        characteristics: Iterable[str] | None = None,
        read_values: Mapping[str, bytes] | None = None,
        n_not_found: int = 0,
        n_refusals: int = 0,
        connect_delay_s: float = 0.0,
        link_drops: Sequence[tuple[float, float]] = (),
        name: str = "",
    ) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be finite and > 0 (1.0 = real time), got {speed}")
        if n_not_found < 0 or n_refusals < 0 or connect_delay_s < 0:
            raise ValueError("n_not_found, n_refusals and connect_delay_s must be >= 0")
        self.emulator = emulator
        self.speed = float(speed)
        self.name = name
        self._readings = iter(readings)
        self._next: tuple[float, DeviceReading] | None = None
        self._exhausted = False
        self.n_not_found = n_not_found
        self.n_refusals = n_refusals
        self.connect_delay_s = connect_delay_s
        self._link_drops = sorted(link_drops)
        self._read_values = {normalize_uuid_str(k): bytes(v) for k, v in (read_values or {}).items()}
        handles = itertools.count(16)
        self._service = BleakGATTService(None, 15, _FAKE_SERVICE_UUID)
        self._accept_any_char = characteristics is None
        self._chars: dict[str, BleakGATTCharacteristic] = {}
        for uuid in characteristics or ():
            self._chars[normalize_uuid_str(uuid)] = self._make_char(normalize_uuid_str(uuid), next(handles))
        self._handles = handles
        self._client: FakeBleakClient | None = None
        self._pump_task: asyncio.Task[None] | None = None
        # Device clock: wall time (loop.time()) when the first reading is due, and that reading's time_s.
        self._t0_wall: float | None = None
        self._t0_s: float | None = None
        self._link_down_until_s: float | None = None
        #: Set when the last reading has fallen due.
        self.finished = asyncio.Event()
        #: Every write the device received, with the wall time (loop.time()) it arrived.
        self.writes: list[tuple[float, GattWrite]] = []
        self.n_readings_sent = 0
        self.n_readings_lost = 0
        self.n_connects = 0
        self.n_drops = 0

    # -- GATT table ---------------------------------------------------------------------------------------------

    def _make_char(self, uuid: str, handle: int) -> BleakGATTCharacteristic:
        return BleakGATTCharacteristic(None, handle, uuid, ["read", "write", "notify"], lambda: 244, self._service)

    def characteristic(self, char_specifier: str | BleakGATTCharacteristic) -> BleakGATTCharacteristic:
        """The characteristic object for a UUID; raises ``BleakCharacteristicNotFoundError`` if the device lacks it."""
        if isinstance(char_specifier, BleakGATTCharacteristic):
            char_specifier = char_specifier.uuid
        uuid = normalize_uuid_str(str(char_specifier))
        char = self._chars.get(uuid)
        if char is None:
            if not self._accept_any_char:
                raise BleakCharacteristicNotFoundError(char_specifier)
            char = self._chars[uuid] = self._make_char(uuid, next(self._handles))
        return char

    # -- Clock and faults ---------------------------------------------------------------------------------------

    def stream_time_s(self) -> float | None:
        """Now on the readings' clock (``None`` before the device first streamed)."""
        if self._t0_wall is None or self._t0_s is None:
            return None
        return self._t0_s + (asyncio.get_running_loop().time() - self._t0_wall) * self.speed

    @property
    def link_down(self) -> bool:
        """Whether the device is out of reach (during a link drop)."""
        until = self._link_down_until_s
        if until is None:
            return False
        now = self.stream_time_s()
        if now is None or now >= until:
            self._link_down_until_s = None
            return False
        return True

    def drop_link(self, duration_s: float) -> None:
        """Drop the link now; the device cannot be reached for ``duration_s`` (readings' clock)."""
        now = self.stream_time_s()
        if now is None:
            raise RuntimeError("drop_link() before the device streamed: its clock has not started")
        self._start_drop(now, duration_s)

    def _start_drop(self, now_s: float, duration_s: float) -> None:
        self.n_drops += 1
        self._link_down_until_s = now_s + duration_s
        client = self._client
        if client is not None:
            self._client = None
            client._link_lost()
        self._stop_pump()

    # -- Called by the client -----------------------------------------------------------------------------------

    async def _connect(self, client: FakeBleakClient) -> None:
        if self.connect_delay_s:
            await asyncio.sleep(self.connect_delay_s)
        if self.n_not_found > 0:
            self.n_not_found -= 1
            raise BleakDeviceNotFoundError(client.address, f"Device with address {client.address} was not found.")
        if self.link_down:
            raise BleakDeviceNotFoundError(client.address, f"Device with address {client.address} was not found.")
        if self.n_refusals > 0:
            self.n_refusals -= 1
            raise BleakError(f"{client.address}: failed to connect: le-connection-abort-by-local")
        if self._client is not None and self._client is not client:
            raise BleakError(f"{client.address}: already connected to another central")
        self._client = client
        self.n_connects += 1
        if self.emulator.streaming and self._pump_task is None and not self._exhausted:
            self._start_pump(client)  # a device that kept measuring through the drop resumes at once

    def _disconnect(self, client: FakeBleakClient) -> None:
        if self._client is client:
            self._client = None
            self._stop_pump()

    def _write(self, client: FakeBleakClient, write: GattWrite) -> list[BleNotification]:
        self.writes.append((asyncio.get_running_loop().time(), write))
        notifications = self.emulator.on_write(write)
        if self.emulator.streaming and self._pump_task is None and not self._exhausted:
            self._start_pump(client)
        return notifications

    def _read(self, uuid: str) -> bytes:
        try:
            return self._read_values[uuid]
        except KeyError:
            raise BleakCharacteristicNotFoundError(uuid) from None

    # -- Streaming ----------------------------------------------------------------------------------------------

    def _peek(self) -> tuple[float, DeviceReading] | None:
        if self._next is None and not self._exhausted:
            try:
                self._next = next(self._readings)
            except StopIteration:
                self._exhausted = True
        return self._next

    def start_clock(self, t0_wall: float, t0_s: float = 0.0) -> None:
        """The device has been measuring since ``t0_wall`` (``loop.time()``) with reading time ``t0_s`` due then.

        Several emulated devices given one origin sample on one timeline, like real sensors that run before anyone
        subscribes: readings that fell due before the driver started streaming are not sent (counted as lost).
        Without it, the first reading is due when streaming first starts.
        """
        self._t0_wall, self._t0_s = t0_wall, t0_s

    def _start_pump(self, client: FakeBleakClient) -> None:
        loop = asyncio.get_running_loop()
        first = self._peek()
        if first is None:
            self.finished.set()
            return
        if self._t0_wall is None:
            self._t0_wall, self._t0_s = loop.time(), first[0]
            resume_s = None
        else:
            # Readings that fell due while nobody listened are lost, not delivered in a burst.
            resume_s = self.stream_time_s()
        self._pump_task = loop.create_task(self._pump(client, resume_s), name=f"fake-ble-{client.address}")

    def _stop_pump(self) -> None:
        task = self._pump_task
        self._pump_task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _pump(self, client: FakeBleakClient, resume_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        t0_wall, t0_s, speed = self._t0_wall, self._t0_s, self.speed
        assert t0_wall is not None  # set by _start_pump
        assert t0_s is not None
        while (nxt := self._peek()) is not None:
            time_s, reading = nxt
            if resume_s is not None and time_s < resume_s:
                self._next = None
                self.n_readings_lost += 1
                continue
            resume_s = None
            delay_s = t0_wall + (time_s - t0_s) / speed - loop.time()
            if delay_s > 0.001:  # below a millisecond, deliver now: the loop's timers are not finer anyway
                await asyncio.sleep(delay_s)
                continue
            self._next = None
            if self._link_drops and time_s >= self._link_drops[0][0]:
                at_s, duration_s = self._link_drops.pop(0)
                self.n_readings_lost += 1
                self._pump_task = None
                self._start_drop(at_s, duration_s)
                return
            delivered = False
            if self._client is client and client.is_connected and self.emulator.streaming:
                delivered = client._deliver(self.emulator.notifications_for(reading))
            if delivered:
                self.n_readings_sent += 1
            else:
                self.n_readings_lost += 1
        self._pump_task = None
        self.finished.set()


class FakeRadio:
    """One emulated Bluetooth adapter and the peripherals in its range, by address.

    ``client_factory`` has the signature :class:`~sensor_drivers.drivers.ble.BleDriver` expects. Like BlueZ, the
    radio refuses a second connection attempt while one is in progress (``BleakDBusError``
    ``org.bluez.Error.InProgress``); :attr:`max_concurrent_connects` records the most attempts seen at once.
    """

    def __init__(self, name: str = "hci0") -> None:
        self.name = name
        self.peripherals: dict[str, FakePeripheral] = {}
        self._n_connecting = 0
        self.max_concurrent_connects = 0
        self.n_in_progress_errors = 0
        #: ``(address, start, end, outcome)`` per connection attempt; times are ``loop.time()``.
        self.connect_log: list[tuple[str, float, float, str]] = []

    def add(self, address: str, peripheral: FakePeripheral) -> FakePeripheral:
        """Put a peripheral in range under ``address``."""
        self.peripherals[address.upper()] = peripheral
        return peripheral

    def client_factory(
        self,
        address: str,
        disconnected_callback: Callable[[Any], None] | None = None,
        *,
        adapter: str | None = None,
        timeout_s: float = 30.0,
    ) -> FakeBleakClient:
        """A client for ``address`` on this radio (same call as the driver's default bleak factory)."""
        return FakeBleakClient(address, disconnected_callback, timeout=timeout_s, radio=self)


class FakeBleakClient:
    """The subset of :class:`bleak.BleakClient` that the BLE driver uses, talking to a :class:`FakePeripheral`."""

    def __init__(
        self,
        address_or_ble_device: str,
        disconnected_callback: Callable[[FakeBleakClient], None] | None = None,
        services: Iterable[str] | None = None,
        *,
        timeout: float = 30.0,
        radio: FakeRadio,
        **kwargs: Any,
    ) -> None:
        self._address = str(address_or_ble_device)
        self._disconnected_callback = disconnected_callback
        self._timeout = timeout
        self._radio = radio
        self._connected = False
        self._callbacks: dict[str, NotifyCallback] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        """The peripheral's address."""
        return self._address

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""
        return self._connected

    def _peripheral(self) -> FakePeripheral | None:
        return self._radio.peripherals.get(self._address.upper())

    async def connect(self, **kwargs: Any) -> None:
        """Connect, or raise as bleak does: not found, refused, or InProgress on a busy adapter."""
        radio = self._radio
        loop = asyncio.get_running_loop()
        start = loop.time()
        if radio._n_connecting > 0:
            radio.n_in_progress_errors += 1
            radio.connect_log.append((self._address, start, start, "in-progress"))
            raise BleakDBusError("org.bluez.Error.InProgress", ["Operation already in progress"])
        radio._n_connecting += 1
        radio.max_concurrent_connects = max(radio.max_concurrent_connects, radio._n_connecting)
        outcome = "connected"
        try:
            peripheral = self._peripheral()
            if peripheral is None:
                await asyncio.sleep(0)
                raise BleakDeviceNotFoundError(self._address, f"Device with address {self._address} was not found.")
            await peripheral._connect(self)
            self._connected = True
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            radio._n_connecting -= 1
            radio.connect_log.append((self._address, start, loop.time(), outcome))

    async def disconnect(self) -> None:
        """Disconnect. Like bleak on BlueZ, the ``disconnected_callback`` runs for this disconnect too."""
        await asyncio.sleep(0)
        if not self._connected:
            return
        self._connected = False
        self._callbacks.clear()
        peripheral = self._peripheral()
        if peripheral is not None:
            peripheral._disconnect(self)
        self._call_disconnected()

    async def start_notify(
        self, char_specifier: str | BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Subscribe ``callback(characteristic, bytearray)`` to a characteristic's notifications."""
        peripheral = self._require_connected()
        char = peripheral.characteristic(char_specifier)
        await asyncio.sleep(0)
        self._callbacks[char.uuid] = callback

    async def stop_notify(self, char_specifier: str | BleakGATTCharacteristic) -> None:
        """Unsubscribe."""
        peripheral = self._require_connected()
        char = peripheral.characteristic(char_specifier)
        await asyncio.sleep(0)
        self._callbacks.pop(char.uuid, None)

    async def write_gatt_char(
        self, char_specifier: str | BleakGATTCharacteristic, data: bytes | bytearray, response: bool | None = None
    ) -> None:
        """Write to a characteristic; the emulator reacts, and notifications it triggers follow the write."""
        peripheral = self._require_connected()
        char = peripheral.characteristic(char_specifier)
        await asyncio.sleep(0)
        notifications = peripheral._write(self, GattWrite(char.uuid, bytes(data), bool(response)))
        if notifications:
            asyncio.get_running_loop().call_soon(self._deliver, notifications)

    async def read_gatt_char(self, char_specifier: str | BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        """Read a characteristic's value (from the peripheral's ``read_values``)."""
        peripheral = self._require_connected()
        char = peripheral.characteristic(char_specifier)
        await asyncio.sleep(0)
        return bytearray(peripheral._read(char.uuid))

    # -- Internals ----------------------------------------------------------------------------------------------

    def _require_connected(self) -> FakePeripheral:
        peripheral = self._peripheral()
        if not self._connected or peripheral is None:
            raise BleakError("Not connected")
        return peripheral

    def _deliver(self, notifications: list[BleNotification]) -> bool:
        """Hand notifications to the subscribed callbacks; whether any was subscribed."""
        peripheral = self._peripheral()
        if not self._connected or peripheral is None:
            return False
        delivered = False
        for notification in notifications:
            uuid = normalize_uuid_str(notification.char_uuid)
            callback = self._callbacks.get(uuid)
            if callback is None:
                continue  # not subscribed: a real device's notification goes nowhere either
            delivered = True
            result = callback(peripheral.characteristic(uuid), bytearray(notification.data))
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        return delivered

    def _link_lost(self) -> None:
        """The peripheral went out of reach: drop the link and tell the central, as BlueZ does."""
        if not self._connected:
            return
        self._connected = False
        self._callbacks.clear()
        self._call_disconnected()

    def _call_disconnected(self) -> None:
        if self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback, self)
