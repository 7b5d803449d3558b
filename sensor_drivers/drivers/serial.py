"""Serial transport (pyserial): one sensor per port, all ports read by one background thread, reopened after replug.

Reading. One reader thread per process services every open :class:`SerialDriver` once per ``poll_interval_s``
(default 40 ms): a non-blocking read of whatever each port holds, decode, stamp; then each event loop gets one
callback with all its drivers' items. The event loop never blocks on a port. Waking once per round for all ports,
instead of once per frame or per port, is what keeps the transport lean (``docs/drivers.md`` has the figures).
Every reading decoded from one read gets the same host receive time, taken right after the read; the clock-sync
stage smooths this jitter (USB serial adapters batch the same way: an FTDI chip's latency timer defaults to 16 ms).
A protocol whose decoder decodes whole blocks (``feed_blocks``, e.g. the StrideTwin frame) hands on one
:class:`~sensor_drivers.blocks.SampleBlock` per read instead of one :class:`~sensor_drivers.sample.ImuSample` per
reading: :meth:`SerialDriver.stream_blocks` passes them on as they are, :meth:`SerialDriver.stream` expands them into
the same samples.
A thread rather than the event loop does the reading so that a busy event loop cannot let the kernel's tty buffer
overflow.

Unplug and replug. When a port vanishes (a read error, the device node gone) the driver puts
``LinkEvent(DISCONNECTED)`` in the stream, retries opening the same path with exponential backoff until it is back or
the driver is closed, then puts ``LinkEvent(CONNECTED)``. Use a stable path for real devices
(``/dev/serial/by-id/…``): a replugged USB adapter may come back as another ``ttyUSBn``. The virtual devices of
:mod:`sensor_drivers.drivers.pty_server` offer the same, a symlink that is re-pointed on replug.

Closing. ``close()`` asks the reader to take the port out of its round after reading what the operating system still
holds (until the port is quiet), so nothing that had already arrived is lost, and the order of items holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, fields

import serial

from sensor_drivers.blocks import BlockStreamItem, ReadingBlock
from sensor_drivers.drivers.base import Driver, SensorInfo
from sensor_drivers.drivers.item_queue import ItemQueue, QueueItem
from sensor_drivers.drivers.stamping import Stamper
from sensor_drivers.errors import DeviceUnavailableError
from sensor_drivers.protocols.base import DecoderStats, StreamDecoder
from sensor_drivers.sample import LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import Site

log = logging.getLogger(__name__)

#: On close, the port is read until it was quiet this long, s, and for at most DRAIN_MAX_S.
DRAIN_QUIET_S = 0.02
DRAIN_MAX_S = 0.2

#: How long close() waits for the reader thread to drain and close the port, s.
CLOSE_TIMEOUT_S = 5.0

#: What opening, configuring or reading a port raises when the device is missing, busy or gone.
_PORT_ERRORS = (serial.SerialException, OSError, ValueError)


@dataclass(frozen=True)
class SerialOptions:
    """Transport options of a serial port."""

    baud_rate: int = 115200
    #: The reader takes what each port holds once per this interval, s (the smallest among the open drivers).
    #: Adds at most this latency. 40 ms is a live plot's redraw period (25 Hz); the transport's CPU grows about
    #: linearly with the rate of rounds (docs/drivers.md has the figures).
    poll_interval_s: float = 0.04
    #: Attempts to open the port in ``connect()`` before giving up with DeviceUnavailableError.
    n_open_attempts: int = 3
    #: First wait before reopening a vanished port, s; doubles per failed attempt up to ``reopen_max_s``.
    reopen_initial_s: float = 0.05
    reopen_max_s: float = 2.0
    #: Lock the port (flock) so that a second program cannot read from it at the same time.
    exclusive: bool = True
    #: Pause between two start writes, s (WitMotion devices need about 10 ms between unlock, rate and save).
    start_write_gap_s: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if value < 0 or (value == 0 and f.name in ("baud_rate", "n_open_attempts", "poll_interval_s")):
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
        self._loop: asyncio.AbstractEventLoop | None = None
        # After connect(), only the reader thread touches the port, the decoder and the stamper.
        self._close_requested = False
        self._closed_future: asyncio.Future[None] | None = None
        self._port: serial.Serial | None = None
        self._decoder: StreamDecoder | None = None
        self._feed_blocks: Callable[[bytes], list[ReadingBlock]] | None = None
        self._old_stats: list[DecoderStats] = []
        self._reopen_at_s = 0.0
        self._reopen_backoff_s = self.options.reopen_initial_s
        self._started = False
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
        """Open the port (``n_open_attempts`` tries with backoff) and hand it to the reader thread."""
        if self._started:
            return
        if self._closed:
            raise DeviceUnavailableError(f"serial driver for {self.port} was closed; make a new one")
        self._loop = asyncio.get_running_loop()
        self._port = await asyncio.to_thread(self._open_with_retries)
        self._started = True
        self._queue.put([self._event(LinkState.CONNECTED, f"opened {self.port}")])
        _READER.add(self)

    async def close(self) -> None:
        """Stop reading (after decoding what the OS had buffered), close the port and end the stream."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            # The reader drains and closes the port in its next round and hands over the last items behind the
            # earlier ones, so the order holds and nothing already received is lost.
            self._closed_future = asyncio.get_running_loop().create_future()
            self._close_requested = True
            try:
                await asyncio.wait_for(asyncio.shield(self._closed_future), CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.error(
                    "serial %s: reader did not close the port in %g s; closing it here", self.port, CLOSE_TIMEOUT_S
                )
                _READER.remove(self)
                port, self._port = self._port, None
                if port is not None:
                    _close_quietly(port)
        self._queue.finish()

    def stream(self) -> AsyncIterator[StreamItem]:
        """Samples and link events until the driver is closed."""
        return self._queue.items()

    def stream_blocks(self) -> AsyncIterator[BlockStreamItem]:
        """The same data as :meth:`stream`, samples in blocks (one per read where the protocol decodes blocks)."""
        return self._queue.blocks()

    def stream_batches(self) -> AsyncIterator[list[StreamItem]]:
        """The items of :meth:`stream` in the batches they arrived in (one per read)."""
        return self._queue.batches()

    def forward_to(self, target: ItemQueue) -> None:
        """Send every batch straight into ``target`` instead of :meth:`stream` (how a kit merges without a hop)."""
        self._queue.forward_to(target)

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

    # -- Opening ------------------------------------------------------------------------------------------------

    def _event(self, state: LinkState, reason: str) -> LinkEvent:
        return LinkEvent(
            sensor_id=self._info.sensor_id,
            site=self._info.site,
            state=state,
            host_time_s=time.monotonic(),
            reason=reason,
        )

    def _open_once(self) -> serial.Serial:
        """Open and configure the port, with a fresh decoder. Raises one of ``_PORT_ERRORS``."""
        opts = self.options
        # timeout=0: reads return at once with what is there; the reader thread sets the pace.
        port = serial.Serial(port=self.port, baudrate=opts.baud_rate, timeout=0, exclusive=opts.exclusive)
        try:
            for index, data in enumerate(self.start_writes):
                if index and opts.start_write_gap_s:
                    time.sleep(opts.start_write_gap_s)
                port.write(data)
                port.flush()
        except BaseException:
            _close_quietly(port)
            raise
        if self._decoder is not None:
            self._old_stats.append(self._decoder.stats)
        self._decoder = self._decoder_factory()
        # A decoder of whole blocks hands on one block per read (the hot path); others, one reading at a time.
        self._feed_blocks = getattr(self._decoder, "feed_blocks", None)
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

    # -- Reading (reader thread) --------------------------------------------------------------------------------

    def _service(self, now_s: float) -> list[QueueItem]:
        """One round of the reader thread for this port: read and decode, retry opening, or drain and close."""
        if self._close_requested:
            return self._drain_and_close()
        return self._read_or_reopen(now_s)

    def _handed_over(self, items: list[QueueItem], closed: bool) -> None:
        """In the event loop: the reader's items for this driver (and, after the last ones, that it is closed)."""
        self._queue.put(items)
        if closed and self._closed_future is not None and not self._closed_future.done():
            self._closed_future.set_result(None)

    def _read_or_reopen(self, now_s: float) -> list[QueueItem]:
        port = self._port
        opts = self.options
        if port is None:
            if now_s < self._reopen_at_s:
                return []
            try:
                port = self._open_once()
            except _PORT_ERRORS as exc:
                log.debug("serial %s: reopen failed: %s", self.port, exc)
                self._reopen_at_s = now_s + self._reopen_backoff_s
                self._reopen_backoff_s = min(self._reopen_backoff_s * 2, opts.reopen_max_s)
                return []
            self._port = port
            self._reopen_backoff_s = opts.reopen_initial_s
            self.n_reopens += 1
            log.info("serial %s: reopened", self.port)
            return [self._event(LinkState.CONNECTED, f"reopened {self.port}")]
        try:
            data = _read_available(port)
        except _PORT_ERRORS as exc:
            self._port = None
            _close_quietly(port)
            self.n_disconnects += 1
            self._stamper.restart()
            self._reopen_at_s = now_s + self._reopen_backoff_s
            log.warning("serial %s: port vanished: %s", self.port, exc)
            return [self._event(LinkState.DISCONNECTED, f"port vanished: {exc}")]
        if not data:
            return []
        return self._decode(data, time.monotonic())

    def _decode(self, data: bytes, host_time_s: float) -> list[QueueItem]:
        feed_blocks = self._feed_blocks
        if feed_blocks is not None:
            blocks = feed_blocks(data)
            return self._stamper.stamp_blocks(blocks, host_time_s) if blocks else []  # type: ignore[return-value]
        decoder = self._decoder
        assert decoder is not None  # set by _open_once before any read
        readings = decoder.feed(data)
        return self._stamper.stamp(readings, host_time_s) if readings else []

    def _drain_and_close(self) -> list[QueueItem]:
        """On close (in the reader thread): what the OS still holds for us, decoded, then the port closed.

        Reads until the port has been quiet for ``DRAIN_QUIET_S`` (a tty hands its buffered input over in steps,
        so one ``in_waiting`` is not all of it), at most ``DRAIN_MAX_S``.
        """
        items: list[QueueItem] = []
        port, self._port = self._port, None
        if port is None:
            return items
        try:
            port.timeout = DRAIN_QUIET_S
            deadline_s = time.monotonic() + DRAIN_MAX_S
            while time.monotonic() < deadline_s:
                data = port.read(max(port.in_waiting, 4096))
                if not data:
                    break
                items += self._decode(data, time.monotonic())
        except _PORT_ERRORS as exc:
            log.debug("serial %s: drain stopped: %s", self.port, exc)
        finally:
            _close_quietly(port)
        return items


class _Reader:
    """The one thread that services every open SerialDriver of the process, once per poll interval.

    Each round it reads every port, then hands each event loop one callback with all its drivers' items, so the
    loop wakes once per round, not once per port. It runs while at least one driver is registered. A failure
    servicing one port is logged and does not stop the others.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drivers: list[SerialDriver] = []
        self._interval_s = SerialOptions.poll_interval_s
        self._thread: threading.Thread | None = None

    def add(self, driver: SerialDriver) -> None:
        with self._lock:
            if driver not in self._drivers:
                self._drivers.append(driver)
                self._interval_s = min(d.options.poll_interval_s for d in self._drivers)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="serial-reader", daemon=True)
                self._thread.start()

    def remove(self, driver: SerialDriver) -> None:
        with self._lock:
            if driver in self._drivers:
                self._drivers.remove(driver)
                if self._drivers:
                    self._interval_s = min(d.options.poll_interval_s for d in self._drivers)

    def _run(self) -> None:
        while True:
            with self._lock:
                drivers = list(self._drivers)
                if not drivers:
                    self._thread = None
                    return
                interval_s = self._interval_s  # the smallest among the drivers
            now_s = time.monotonic()
            handovers: dict[asyncio.AbstractEventLoop, list[tuple[SerialDriver, list[QueueItem], bool]]] = {}
            for driver in drivers:
                closing = driver._close_requested
                try:
                    items = driver._service(now_s)
                except Exception:  # a bug for one port must not silence the others
                    log.exception("serial %s: reader failed", driver.port)
                    items = []
                if closing:
                    self.remove(driver)
                if (items or closing) and driver._loop is not None:
                    handovers.setdefault(driver._loop, []).append((driver, items, closing))
            for loop, entries in handovers.items():
                try:
                    loop.call_soon_threadsafe(_hand_over, entries)
                except RuntimeError:  # the event loop is gone: nobody reads these streams any more
                    for driver, _items, _closing in entries:
                        self.remove(driver)
            time.sleep(max(interval_s - (time.monotonic() - now_s), 0.0))


def _hand_over(entries: list[tuple[SerialDriver, list[QueueItem], bool]]) -> None:
    for driver, items, closed in entries:
        driver._handed_over(items, closed)


_READER = _Reader()


def reader_thread() -> threading.Thread | None:
    """The thread that reads, decodes and stamps every open port of this process (None while no port is open);
    for measuring its CPU time (``bench/capture.py``)."""
    return _READER._thread


def _read_available(port: serial.Serial) -> bytes:
    """Whatever the port holds now (possibly nothing), without blocking; raises when the device is gone."""
    fd = getattr(port, "fd", None)
    if isinstance(fd, int):
        # POSIX: pyserial opened the tty non-blocking, so one read() syscall does it (pyserial's own read() costs an
        # ioctl, a select and some objects on top, which at 50 reads/s/port is most of the transport's CPU).
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            data = b""
        if not data:
            # Nothing there, or a hung-up tty (it reads as end-of-file too): its in_waiting ioctl then fails (EIO).
            _ = port.in_waiting
        return data
    # Elsewhere: in_waiting, then a read that returns at once (timeout=0).
    return port.read(port.in_waiting or 1)


def _close_quietly(port: serial.Serial) -> None:
    with contextlib.suppress(_PORT_ERRORS):
        port.close()
