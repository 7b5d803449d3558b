"""The real protocols end to end through the source registry: device emulator → real bytes → transport → samples.

Serial protocols run over a real pseudo-terminal; BLE protocols through the GATT-level fake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensor_drivers.drivers.fake_gatt import FakePeripheral, FakeRadio
from sensor_drivers.drivers.pty_server import PtyServer
from sensor_drivers.drivers.registry import DriverRegistry
from sensor_drivers.sample import DeviceReading
from sensor_drivers.sites import Site
from tests.sensor_drivers.drivers.streams import collect, n_samples, samples, summary

ADDRESS = "C0:FF:EE:00:00:02"


def _readings(n: int, rate_hz: float) -> list[tuple[float, DeviceReading]]:
    """A slow swing well inside every device's range, so quantisation is the only difference."""
    out = []
    for i in range(n):
        t = i / rate_hz
        s = math.sin(2 * math.pi * 1.0 * t)
        reading = DeviceReading(
            acc_m_s2=(1.0 * s, -0.5, 9.7),
            gyr_rad_s=(0.5 * s, 0.1, -0.2 * s),
            device_time_s=t,
            seq=i,
            mag_ut=(20.0, 5.0 * s, -40.0),
        )
        out.append((t, reading))
    return out


def _registry(radio: FakeRadio | None = None) -> DriverRegistry:
    return DriverRegistry(client_factory=None if radio is None else radio.client_factory, lazy_schemes={})


def _assert_close(got: list, sent: list[tuple[float, DeviceReading]], acc_tol: float, gyr_tol: float) -> None:
    acc = np.array([s.acc_m_s2 for s in got])
    gyr = np.array([s.gyr_rad_s for s in got])
    # Samples may start anywhere in the sequence (a device streams before the port is read): align on device time.
    n = len(got)
    ref = {round(t, 6): r for t, r in sent}
    if got[0].device_time_s is not None:
        matched = [ref[round(s.device_time_s - got[0].device_time_s, 6)] for s in got]
    else:  # no device clock (WitMotion): the stream is contiguous, find where it starts by value
        first = next(i for i, (_, r) in enumerate(sent) if abs(r.acc_m_s2[0] - got[0].acc_m_s2[0]) <= acc_tol)
        matched = [r for _, r in sent[first : first + n]]
    np.testing.assert_allclose(acc, np.array([r.acc_m_s2 for r in matched]), atol=acc_tol)
    np.testing.assert_allclose(gyr, np.array([r.gyr_rad_s for r in matched]), atol=gyr_tol)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("protocol", "acc_tol", "gyr_tol"),
    [
        ("stridetwin", 1e-5, 1e-6),  # float32 on the wire
        ("witmotion", 16 * 9.80665 / 32768, math.radians(2000) / 32768),  # int16 at ±16 g / ±2000 °/s
    ],
)
async def test_serial_protocol_over_a_real_pty(protocol: str, acc_tol: float, gyr_tol: float) -> None:
    registry = _registry()
    sent = _readings(300, 200.0)
    encoder = registry.serial_protocols[protocol].make_encoder()
    with PtyServer(sent, encoder, speed=4.0) as server:
        driver = registry.build(f"serial:{server.link_path}?protocol={protocol}&site=shank_l")
        async with driver:
            server.start()
            items = await collect(driver.stream(), n_samples(250), timeout_s=15)
    got = samples(items)
    assert len(got) >= 250, summary(items)
    assert all(s.site is Site.SHANK_L for s in got)
    _assert_close(got, sent, acc_tol, gyr_tol)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(("protocol", "rate_hz"), [("witmotion-ble", 100.0), ("dot", 60.0)])
async def test_ble_protocol_through_the_gatt_fake(protocol: str, rate_hz: float) -> None:
    radio = FakeRadio()
    registry = _registry(radio)
    sent = _readings(int(2 * rate_hz), rate_hz)
    emulator = registry.ble_protocols[protocol].make_emulator()
    radio.add(ADDRESS, FakePeripheral(emulator, sent, speed=4.0))
    driver = registry.build(f"ble:{ADDRESS}?protocol={protocol}&site=thigh_r&rate={rate_hz:g}")
    async with driver:
        items = await collect(driver.stream(), n_samples(int(1.5 * rate_hz)), timeout_s=15)
    got = samples(items)
    assert all(s.site is Site.THIGH_R for s in got)
    assert emulator.sampling_rate_hz == rate_hz
    # Both devices quantise: WitMotion to int16 of full scale, the DOT's rate quantities to float32 (tight).
    _assert_close(got, sent, acc_tol=16 * 9.80665 / 32768 + 1e-5, gyr_tol=math.radians(2000) / 32768 + 1e-6)
