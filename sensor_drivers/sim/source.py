"""The ``sim:`` source: the virtual patient served through the real transports.

``sim:hemiparetic?speed=0.5&transport=serial&protocol=stridetwin`` generates the virtual patient's walk, serves each
sensor as a real device — a pseudo-terminal speaking a real serial protocol, or a GATT-level fake peripheral sending
real notification bytes — and reads them with the same :class:`~sensor_drivers.drivers.serial.SerialDriver` /
:class:`~sensor_drivers.drivers.ble.BleDriver` a bedside kit uses. Everything downstream runs as at the bedside.

Transport options (the rest are the virtual patient's, ``sensor_drivers.sim.config.OPTION_HELP``):

- ``transport``: ``serial`` (default) or ``ble``;
- ``protocol``: ``stridetwin`` (serial default), ``witmotion``, ``dot`` (BLE default) or ``witmotion-ble``;
- ``pace``: playback speed, 1 = real time (default). Faster pace compresses the host clock against the devices'
  clocks, so it is for exercising transports, not for analyses that map clocks.

All sensors sample on one timeline starting when streaming starts; :meth:`SimDriver.clip_metadata` records that
moment (``simulation.truth_origin_host_s``), so truth time ``t`` is host time ``truth_origin_host_s + t``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from sensor_drivers.blocks import BlockStreamItem
from sensor_drivers.drivers.base import Driver, SensorInfo
from sensor_drivers.drivers.fake_gatt import FakePeripheral, FakeRadio
from sensor_drivers.drivers.kit import KitDriver
from sensor_drivers.drivers.pty_server import PtyServer
from sensor_drivers.drivers.registry import DriverRegistry, Source, SourceOptions, register_scheme
from sensor_drivers.errors import SourceError
from sensor_drivers.protocols.stridetwin_frame import DeviceInfo, StrideTwinEncoder
from sensor_drivers.sample import StreamItem
from sensor_drivers.sim.clip_export import patient_metadata
from sensor_drivers.sim.config import VirtualPatientConfig, from_source_options
from sensor_drivers.sim.patient import VirtualPatient, VirtualRecording
from sensor_drivers.sites import KIT_SITES

TRANSPORT_OPTIONS = ("transport", "protocol", "pace")
DEFAULT_PROTOCOL = {"serial": "stridetwin", "ble": "dot"}
#: Wall time from setting the shared clock origin to the first reading falling due.
START_DELAY_S = 0.5
#: Wall time allowed after the last reading for the drivers to deliver what is in flight.
DRAIN_TIMEOUT_S = 2.0


class SimDriver(Driver):
    """A kit of five virtual sensors, each a real transport endpoint read by a real driver.

    The recording is generated in :meth:`connect` (a second or two for a 20 m walk); the stream ends after the last
    reading has been delivered.
    """

    def __init__(
        self,
        config: VirtualPatientConfig,
        *,
        transport: str = "serial",
        protocol: str | None = None,
        pace: float = 1.0,
    ) -> None:
        self.config = config
        self.transport = transport
        self.protocol = protocol or DEFAULT_PROTOCOL[transport]
        self.pace = pace
        self.recording: VirtualRecording | None = None
        self.truth_origin_host_s: float | None = None
        self._kit: KitDriver | None = None
        self._servers: list[PtyServer] = []
        self._peripherals: list[FakePeripheral] = []

    @property
    def sensors(self) -> list[SensorInfo]:
        if self._kit is not None:
            return self._kit.sensors
        return [
            SensorInfo(
                self.config.sensor_id(site),
                site,
                self.transport,
                self.protocol,
                "virtual",
                self.config.sampling_rate_hz,
            )
            for site in KIT_SITES
        ]

    def clip_metadata(self) -> dict[str, Any]:
        """The virtual patient, test protocol and simulation (transport, truth clock), for the clip's metadata."""
        return {
            **patient_metadata(self.config),
            "simulation": {
                "profile": self.config.profile,
                "seed": self.config.seed,
                "transport": self.transport,
                "protocol": self.protocol,
                "pace": self.pace,
                "truth_origin_host_s": self.truth_origin_host_s,
            }
        }

    async def connect(self) -> None:
        self.recording = await asyncio.to_thread(VirtualPatient(self.config).generate)
        children = self._serve_serial() if self.transport == "serial" else self._serve_ble()
        if self._peripherals:
            # BLE devices measure from power-on, before anyone subscribes: put their clocks on the shared timeline
            # now; a device subscribed after the origin starts with the readings then due (like a real one).
            self.truth_origin_host_s = time.monotonic() + START_DELAY_S
            loop_origin = asyncio.get_running_loop().time() + START_DELAY_S
            for peripheral in self._peripherals:
                peripheral.start_clock(loop_origin, 0.0)
        self._kit = KitDriver(children)
        try:
            await self._kit.connect()
        except BaseException:
            await self.close()
            raise
        if self._servers:
            # Serial devices stream into their ptys as soon as they start: start them together once all are read.
            self.truth_origin_host_s = time.monotonic() + START_DELAY_S
            for server in self._servers:
                server.start(t0_wall=self.truth_origin_host_s)

    def _serve_serial(self) -> list[Driver]:
        assert self.recording is not None
        registry = DriverRegistry(lazy_schemes={})
        spec = registry.serial_protocol(self.protocol, Source(self.protocol, "serial", "", {}))
        drivers: list[Driver] = []
        for index, (site, track) in enumerate(self.recording.tracks.items()):
            encoder = self._encoder(spec.make_encoder, index)
            on_receive = getattr(encoder, "feed_command", None)
            unplugs = [(d.start_s, d.duration_s) for d in self.config.disconnects if d.site is site]
            server = PtyServer(
                track.readings(), encoder, speed=self.pace, origin_s=0.0, unplugs=unplugs, on_receive=on_receive
            )
            server.open()
            self._servers.append(server)
            drivers.append(
                registry.build_one(
                    f"serial:{server.link_path}?protocol={self.protocol}&site={site.value}&id={track.sensor_id}"
                )
            )
        return drivers

    def _encoder(self, make_encoder: Any, index: int) -> Any:
        if self.protocol == "stridetwin":
            info = DeviceInfo("virtual IMU", "sim-1", 0x5717_0000 + index, self.config.sampling_rate_hz)
            return StrideTwinEncoder(info)
        return make_encoder()

    def _serve_ble(self) -> list[Driver]:
        assert self.recording is not None
        radio = FakeRadio("virtual-hci0")
        registry = DriverRegistry(client_factory=radio.client_factory, lazy_schemes={})
        drivers: list[Driver] = []
        for index, (site, track) in enumerate(self.recording.tracks.items()):
            address = f"5A:17:00:00:00:{index:02X}"
            spec = registry.ble_protocol(self.protocol, Source(self.protocol, "ble", "", {}))
            assert spec.make_emulator is not None
            drops = [(d.start_s, d.duration_s) for d in self.config.disconnects if d.site is site]
            peripheral = FakePeripheral(
                spec.make_emulator(), track.readings(), speed=self.pace, link_drops=drops, name=f"virtual {site.value}"
            )
            radio.add(address, peripheral)
            self._peripherals.append(peripheral)
            drivers.append(
                registry.build_one(
                    f"ble:{address}?protocol={self.protocol}&site={site.value}&id={track.sensor_id}"
                    f"&rate={self.config.sampling_rate_hz:g}"
                )
            )
        return drivers

    async def _all_delivered(self) -> None:
        """Return once every reading has been sent and the drivers have had the chance to read it."""
        for server in self._servers:
            await asyncio.to_thread(server.finished.wait)
            if server.error is not None:
                raise RuntimeError(f"virtual sensor on {server.link_path} failed: {server.error!r}") from server.error
        for peripheral in self._peripherals:
            await peripheral.finished.wait()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and any(s.n_bytes_unread() for s in self._servers):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # one more driver poll interval: bytes read but not yet handed over

    def stream(self) -> AsyncIterator[StreamItem]:
        """The kit's stream, ending once every virtual sensor has delivered its recording."""
        return self._until_delivered(lambda kit: kit.stream())

    def stream_blocks(self) -> AsyncIterator[BlockStreamItem]:
        """:meth:`stream` with samples in blocks, as the drivers read them."""
        return self._until_delivered(lambda kit: kit.stream_blocks())

    async def _until_delivered(self, open_stream: Callable[[KitDriver], AsyncIterator[Any]]) -> AsyncIterator[Any]:
        if self._kit is None:
            raise RuntimeError("SimDriver.stream() before connect()")
        done = asyncio.create_task(self._all_delivered(), name="sim-all-delivered")
        items = open_stream(self._kit)
        try:
            while True:
                next_item = asyncio.ensure_future(anext(items))
                await asyncio.wait({next_item, done}, return_when=asyncio.FIRST_COMPLETED)
                if next_item.done():
                    try:
                        yield next_item.result()
                    except StopAsyncIteration:
                        return
                    continue
                next_item.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_item
                done.result()  # a failed virtual sensor is a bug in the simulation: raise it
                return
        finally:
            done.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await done
            await items.aclose()  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self._kit is not None:
            await self._kit.close()
        for server in self._servers:
            server.close()


def build_sim(source: Source, options: SourceOptions, registry: DriverRegistry) -> SimDriver:
    """``sim:PROFILE[?transport=serial|ble][&protocol=NAME][&pace=X][&<virtual patient options>]``."""
    del registry  # the simulation builds its own transports
    transport = options.choice("transport", ("serial", "ble"), "serial") or "serial"
    protocol = options.text("protocol") or DEFAULT_PROTOCOL[transport]
    pace = options.positive("pace") or 1.0
    if not math.isfinite(pace):
        raise SourceError(f"option pace={pace} in source {source.text!r}: expected a finite speed-up factor")
    patient_options = {k: v for k, v in source.options.items() if k not in TRANSPORT_OPTIONS}
    for key in patient_options:
        options.text(key)  # parsed below; marks them used for the registry's unknown-option check
    config = from_source_options(source.target, patient_options)
    known = DriverRegistry(lazy_schemes={})
    table = known.serial_protocols if transport == "serial" else known.ble_protocols
    if protocol not in table:
        raise SourceError(
            f"option protocol={protocol} in source {source.text!r}: no {transport} protocol of that name; "
            f"accepted: {', '.join(sorted(table))}"
        )
    if transport == "ble" and "rate" not in patient_options:
        # BLE devices stream slower than the sim's default 200 Hz (a DOT at most 60 Hz): sample at the device rate.
        config = replace(config, sampling_rate_hz=table[protocol].default_rate_hz)
    return SimDriver(config, transport=transport, protocol=protocol, pace=pace)


register_scheme("sim", build_sim)
