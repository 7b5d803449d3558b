"""BleDriver against the GATT-level fake (real notification bytes, bleak's exceptions and callbacks)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest
from bleak.exc import BleakDBusError

from sensor_drivers.drivers.ble import BleDriver, BleOptions
from sensor_drivers.drivers.fake_gatt import FakePeripheral, FakeRadio
from sensor_drivers.errors import DeviceUnavailableError
from sensor_drivers.protocols.base import BleNotification
from sensor_drivers.sample import DeviceReading, LinkState
from sensor_drivers.sites import Site
from tests.sensor_drivers.drivers import toy_protocol as toy
from tests.sensor_drivers.drivers.streams import collect, drain, events, has_event, n_samples, samples, summary

ADDRESS = "C0:FF:EE:00:00:01"
FAST = BleOptions(connect_timeout_s=2.0, backoff_initial_s=0.02, backoff_max_s=0.2, backoff_jitter=0.25)


def make_driver(radio: FakeRadio, address: str = ADDRESS, *, site: Site = Site.THIGH_R, **kwargs: object) -> BleDriver:
    kwargs.setdefault("options", FAST)
    return BleDriver(
        address,
        toy.ToyBleProfile(rate_hz=100, poll_period_s=0.05),
        site=site,
        seq_modulus=toy.SEQ_MODULUS,
        client_factory=radio.client_factory,
        rng=random.Random(1),
        **kwargs,  # type: ignore[arg-type]
    )


def peripheral(n: int = 200, rate_hz: float = 100.0, speed: float = 5.0, **kwargs: object) -> FakePeripheral:
    return FakePeripheral(
        toy.ToyBleEmulator(),
        toy.readings(n, rate_hz=rate_hz),
        speed=speed,
        characteristics=toy.CHARACTERISTICS,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_streams_identical_samples_with_polls_and_clean_stop() -> None:
    radio = FakeRadio()
    device = radio.add(ADDRESS, peripheral(n=200, speed=4.0))
    driver = make_driver(radio)
    async with driver:
        items = await collect(driver.stream(), n_samples(200), timeout_s=10)
    items += await drain(driver.stream())
    got = samples(items)
    assert [s.seq for s in got] == list(range(200)), summary(items)
    expected = dict(toy.readings(200, rate_hz=100.0))
    for (time_s, reading), sample in zip(expected.items(), got, strict=True):
        assert sample.acc_m_s2 == reading.acc_m_s2
        assert sample.gyr_rad_s == reading.gyr_rad_s
        assert sample.device_time_s == toy.make_reading(reading.seq or 0, time_s).device_time_s
        assert sample.site is Site.THIGH_R
        assert sample.sensor_id == ADDRESS
    assert [e.state for e in events(items)] == [LinkState.CONNECTED]
    # The start write configured the rate, the periodic battery poll ran (0.5 s of streaming / 0.05 s) and its
    # answer reached the profile, and close() stopped the device before disconnecting.
    writes = [w.data for _, w in device.writes]
    assert writes[0] == bytes([0x01, 100])
    assert device.emulator.sampling_rate_hz == 100.0
    assert writes.count(b"\x02") >= 4
    assert driver.profile.battery_pct == 87.0
    assert writes[-1] == b"\x00"
    assert not device.emulator.streaming
    assert driver.n_protocol_errors == 0


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_connect_retries_with_exponential_backoff() -> None:
    radio = FakeRadio()
    radio.add(ADDRESS, peripheral(n_not_found=2, n_refusals=2))
    driver = make_driver(radio, options=BleOptions(backoff_initial_s=0.04, backoff_max_s=1.0, backoff_jitter=0.25))
    async with driver:
        items = await collect(driver.stream(), n_samples(10))
    assert driver.n_failed_attempts == 4
    assert "le-connection-abort" in str(driver.last_error)
    starts = [start for _, start, _, _ in radio.connect_log]
    outcomes = [outcome for *_, outcome in radio.connect_log]
    assert outcomes == ["BleakDeviceNotFoundError"] * 2 + ["BleakError"] * 2 + ["connected"]
    waits = [b - a for a, b in itertools.pairwise(starts)]
    for k, wait_s in enumerate(waits):
        nominal_s = 0.04 * 2**k
        assert 0.75 * nominal_s <= wait_s <= 1.25 * nominal_s + 0.05, (k, wait_s)
    assert events(items)[0].state is LinkState.CONNECTED


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_gives_up_after_the_allowed_attempts_with_a_clear_error() -> None:
    radio = FakeRadio()
    radio.add(ADDRESS, peripheral(n_refusals=10))
    driver = make_driver(radio, options=BleOptions(n_connect_attempts=3, backoff_initial_s=0.01))
    with pytest.raises(DeviceUnavailableError, match=rf"{ADDRESS} \(thigh_r, protocol toy-ble\).*3 attempt"):
        await driver.connect()
    assert driver.n_failed_attempts == 3
    unknown = make_driver(radio, "C0:FF:EE:00:00:99", options=BleOptions(n_connect_attempts=1))
    with pytest.raises(DeviceUnavailableError, match=r"BleakDeviceNotFoundError|was not found"):
        await unknown.connect()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_link_drop_reconnects_and_marks_the_gap() -> None:
    rate_hz, speed = 100.0, 5.0
    drop_at_s, drop_for_s = 1.0, 0.5  # readings' clock: 0.1 s of wall time down
    radio = FakeRadio()
    device = radio.add(ADDRESS, peripheral(n=300, rate_hz=rate_hz, speed=speed, link_drops=[(drop_at_s, drop_for_s)]))
    driver = make_driver(radio)
    async with driver:
        stream = driver.stream()
        items = await collect(stream, has_event(LinkState.CONNECTED, 2), timeout_s=10)
        await asyncio.wait_for(device.finished.wait(), 10)
    items += await drain(stream)
    assert [e.state for e in events(items)] == [LinkState.CONNECTED, LinkState.DISCONNECTED, LinkState.CONNECTED]
    disconnected = events(items, LinkState.DISCONNECTED)[0]
    assert disconnected.reason == "BLE link lost"
    assert "reconnected" in events(items, LinkState.CONNECTED)[1].reason
    cut = items.index(disconnected)
    before = [s.seq for s in samples(items[:cut])]
    after = [s.seq for s in samples(items[cut:])]
    assert before == list(range(int(drop_at_s * rate_hz)))  # nothing sent before the drop is lost
    assert after == list(range(after[0], 300))  # contiguous after the reconnect
    assert after[0] >= (drop_at_s + drop_for_s) * rate_hz
    assert events(items, LinkState.GAP) == []  # the hole is marked once, by the link events
    assert driver.n_reconnects == 1
    assert device.n_connects == 2
    assert device.n_readings_lost == 300 - len(before) - len(after)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_manual_drop_during_stream_and_close_while_reconnecting() -> None:
    radio = FakeRadio()
    device = radio.add(ADDRESS, peripheral(n=2000, speed=2.0))
    driver = make_driver(radio)
    await driver.connect()
    stream = driver.stream()
    items = await collect(stream, n_samples(20))
    device.drop_link(60.0)  # out of range for a long time: the driver keeps retrying in the background
    items = await collect(stream, has_event(LinkState.DISCONNECTED), into=items)
    await asyncio.sleep(0.3)
    assert driver.n_failed_attempts >= 2
    t0 = time.monotonic()
    await driver.close()
    assert time.monotonic() - t0 < 1.0
    items += await drain(stream)
    assert [e.state for e in events(items)] == [LinkState.CONNECTED, LinkState.DISCONNECTED]


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_sequence_jump_while_connected_is_a_gap() -> None:
    radio = FakeRadio()
    radio.add(
        ADDRESS,
        FakePeripheral(
            toy.ToyBleEmulator(), toy.readings(120, rate_hz=100.0, skip=frozenset({40, 41, 42})), speed=10.0
        ),
    )
    driver = make_driver(radio)
    async with driver:
        items = await collect(driver.stream(), n_samples(117))
    gaps = events(items, LinkState.GAP)
    assert [(g.n_missing, g.reason) for g in gaps] == [(3, "sequence jump from 39 to 43")]


class CorruptingEmulator(toy.ToyBleEmulator):
    """Sends every 10th data notification with a flipped byte."""

    def notifications_for(self, reading: DeviceReading) -> list[BleNotification]:
        out = super().notifications_for(reading)
        if out and reading.seq is not None and reading.seq % 10 == 5:
            data = bytearray(out[0].data)
            data[7] ^= 0xFF
            out = [BleNotification(out[0].char_uuid, bytes(data))]
        return out


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_malformed_notifications_are_counted_not_fatal() -> None:
    radio = FakeRadio()
    radio.add(ADDRESS, FakePeripheral(CorruptingEmulator(), toy.readings(100, rate_hz=100.0), speed=10.0))
    driver = make_driver(radio)
    async with driver:
        items = await collect(driver.stream(), n_samples(90))
        await asyncio.sleep(0.05)
    assert driver.n_protocol_errors == 10
    # Each bad notification's sample is missing: the next good one reports a gap of one.
    assert [g.n_missing for g in events(items, LinkState.GAP)] == [1] * 10


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_devices_on_one_adapter_connect_strictly_one_at_a_time() -> None:
    radio = FakeRadio()
    addresses = [f"C0:FF:EE:00:00:0{i}" for i in range(1, 5)]
    sites = [Site.PELVIS, Site.THIGH_L, Site.THIGH_R, Site.SHANK_L]
    for i, address in enumerate(addresses):
        # The third device refuses once: its retry must also wait for the adapter.
        radio.add(address, peripheral(n=100, connect_delay_s=0.05, n_refusals=1 if i == 2 else 0))
    drivers = [make_driver(radio, a, site=s) for a, s in zip(addresses, sites, strict=True)]
    await asyncio.gather(*(d.connect() for d in drivers))
    try:
        assert radio.n_in_progress_errors == 0
        assert radio.max_concurrent_connects == 1
        spans = sorted((start, end) for _, start, end, _ in radio.connect_log)
        assert len(spans) == 5
        for (_, end), (next_start, _) in itertools.pairwise(spans):
            assert next_start >= end
        # ... while streaming runs concurrently.
        results = await asyncio.gather(*(collect(d.stream(), n_samples(50)) for d in drivers))
        assert all(len(samples(r)) >= 50 for r in results)
    finally:
        await asyncio.gather(*(d.close() for d in drivers))


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_fake_adapter_refuses_overlapping_connects_like_bluez() -> None:
    """The check above can fail: without the driver's lock, the fake adapter refuses the second connect."""
    radio = FakeRadio()
    for address in ("C0:FF:EE:00:00:01", "C0:FF:EE:00:00:02"):
        radio.add(address, peripheral(connect_delay_s=0.05))
    a = radio.client_factory("C0:FF:EE:00:00:01", lambda c: None)
    b = radio.client_factory("C0:FF:EE:00:00:02", lambda c: None)
    results = await asyncio.gather(a.connect(), b.connect(), return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], BleakDBusError)
    assert "InProgress" in str(results[1])
    await a.disconnect()


def test_backoff_is_exponential_capped_and_jittered() -> None:
    options = BleOptions(backoff_initial_s=0.5, backoff_max_s=4.0, backoff_jitter=0.2)
    rng = random.Random(0)
    waits = [[options.backoff_s(k, rng) for k in range(6)] for _ in range(200)]
    for k, nominal in enumerate([0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
        column = [w[k] for w in waits]
        assert min(column) >= 0.8 * nominal
        assert max(column) <= 1.2 * nominal
        assert max(column) - min(column) > 0.2 * nominal  # really jittered
    with pytest.raises(ValueError, match="jitter"):
        BleOptions(backoff_jitter=1.5)
