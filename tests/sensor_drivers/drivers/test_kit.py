"""KitDriver: serial (real ptys) and BLE (GATT fake) sensors merged into one stream."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from sensor_drivers.blocks import SampleBlock, expand_blocks
from sensor_drivers.drivers.ble import BleDriver, BleOptions
from sensor_drivers.drivers.fake_gatt import FakePeripheral, FakeRadio
from sensor_drivers.drivers.kit import KitConnectError, KitDriver
from sensor_drivers.drivers.pty_server import PtyServer
from sensor_drivers.drivers.registry import default_registry
from sensor_drivers.drivers.serial import SerialDriver, SerialOptions
from sensor_drivers.sample import DeviceReading, LinkEvent, LinkState
from sensor_drivers.sites import Site
from tests.sensor_drivers.drivers import toy_protocol as toy
from tests.sensor_drivers.drivers.streams import collect, drain, events, samples, summary

SERIAL_FAST = SerialOptions(poll_interval_s=0.01, n_open_attempts=2, reopen_initial_s=0.01)
BLE_FAST = BleOptions(connect_timeout_s=1.0, n_connect_attempts=2, backoff_initial_s=0.01)


@contextmanager
def serial_sensors(
    sites: list[Site], n: int, speed: float = 5.0
) -> Iterator[tuple[list[PtyServer], list[SerialDriver]]]:
    with ExitStack() as stack:
        servers = [stack.enter_context(PtyServer(toy.readings(n), toy.ToyEncoder(), speed=speed)) for _ in sites]
        drivers = [
            SerialDriver(str(s.link_path), toy.ToyDecoder, site=site, sensor_id=site.value, options=SERIAL_FAST)
            for s, site in zip(servers, sites, strict=True)
        ]
        yield servers, drivers


def ble_sensor(radio: FakeRadio, address: str, site: Site, n: int, **kwargs: object) -> BleDriver:
    radio.add(
        address,
        FakePeripheral(toy.ToyBleEmulator(), toy.readings(n), speed=5.0, characteristics=toy.CHARACTERISTICS, **kwargs),  # type: ignore[arg-type]
    )
    return BleDriver(
        address,
        toy.ToyBleProfile(),
        site=site,
        sensor_id=site.value,
        options=BLE_FAST,
        client_factory=radio.client_factory,
        rng=random.Random(0),
    )


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_merges_serial_and_ble_sensors_in_one_stream() -> None:
    n = 200
    radio = FakeRadio()
    with serial_sensors([Site.PELVIS, Site.THIGH_L], n) as (servers, serial_drivers):
        ble_drivers = [
            ble_sensor(radio, "C0:FF:EE:00:00:01", Site.SHANK_L, n, connect_delay_s=0.02),
            ble_sensor(radio, "C0:FF:EE:00:00:02", Site.SHANK_R, n, connect_delay_s=0.02),
        ]
        kit = KitDriver([*serial_drivers, *ble_drivers])
        assert [s.site for s in kit.sensors] == [Site.PELVIS, Site.THIGH_L, Site.SHANK_L, Site.SHANK_R]
        async with kit:
            for server in servers:
                server.start()
            stream = kit.stream()
            items = await collect(stream, lambda out: len(samples(out)) >= 4 * n, timeout_s=10)
        items += await drain(stream)
    assert radio.max_concurrent_connects == 1
    for site in ("pelvis", "thigh_l", "shank_l", "shank_r"):
        assert [s.seq for s in samples(items, site)] == list(range(n)), (site, summary(items))
    connected = events(items, LinkState.CONNECTED)
    assert sorted(e.sensor_id for e in connected) == ["pelvis", "shank_l", "shank_r", "thigh_l"]


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_abort_policy_names_the_failed_sensor_and_closes_the_others() -> None:
    radio = FakeRadio()
    with serial_sensors([Site.PELVIS], 50) as (servers, serial_drivers):
        missing = ble_sensor(radio, "C0:FF:EE:00:00:07", Site.SHANK_R, 50, n_not_found=99)
        kit = KitDriver([*serial_drivers, missing], labels=["serial:pty", "ble:C0:FF:EE:00:00:07?protocol=toy-ble"])
        with pytest.raises(KitConnectError) as caught:
            await kit.connect()
        message = str(caught.value)
        assert "1 of 2 sensor driver(s) failed to connect" in message
        assert "shank_r (ble C0:FF:EE:00:00:07) from ble:C0:FF:EE:00:00:07?protocol=toy-ble" in message
        assert "was not found" in message
        assert [f.index for f in caught.value.failures] == [1]
        # The serial sensor that did connect was closed again: its port can be opened by someone else.
        again = SerialDriver(str(servers[0].link_path), toy.ToyDecoder, site=Site.PELVIS, options=SERIAL_FAST)
        async with again:
            pass


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_continue_policy_streams_the_others_and_marks_the_missing_one() -> None:
    radio = FakeRadio()
    with serial_sensors([Site.PELVIS], 100) as (servers, serial_drivers):
        missing = ble_sensor(radio, "C0:FF:EE:00:00:07", Site.SHANK_R, 50, n_refusals=99)
        kit = KitDriver([*serial_drivers, missing], on_connect_error="continue")
        async with kit:
            servers[0].start()
            stream = kit.stream()
            items = await collect(stream, lambda out: len(samples(out)) >= 100)
            assert kit.active_drivers == serial_drivers
            assert [f.index for f in kit.failures] == [1]
        items += await drain(stream)
    assert [(e.sensor_id, e.state) for e in events(items)] == [
        ("pelvis", LinkState.CONNECTED),
        ("shank_r", LinkState.DISCONNECTED),
    ]
    first = events(items, LinkState.DISCONNECTED)[0]
    assert first.sensor_id == "shank_r"
    assert first.reason.startswith("failed to connect: ")
    assert "le-connection-abort" in first.reason
    assert [s.seq for s in samples(items, "pelvis")] == list(range(100))


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_continue_policy_still_fails_when_no_sensor_connects() -> None:
    radio = FakeRadio()
    kit = KitDriver(
        [ble_sensor(radio, "C0:FF:EE:00:00:08", Site.PELVIS, 10, n_not_found=99)], on_connect_error="continue"
    )
    with pytest.raises(KitConnectError, match="1 of 1"):
        await kit.connect()


def test_duplicate_sites_and_ids_are_refused() -> None:
    radio = FakeRadio()
    a = ble_sensor(radio, "C0:FF:EE:00:00:01", Site.PELVIS, 1)
    b = BleDriver("C0:FF:EE:00:00:02", toy.ToyBleProfile(), site=Site.PELVIS, client_factory=radio.client_factory)
    with pytest.raises(ValueError, match=r"two sensors at site pelvis: 'pelvis' and 'C0:FF:EE:00:00:02'"):
        KitDriver([a, b])
    c = BleDriver("C0:FF:EE:00:00:03", toy.ToyBleProfile(), site=Site.SHANK_L, sensor_id="pelvis")
    with pytest.raises(ValueError, match="sensor id 'pelvis' appears twice"):
        KitDriver([a, c])
    with pytest.raises(ValueError, match="on_connect_error"):
        KitDriver([a], on_connect_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        KitDriver([])


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_close_is_safe_twice_and_ends_the_stream() -> None:
    with serial_sensors([Site.PELVIS], 10) as (_servers, drivers):
        kit = KitDriver(drivers)
        await kit.connect()
        await kit.close()
        await kit.close()
        items = await asyncio.wait_for(drain(kit.stream()), 5)
    assert [e.state for e in events(items)] == [LinkState.CONNECTED]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_five_ports_at_200_hz_lose_nothing() -> None:
    """The zero-loss goal, short: 5 ptys × 200 Hz in real time for 3 s (bench/serial_transport.py runs 60 s)."""
    n = 600
    with serial_sensors(list(Site), n, speed=1.0) as (servers, drivers):  # real time, like the devices
        kit = KitDriver(drivers)
        async with kit:
            for server in servers:
                server.start()
            stream = kit.stream()
            items = await collect(stream, lambda out: len(samples(out)) >= 5 * n, timeout_s=15)
        items += await drain(stream)
    for site in Site:
        assert [s.seq for s in samples(items, site.value)] == list(range(n)), site
    assert [e.state for e in events(items)] == [LinkState.CONNECTED] * 5
    assert all(s.n_bytes_overflowed == 0 and s.n_readings_unplugged == 0 for s in servers)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_the_block_stream_carries_every_sample_in_blocks() -> None:
    """A block-decoding protocol (StrideTwin over a pty), a sample-at-a-time one (the toy protocol) and BLE: the
    kit's block stream has every sample once, in order, one sensor and one arrival per block."""
    n = 200
    radio = FakeRadio()
    spec = default_registry.serial_protocols["stridetwin"]
    sent = [
        (i / 200.0, DeviceReading((0.0, 0.0, 9.8), (0.0, 0.0, 0.1 * i), device_time_s=i / 200.0, seq=i))
        for i in range(n)
    ]
    with (
        serial_sensors([Site.PELVIS], n) as (servers, toy_drivers),
        PtyServer(sent, spec.make_encoder(), speed=5.0) as st,
    ):
        framed = SerialDriver(
            st.link_path, spec.make_decoder, site=Site.THIGH_L, sensor_id="thigh_l", options=SERIAL_FAST
        )
        ble = ble_sensor(radio, "C0:FF:EE:00:00:01", Site.SHANK_L, n)
        kit = KitDriver([*toy_drivers, framed, ble])
        async with kit:
            for server in [*servers, st]:
                server.start()
            stream = kit.stream_blocks()
            items = await collect(stream, lambda out: sum(len(b) for b in blocks(out)) >= 3 * n, timeout_s=10)
        items += await drain(stream)
    assert all(isinstance(i, SampleBlock | LinkEvent) for i in items)
    expanded = expand_blocks(items)
    for site in ("pelvis", "thigh_l", "shank_l"):
        assert [s.seq for s in samples(expanded, site)] == list(range(n)), (site, summary(expanded))
    assert max(len(b) for b in blocks(items) if b.sensor_id == "thigh_l") > 1  # a read's frames, one block
    assert sorted(e.sensor_id for e in events(items, LinkState.CONNECTED)) == ["pelvis", "shank_l", "thigh_l"]


def blocks(items: list) -> list[SampleBlock]:
    return [i for i in items if isinstance(i, SampleBlock)]
