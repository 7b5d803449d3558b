"""Running a session against a driver off the GUI thread: an asyncio task consumes the stream, another ticks the
live pipeline every ``tick_s``; :class:`SessionThread` runs both in a worker thread with its own event loop.

The session is not thread-safe: everything that touches it runs in the worker thread. A UI calls
:meth:`SessionThread.call` (or :meth:`~SessionThread.request`) to act on it and receives state changes and live
updates through the session's listeners, which run in the worker thread (a Qt UI re-emits them as queued signals).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from capture_app.core.session.live import LiveUpdate
from capture_app.core.session.state import SessionState, Transition
from capture_app.core.session.walk_test import WalkTestSession
from sensor_drivers.drivers.base import Driver
from sensor_drivers.recording.clipfile import deep_merge
from sensor_drivers.sample import ImuSample

_log = logging.getLogger(__name__)
T = TypeVar("T")

#: How often the live pipeline runs, s (blocks of 50 ms at 100 Hz = 5 rows).
DEFAULT_TICK_S = 0.05


async def run_session(
    session: WalkTestSession,
    driver: Driver,
    *,
    stop: asyncio.Event | None = None,
    tick_s: float = DEFAULT_TICK_S,
    on_update: Callable[[WalkTestSession, LiveUpdate], None] | None = None,
) -> str:
    """Connect ``driver``, start the session's trial, feed it until the stream ends or ``stop`` is set; returns
    ``"stream ended"`` or ``"stopped"``. ``on_update(session, update)`` runs after each live update (e.g. a scripted
    therapist in the demo). A stream that ends during (or right after) the walk ends the walk: it is stopped and
    analysed (``session.finish()``). If cancelled, the current clip is finished as it is and the cancellation
    re-raised."""
    async with driver:
        # What the driver knows once connected (a simulation's clock origin, a device's firmware) goes into the clip.
        session.extra_metadata = deep_merge(session.extra_metadata, driver.clip_metadata())
        session.connect(driver.sensors)
        ended = asyncio.Event()

        def step() -> None:
            update = session.tick()
            if update is not None and on_update is not None:
                on_update(session, update)

        async def consume() -> None:
            # Ticks follow the data's clock (every tick_s of received samples), so that a replay as fast as possible
            # is processed exactly as a live run; the timer below covers the time when no data arrives.
            last_s: float | None = None
            async for item in driver.stream():
                session.feed(item)
                if type(item) is ImuSample:
                    if last_s is None:
                        last_s = item.host_time_s
                    elif item.host_time_s - last_s >= tick_s:
                        last_s = item.host_time_s
                        step()
            ended.set()

        async def tick() -> None:
            while True:
                await asyncio.sleep(tick_s)
                step()

        consumer = asyncio.create_task(consume(), name="session-consume")
        ticker = asyncio.create_task(tick(), name="session-tick")
        waiters: set[asyncio.Future[Any]] = {consumer, ticker}
        stopper = asyncio.create_task(stop.wait(), name="session-stop") if stop is not None else None
        if stopper is not None:
            waiters.add(stopper)
        how = "stream ended"
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in (consumer, ticker):
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if stopper is not None and stopper in done:
                how = "stopped"
        except asyncio.CancelledError:
            session.close("cancelled")
            raise
        finally:
            for task in (consumer, ticker, stopper):
                if task is not None and not task.done():
                    task.cancel()
            for task in (consumer, ticker, stopper):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        # What arrived last: through the pipeline (the clip has it already).
        step()
        if how == "stream ended" and session.state in (SessionState.WALKING, SessionState.STOPPED):
            # The data ended with the walk: it is over, analyse it.
            if session.state is SessionState.WALKING:
                session.stop("the sensors' stream ended")
            session.finish()
        return how


class SessionThread:
    """:func:`run_session` in a worker thread (module docstring).

    ``start()`` begins; ``call(fn, *args)`` runs ``fn(*args)`` in the worker and returns a
    :class:`concurrent.futures.Future`; ``request(state)`` is ``call(session.request, state)``; ``stop()`` ends the
    run (the current clip is finished as it is unless the caller stopped and finished the walk first) and joins.
    ``result_`` is what :func:`run_session` returned, ``error_`` what it raised.
    """

    def __init__(
        self,
        session: WalkTestSession,
        driver: Driver,
        tick_s: float = DEFAULT_TICK_S,
        on_update: Callable[[WalkTestSession, LiveUpdate], None] | None = None,
    ) -> None:
        self.session = session
        self.driver = driver
        self.tick_s = tick_s
        self.on_update = on_update
        self.result_: str | None = None
        self.error_: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="walk-test-session", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        async def main() -> str:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            return await run_session(self.session, self.driver, stop=self._stop, tick_s=self.tick_s,
                                     on_update=self.on_update)  # fmt: skip

        try:
            self.result_ = asyncio.run(main())
        except BaseException as exc:  # reported to the caller through error_
            _log.exception("session run failed")
            self.error_ = exc
        finally:
            self.session.close("session thread ended")
            self._ready.set()

    def call(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` in the worker thread; the future holds its result or exception."""
        if self._loop is None or not self._thread.is_alive():
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            future.set_exception(RuntimeError("the session thread is not running"))
            return future

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    def request(self, state: SessionState | str, note: str = "") -> concurrent.futures.Future[Transition]:
        return self.call(self.session.request, state, note)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
