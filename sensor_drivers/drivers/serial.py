"""Serial transport (pyserial): one sensor on one port, read by a background thread, reopened after unplug/replug.

The reader thread blocks in ``read()`` (never the event loop), then pauses ``poll_interval_s`` so that bytes collect
into larger chunks: at 200 Hz that is one wake-up per ~2 frames instead of one per frame, which keeps the transport
at a fraction of a percent of a core (``docs/drivers.md`` has the figures). Every reading decoded from one chunk
gets the same host receive time, taken right after the read returned; the clock-sync stage smooths this jitter
(USB serial adapters batch the same way: an FTDI chip's latency timer defaults to 16 ms).

When the port vanishes (a read error, the device node gone), the driver puts ``LinkEvent(DISCONNECTED)`` in the
stream, retries opening the same path with exponential backoff until it is back or the driver is closed, then puts
``LinkEvent(CONNECTED)``. Use a stable path for real devices (``/dev/serial/by-id/…``): a replugged USB adapter may
come back as another ``ttyUSBn``. The virtual devices of :mod:`sensor_drivers.drivers.pty_server` offer the same
thing, a symlink that is re-pointed on replug.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, fields

import serial

from sensor_drivers.drivers.base import Driver, SensorInfo
from sensor_drivers.drivers.item_queue import ItemQueue
from sensor_drivers.drivers.stamping import Stamper
from sensor_drivers.errors import DeviceUnavailableError
from sensor_drivers.protocols.base import DecoderStats, StreamDecoder
from sensor_drivers.sample import LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import Site

log = logging.getLogger(__name__)

#: On close, the reader reads until the port was quiet this long, s, and for at most DRAIN_MAX_S.
DRAIN_QUIET_S = 0.02
DRAIN_MAX_S = 0.2

#: What opening, configuring or reading a port raises when the device is missing, busy or gone.
_PORT_ERRORS = (serial.SerialException, OSError, ValueError)


@dataclass(frozen=True)
class SerialOptions:
    """Transport options of a serial port."""

    baud_rate: int = 115200
    #: Longest one blocking read waits before the reader checks whether it should stop, s.
    read_timeout_s: float = 0.1
    #: Pause after each read so that bytes collect into larger chunks; adds at most this latency, s.
    poll_interval_s: float = 0.01
    #: Attempts to open the port in ``connect()`` before giving up with DeviceUnavailableError.
    n_open_attempts: int = 3
    #: First wait before reopening a vanished port, s; doubles per failed attempt up to ``reopen_max_s``.
    reopen_initial_s: float = 0.05
    reopen_max_s: float = 2.0
    #: Lock the port (flock) so that a second program cannot read from it at the same time.
    exclusive: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if value < 0 or (value == 0 and f.name in ("baud_rate", "n_open_attempts", "read_timeout_s")):
                raise ValueError(f"SerialOptions.{f.name} must be positive, got {value}")


class SerialDriver(Driver):
    """One sensor on a serial port, decoded by a byte-stream protocol.

    Parameters
    ----------
    port
        Path of the tty (``/dev/ttyUSB0``, ``/dev/serial/by-id/…``, or a pty / symlink to one).
    decoder_factory
        Makes the protocol's :class:`~sensor_drivers.protocols.base.StreamDecoder`. A fresh decoder is made on every
        (re)open so that a frame cut by an unplug is not glued to the bytes after the replug.
    site
        Where the sensor sits.
    sensor_id
        Identity in samples and events; defaults to the port path (unique: two drivers cannot share a port).
    protocol
        Protocol name, for :class:`~sensor_drivers.drivers.base.SensorInfo`.
    start_writes
        Bytes written after every (re)open, in order (configuration such as the output rate).
    seq_modulus
        Where the protocol's sequence counter wraps (see :class:`~sensor_drivers.drivers.stamping.Stamper`).
    nominal_rate_hz
        Expected sample rate, for :class:`SensorInfo`.
    options
        Transport options.
    """

    def __init__(
        self,
        port: str,
        decoder_factory: Callable[[], StreamDecoder],
        *,
        site: Site,
        sensor_id: str | None = None,
        protocol: str = "",
        start_writes: Sequence[bytes] = (),
        seq_modulus: int | None = None,
        nominal_rate_hz: float = 200.0,
        options: SerialOptions | None = None,
    ) -> None:
        self.port = str(port)
        self.options = options or SerialOptions()
        self.start_writes = tuple(start_writes)
        self._decoder_factory = decoder_factory
        sensor_id = sensor_id or self.port
        self._info = SensorInfo(
            sensor_id=sensor_id,
            site=site,
            transport="serial",
            protocol=protocol,
            address=self.port,
            nominal_rate_hz=nominal_rate_hz,
            extra={"baud_rate": str(self.options.baud_rate)},
        )
        self._stamper = Stamper(sensor_id, site, seq_modulus)
        self._queue = ItemQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port: serial.Serial | None = None
        self._decoder: StreamDecoder | None = None
        self._old_stats: list[DecoderStats] = []
        self._closed = False
        #: Times the port was reopened after vanishing.
        self.n_reopens = 0
        #: Times the port vanished while streaming.
        self.n_disconnects = 0

    # -- Driver interface ---------------------------------------------------------------------------------------

    @property
    def sensors(self) -> list[SensorInfo]:
        """The one sensor on this port."""
        return [self._info]

    async def connect(self) -> None:
        """Open the port (``n_open_attempts`` tries with backoff) and start the reader thread."""
        if self._thread is not None:
            return
        if self._closed:
            raise DeviceUnavailableError(f"serial driver for {self.port} was closed; make a new one")
        self._loop = asyncio.get_running_loop()
        self._port = await asyncio.to_thread(self._open_with_retries)
        self._queue.put([self._event(LinkState.CONNECTED, f"opened {self.port}")])
        self._thread = threading.Thread(target=self._read_loop, name=f"serial-{self._info.sensor_id}", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Stop the reader (after it decoded what the OS had buffered), close the port and end the stream."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None:
            port = self._port
            if port is not None:
                with contextlib.suppress(_PORT_ERRORS):
                    port.cancel_read()  # wake a blocking read at once instead of after read_timeout_s
            await asyncio.to_thread(thread.join)
        elif self._port is not None:
            _close_quietly(self._port)
        self._port = None
        self._queue.finish()

    async def stream(self) -> AsyncIterator[StreamItem]:
        """Samples and link events until the driver is closed."""
        async for item in self._queue.items():
            yield item

    # -- Statistics ---------------------------------------------------------------------------------------------

    @property
    def decoder_stats(self) -> DecoderStats:
        """Decoder counters summed over every (re)open."""
        total = DecoderStats()
        stats = [*self._old_stats]
        if self._decoder is not None:
            stats.append(self._decoder.stats)
        for s in stats:
            for f in fields(DecoderStats):
                setattr(total, f.name, getattr(total, f.name) + getattr(s, f.name))
        return total

    @property
    def stamper(self) -> Stamper:
        """Sample and gap counters."""
        return self._stamper

    # -- Internals ----------------------------------------------------------------------------------------------

    def _event(self, state: LinkState, reason: str) -> LinkEvent:
        return LinkEvent(
            sensor_id=self._info.sensor_id,
            site=self._info.site,
            state=state,
            host_time_s=time.monotonic(),
            reason=reason,
        )

    def _post(self, batch: list[StreamItem]) -> None:
        loop = self._loop
        if loop is not None and not self._queue.put_threadsafe(loop, batch):
            self._stop.set()

    def _open_once(self) -> serial.Serial:
        """Open and configure the port, with a fresh decoder. Raises one of ``_PORT_ERRORS``."""
        opts = self.options
        port = serial.Serial(
            port=self.port, baudrate=opts.baud_rate, timeout=opts.read_timeout_s, exclusive=opts.exclusive
        )
        try:
            for data in self.start_writes:
                port.write(data)
            if self.start_writes:
                port.flush()
        except BaseException:
            _close_quietly(port)
            raise
        if self._decoder is not None:
            self._old_stats.append(self._decoder.stats)
        self._decoder = self._decoder_factory()
        return port

    def _open_with_retries(self) -> serial.Serial:
        opts = self.options
        delay_s = opts.reopen_initial_s
        last_error: BaseException | None = None
        for attempt in range(opts.n_open_attempts):
            try:
                return self._open_once()
            except _PORT_ERRORS as exc:
                last_error = exc
                log.info("serial %s: open attempt %d failed: %s", self.port, attempt + 1, exc)
            if attempt + 1 < opts.n_open_attempts:
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, opts.reopen_max_s)
        raise DeviceUnavailableError(
            f"serial port {self.port} could not be opened after {opts.n_open_attempts} attempt(s): {last_error}. "
            "Check the path (real devices: ls /dev/serial/by-id), the cable, and the permission "
            "(on Linux the user must be in the 'dialout' group)."
        ) from last_error

    def _read_loop(self) -> None:
        """The reader thread: read, decode, stamp, post; reopen after the port vanishes."""
        opts = self.options
        stop = self._stop
        port = self._port
        backoff_s = opts.reopen_initial_s
        try:
            while not stop.is_set():
                if port is None:
                    try:
                        port = self._open_once()
                    except _PORT_ERRORS as exc:
                        log.debug("serial %s: reopen failed: %s", self.port, exc)
                        if stop.wait(backoff_s):
                            break
                        backoff_s = min(backoff_s * 2, opts.reopen_max_s)
                        continue
                    self._port = port
                    backoff_s = opts.reopen_initial_s
                    self.n_reopens += 1
                    log.info("serial %s: reopened", self.port)
                    self._post([self._event(LinkState.CONNECTED, f"reopened {self.port}")])
                try:
                    data = port.read(port.in_waiting or 1)
                    if data:
                        n_more = port.in_waiting
                        if n_more:
                            data += port.read(n_more)
                except _PORT_ERRORS as exc:
                    if stop.is_set():
                        break
                    self._port = None
                    _close_quietly(port)
                    port = None
                    self.n_disconnects += 1
                    self._stamper.restart()
                    log.warning("serial %s: port vanished: %s", self.port, exc)
                    self._post([self._event(LinkState.DISCONNECTED, f"port vanished: {exc}")])
                    continue
                if data:
                    self._decode(data, time.monotonic())
                    if opts.poll_interval_s > 0:
                        stop.wait(opts.poll_interval_s)
            if port is not None:
                self._drain(port)
        finally:
            if port is not None:
                _close_quietly(port)
            self._port = None

    def _drain(self, port: serial.Serial) -> None:
        """On close: decode what the OS already holds for us, so that nothing received is lost.

        Reads until the port has been quiet for ``DRAIN_QUIET_S`` (a tty hands over its buffered input in steps,
        so one ``in_waiting`` is not all of it), at most ``DRAIN_MAX_S``.
        """
        deadline = time.monotonic() + DRAIN_MAX_S
        n_quiet = 0
        try:
            port.timeout = DRAIN_QUIET_S
            while time.monotonic() < deadline and n_quiet < 2:
                # The first read may return at once, consuming the wake-up byte close() sent via cancel_read().
                data = port.read(max(port.in_waiting, 4096))
                if data:
                    n_quiet = 0
                    self._decode(data, time.monotonic())
                else:
                    n_quiet += 1
        except _PORT_ERRORS:
            return

    def _decode(self, data: bytes, host_time_s: float) -> None:
        decoder = self._decoder
        assert decoder is not None  # set by _open_once before any read
        readings = decoder.feed(data)
        if readings:
            self._post(self._stamper.stamp(readings, host_time_s))


def _close_quietly(port: serial.Serial) -> None:
    with contextlib.suppress(_PORT_ERRORS):
        port.close()
