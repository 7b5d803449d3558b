"""Inspection figures on streams with known loss, gaps, jitter and drift."""

from __future__ import annotations

import numpy as np
import pytest

from sensor_drivers.recording.clipfile import ClipWriter, SensorStream, read_clip
from sensor_drivers.recording.stats import (
    INSPECT_SCHEMA,
    estimate_drift_ppm,
    inspect_clip,
    sensor_stats,
    unwrap_seq,
)
from sensor_drivers.sample import LinkEvent, LinkState
from sensor_drivers.sites import Site

RATE_HZ = 200.0


def _stream(host, device=None, seq=None, rate_hz=RATE_HZ, extra=None) -> SensorStream:
    host = np.asarray(host, float)
    n = len(host)
    return SensorStream(
        index=0,
        sensor_id="A",
        site=Site.PELVIS,
        info={"sensor_id": "A", "site": "pelvis", "nominal_rate_hz": rate_hz, "extra": extra or {}},
        host_time_s=host,
        device_time_s=np.full(n, np.nan) if device is None else np.asarray(device, float),
        seq=np.full(n, -1, np.int64) if seq is None else np.asarray(seq, np.int64),
        acc_m_s2=np.zeros((n, 3), np.float32),
        gyr_rad_s=np.zeros((n, 3), np.float32),
    )


@pytest.mark.parametrize("drift_ppm", [-150.0, 0.0, 100.0])
def test_drift_is_recovered_from_lower_envelope_despite_latency(drift_ppm):
    rng = np.random.default_rng(1)
    device = np.arange(0, 300, 1 / RATE_HZ)  # 5 minutes
    # host = offset + (1 + drift)·device + latency ≥ 0 (the model of sensor_drivers.timing.clock)
    host = 1234.5 + device * (1 + drift_ppm * 1e-6) + rng.exponential(0.008, len(device)) + 0.003
    assert estimate_drift_ppm(device, host) == pytest.approx(drift_ppm, abs=2.0)


def test_drift_needs_enough_device_time():
    device = np.arange(0, 5, 1 / RATE_HZ)
    assert estimate_drift_ppm(device, device + 1.0) is None
    assert estimate_drift_ppm(np.full(5000, np.nan), np.arange(5000.0)) is None


def test_unwrap_seq_handles_wraps_resets_and_duplicates():
    seq, resets = unwrap_seq([65534, 65535, 0, 2, 2, 3])
    np.testing.assert_array_equal(seq, [65534, 65535, 65536, 65538, 65538, 65539])
    assert resets == 0
    seq, resets = unwrap_seq([5000, 5001, 10, 11])  # a reset, not a 16-bit wrap (forward step > half range)
    assert resets == 1
    np.testing.assert_array_equal(np.diff(seq), [1, 1, 1])
    seq, _ = unwrap_seq([250, 255, 3])  # 8-bit counter: 255 → 3 is a wrap with 3 missing
    np.testing.assert_array_equal(seq, [250, 255, 259])


def test_loss_and_gaps_from_sequence_numbers():
    k = np.arange(2000)
    keep = ~(((k >= 500) & (k < 540)) | (k == 1000))  # a 40-sample gap and one lost sample
    host = 10.0 + k[keep] / RATE_HZ
    s = sensor_stats(_stream(host, device=k[keep] / RATE_HZ, seq=k[keep]))
    assert s.n_lost == 41
    assert s.loss_pct == pytest.approx(100 * 41 / 2000)
    assert s.loss_method == "sequence"
    assert s.gap_clock == "device"
    assert len(s.gaps) == 1  # the single lost sample is below the gap threshold
    gap = s.gaps[0]
    assert gap.start_s == pytest.approx(499 / RATE_HZ)
    assert gap.duration_s == pytest.approx(41 / RATE_HZ)
    assert gap.n_missing == 40
    assert s.effective_rate_hz == pytest.approx((len(host) - 1) / (host[-1] - host[0]))


def test_loss_from_nominal_rate_when_no_sequence_numbers():
    host = np.concatenate([np.arange(0, 5, 1 / RATE_HZ), np.arange(6, 10, 1 / RATE_HZ)])  # 1 s silent
    s = sensor_stats(_stream(host))
    assert s.loss_method == "nominal rate"
    assert s.n_lost == pytest.approx(200, abs=2)
    assert s.gap_clock == "host"
    assert [round(g.duration_s, 3) for g in s.gaps] == [1.005]


def test_jitter_of_host_arrivals():
    rng = np.random.default_rng(2)
    ideal = np.arange(0, 60, 1 / RATE_HZ)
    host = ideal + rng.normal(0, 0.0005, len(ideal))
    s = sensor_stats(_stream(np.sort(host)))
    # inter-arrival std of two independent 0.5 ms errors: √2 · 0.5 ms
    assert s.jitter_std_ms == pytest.approx(np.sqrt(2) * 0.5, rel=0.1)
    assert 1.0 < s.jitter_p99_ms < 3.0


def test_host_times_derived_from_device_clock_give_no_drift():
    device = np.arange(0, 30, 1 / RATE_HZ)
    s = sensor_stats(_stream(device, device=device, extra={"host_time_source": "device_time_s"}))
    assert s.drift_ppm is None
    assert "no host receive clock" in s.drift_note


def test_nominal_rate_is_estimated_when_the_clip_does_not_say():
    host = np.arange(0, 10, 1 / 60.0)
    stream = _stream(host)
    stream.info.pop("nominal_rate_hz")
    s = sensor_stats(stream)
    assert s.nominal_rate_hz == pytest.approx(60.0)
    assert s.nominal_rate_source == "estimated"


def test_inspect_clip_with_a_sensor_lost_mid_walk(tmp_path):
    path = tmp_path / "lost.stclip"
    with ClipWriter(
        path,
        sensors=[
            {"sensor_id": s, "site": site, "nominal_rate_hz": RATE_HZ}
            for s, site in (("A", "pelvis"), ("B", "shank_l"))
        ],
    ) as w:
        n = 2000
        k = np.arange(n)
        host = 100.0 + k / RATE_HZ
        w.write_arrays("A", {"host_time_s": host, "device_time_s": k / RATE_HZ, "seq": k})
        w.write_arrays("B", {"host_time_s": host[:800], "device_time_s": k[:800] / RATE_HZ, "seq": k[:800]})
        w.add_link_event(LinkEvent("B", Site.SHANK_L, LinkState.DISCONNECTED, host[800], "BLE link lost"))
    report = inspect_clip(read_clip(path))
    a, b = report.sensors
    assert a.gaps == []
    assert b.n_disconnects == 1
    assert b.gaps[-1].edge == "end"
    assert b.gaps[-1].end_s == pytest.approx((n - 1) / RATE_HZ)
    assert b.gaps[-1].n_missing == pytest.approx(1199, abs=1)
    doc = report.to_json()
    assert doc["schema"] == INSPECT_SCHEMA
    assert doc["duration_s"] == pytest.approx((n - 1) / RATE_HZ)
