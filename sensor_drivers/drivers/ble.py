"""BLE transport (bleak): one peripheral, driven by a protocol's :class:`~sensor_drivers.protocols.base.BleProfile`.

Connecting: find the device by address and connect (bleak's client scans implicitly when given an address), subscribe
to the profile's ``notify_uuids``, then do its ``start_writes``. A failed attempt is retried with exponential backoff
and jitter; after ``n_connect_attempts`` failures ``connect()`` raises DeviceUnavailableError.

One connection attempt at a time per adapter: BlueZ refuses a second ``Connect`` while one is in progress
(``org.bluez.Error.InProgress``) and concurrent scans disturb each other, so every BleDriver in the process takes a
per-adapter asyncio lock for the whole set-up (connect, subscribe, start writes). Streaming is concurrent.

While streaming: notifications are decoded by the profile (a malformed one is counted in
:attr:`BleDriver.n_protocol_errors` and skipped, never fatal), stamped with ``time.monotonic()`` and queued; the
profile's ``periodic_writes`` run on their own timers. When the link drops (bleak's ``disconnected_callback``) the
driver puts ``LinkEvent(DISCONNECTED)`` in the stream and reconnects in the background with the same backoff until it
succeeds or the driver is closed, then puts ``LinkEvent(CONNECTED)``; the samples between are missing, and marked so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bleak.exc import BleakError

from sensor_drivers.blocks import BlockStreamItem
from sensor_drivers.drivers.base import Driver, SensorInfo
from sensor_drivers.drivers.item_queue import ItemQueue
from sensor_drivers.drivers.stamping import Stamper
from sensor_drivers.errors import DeviceUnavailableError, ProtocolError
from sensor_drivers.protocols.base import BleNotification, BleProfile, GattWrite, PeriodicWrite
from sensor_drivers.sample import LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import Site

log = logging.getLogger(__name__)

#: What a failed BLE operation raises (bleak's errors, timeouts, and D-Bus/OS-level failures underneath).
BLE_ERRORS: tuple[type[BaseException], ...] = (BleakError, TimeoutError, OSError, EOFError)


class BleClient(Protocol):
    """The part of :class:`bleak.BleakClient` the driver uses (and :class:`FakeBleakClient` implements)."""

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def start_notify(self, char_specifier: str, callback: Callable[[Any, bytearray], None]) -> None: ...

    async def stop_notify(self, char_specifier: str) -> None: ...

    async def write_gatt_char(self, char_specifier: str, data: bytes, response: bool | None = None) -> None: ...


class BleClientFactory(Protocol):
    """Makes a client for one connection attempt (``bleak_client_factory``, or ``FakeRadio.client_factory``)."""

    def __call__(
        self,
        address: str,
        disconnected_callback: Callable[[Any], None],
        *,
        adapter: str | None,
        timeout_s: float,
    ) -> BleClient: ...


def bleak_client_factory(
    address: str, disconnected_callback: Callable[[Any], None], *, adapter: str | None, timeout_s: float
) -> BleClient:
    """A real :class:`bleak.BleakClient`: given an address, its ``connect()`` scans for the device first."""
    from bleak import BleakClient  # imported here: the fake and the tests do not need a Bluetooth backend

    return BleakClient(address, disconnected_callback, timeout=timeout_s, bluez={"adapter": adapter} if adapter else {})


@dataclass(frozen=True)
class BleOptions:
    """Transport options of a BLE peripheral."""

    #: Adapter name (``hci0``), or ``None`` for the system default.
    adapter: str | None = None
    #: Time allowed for one scan-and-connect attempt, s.
    connect_timeout_s: float = 20.0
    #: Attempts in ``connect()`` before DeviceUnavailableError (reconnects after a drop retry until closed).
    n_connect_attempts: int = 5
    #: Wait before the second attempt, s; doubles per failure up to ``backoff_max_s``.
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    #: Each wait is scaled by a uniform factor in ``[1 - jitter, 1 + jitter]`` so that sensors dropped together do
    #: not retry in lockstep.
    backoff_jitter: float = 0.25
    #: Reconnect automatically after a drop.
    reconnect: bool = True
    #: Time allowed for the stop writes and the disconnect in ``close()``, s.
    close_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        if self.n_connect_attempts < 1:
            raise ValueError(f"BleOptions.n_connect_attempts must be >= 1, got {self.n_connect_attempts}")
        if not 0 <= self.backoff_jitter < 1:
            raise ValueError(f"BleOptions.backoff_jitter must be in [0, 1), got {self.backoff_jitter}")
        for name in ("connect_timeout_s", "backoff_initial_s", "backoff_max_s", "close_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"BleOptions.{name} must be >= 0, got {getattr(self, name)}")

    def backoff_s(self, k: int, rng: random.Random) -> float:
        """The ``k``-th wait (0-based) of a retry sequence: ``backoff_initial_s * 2**k``, capped, jittered."""
        base_s = min(self.backoff_initial_s * 2 ** min(k, 60), self.backoff_max_s)
        return base_s * rng.uniform(1 - self.backoff_jitter, 1 + self.backoff_jitter)


# One lock per adapter and event loop (an asyncio.Lock belongs to one loop).
_ADAPTER_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def adapter_lock(adapter: str | None) -> asyncio.Lock:
    """The lock every BleDriver in this event loop takes to set up a connection on ``adapter``.

    ``None`` (the system default) and an explicit name are different keys: name the adapter everywhere or nowhere.
    """
    loop = asyncio.get_running_loop()
    locks = _ADAPTER_LOCKS.setdefault(loop, {})
    key = adapter or ""
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


class BleDriver(Driver):
    """One BLE peripheral streaming through a protocol profile.

    Parameters
    ----------
    address
        Bluetooth address (``AA:BB:CC:DD:EE:FF``; a UUID on macOS).
    profile
        The protocol's profile (stateful in its decoder: one per driver).
    site
        Where the sensor sits.
    sensor_id
        Identity in samples and events; defaults to the address.
    seq_modulus
        Where the protocol's sequence counter wraps (see :class:`~sensor_drivers.drivers.stamping.Stamper`).
    nominal_rate_hz
        Expected sample rate, for :class:`SensorInfo`.
    options
        Transport options.
    client_factory
        Makes the bleak client; default :func:`bleak_client_factory`. Tests and the virtual patient pass
        :meth:`FakeRadio.client_factory <sensor_drivers.drivers.fake_gatt.FakeRadio.client_factory>`.
    rng
        Source of backoff jitter (seed it for reproducible tests).
    """

    def __init__(
        self,
        address: str,
        profile: BleProfile,
        *,
        site: Site,
        sensor_id: str | None = None,
        seq_modulus: int | None = None,
        nominal_rate_hz: float = 200.0,
        options: BleOptions | None = None,
        client_factory: BleClientFactory | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.address = address
        self.profile = profile
        self.options = options or BleOptions()
        self._client_factory: BleClientFactory = client_factory or bleak_client_factory
        self._rng = rng or random.Random()
        sensor_id = sensor_id or address
        self._info = SensorInfo(
            sensor_id=sensor_id,
            site=site,
            transport="ble",
            protocol=profile.name,
            address=address,
            nominal_rate_hz=nominal_rate_hz,
            extra={"adapter": self.options.adapter or ""},
        )
        self._stamper = Stamper(sensor_id, site, seq_modulus)
        self._queue = ItemQueue()
        self._client: BleClient | None = None
        self._linked = False  # set-up finished on the current client and its link is up
        # Items from notifications that arrive during set-up wait here until CONNECTED is in the stream.
        self._setup_items: list[StreamItem] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._periodic_tasks: list[asyncio.Task[None]] = []
        self._connected_once = False
        self._closing = False
        self._closed = False
        #: Notifications the profile could not decode (skipped).
        self.n_protocol_errors = 0
        #: Periodic writes that failed (the next period tries again).
        self.n_write_errors = 0
        #: Failed connection attempts, over the driver's life.
        self.n_failed_attempts = 0
        self.n_reconnects = 0
        self.n_disconnects = 0
        #: The last connection error, for reports.
        self.last_error: BaseException | None = None

    # -- Driver interface ---------------------------------------------------------------------------------------

    @property
    def sensors(self) -> list[SensorInfo]:
        """The one sensor of this peripheral."""
        return [self._info]

    @property
    def connected(self) -> bool:
        """Whether the link is up and streaming is set up."""
        return self._linked

    @property
    def stamper(self) -> Stamper:
        """Sample and gap counters."""
        return self._stamper

    async def connect(self) -> None:
        """Connect with retries and backoff; raises DeviceUnavailableError when every attempt failed."""
        if self._connected_once:
            return
        if self._closed or self._closing:
            raise DeviceUnavailableError(f"BLE driver for {self.address} was closed; make a new one")
        opts = self.options
        for attempt in range(1, opts.n_connect_attempts + 1):
            try:
                await self._attempt()
            except BLE_ERRORS as exc:
                self._attempt_failed(exc, attempt)
                if attempt < opts.n_connect_attempts:
                    await asyncio.sleep(opts.backoff_s(attempt - 1, self._rng))
                continue
            self._connected_once = True
            self._went_up(f"connected to {self.address}")
            self._periodic_tasks = [
                asyncio.create_task(self._periodic(p), name=f"ble-poll-{self.address}")
                for p in self.profile.periodic_writes()
            ]
            return
        raise DeviceUnavailableError(
            f"BLE device {self.address} ({self._info.site}, protocol {self.profile.name}) could not be connected "
            f"after {opts.n_connect_attempts} attempt(s): {_describe(self.last_error)}. Check that it is switched on, "
            "charged and in range, and not connected to another phone or computer."
        ) from self.last_error

    async def close(self) -> None:
        """Stop the device's stream (best effort), disconnect and end the stream."""
        if self._closed:
            return
        self._closing = True
        tasks = [t for t in (self._reconnect_task, *self._periodic_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client = self._client
        self._client = None
        linked, self._linked = self._linked, False
        if client is not None:
            try:
                async with asyncio.timeout(self.options.close_timeout_s):
                    if linked and client.is_connected:
                        for write in self.profile.stop_writes():
                            await client.write_gatt_char(write.char_uuid, write.data, response=write.response)
                    await client.disconnect()
            except BLE_ERRORS as exc:
                log.info("ble %s: clean disconnect failed: %s", self.address, exc)
        self._closed = True
        self._queue.finish()

    def stream(self) -> AsyncIterator[StreamItem]:
        """Samples and link events until the driver is closed."""
        return self._queue.items()

    def stream_blocks(self) -> AsyncIterator[BlockStreamItem]:
        """The items of :meth:`stream` with samples in blocks (one per notification)."""
        return self._queue.blocks()

    def stream_batches(self) -> AsyncIterator[list[StreamItem]]:
        """The same items in the batches they arrived in (one per notification)."""
        return self._queue.batches()

    def forward_to(self, target: ItemQueue) -> None:
        """Send every batch straight into ``target`` instead of :meth:`stream` (how a kit merges without a hop)."""
        self._queue.forward_to(target)

    # -- Connection ---------------------------------------------------------------------------------------------

    async def _attempt(self) -> None:
        """One set-up under the adapter lock: connect, subscribe, start writes. Raises one of BLE_ERRORS."""
        opts = self.options
        async with adapter_lock(opts.adapter):
            client = self._client_factory(
                self.address, self._on_disconnected, adapter=opts.adapter, timeout_s=opts.connect_timeout_s
            )
            self._client = client
            self._setup_items = []
            try:
                async with asyncio.timeout(opts.connect_timeout_s):
                    await client.connect()
                    for uuid in self.profile.notify_uuids:
                        await client.start_notify(uuid, functools.partial(self._on_notify, client, uuid))
                    for write in self.profile.start_writes():
                        await client.write_gatt_char(write.char_uuid, write.data, response=write.response)
                if not client.is_connected:
                    raise BleakError(f"{self.address}: link dropped during set-up")
            except BaseException:
                self._client = None
                self._setup_items = None
                try:
                    async with asyncio.timeout(self.options.close_timeout_s):
                        await client.disconnect()
                except (*BLE_ERRORS, asyncio.CancelledError):
                    pass
                raise
            self._linked = True

    def _went_up(self, reason: str) -> None:
        pending = self._setup_items or []
        self._setup_items = None
        self._queue.put([self._event(LinkState.CONNECTED, reason), *pending])

    def _attempt_failed(self, exc: BaseException, attempt: int) -> None:
        self.n_failed_attempts += 1
        self.last_error = exc
        log.info("ble %s: connection attempt %d failed: %s", self.address, attempt, _describe(exc))

    def _on_disconnected(self, client: Any) -> None:
        """bleak's disconnected_callback (also called for disconnects we asked for: those are ignored)."""
        if client is not self._client or not self._linked or self._closing:
            return
        self._linked = False
        self.n_disconnects += 1
        self._stamper.restart()
        log.warning("ble %s: link lost", self.address)
        self._queue.put([self._event(LinkState.DISCONNECTED, "BLE link lost")])
        if self.options.reconnect and self._reconnect_task is None:
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._reconnect(), name=f"ble-reconnect-{self.address}"
            )

    async def _reconnect(self) -> None:
        n_failures = 0
        try:
            while not self._closing:
                await asyncio.sleep(self.options.backoff_s(n_failures, self._rng))
                try:
                    await self._attempt()
                except BLE_ERRORS as exc:
                    n_failures += 1
                    self._attempt_failed(exc, n_failures)
                    continue
                self.n_reconnects += 1
                self._went_up(f"reconnected to {self.address} after {n_failures + 1} attempt(s)")
                return
        finally:
            self._reconnect_task = None

    # -- Streaming ----------------------------------------------------------------------------------------------

    def _on_notify(self, client: BleClient, uuid: str, _sender: Any, data: bytearray) -> None:
        host_time_s = time.monotonic()
        if client is not self._client:
            return  # a late notification from a client we have given up on
        try:
            readings = self.profile.decode(BleNotification(uuid, bytes(data)))
        except ProtocolError as exc:
            self.n_protocol_errors += 1
            if self.n_protocol_errors <= 10 or self.n_protocol_errors % 1000 == 0:
                log.info("ble %s: bad notification #%d: %s", self.address, self.n_protocol_errors, exc)
            return
        if not readings:
            return
        items = self._stamper.stamp(readings, host_time_s)
        if self._setup_items is not None:
            self._setup_items.extend(items)
        else:
            self._queue.put(items)

    async def _periodic(self, periodic: PeriodicWrite) -> None:
        write: GattWrite = periodic.write
        period_s = max(periodic.period_s, 0.01)  # a zero period would starve the event loop
        while True:
            await asyncio.sleep(period_s)
            client = self._client
            if client is None or not self._linked:
                continue
            try:
                await client.write_gatt_char(write.char_uuid, write.data, response=write.response)
            except BLE_ERRORS as exc:
                self.n_write_errors += 1
                log.debug("ble %s: periodic write failed: %s", self.address, exc)

    def _event(self, state: LinkState, reason: str) -> LinkEvent:
        return LinkEvent(
            sensor_id=self._info.sensor_id,
            site=self._info.site,
            state=state,
            host_time_s=time.monotonic(),
            reason=reason,
        )


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no attempt made"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
