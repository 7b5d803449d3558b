"""The live path: ImuSample (or SampleBlock) and LinkEvent items in, one grid out, gaps marked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensor_drivers.blocks import SampleBlock, expand_blocks
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


def _reads(seed: int) -> list[SampleBlock | LinkEvent]:
    """Three sensors as a serial kit delivers them: each poll's samples of a sensor in one block with one host time.
    One has a device clock and a quaternion, one only a counter (with a repeat), one neither (arrival order); the
    clocked one and the uncounted one disconnect for a while, the counted one loses samples."""
    rng = np.random.default_rng(seed)
    link = SerialLatency()
    out: list[tuple[float, int, SampleBlock | LinkEvent]] = []
    for k, name in enumerate(("pelvis", "thigh_l", "thigh_r")):
        site = Site(name)
        s = clocked_stream(6.0, link, 50.0 * (k - 1), seed=seed + k, offset_s=1000.0 - 7.0 * k, device_start_s=7.0 * k)
        poll = np.floor(s.host_s / 0.04) * 0.04 + 0.04  # the read that picks the sample up
        seq = np.arange(s.host_s.size)
        keep = np.ones(seq.size, dtype=bool)
        if name in ("pelvis", "thigh_r"):
            keep[(s.true_s > s.true_s[0] + 2.0) & (s.true_s < s.true_s[0] + 3.0)] = False  # disconnected
            gone, back = float(s.true_s[0] + 2.05), float(s.true_s[0] + 3.02)
            out.append((gone, k, LinkEvent(name, site, LinkState.DISCONNECTED, gone)))
            out.append((back, k, LinkEvent(name, site, LinkState.CONNECTED, back)))
        if name == "thigh_l":
            keep[rng.integers(100, seq.size - 100, 6)] = False  # lost
            seq[400] = seq[399]  # a repeat
            # A gap reported between two reads although both sides are one period apart: they must not be joined.
            marked = float(poll[700] - 0.001)
            out.append((marked, k, LinkEvent(name, site, LinkState.GAP, marked, "test", n_missing=1)))
        for read_s in np.unique(poll[keep]):
            idx = np.flatnonzero(keep & (poll == read_s))
            t = float(read_s)
            samples = [
                ImuSample(
                    name,
                    site,
                    float(s.device_s[i]) if name == "pelvis" else None,
                    t,
                    int(seq[i]),
                    (float(s.true_s[i]), rng.normal(), 9.8),
                    (0.1, 0.2, 0.3),
                    quat_wxyz=(math.cos(0.1 * i), math.sin(0.1 * i), 0.0, 0.0) if name == "pelvis" else None,
                )
                for i in idx
            ]
            out.append((t, k, SampleBlock.from_samples(samples)))
    out.sort(key=lambda x: (x[0], x[1]))
    return [item for _, _, item in out]


@pytest.mark.parametrize("seed", [1, 2])
def test_blocks_give_the_grid_their_samples_give(seed: int) -> None:
    reads = _reads(seed)

    def run(use_blocks: bool) -> tuple[list[GridBlock], list[tuple[int, ...]]]:
        assembler = GridAssembler(rate_hz=100.0, latency_budget_s=0.2)
        assembler.add_sensor("pelvis", RATE_HZ, has_quat=True)
        assembler.add_sensor("thigh_l", RATE_HZ)
        assembler.add_sensor("thigh_r", RATE_HZ, device_seq=False)
        grids = []
        for item in reads:
            for fed in [item] if use_blocks else expand_blocks([item]):
                assembler.feed(fed)
            if isinstance(item, SampleBlock):
                block = assembler.emit(item.host_time_s)
                if block is not None:
                    grids.append(block)
        last = assembler.flush()
        grids += [last] if last is not None else []
        counters = [
            (t.n_samples_, t.n_dropped_, t.n_untimed_, t.clock.n_resets_ if t.clock else 0)
            for t in assembler.timers.values()
        ]
        counters.append(tuple(assembler.resampler.n_dropped_.values()) + tuple(assembler.resampler.n_late_.values()))
        return grids, counters

    by_sample, by_block = run(False), run(True)
    assert by_block[1] == by_sample[1]
    a, b = GridBlock.concatenate(by_sample[0]), GridBlock.concatenate(by_block[0])
    np.testing.assert_array_equal(a.time_s, b.time_s)
    for name, x in a.sensors.items():
        y = b.sensors[name]
        np.testing.assert_array_equal(x.valid, y.valid)
        np.testing.assert_array_equal(x.acc_m_s2, y.acc_m_s2)  # NaN where NaN, every other bit equal
        np.testing.assert_array_equal(x.gyr_rad_s, y.gyr_rad_s)
        if x.quat_wxyz is not None:
            np.testing.assert_array_equal(x.quat_wxyz, y.quat_wxyz)
    for name in ("pelvis", "thigh_r"):
        assert not a.sensors[name].valid[(a.time_s > a.time_s[0] + 2.2) & (a.time_s < a.time_s[0] + 2.8)].any()
        assert a.sensors[name].valid.mean() > 0.7
