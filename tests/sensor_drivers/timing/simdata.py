"""Synthetic sample times for the timing tests: a drifting device clock behind a simulated transport."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensor_drivers.timing.transport_sim import BleLatency, SerialLatency, device_clock

RATE_HZ = 200.0

#: The links the tests run over: two BLE connection intervals and a USB-serial bridge.
LINKS = {
    "ble_7.5ms": BleLatency(connection_interval_s=0.0075, max_packets_per_event=4),
    "ble_15ms": BleLatency(connection_interval_s=0.015, max_packets_per_event=6),
    "serial": SerialLatency(),
}


@dataclass
class Stream:
    """True host-clock sample times, device times and host receive times of one sensor."""

    true_s: np.ndarray
    device_s: np.ndarray
    host_s: np.ndarray
    floor_s: float


def clocked_stream(
    duration_s: float,
    link: BleLatency | SerialLatency,
    drift_ppm: float,
    seed: int = 0,
    offset_s: float = 1000.0,
    device_start_s: float = 50.0,
    rate_hz: float = RATE_HZ,
) -> Stream:
    """A sensor sampling at ``rate_hz`` on a clock with ``drift_ppm``, delivered over ``link``."""
    rng = np.random.default_rng(seed)
    true_s, device_s = device_clock(int(duration_s * rate_hz), rate_hz, drift_ppm, offset_s, device_start_s)
    return Stream(true_s, device_s, link.arrivals(true_s, rng), link.floor_s)
