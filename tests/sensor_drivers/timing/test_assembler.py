"""The live path: ImuSample and LinkEvent items in, one grid out, gaps marked."""

from __future__ import annotations

import numpy as np
import pytest

from sensor_drivers.sample import ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import Site
from sensor_drivers.timing.assembler import GridAssembler
from sensor_drivers.timing.clock import ClockSync
from sensor_drivers.timing.resample import GridBlock
from sensor_drivers.timing.transport_sim import SerialLatency
from tests.sensor_drivers.timing.simdata import RATE_HZ, clocked_stream


def test_two_sensors_one_grid_with_a_disconnect() -> None:
    link = SerialLatency()
    streams = {
        # One host clock, two device clocks with their own origins and drifts.
        "pelvis": clocked_stream(20.0, link, 80.0, seed=31, offset_s=1000.0 - 3.0, device_start_s=3.0),
        "shank_l": clocked_stream(20.0, link, -60.0, seed=32, offset_s=1000.0 - 900.0, device_start_s=900.0),
    }
    down = (8.0, 9.0)  # shank_l is disconnected for a second (host time after the start)
    items: list[tuple[float, int, ImuSample | LinkEvent]] = []
    t0 = streams["pelvis"].true_s[0]
    for k, (name, s) in enumerate(streams.items()):
        site = Site(name)
        for i in range(s.true_s.size):
            rel = s.true_s[i] - t0
            if name == "shank_l" and down[0] <= rel < down[1]:
                continue
            acc = (float(s.true_s[i] - t0), 1.0, 2.0)  # acc x = true time since start: linear in time
            sample = ImuSample(name, site, float(s.device_s[i]), float(s.host_s[i]), i, acc, (0.0, 0.0, 0.0))
            items.append((float(s.host_s[i]), k, sample))
        if name == "shank_l":
            lost_at = t0 + down[0] + 0.1
            back_at = t0 + down[1] + 0.01
            items.append((lost_at, k, LinkEvent(name, site, LinkState.DISCONNECTED, lost_at, "BLE link lost")))
            items.append((back_at, k, LinkEvent(name, site, LinkState.CONNECTED, back_at)))
    items.sort(key=lambda x: (x[0], x[1]))

    assembler = GridAssembler(rate_hz=100.0, latency_budget_s=0.3)
    for name in streams:
        assembler.add_sensor(name, RATE_HZ, clock=ClockSync(fixed_latency_s=link.floor_s))
    blocks: list[GridBlock] = []
    next_emit = items[0][0] + 0.05
    for host_s, _, item in items:
        if host_s >= next_emit:
            block = assembler.emit(host_s)
            if block is not None:
                blocks.append(block)
            next_emit += 0.05
        assembler.feed(item)
    block = assembler.flush()
    assert block is not None
    grid = GridBlock.concatenate([*blocks, block])

    shank = grid.sensors["shank_l"]
    rel = grid.time_s - t0
    in_gap = (rel > down[0]) & (rel < down[1] - 0.01)
    assert not shank.valid[in_gap].any()
    settled = rel > 2.0  # the streaming clock has learnt each drift
    for name, sensor in grid.sensors.items():
        ok = settled & sensor.valid
        assert ok.sum() > 0.9 * np.count_nonzero(settled & ~(in_gap if name == "shank_l" else False))
        # acc x is the true time: its error on the grid is the timing error.
        assert np.max(np.abs(sensor.acc_m_s2[ok, 0] - rel[ok])) < 1e-3
    assert assembler.timers["shank_l"].clock is not None
    assert assembler.timers["pelvis"].n_samples_ == streams["pelvis"].true_s.size


def test_unknown_sensor_is_a_clear_error() -> None:
    assembler = GridAssembler()
    assembler.add_sensor("pelvis", RATE_HZ)
    sample = ImuSample("thigh_l", Site.THIGH_L, 1.0, 1.0, 0, (0.0, 0.0, 9.8), (0.0, 0.0, 0.0))
    with pytest.raises(KeyError, match="unknown sensor 'thigh_l'"):
        assembler.feed(sample)
    with pytest.raises(KeyError, match="unknown sensor 'thigh_l'"):
        assembler.feed(LinkEvent("thigh_l", Site.THIGH_L, LinkState.GAP, 1.0))
