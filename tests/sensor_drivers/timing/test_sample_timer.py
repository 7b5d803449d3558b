"""Sample times for sensors that send a counter, or nothing: index × period, smoothed by the same envelope fit."""

from __future__ import annotations

import numpy as np
import pytest

from sensor_drivers.sample import LinkEvent, LinkState
from sensor_drivers.sites import Site
from sensor_drivers.timing.clock import ClockSync
from sensor_drivers.timing.sample_timer import (
    SOURCE_ARRIVAL,
    SOURCE_DEVICE_TIME,
    SOURCE_SEQUENCE,
    SampleTimer,
    SequenceUnwrapper,
)
from sensor_drivers.timing.transport_sim import SerialLatency
from tests.sensor_drivers.timing.simdata import LINKS, RATE_HZ, clocked_stream

PERIOD_S = 1.0 / RATE_HZ


def _event(state: LinkState, n_missing: int | None = None) -> LinkEvent:
    return LinkEvent("s", Site.PELVIS, state, 0.0, n_missing=n_missing)


def test_unwrapper_counts_wraps_losses_and_repeats() -> None:
    u = SequenceUnwrapper(256, RATE_HZ)
    seqs = [250, 251, 253, 253, 255, 0, 1, 5]
    hosts = [k * PERIOD_S for k in range(len(seqs))]
    assert [u.update(s, h) for s, h in zip(seqs, hosts, strict=True)] == [0, 1, 3, None, 5, 6, 7, 11]
    assert (u.n_missing_, u.n_repeats_, u.n_restarts_) == (1 + 1 + 3, 1, 0)


def test_unwrapper_uses_the_host_clock_across_long_gaps() -> None:
    u = SequenceUnwrapper(256, RATE_HZ)
    u.update(10, 0.0)
    # 1000 samples later (3 wraps and 232): the counter alone would say 232 (or a restart).
    assert u.update((10 + 1000) % 256, 1000 * PERIOD_S + 0.012) == 1000
    assert u.n_missing_ == 999


def test_unwrapper_restart_continues_from_the_host_clock() -> None:
    u = SequenceUnwrapper(65536, RATE_HZ)
    u.update(30_000, 0.0)
    u.update(30_001, PERIOD_S)
    assert u.update(0, 2.0) == 1 + round((2.0 - PERIOD_S) * RATE_HZ)
    assert (u.restarted_, u.n_restarts_) == (True, 1)


@pytest.mark.parametrize("link_name", ["ble_15ms", "serial"])
def test_counter_without_clock_within_1ms(link_name: str) -> None:
    link = LINKS[link_name]
    # The nominal rate is 0.5 % off the real one (a cheap oscillator): the fit takes it as drift.
    s = clocked_stream(60.0, link, 5000.0, seed=21)
    seq = np.arange(s.true_s.size) % 256
    keep = np.ones(s.true_s.size, dtype=bool)
    keep[[1000, 1001, 5000, 9000]] = False  # lost, and the counter says so
    timer = SampleTimer(RATE_HZ, seq_modulus=256, transport="ble" if "ble" in link_name else "serial")
    timer.clock = ClockSync(fixed_latency_s=link.floor_s)
    mapped = np.array(
        [timer.stamp(None, int(q), h) for q, h in zip(seq[keep], s.host_s[keep], strict=True)], dtype=float
    )
    assert timer.source_ == SOURCE_SEQUENCE
    err = np.abs(mapped - s.true_s[keep])
    settled = s.true_s[keep] - s.true_s[0] > 10.0
    assert np.max(err[settled]) < 1e-3
    # Offline: the same device times (index × period) fitted at once.
    index_s = np.flatnonzero(keep) * PERIOD_S
    sync = ClockSync(fixed_latency_s=link.floor_s).fit(index_s, s.host_s[keep])
    assert np.max(np.abs(sync.mapped_s_ - s.true_s[keep])) < 1e-3
    assert sync.drift_ppm_ == pytest.approx(5000.0, abs=20.0)


def test_arrival_order_only_serial_with_losses() -> None:
    """Documented bound: without counter, samples next to a loss may be one period off; all others within 1 ms
    (batch). Streaming adds up to ``confirm_segments`` of samples one period early after each loss."""
    link = SerialLatency()
    s = clocked_stream(60.0, link, 2000.0, seed=22)
    lost = [2500, 6000, 6001, 9000]
    keep = np.ones(s.true_s.size, dtype=bool)
    keep[lost] = False
    timer = SampleTimer(RATE_HZ, transport="serial")
    streamed = np.array([timer.stamp(None, None, h) for h in s.host_s[keep]], dtype=float)
    assert timer.source_ == SOURCE_ARRIVAL
    assert timer.clock is not None
    assert sum(x.n_lost for x in timer.clock.lost_) == 4
    assert np.all(np.diff(streamed) > 0)
    err = np.abs(streamed - link.floor_s - s.true_s[keep])  # this default clock does not know the floor
    settled = s.true_s[keep] - s.true_s[0] > 5.0
    assert np.max(err[settled]) < PERIOD_S * 2 + 1e-3
    assert np.median(err[settled]) < 1e-3
    index_s = np.arange(keep.sum()) * PERIOD_S
    sync = ClockSync(fixed_latency_s=link.floor_s, step_quantum_s=PERIOD_S, step_tolerance_s=0.6 * PERIOD_S)
    err = np.abs(sync.fit(index_s, s.host_s[keep]).mapped_s_ - s.true_s[keep])
    assert np.max(err) < PERIOD_S + 1e-3
    assert np.count_nonzero(err > 1e-3) <= 4 * 5


def test_a_driver_side_counter_is_taken_for_arrival_order() -> None:
    link = SerialLatency()
    s = clocked_stream(30.0, link, 300.0, seed=25)
    keep = np.ones(s.true_s.size, dtype=bool)
    keep[3000] = False  # lost on the wire: the driver's count of decoded readings just goes on
    timer = SampleTimer(RATE_HZ, transport="serial", device_seq=False)
    for count, k in enumerate(np.flatnonzero(keep)):
        timer.stamp(None, count, float(s.host_s[k]))
    assert timer.source_ == SOURCE_ARRIVAL
    assert timer.clock is not None
    assert [x.n_lost for x in timer.clock.lost_] == [1]


def test_arrival_order_reconnect_reanchors() -> None:
    link = SerialLatency()
    s = clocked_stream(30.0, link, 500.0, seed=23)
    keep = np.ones(s.true_s.size, dtype=bool)
    keep[2000:2600] = False  # 3 s disconnected
    timer = SampleTimer(RATE_HZ, transport="serial", clock=ClockSync(fixed_latency_s=link.floor_s))
    mapped = []
    for k in np.flatnonzero(keep):
        if k == 2600:
            timer.link_event(_event(LinkState.DISCONNECTED))
            timer.link_event(_event(LinkState.CONNECTED))
        mapped.append(timer.stamp(None, None, float(s.host_s[k])))
    err = np.abs(np.array(mapped) - s.true_s[keep])
    after = s.true_s[keep] > s.true_s[2600] + 1.0
    assert timer.clock is not None
    assert timer.clock.n_resets_ == 1
    assert np.max(err[after]) < 1e-3


def test_device_clock_sensor_keeps_its_epoch_across_a_reconnect() -> None:
    link = LINKS["ble_15ms"]
    s = clocked_stream(30.0, link, 100.0, seed=24)
    timer = SampleTimer(RATE_HZ, transport="ble", clock=ClockSync(fixed_latency_s=link.floor_s))
    for k in range(s.true_s.size):
        if 2000 <= k < 2400:
            continue
        if k == 2400:
            timer.link_event(_event(LinkState.DISCONNECTED))
        timer.stamp(float(s.device_s[k]), k, float(s.host_s[k]))
    assert timer.source_ == SOURCE_DEVICE_TIME
    assert timer.clock is not None
    assert timer.clock.n_resets_ == 0


def test_repeated_counter_is_dropped_and_missing_time_is_counted() -> None:
    timer = SampleTimer(RATE_HZ, seq_modulus=256)
    assert timer.stamp(None, 7, 1.0) is not None
    assert timer.stamp(None, 7, 1.001) is None
    assert timer.n_dropped_ == 1
    clocked = SampleTimer(RATE_HZ)
    a = clocked.stamp(10.0, None, 1.0)
    b = clocked.stamp(None, None, 1.006)  # this one sample lacks its device time
    assert a is not None
    assert b is not None
    assert b > a
    assert clocked.n_untimed_ == 1


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="sampling_rate_hz"):
        SampleTimer(0.0)
    with pytest.raises(ValueError, match="transport"):
        SampleTimer(100.0, transport="usb")
    with pytest.raises(ValueError, match="seq_modulus"):
        SequenceUnwrapper(1, 100.0)
