"""ClockSync: drift and offset from one-way timestamps, robust to latency bursts, glitches and clock resets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.timing.clock import RESET_BACKWARD, RESET_FORWARD, RESET_STEP_UP, ClockSync
from sensor_drivers.timing.transport_sim import SerialLatency
from tests.sensor_drivers.timing.simdata import LINKS, clocked_stream

#: 60 s at 1000 ppm: as hard for the envelope as 5 minutes at 100 ppm (the same total drift to follow, 60 ms), and
#: over BLE the sample instants slide through a whole connection-event phase every 5 s instead of every 50 s.
DURATION_S = 60.0
DRIFT_PPM = 1000.0


def _stream_map(sync: ClockSync, device_s: np.ndarray, host_s: np.ndarray) -> np.ndarray:
    return np.array([sync.update(d, h) for d, h in zip(device_s.tolist(), host_s.tolist(), strict=True)])


@pytest.mark.parametrize("link_name", list(LINKS))
@pytest.mark.parametrize("drift_ppm", [DRIFT_PPM, -DRIFT_PPM])
def test_drift_recovered_within_1ms(link_name: str, drift_ppm: float) -> None:
    link = LINKS[link_name]
    s = clocked_stream(DURATION_S, link, drift_ppm, seed=3)
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(s.device_s, s.host_s)
    err = sync.mapped_s_ - s.true_s
    assert np.max(np.abs(err)) < 1e-3
    assert abs(sync.drift_ppm_ - drift_ppm) < 10.0  # 10 ppm over 60 s is at most 0.6 ms end to end
    assert sync.n_resets_ == 0
    # Streaming (causal): once the envelope has been seen (a few connection-event phase cycles), also within 1 ms.
    streamed = _stream_map(ClockSync(fixed_latency_s=link.floor_s), s.device_s, s.host_s)
    settled = s.true_s - s.true_s[0] > 15.0
    assert np.max(np.abs(streamed - s.true_s)[settled]) < 1e-3
    assert np.all(np.diff(streamed) > 0)


def test_offset_and_drift_reported() -> None:
    link = SerialLatency()
    s = clocked_stream(DURATION_S, link, 250.0, seed=4, offset_s=-123.25, device_start_s=5.0)
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(s.device_s, s.host_s)
    # host = offset + (1 + drift)·device, offset as estimated includes the floor that fixed_latency_s removes.
    assert sync.offset_s_ - link.floor_s == pytest.approx(-123.25, abs=1e-3)
    assert sync.drift_ppm_ == pytest.approx(250.0, abs=2.0)
    assert 0.0 <= sync.uncertainty_s_ < 1e-3
    assert 0.0 <= sync.envelope_rms_s_ < 2e-3
    (estimate,) = sync.estimates_
    assert estimate.n_segments > 100
    streaming = ClockSync(fixed_latency_s=link.floor_s)
    _stream_map(streaming, s.device_s, s.host_s)
    live = streaming.estimate()
    assert live.drift_ppm == pytest.approx(250.0, abs=10.0)
    assert live.offset_s - link.floor_s == pytest.approx(-123.25, abs=2e-3)


def test_delayed_bursts_are_ignored() -> None:
    link = LINKS["ble_15ms"]
    s = clocked_stream(DURATION_S, link, DRIFT_PPM, seed=5)
    host = s.host_s.copy()
    rng = np.random.default_rng(0)
    # Every ~2 s a burst of 40 samples arrives 50-400 ms late (and everything after it waits too).
    for start in range(100, host.size - 40, 400):
        host[start : start + 40] += rng.uniform(0.05, 0.4)
    host = np.maximum.accumulate(host)
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(s.device_s, host)
    assert np.max(np.abs(sync.mapped_s_ - s.true_s)) < 1e-3
    assert sync.n_resets_ == 0


def test_a_glitch_below_the_envelope_is_dropped() -> None:
    link = SerialLatency()
    s = clocked_stream(DURATION_S, link, DRIFT_PPM, seed=6)
    device = s.device_s.copy()
    fast = 3000 + int(np.argmin((s.host_s - s.true_s)[3000:3100]))
    device[fast] += 0.004  # 4 ms late on a fast sample: less than a period, a dip below the envelope
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(device, s.host_s)
    assert sync.n_outliers_ >= 1
    assert (sync.n_resets_, sync.glitches_) == (0, [])
    assert np.max(np.delete(np.abs(sync.mapped_s_ - s.true_s), fast)) < 1e-3


@pytest.mark.parametrize("glitch_s", [0.012, 0.3, 30.0, -30.0])
def test_a_lone_timestamp_glitch_is_not_a_reset(glitch_s: float) -> None:
    link = SerialLatency()
    s = clocked_stream(DURATION_S, link, DRIFT_PPM, seed=6)
    device = s.device_s.copy()
    device[7001] += glitch_s
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(device, s.host_s)
    assert (sync.n_resets_, sync.glitches_) == (0, [7001])
    assert np.max(np.abs(sync.mapped_s_ - s.true_s)) < 1e-3  # the glitch gets the time between its neighbours
    streaming = ClockSync(fixed_latency_s=link.floor_s)
    streamed = _stream_map(streaming, device, s.host_s)
    assert (streaming.n_resets_, streaming.glitches_) == (0, [7001])
    assert np.all(np.diff(streamed) > 0)
    assert np.max(np.abs(streamed - s.true_s)[7100:]) < 1e-3


@pytest.mark.parametrize(
    ("jump_s", "reason"),
    [(-600.0, RESET_BACKWARD), (-0.5, RESET_BACKWARD), (20.0, RESET_FORWARD)],
)
def test_clock_reset_starts_a_new_epoch(jump_s: float, reason: str) -> None:
    link = LINKS["ble_7.5ms"]
    s = clocked_stream(DURATION_S, link, DRIFT_PPM, seed=7, device_start_s=650.0)
    device = s.device_s.copy()
    device[6000:] += jump_s  # the device counter restarted (or skipped) at sample 6000
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(device, s.host_s)
    assert [(r.sample_index, r.reason) for r in sync.resets_] == [(6000, reason)]
    assert np.max(np.abs(sync.mapped_s_ - s.true_s)) < 1e-3
    assert [e.drift_ppm for e in sync.estimates_] == pytest.approx([DRIFT_PPM, DRIFT_PPM], abs=20.0)
    streaming = ClockSync(fixed_latency_s=link.floor_s)
    streamed = _stream_map(streaming, device, s.host_s)
    assert np.all(np.diff(streamed) > 0)
    assert streaming.n_resets_ == 1
    # After a reset the drift is carried over: the new epoch is right again once the envelope's floor has been seen
    # (over BLE: once the sample instants have slid through one connection-event phase, 5 s at 1000 ppm).
    after = s.true_s - s.true_s[6000] > 6.0
    assert np.max(np.abs(streamed - s.true_s)[after]) < 1e-3


def test_a_paused_device_clock_is_a_step_placed_where_it_happened() -> None:
    link = SerialLatency()
    s = clocked_stream(DURATION_S, link, DRIFT_PPM, seed=8)
    # The device stopped for 100 ms (20 samples missing) and its clock stood still meanwhile: every later device
    # time is 100 ms behind.
    keep = np.ones(s.true_s.size, dtype=bool)
    keep[5000:5020] = False
    device = s.device_s.copy()
    device[5020:] -= 0.1
    device, host, true = device[keep], s.host_s[keep], s.true_s[keep]
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(device, host)
    assert [r.reason for r in sync.resets_] == [RESET_STEP_UP]
    streaming = ClockSync(fixed_latency_s=link.floor_s)
    streamed = _stream_map(streaming, device, host)
    assert streaming.resets_[0].sample_index > 5000 + 100  # the detector needs a few segments to be sure ...
    assert np.count_nonzero(np.abs(sync.mapped_s_ - true) > 1e-3) <= 10  # ... the batch fit finds the step
    assert 5000 - 10 <= sync.resets_[0].sample_index <= 5000
    assert np.all(np.diff(streamed) > 0)


def test_lost_samples_of_an_arrival_count_are_re_indexed() -> None:
    link = SerialLatency()
    s = clocked_stream(DURATION_S, link, 300.0, seed=9)
    rng = np.random.default_rng(9)
    lost = np.sort(rng.choice(np.arange(500, s.true_s.size - 500), 6, replace=False))
    keep = np.ones(s.true_s.size, dtype=bool)
    keep[lost] = False
    period_s = 1.0 / 200.0
    index_time_s = np.arange(keep.sum()) * period_s  # only arrival order is known
    sync = ClockSync(fixed_latency_s=link.floor_s, step_tolerance_s=0.6 * period_s, step_quantum_s=period_s)
    sync.fit(index_time_s, s.host_s[keep])
    assert sum(x.n_lost for x in sync.lost_) == 6
    assert sync.n_resets_ == 0
    # Reported where the fit placed them: at (or a few samples before) the first sample after each loss.
    first_after = sorted(set(np.searchsorted(np.flatnonzero(keep), lost).tolist()))
    placed = [x.sample_index for x in sync.lost_]
    assert len(placed) == len(first_after)
    assert all(0 <= f - p <= 10 for p, f in zip(placed, first_after, strict=True))
    err = np.abs(sync.mapped_s_ - s.true_s[keep])
    # Where exactly a sample went missing is not visible: samples right before a loss may be one period late.
    assert np.count_nonzero(err > 1e-3) <= 6 * 5
    assert np.max(err) < period_s + 1e-3


def test_streaming_memory_is_bounded() -> None:
    link = SerialLatency()
    s = clocked_stream(240.0, link, 50.0, seed=10)
    sync = ClockSync(window_s=30.0)
    sizes = []
    for k, (d, h) in enumerate(zip(s.device_s.tolist(), s.host_s.tolist(), strict=True)):
        sync.update(d, h)
        if k % 1000 == 0:
            sizes.append(len(sync._mu) + len(sync._hull))
    assert max(sizes) <= 2 * (1.1 * 30.0 / 0.5 + 1)
    assert max(sizes[-10:]) <= max(sizes[: len(sizes) // 2])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"segment_s": 0.0},
        {"window_s": 1.0},
        {"max_drift_ppm": 0.0},
        {"prior_drift_ppm": 30_000.0},
        {"max_slew": 1.0},
        {"confirm_segments": 0},
        {"step_quantum_s": -1.0},
    ],
)
def test_bad_parameters_are_named(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ClockSync(**kwargs)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="equal, non-zero length"):
        ClockSync().fit([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        ClockSync().fit([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(RuntimeError, match="no sample"):
        ClockSync().estimate()
    with pytest.raises(RuntimeError, match="fit"):
        ClockSync().map([1.0])


#: What a device clock can do, one event after another (kind, duration s): see ``_eventful_stream``.
CLOCK_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["normal", "back", "ahead", "glitch", "pause", "stall", "burst"]),
        st.floats(0.001, 50.0),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    events=CLOCK_EVENTS,
    seed=st.integers(0, 2**16),
)
def test_mapped_times_always_increase(events: list[tuple[str, float]], seed: int) -> None:
    """Whatever the device clock does, mapped times increase and nothing raises."""
    device, host = _eventful_stream(events, seed)
    sync = ClockSync()
    streamed = _stream_map(sync, device, host)
    assert np.all(np.isfinite(streamed))
    assert np.all(np.diff(streamed) > 0)
    batch = ClockSync().fit(device, host).mapped_s_
    assert np.all(np.diff(batch) > 0)


@settings(max_examples=60, deadline=None)
@given(
    events=CLOCK_EVENTS,
    seed=st.integers(0, 2**16),
    block_sizes=st.lists(st.integers(1, 40), min_size=1, max_size=20),
    counted=st.booleans(),
)
def test_a_block_at_a_time_maps_as_a_sample_at_a_time(
    events: list[tuple[str, float]], seed: int, block_sizes: list[int], counted: bool
) -> None:
    """update_many is update, bit for bit, in any cut of the stream: every mapped time, reset, glitch and loss."""
    device, host = _eventful_stream(events, seed)
    kwargs = {"step_quantum_s": 0.005, "step_tolerance_s": 0.003} if counted else {}
    one, many = ClockSync(**kwargs), ClockSync(**kwargs)
    expected = _stream_map(one, device, host).tolist()
    got: list[float] = []
    i = 0
    for size in itertools.cycle(block_sizes):
        if i >= device.size:
            break
        got += many.update_many(device[i : i + size].tolist(), host[i : i + size].tolist())
        i += size
    assert got == expected
    assert (many.n_resets_, many.resets_, many.glitches_, many.lost_) == (
        one.n_resets_,
        one.resets_,
        one.glitches_,
        one.lost_,
    )
    assert (many.n_outliers_, many.n_clamped_, many.estimate()) == (one.n_outliers_, one.n_clamped_, one.estimate())


def _eventful_stream(events: list[tuple[str, float]], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 3000
    device = np.arange(n) / 200.0 + 7.0
    host = 100.0 + device * 1.0001 + rng.exponential(0.003, n)
    for kind, size in events:
        at = int(rng.integers(1, n))
        if kind == "back":
            device[at:] -= size
        elif kind == "ahead":
            device[at:] += size
        elif kind == "glitch":
            device[at] += size * rng.choice([-1.0, 1.0])
        elif kind == "pause":
            device[at : at + 50] = device[at]
        elif kind == "stall":
            host[at : at + 100] += size / 10.0
        elif kind == "burst":
            host[at:] += size / 100.0
    return device, np.maximum.accumulate(host)  # the host clock is monotonic


def test_non_finite_times_are_refused_with_a_clear_error() -> None:
    sync = ClockSync()
    sync.update(1.0, 2.0)
    with pytest.raises(ValueError, match="finite"):
        sync.update(float("nan"), 2.1)
    assert sync.update(1.005, 2.005) > 2.0  # the stream goes on
