"""A driver that generates a five-sensor kit's samples in real time: a real implementation of the Driver interface
whose "device" is a deterministic signal generator, for testing the recording path without hardware."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence

from sensor_drivers.drivers.base import Driver, SensorInfo
from sensor_drivers.sample import DeviceStatus, ImuSample, LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import KIT_SITES, Site


def sample_at(sensor_id: str, site: Site, k: int, rate_hz: float, host_time_s: float) -> ImuSample:
    """The k-th sample of a sensor: a slow sway around standing still, exactly reproducible from (sensor, k)."""
    t = k / rate_hz
    phase = 2.0 * math.pi * 1.0 * t + hash(sensor_id) % 7
    return ImuSample(
        sensor_id=sensor_id,
        site=site,
        device_time_s=t,
        host_time_s=host_time_s,
        seq=k,
        acc_m_s2=(0.3 * math.sin(phase), 0.2 * math.cos(phase), 9.80665),
        gyr_rad_s=(0.5 * math.cos(phase), 0.1, -0.2 * math.sin(phase)),
        mag_ut=(20.0, 0.0, -44.0) if k % 2 == 0 else None,
        status=DeviceStatus(battery_pct=90.0, rssi_dbm=-60.0) if k % 200 == 0 else None,
    )


class GeneratedKitDriver(Driver):
    """Streams ``sites`` at ``rate_hz`` in real time (batches every ``batch_s``) for ``duration_s`` (None: forever).

    ``stop_sensor_after_s`` makes one sensor fall silent mid-recording and report DISCONNECTED, as a sensor lost
    mid-walk would.
    """

    def __init__(
        self,
        sites: Sequence[Site] = KIT_SITES,
        rate_hz: float = 200.0,
        duration_s: float | None = 2.0,
        batch_s: float = 0.02,
        stop_sensor_after_s: tuple[str, float] | None = None,
    ) -> None:
        self._sensors = [
            SensorInfo(sensor_id=f"GEN-{i}", site=site, transport="sim", protocol="generated", nominal_rate_hz=rate_hz)
            for i, site in enumerate(sites)
        ]
        self.rate_hz = rate_hz
        self.duration_s = duration_s
        self.batch_s = batch_s
        self.stop_sensor_after_s = stop_sensor_after_s
        self._queue: asyncio.Queue[StreamItem | None] = asyncio.Queue()
        self._producer: asyncio.Task[None] | None = None
        self.connected = False
        self.closed = False

    @property
    def sensors(self) -> list[SensorInfo]:
        return self._sensors

    async def connect(self) -> None:
        self.connected = True
        for s in self._sensors:
            s.firmware = "gen-1.0"
        self._producer = asyncio.create_task(self._produce())

    async def close(self) -> None:
        self.closed = True
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
            self._producer = None

    def _silent(self, info: SensorInfo, k: int) -> bool:
        """Whether the configured sensor has fallen silent by sample k."""
        drop = self.stop_sensor_after_s
        return drop is not None and info.sensor_id == drop[0] and k / self.rate_hz >= drop[1]

    async def _produce(self) -> None:
        start = time.monotonic()
        k = 0
        stopped: set[str] = set()

        def running() -> bool:
            return self.duration_s is None or k / self.rate_hz < self.duration_s

        try:
            while running():
                now = time.monotonic()
                due = int((now - start) * self.rate_hz) + 1
                while k < due and running():
                    for info in self._sensors:
                        if not self._silent(info, k):
                            await self._queue.put(sample_at(info.sensor_id, info.site, k, self.rate_hz, now))
                        elif info.sensor_id not in stopped:
                            stopped.add(info.sensor_id)
                            event = LinkEvent(info.sensor_id, info.site, LinkState.DISCONNECTED, now, "generated drop")
                            await self._queue.put(event)
                    k += 1
                await asyncio.sleep(self.batch_s)
        finally:
            self._queue.put_nowait(None)

    async def stream(self) -> AsyncIterator[StreamItem]:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                yield item
        finally:
            await self.close()
