"""Recording a driver's stream into a clip: the heart of ``stridetwin record``.

Everything the driver yields goes to a :class:`~sensor_drivers.recording.clipfile.ClipWriter`; a poller makes sure
buffered blocks reach the disk within ``max_block_age_s`` even when samples stop arriving (a sensor lost mid-walk).
However the recording ends (duration reached, stream exhausted, stop requested, cancelled, or an error in the
driver), the clip is finished with everything received so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sensor_drivers.drivers.base import Driver
from sensor_drivers.recording.clipfile import ClipWriter, deep_merge
from sensor_drivers.sample import ImuSample, LinkEvent

#: How often the poller lets the writer flush old blocks and fsync, s.
POLL_INTERVAL_S = 0.1


@dataclass
class RecordResult:
    """What a recording wrote."""

    path: Path
    #: "duration", "stream ended", "stopped", "cancelled" or "error: …".
    stopped_by: str
    duration_s: float
    n_samples: dict[str, int] = field(default_factory=dict)
    n_link_events: int = 0


async def record_driver(
    driver: Driver,
    path: str | os.PathLike[str],
    *,
    duration_s: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
    writer_options: Mapping[str, Any] | None = None,
) -> RecordResult:
    """Connect ``driver``, record its stream into a new clip at ``path``, and finish the clip.

    Ends after ``duration_s`` (None: until the stream ends or ``stop`` is set). The driver is connected here
    (``async with``); connection failure raises before any file is created. A cancelled call (Ctrl-C under
    ``asyncio.run``) still finishes the clip, then re-raises.
    """
    path = Path(path)
    async with driver:
        start = time.monotonic()
        # The clip's clock: host monotonic seconds minus this origin (see docs/clip-format.md, "Clip clock").
        # What the caller says wins over what the driver says (deep merge: a pseudonym keeps the driver's height).
        clip_metadata = deep_merge(
            deep_merge({"clock_origin_host_s": start}, driver.clip_metadata()), dict(metadata or {})
        )
        writer = ClipWriter(path, metadata=clip_metadata, sensors=driver.sensors, **dict(writer_options or {}))
        declared = {s.sensor_id: asdict(s) for s in driver.sensors}
        counts: dict[str, int] = {}
        n_events = 0
        stopped_by = "stream ended"

        async def consume() -> None:
            nonlocal n_events
            async for item in driver.stream():
                writer.add(item)
                if isinstance(item, ImuSample):
                    counts[item.sensor_id] = counts.get(item.sensor_id, 0) + 1
                elif isinstance(item, LinkEvent):
                    n_events += 1

        async def poll() -> None:
            while True:
                await asyncio.sleep(POLL_INTERVAL_S)
                writer.poll()

        consumer = asyncio.create_task(consume(), name="record-consume")
        poller = asyncio.create_task(poll(), name="record-poll")
        waiters: set[asyncio.Future[Any]] = {consumer}
        stopper = asyncio.create_task(stop.wait(), name="record-stop") if stop is not None else None
        if stopper is not None:
            waiters.add(stopper)
        try:
            done, _ = await asyncio.wait(waiters, timeout=duration_s, return_when=asyncio.FIRST_COMPLETED)
            if consumer in done:
                exc = consumer.exception()
                if exc is not None:
                    stopped_by = f"error: {exc!r}"
                    raise exc
            elif stopper is not None and stopper in done:
                stopped_by = "stopped"
            else:
                stopped_by = "duration"
        except asyncio.CancelledError:
            stopped_by = "cancelled"
            raise
        finally:
            for task in (consumer, poller, stopper):
                if task is not None and not task.done():
                    task.cancel()
            for task in (consumer, poller, stopper):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            # Device fields (firmware, model) may have filled in after connecting: keep the latest.
            for info in driver.sensors:
                if asdict(info) != declared.get(info.sensor_id):
                    writer.add_sensor(info)
            writer.update_metadata({"recording": {"stopped_by": stopped_by}})
            writer.close()
    return RecordResult(path, stopped_by, time.monotonic() - start, counts, n_events)


def record_until_interrupted(
    driver: Driver,
    path: str | os.PathLike[str],
    *,
    duration_s: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    writer_options: Mapping[str, Any] | None = None,
) -> RecordResult:
    """:func:`record_driver` in a fresh event loop, where Ctrl-C (SIGINT) stops the recording like reaching the
    duration does: the clip is finished and the result returned (``stopped_by == "stopped"``).

    The handler is installed where the platform allows (the main thread on POSIX); elsewhere Ctrl-C cancels the
    run, which still finishes the clip, and raises KeyboardInterrupt.
    """

    async def main() -> RecordResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
            installed = True
        try:
            return await record_driver(
                driver, path, duration_s=duration_s, metadata=metadata, stop=stop, writer_options=writer_options
            )
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(main())
