"""Resampling onto one grid: exact for linear signals, SLERP for quaternions, gaps never bridged, and the
streaming form equal to the batch form bit for bit with bounded memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from sensor_drivers.quaternion import scipy_to_wxyz, wxyz_to_scipy
from sensor_drivers.timing.resample import (
    QUAT_COLS,
    ROW_WIDTH,
    GridBlock,
    GridResampler,
    SensorSeries,
    StreamingResampler,
    grid_index_after,
    grid_index_at_or_after,
    slerp,
)

RATE_HZ = 200.0


def _times(n: int, rng: np.random.Generator, rate_hz: float = RATE_HZ, start_s: float = 100.0) -> np.ndarray:
    """Sample times at a rate 0.3 % off nominal with ±2 % jitter (mapped times are never exactly on a grid)."""
    period = 1.0 / (rate_hz * 1.003)
    return start_s + np.cumsum(period * (1.0 + rng.uniform(-0.02, 0.02, n)))


def _linear(t: np.ndarray) -> np.ndarray:
    a = np.array([1.0, -2.0, 0.5, 3.0, 0.0, -1.0, 20.0, -40.0, 5.0])
    b = np.array([0.1, 2.0, -9.81, 0.0, 1.5, 0.25, 1.0, 0.0, -3.0])
    return b + np.outer(t - 100.0, a)


def _quats(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth rotation sent with random signs (q and −q), as some devices do."""
    rotvec = np.stack([np.sin(t), 0.5 * np.cos(2 * t), 0.3 * t], axis=1)
    q = scipy_to_wxyz(Rotation.from_rotvec(rotvec).as_quat())
    return q * np.where(rng.random(t.size) < 0.5, -1.0, 1.0)[:, None]


def test_grid_index_helpers_are_exact() -> None:
    for rate in (100.0, 200.0, 60.0, 120.0):
        for t in (0.0, 0.01, 1 / 3, 12.345, 1e5 + 0.07):
            k = grid_index_at_or_after(t, rate)
            assert k / rate >= t > (k - 1) / rate
            j = grid_index_after(t, rate)
            assert j / rate > t >= (j - 1) / rate


def test_signals_linear_in_time_are_reproduced_exactly() -> None:
    rng = np.random.default_rng(1)
    t = _times(2000, rng)
    v = _linear(t)
    series = SensorSeries(t, v[:, 0:3], v[:, 3:6], RATE_HZ, mag_ut=v[:, 6:9])
    grid = GridResampler(rate_hz=100.0).resample({"a": series}).grid_
    s = grid.sensors["a"]
    assert s.valid.all()
    assert grid.time_s[0] >= t[0]
    assert grid.time_s[-1] <= t[-1]
    want = _linear(grid.time_s)
    np.testing.assert_allclose(s.acc_m_s2, want[:, 0:3], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.gyr_rad_s, want[:, 3:6], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.mag_ut, want[:, 6:9], rtol=0, atol=1e-9)
    assert s.quat_wxyz is None


def test_quaternions_are_slerped_unit_and_on_the_short_arc() -> None:
    rng = np.random.default_rng(2)
    t = _times(500, rng)
    q = _quats(t, rng)
    zeros = np.zeros((t.size, 3))
    grid = GridResampler(rate_hz=333.0).resample({"a": SensorSeries(t, zeros, zeros, RATE_HZ, quat_wxyz=q)}).grid_
    out = grid.sensors["a"].quat_wxyz
    assert out is not None
    assert grid.sensors["a"].valid.all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-12)
    # The same rotations as scipy's Slerp (which knows nothing of the sign flips) ...
    want = Slerp(t, Rotation.from_quat(wxyz_to_scipy(q)))(grid.time_s)
    got = Rotation.from_quat(wxyz_to_scipy(out))
    assert np.max((got.inv() * want).magnitude()) < 1e-9
    # ... and no sign jumps in the output.
    assert np.all(np.sum(out[1:] * out[:-1], axis=1) > 0.99)


def test_slerp_takes_the_shorter_arc_and_handles_equal_inputs() -> None:
    q0 = np.array([[1.0, 0.0, 0.0, 0.0]])
    half = math.pi / 3
    q1 = -np.array([[math.cos(half / 2), math.sin(half / 2), 0.0, 0.0]])  # 60° about x, sent as −q
    mid = slerp(q0, q1, np.array([0.5]))
    angle = 2 * math.acos(min(1.0, abs(mid[0, 0])))
    assert angle == pytest.approx(half / 2)  # 30°, not the long way round
    assert slerp(q0, q0, np.array([0.3]))[0] == pytest.approx(q0[0])


def test_gaps_are_nan_and_never_bridged() -> None:
    rng = np.random.default_rng(3)
    t = _times(600, rng)
    v = _linear(t)
    t = np.delete(t, range(200, 203))  # three samples lost: a 20 ms hole
    v = np.delete(v, range(200, 203), axis=0)
    gap = np.zeros(t.size, dtype=bool)
    gap[400] = True  # a link event between samples 399 and 400, although they are a period apart
    series = SensorSeries(t, v[:, 0:3], v[:, 3:6], RATE_HZ, gap_before=gap)
    grid = GridResampler(rate_hz=1000.0).resample({"a": series}).grid_
    s = grid.sensors["a"]
    for lo, hi in ((t[199], t[200]), (t[399], t[400])):
        inside = (grid.time_s > lo) & (grid.time_s < hi)
        assert inside.any()
        assert not s.valid[inside].any()
        assert np.isnan(s.acc_m_s2[inside]).all()
        assert np.isnan(s.gyr_rad_s[inside]).all()
    assert s.valid.sum() == np.count_nonzero(~np.isnan(s.acc_m_s2[:, 0]))
    rest = (grid.time_s < t[199]) | ((grid.time_s > t[200]) & (grid.time_s < t[399])) | (grid.time_s > t[400])
    assert s.valid[rest].all()


def test_a_row_exactly_on_a_sample_next_to_a_gap_takes_that_sample() -> None:
    t = np.array([1.00, 1.005, 1.01, 1.05, 1.055])
    v = np.arange(5.0)[:, None] * np.ones((1, 3))
    grid = GridResampler(rate_hz=100.0, start_s=0.99, end_s=1.07).resample({"a": SensorSeries(t, v, v, RATE_HZ)}).grid_
    rows = dict(zip(np.round(grid.time_s, 6).tolist(), grid.sensors["a"].acc_m_s2[:, 0].tolist(), strict=True))
    assert rows[1.0] == 0.0
    assert rows[1.01] == 2.0
    assert math.isnan(rows[0.99])
    assert math.isnan(rows[1.02])
    assert math.isnan(rows[1.06])
    assert rows[1.05] == 3.0


def test_out_of_order_samples_are_dropped() -> None:
    t = np.array([1.0, 1.005, 1.004, 1.01, 1.01, 1.015])
    v = np.arange(6.0)[:, None] * np.ones((1, 3))
    r = GridResampler(rate_hz=200.0).resample({"a": SensorSeries(t, v, v, RATE_HZ)})
    assert r.n_dropped_ == {"a": 2}
    assert r.grid_.sensors["a"].valid.all()


def _kit(rng: np.random.Generator, duration_s: float) -> dict[str, SensorSeries]:
    """Three sensors: plain, with quaternions sent with random signs, with a magnetometer polled now and then;
    lost samples, link-event gaps, a sensor that starts late and one that stops early."""
    kit = {}
    for k, name in enumerate(("plain", "quat", "mag")):
        n = int(duration_s * RATE_HZ)
        t = _times(n, rng, start_s=100.0 + 0.3 * k)
        v = _linear(t) + rng.normal(0, 0.01, (n, 9))
        keep = rng.random(n) > 0.01
        if name == "mag":
            keep &= t < 100.0 + 0.8 * duration_s
        t, v = t[keep], v[keep]
        gap = rng.random(t.size) < 0.002
        mag = None
        if name == "mag":
            mag = v[:, 6:9].copy()
            mag[rng.random(t.size) < 0.8] = np.nan  # most samples carry no magnetometer reading
        quat = _quats(t, rng) if name == "quat" else None
        kit[name] = SensorSeries(t, v[:, 0:3], v[:, 3:6], RATE_HZ, mag_ut=mag, quat_wxyz=quat, gap_before=gap)
    return kit


def _rows(series: SensorSeries) -> np.ndarray:
    _, rows, _ = series.arrays()
    return rows


def _stream(kit: dict[str, SensorSeries], rng: np.random.Generator, budget_s: float) -> tuple[list, list]:
    """Feed the kit in host arrival order (each sample arrives 0-40 ms after its time), emitting at random."""
    resampler = StreamingResampler(rate_hz=100.0, latency_budget_s=budget_s)
    arrivals = []
    for name, s in kit.items():
        resampler.add_sensor(name, s.nominal_rate_hz, s.mag_ut is not None, s.quat_wxyz is not None)
        t = np.asarray(s.time_s)
        arrival = np.maximum.accumulate(t + rng.uniform(0.0, 0.04, t.size))
        rows = _rows(s)
        gaps = np.asarray(s.gap_before)
        arrivals += [
            (float(a), name, float(ti), tuple(r.tolist()), bool(g))
            for a, ti, r, g in zip(arrival, t, rows, gaps, strict=False)
        ]
    arrivals.sort(key=lambda x: x[0])
    blocks, sizes = [], []
    next_emit = arrivals[0][0]
    for arrival_s, name, time_s, row, gap in arrivals:
        if gap:
            resampler.mark_gap(name)
        resampler.push(name, time_s, row)
        if arrival_s >= next_emit:
            block = resampler.emit(arrival_s)
            if block is not None:
                blocks.append(block)
            sizes.append(sum(resampler.buffered_samples().values()))
            next_emit = arrival_s + rng.uniform(0.01, 0.2)
    block = resampler.flush()
    if block is not None:
        blocks.append(block)
    assert sum(resampler.n_late_.values()) == 0
    return blocks, sizes


def test_streaming_equals_batch_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    kit = _kit(rng, 20.0)
    batch = GridResampler(rate_hz=100.0).resample(kit).grid_
    blocks, _ = _stream(kit, rng, budget_s=0.25)
    assert len(blocks) > 50
    stream = GridBlock.concatenate(blocks)
    assert (stream.first_index, stream.n_rows) == (batch.first_index, batch.n_rows)
    np.testing.assert_array_equal(stream.time_s, batch.time_s)
    for name in kit:
        a, b = stream.sensors[name], batch.sensors[name]
        np.testing.assert_array_equal(a.valid, b.valid)
        for channel in ("acc_m_s2", "gyr_rad_s", "mag_ut", "quat_wxyz"):
            x, y = getattr(a, channel), getattr(b, channel)
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)  # NaN where NaN, every other bit equal
    assert 0.5 < batch.sensors["mag"].valid.mean() < 0.95  # it stopped early
    assert np.isnan(batch.sensors["mag"].mag_ut[batch.sensors["mag"].valid]).any()


def test_streaming_memory_does_not_grow_with_duration() -> None:
    rng = np.random.default_rng(5)
    kit = _kit(rng, 120.0)
    _, sizes = _stream(kit, rng, budget_s=0.25)
    # Three sensors × 200 Hz × (budget + emit interval ≤ 0.2 s + arrival spread 0.04 s) plus the kept tails.
    bound = 3 * RATE_HZ * (0.25 + 0.2 + 0.04) + 3 * 2
    first, last = sizes[: len(sizes) // 4], sizes[-len(sizes) // 4 :]
    assert max(sizes) <= bound
    assert max(last) <= max(first) * 1.2


def test_a_late_sensor_is_invalid_after_the_budget_and_its_late_samples_are_counted() -> None:
    resampler = StreamingResampler(rate_hz=100.0, latency_budget_s=0.1)
    for name in ("a", "b"):
        resampler.add_sensor(name, RATE_HZ)
    row = (0.0,) * 6 + (math.nan,) * 7
    t = 10.0 + np.arange(400) / RATE_HZ
    for ti in t[:200]:
        resampler.push("a", float(ti), row)
        resampler.push("b", float(ti), row)
    for ti in t[200:]:  # b goes silent for 1 s
        resampler.push("a", float(ti), row)
    block = resampler.emit(now_s=float(t[-1]) + 0.05)
    assert block is not None
    b = block.sensors["b"]
    assert b.valid[block.time_s < t[199]].all()
    assert not b.valid[block.time_s > t[199]].any()
    assert block.time_s[-1] < t[-1] + 0.05 - 0.1 + 1e-9
    resampler.push("b", float(t[-1]), row)  # b's next sample arrives after its rows were emitted
    assert resampler.n_late_ == {"a": 0, "b": 1}


def test_errors_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        GridResampler(rate_hz=0.0)
    with pytest.raises(ValueError, match="gap_factor"):
        StreamingResampler(gap_factor=0.5)
    with pytest.raises(ValueError, match="acc_m_s2 has shape"):
        SensorSeries([1.0, 2.0], np.zeros((3, 3)), np.zeros((2, 3)), RATE_HZ).arrays()
    r = StreamingResampler()
    r.add_sensor("a", RATE_HZ)
    with pytest.raises(ValueError, match="added twice"):
        r.add_sensor("a", RATE_HZ)
    with pytest.raises(KeyError, match="unknown sensor 'b'"):
        r.push("b", 1.0, (0.0,) * ROW_WIDTH)
    assert QUAT_COLS.stop == ROW_WIDTH


@settings(max_examples=80, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 2),  # sensor
            st.floats(-0.002, 0.02),  # time step (≤ 0: out of order, dropped by both forms)
            st.booleans(),  # a link event before this sample
            st.booleans(),  # an emit after it
        ),
        min_size=1,
        max_size=120,
    ),
    rate_hz=st.sampled_from([50.0, 100.0, 200.0, 333.0]),
)
def test_streaming_equals_batch_for_any_interleaving(data: list[tuple[int, float, bool, bool]], rate_hz: float) -> None:
    names = ("a", "b", "c")
    rng = np.random.default_rng(len(data))
    clock = dict.fromkeys(names, 50.0)
    per: dict[str, list[tuple[float, tuple[float, ...], bool]]] = {n: [] for n in names}
    resampler = StreamingResampler(rate_hz=rate_hz, latency_budget_s=1e9)  # no sample is ever late
    for n in names:
        resampler.add_sensor(n, RATE_HZ, has_mag=True, has_quat=n == "c")
    blocks = []
    for sensor, step, gap, emit in data:
        name = names[sensor]
        clock[name] += step
        q = rng.normal(size=4)
        row = (*rng.normal(size=6).tolist(), *(rng.normal(size=3).tolist() if rng.random() < 0.7 else [math.nan] * 3))
        row = (*row, *(q / np.linalg.norm(q)).tolist())
        per[name].append((clock[name], row, gap))
        if gap:
            resampler.mark_gap(name)
        resampler.push(name, clock[name], row)
        if emit:
            block = resampler.emit(now_s=max(clock.values()))
            if block is not None:
                blocks.append(block)
    block = resampler.flush()
    if block is not None:
        blocks.append(block)
    series = {}
    for n in names:
        t = np.array([p[0] for p in per[n]])
        rows = np.array([p[1] for p in per[n]]).reshape(len(per[n]), ROW_WIDTH)
        series[n] = SensorSeries(
            t,
            rows[:, 0:3],
            rows[:, 3:6],
            RATE_HZ,
            mag_ut=rows[:, 6:9],
            quat_wxyz=rows[:, 9:13] if n == "c" else None,
            gap_before=np.array([p[2] for p in per[n]], dtype=bool),
        )
    batch = GridResampler(rate_hz=rate_hz).resample(series)
    assert batch.n_dropped_ == resampler.n_dropped_
    if not blocks:
        assert batch.grid_.n_rows <= 1
        return
    stream = GridBlock.concatenate(blocks)
    assert (stream.first_index, stream.n_rows) == (batch.grid_.first_index, batch.grid_.n_rows)
    for n in names:
        a, b = stream.sensors[n], batch.grid_.sensors[n]
        np.testing.assert_array_equal(a.valid, b.valid)
        np.testing.assert_array_equal(a.acc_m_s2, b.acc_m_s2)
        np.testing.assert_array_equal(a.mag_ut, b.mag_ut)
        if n == "c":
            np.testing.assert_array_equal(a.quat_wxyz, b.quat_wxyz)
