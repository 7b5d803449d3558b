"""Serve a (virtual) serial device over a real pseudo-terminal, so that :class:`SerialDriver` reads a real tty.

A :class:`PtyServer` owns one pty pair. Its thread writes the protocol encoder's bytes for each
``(time_s, DeviceReading)`` on the master side at the readings' pace (real time, or ``speed`` times faster); the
driver opens the slave side. What the driver writes (configuration bytes) is collected in :attr:`PtyServer.received`.

Finding the device again after a replug
---------------------------------------
An unplug closes the pty: the ``/dev/pts/N`` node disappears and the driver's reads fail, exactly as when a USB
serial adapter is pulled. A replug creates a new pty, which the kernel may number differently. So the server also
keeps a **stable symlink**, :attr:`PtyServer.link_path` (``<tmpdir>/tty`` unless told otherwise), which points to the
current ``/dev/pts/N``: it is removed on unplug and atomically re-pointed on replug. Give the driver the symlink, the
way real devices are given their ``/dev/serial/by-id/…`` link, and its ordinary reopen-with-backoff finds the device
again.

While unplugged, readings that fall due are lost (counted in :attr:`PtyServer.n_readings_unplugged`), as a real
device's would be. Bytes written while no driver reads stay in the pty buffer up to the kernel's limit; what does not
fit is dropped and counted (:attr:`PtyServer.n_bytes_overflowed`), like a UART overrun.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import select
import shutil
import struct
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType

from sensor_drivers.protocols.base import StreamEncoder
from sensor_drivers.sample import DeviceReading

log = logging.getLogger(__name__)

#: Bytes held back for a slow reader before further output is dropped (a generous device FIFO).
MAX_PENDING_BYTES = 64 * 1024


class PtyServer:
    """One emulated serial device on a pseudo-terminal.

    Parameters
    ----------
    readings
        ``(time_s, reading)`` pairs in time order; ``time_s`` is when the device sends the reading (any origin).
    encoder
        The protocol's device side: reading → bytes.
    speed
        Time scale: 1.0 is real time, 10.0 ten times faster; ``math.inf`` writes as fast as the reader takes it.
    link_path
        Where to keep the stable symlink; default ``<new temp dir>/tty`` (the temp dir is removed by :meth:`close`).
    origin_s
        The readings' time due at the start of streaming (default: the first reading's time). Several servers
        given one origin and one start time (:meth:`start`'s ``t0_wall``) stay on one timeline even when a
        server's first readings are missing (lost packets).
    unplugs
        Scheduled unplugs as ``(at_time_s, duration_s)`` on the readings' clock; the server replugs by itself.
    on_receive
        Called in the server thread with each chunk the driver writes (e.g. to react to a rate command).

    Use as a context manager, or call :meth:`open`, :meth:`start` and :meth:`close`. The pty exists after
    :meth:`open`, so a driver can connect before :meth:`start` begins the stream (the readings' clock starts then).
    """

    def __init__(
        self,
        readings: Iterable[tuple[float, DeviceReading]],
        encoder: StreamEncoder,
        *,
        speed: float = 1.0,
        link_path: str | os.PathLike[str] | None = None,
        origin_s: float | None = None,
        unplugs: Sequence[tuple[float, float]] = (),
        on_receive: Callable[[bytes], None] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (1.0 = real time, math.inf = as fast as possible), got {speed}")
        for at_s, duration_s in unplugs:
            if duration_s < 0:
                raise ValueError(f"unplug at {at_s} s has a negative duration {duration_s} s")
        self._readings = iter(readings)
        self._origin_s = origin_s
        self._t0_wall: float | None = None
        self.encoder = encoder
        self.speed = float(speed)
        self._unplugs = sorted(unplugs)
        self._on_receive = on_receive
        self._own_dir: str | None = None
        if link_path is None:
            self._own_dir = tempfile.mkdtemp(prefix="stridetwin-pty-")
            link_path = os.path.join(self._own_dir, "tty")
        #: The stable path a driver should open; it follows the device across replugs.
        self.link_path = Path(link_path)
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self._pending = bytearray()
        self._commands: queue.SimpleQueue[tuple[str, bytes, threading.Event]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        #: Set when every reading has been written (or the server was closed); the pty stays until close().
        self.finished = threading.Event()
        #: Bytes the driver wrote to the device.
        self.received = bytearray()
        self.n_readings_sent = 0
        self.n_readings_unplugged = 0
        self.n_bytes_written = 0
        self.n_bytes_overflowed = 0
        self.n_unplugs = 0
        #: Exception that ended the server thread, if any.
        self.error: BaseException | None = None

    # -- Life cycle ---------------------------------------------------------------------------------------------

    def open(self) -> PtyServer:
        """Create the pty pair and the symlink (plugged in, not yet streaming)."""
        if self._master is None and not self._closed:
            self._plug()
        return self

    def start(self, t0_wall: float | None = None) -> PtyServer:
        """Start streaming the readings in a background thread (opens the pty first if needed).

        ``t0_wall`` (``time.monotonic()``) is when the origin reading is due; default: now.
        """
        self._t0_wall = t0_wall
        self.open()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"pty-server-{self.link_path.name}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread, close the pty and remove the symlink (and the temp dir the server made)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join()
        self._unplug_now()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
        self.finished.set()

    def __enter__(self) -> PtyServer:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- Faults -------------------------------------------------------------------------------------------------

    @property
    def slave_path(self) -> str | None:
        """The current ``/dev/pts/N`` (``None`` while unplugged)."""
        return self._slave_path

    @property
    def plugged(self) -> bool:
        """Whether the device is plugged in."""
        return self._master is not None

    def n_bytes_unread(self) -> int:
        """Bytes sent (or held back) that the driver has not read yet; 0 while unplugged.

        Lets a caller wait until the driver has caught up. Bytes just written can still sit in the pty's flip buffer,
        which this does not count, until a kernel worker moves them on (milliseconds, longer under load): to be sure
        a particular reading arrived, wait for the driver to report it.
        """
        slave = self._slave
        if slave is None:
            return 0
        try:
            queued = struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0
        return queued + len(self._pending)

    def unplug(self) -> None:
        """Pull the cable: close the pty and remove the symlink. Readings due meanwhile are lost."""
        self._command("unplug")

    def replug(self) -> None:
        """Plug back in: a new pty (possibly another ``/dev/pts/N``) and the symlink re-pointed to it."""
        self._command("replug")

    def inject(self, data: bytes) -> None:
        """Write ``data`` (e.g. garbage) into the byte stream now, between two readings' frames."""
        self._command("inject", bytes(data))

    def wait_finished(self, timeout_s: float | None = None) -> bool:
        """Block until every reading was written; False on timeout."""
        return self.finished.wait(timeout_s)

    # -- Internals ----------------------------------------------------------------------------------------------

    def _command(self, name: str, data: bytes = b"") -> None:
        if self._closed:
            raise RuntimeError(f"pty server {self.link_path} is closed")
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            self._execute(name, data)  # not streaming, or called from the readings source inside the thread
            return
        done = threading.Event()
        self._commands.put((name, data, done))
        self._wake()
        if not done.wait(5.0):
            raise RuntimeError(f"pty server {self.link_path} did not execute {name!r} within 5 s")

    def _execute(self, name: str, data: bytes) -> None:
        if name == "unplug":
            if self._master is not None:
                self.n_unplugs += 1
            self._unplug_now()
        elif name == "replug":
            if self._master is None:
                self._plug()
        elif name == "inject":
            if self._master is not None:
                self._queue_output(data)
                self._flush()
        else:  # pragma: no cover - internal misuse
            raise ValueError(f"unknown pty server command {name!r}")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _plug(self) -> None:
        master, slave = os.openpty()
        # Raw mode at once: a cooked tty would echo and translate bytes written before the driver configures it.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_path = os.ttyname(slave)
        self._pending.clear()
        # Re-point atomically: a driver retrying open() sees the old target or the new one, never a missing link.
        tmp_link = self.link_path.with_name(f".{self.link_path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_link)
        os.symlink(self._slave_path, tmp_link)
        os.replace(tmp_link, self.link_path)
        log.debug("pty server: %s -> %s", self.link_path, self._slave_path)

    def _unplug_now(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link_path)
        # The slave we hold keeps the pty alive while no driver has it open (a master alone reads EIO); closing the
        # master removes the /dev/pts node and makes the driver's reads fail.
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._slave_path = None
        self._pending.clear()

    def _queue_output(self, data: bytes) -> None:
        room = MAX_PENDING_BYTES - len(self._pending)
        if len(data) > room:
            self.n_bytes_overflowed += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._pending += data

    def _flush(self) -> None:
        """Write as much pending output as the pty takes now."""
        master = self._master
        if master is None or not self._pending:
            return
        try:
            n = os.write(master, self._pending)
        except BlockingIOError:
            return
        except OSError as exc:
            log.debug("pty server: write failed: %s", exc)
            return
        del self._pending[:n]
        self.n_bytes_written += n

    def _read_input(self) -> None:
        master = self._master
        if master is None:
            return
        try:
            data = os.read(master, 4096)
        except (BlockingIOError, OSError):
            return
        if data:
            self.received += data
            if self._on_receive is not None:
                self._on_receive(data)

    def _service(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` while executing commands, reading input and flushing output."""
        while True:
            try:
                name, data, done = self._commands.get_nowait()
            except queue.Empty:
                break
            try:
                self._execute(name, data)
            finally:
                done.set()
        rlist = [self._wake_r]
        wlist = []
        if self._master is not None:
            rlist.append(self._master)
            if self._pending:
                wlist.append(self._master)
        readable, writable, _ = select.select(rlist, wlist, [], max(timeout_s, 0.0))
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        if self._master is not None and self._master in readable:
            self._read_input()
        if writable:
            self._flush()

    def _wait_until(self, deadline: float) -> bool:
        """Serve until ``deadline`` (monotonic); False if the server was stopped meanwhile."""
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            # Cap the wait so that scheduled unplug ends are not overslept.
            self._service(min(remaining, 0.05))
        return False

    def _run(self) -> None:
        try:
            self._stream()
            self.finished.set()
            # Out of readings, the device stays plugged in: it still takes what the driver writes, and faults.
            while not self._stop.is_set():
                self._service(0.05)
        except BaseException as exc:
            self.error = exc
            log.exception("pty server %s failed", self.link_path)
        finally:
            self.finished.set()

    def _stream(self) -> None:
        speed = self.speed
        t0_wall = self._t0_wall if self._t0_wall is not None else time.monotonic()
        t0_s: float | None = self._origin_s
        unplugs = list(self._unplugs)
        replug_at_s: float | None = None
        for time_s, reading in self._readings:
            if t0_s is None:
                t0_s = time_s
            if speed != float("inf"):
                if not self._wait_until(t0_wall + (time_s - t0_s) / speed):
                    return
            else:
                self._service(0.0)
                while self._pending and self._master is not None and not self._stop.is_set():
                    self._service(0.05)  # back-pressure: as fast as the reader takes it, but no faster
            if self._stop.is_set():
                return
            if replug_at_s is not None and time_s >= replug_at_s:
                self._plug()
                replug_at_s = None
            while unplugs and time_s >= unplugs[0][0]:
                at_s, duration_s = unplugs.pop(0)
                if self._master is not None:
                    self.n_unplugs += 1
                    self._unplug_now()
                replug_at_s = at_s + duration_s
            if self._master is None:
                self.n_readings_unplugged += 1
                continue
            self._queue_output(self.encoder.encode(reading))
            self._flush()
            self.n_readings_sent += 1
        # Let the reader take what is still pending before reporting "finished".
        deadline = time.monotonic() + 1.0
        while self._pending and self._master is not None and not self._stop.is_set() and time.monotonic() < deadline:
            self._service(0.01)
