"""Live quality verdicts for configured loss, disconnects, low battery, clipping, rate, jitter and radio signal, from
stream items and from grid blocks, with bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from capture_app.core.checks import QualityMonitor
from capture_app.core.signals import KitSignals, SiteSignals
from capture_app.core.verdict import Level
from sensor_drivers.frames import G_M_S2
from sensor_drivers.sample import DeviceStatus, ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import Site

RATE_HZ = 200.0


def stream(n: int = 1000, *, sensor_id: str = "s1", site: Site = Site.SHANK_L, rate_hz: float = RATE_HZ,
           drop: set[int] | None = None, battery: float | None = 80.0, rssi: float | None = -60.0,
           delay_s: np.ndarray | None = None, acc: tuple[float, float, float] | None = None,
           seq_offset: int = 0, seq_modulus: int | None = None, clip_counts: np.ndarray | None = None,
           mag: tuple[float, float, float] | None = (20.0, 0.0, -44.0), start_s: float = 100.0,
           seed: int = 0) -> list[ImuSample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if drop and i in drop:
            continue
        t = start_s + i / rate_hz
        seq = i + seq_offset
        if seq_modulus:
            seq %= seq_modulus
        status = DeviceStatus(battery, rssi, None if clip_counts is None else int(clip_counts[i]), 0)
        a = acc or (float(rng.normal(0, 0.05)), float(rng.normal(0, 0.05)), G_M_S2 + float(rng.normal(0, 0.05)))
        g = tuple(float(x) for x in rng.normal(0, 0.01, 3))
        host = t + 0.002 + (0.0 if delay_s is None else float(delay_s[i]))
        out.append(ImuSample(sensor_id, site, t - start_s + 7.0, host, seq, a, g, mag, None, status))  # type: ignore[arg-type]
    return out  # in sampling order: one link delivers in order


def verdict(monitor: QualityMonitor, code: str, sensor: str = "shank_l"):
    found = [v for v in monitor.verdicts_ if v.code == code and v.subject == sensor]
    assert len(found) == 1, [(v.code, v.subject) for v in monitor.verdicts_]
    return found[0]


def feed(items: list, monitor: QualityMonitor, batch: int = 10) -> QualityMonitor:
    for k in range(0, len(items), batch):
        monitor.update(items[k:k + batch])
    return monitor


def test_healthy_stream_is_all_ok() -> None:
    monitor = feed(stream(), QualityMonitor(nominal_rate_hz=RATE_HZ))
    assert all(v.level is Level.OK for v in monitor.verdicts_), [v.message for v in monitor.verdicts_]
    codes = {v.code for v in monitor.verdicts_}
    assert codes == {"quality.connection", "quality.rate", "quality.loss", "quality.jitter", "quality.clipping",
                     "quality.magnetic", "quality.battery", "quality.rssi"}
    stats = monitor.stats_["s1"]
    assert stats.rate_hz == pytest.approx(RATE_HZ, rel=1e-6)
    assert stats.loss_pct == 0.0
    assert stats.jitter_ms < 1.0


@pytest.mark.parametrize(("lost_pct", "level"), [(0.5, Level.OK), (3.0, Level.WARNING), (8.0, Level.FAIL)])
def test_loss_from_sequence_numbers(lost_pct: float, level: Level) -> None:
    rng = np.random.default_rng(1)
    drop = set(rng.choice(np.arange(1, 999), int(lost_pct * 10), replace=False).tolist())
    monitor = feed(stream(drop=drop), QualityMonitor(nominal_rate_hz=RATE_HZ))
    v = verdict(monitor, "quality.loss")
    assert v.level is level
    assert v.details["loss_pct"] == pytest.approx(lost_pct, abs=0.15)
    if level is not Level.OK:
        assert f"{lost_pct:.1f} %" in v.message
        assert v.action


def test_sequence_wrap_is_not_a_loss() -> None:
    monitor = feed(stream(seq_offset=65536 - 300, seq_modulus=65536), QualityMonitor(nominal_rate_hz=RATE_HZ))
    assert verdict(monitor, "quality.loss").details["loss_pct"] == 0.0


def test_disconnect_and_silence_and_reconnect() -> None:
    monitor = QualityMonitor(nominal_rate_hz=RATE_HZ)
    items = stream(400)
    feed(items, monitor)
    monitor.update([LinkEvent("s1", Site.SHANK_L, LinkState.DISCONNECTED, items[-1].host_time_s, "BLE link lost")])
    v = verdict(monitor, "quality.connection")
    assert v.level is Level.FAIL
    assert v.message == "The left shank sensor is disconnected."
    assert "switched on" in v.action
    monitor.update([LinkEvent("s1", Site.SHANK_L, LinkState.CONNECTED, items[-1].host_time_s + 0.5)])
    assert verdict(monitor, "quality.connection").level is Level.OK
    monitor.update([], now_s=items[-1].host_time_s + 3.0)
    v = verdict(monitor, "quality.connection")
    assert v.level is Level.FAIL
    assert "No data from the left shank sensor for 3.0 s" in v.message


def test_expected_sensor_that_never_sends() -> None:
    monitor = QualityMonitor(expected_sensors={"s1": Site.SHANK_L, "p1": Site.PELVIS})
    feed(stream(100), monitor)
    v = verdict(monitor, "quality.connection", "pelvis")
    assert v.level is Level.FAIL
    assert v.message == "No data from the pelvis sensor yet."


@pytest.mark.parametrize(("battery", "level"), [(80.0, Level.OK), (15.0, Level.WARNING), (8.0, Level.FAIL)])
def test_battery(battery: float, level: Level) -> None:
    monitor = feed(stream(100, battery=battery), QualityMonitor())
    v = verdict(monitor, "quality.battery")
    assert v.level is level
    if level is Level.FAIL:
        assert v.message == "Battery of the left shank sensor at 8 %."
        assert v.action == "Charge or replace it before the walk."


def test_battery_reported_once_is_remembered() -> None:
    items = stream(400, battery=None)
    items[0] = ImuSample(**{**{f: getattr(items[0], f) for f in items[0].__slots__},
                            "status": DeviceStatus(battery_pct=9.0)})
    monitor = feed(items, QualityMonitor())
    assert verdict(monitor, "quality.battery").level is Level.FAIL


@pytest.mark.parametrize(("rssi", "level"), [(-70.0, Level.OK), (-85.0, Level.WARNING), (-95.0, Level.FAIL)])
def test_radio_signal(rssi: float, level: Level) -> None:
    assert verdict(feed(stream(100, rssi=rssi), QualityMonitor()), "quality.rssi").level is level


def test_clipping_by_value_and_by_device_counter() -> None:
    items = stream(1000)
    hit = stream(1000, acc=(16.0 * G_M_S2, 0.0, 0.0))
    mixed = [hit[i] if i % 100 == 0 else items[i] for i in range(1000)]  # 10 of 1000 at full scale
    v = verdict(feed(mixed, QualityMonitor()), "quality.clipping")
    assert v.level is Level.WARNING
    assert v.details["n_clipped"] == 10
    assert "end of its measuring range 10 times" in v.message
    counted = stream(1000, clip_counts=np.repeat(np.arange(50), 20))  # device counted 49 clips in the window
    v = verdict(feed(counted, QualityMonitor()), "quality.clipping")
    assert v.level is Level.FAIL
    assert v.details["n_clipped"] == 49


def test_rate_below_nominal_and_jitter() -> None:
    monitor = feed(stream(500, rate_hz=100.0), QualityMonitor(nominal_rate_hz=RATE_HZ))
    v = verdict(monitor, "quality.rate")
    assert v.level is Level.FAIL
    assert "100 samples per second instead of 200" in v.message
    # The link stalls for 150 ms every 0.5 s; what was sampled meanwhile arrives, in order, when it resumes.
    sampled = np.arange(1000) / RATE_HZ
    resume = np.floor(sampled / 0.5) * 0.5 + 0.15
    delay = np.where(sampled % 0.5 < 0.15, resume - sampled, 0.0)
    v = verdict(feed(stream(delay_s=delay), QualityMonitor(nominal_rate_hz=RATE_HZ)), "quality.jitter")
    assert v.level is Level.WARNING
    assert 100.0 < v.details["jitter_ms"] <= 150.0
    assert "arrives irregularly" in v.message


def test_magnetic_disturbance_and_stuck_sensor() -> None:
    disturbed = feed(stream(300, mag=(80.0, 0.0, -40.0)), QualityMonitor(uses_magnetometer=True))
    assert verdict(disturbed, "quality.magnetic").level is Level.WARNING
    calm = feed(stream(300, mag=(80.0, 0.0, -40.0)), QualityMonitor())
    assert verdict(calm, "quality.magnetic").level is Level.OK
    frozen = [ImuSample(s.sensor_id, s.site, s.device_time_s, s.host_time_s, s.seq, (0.1, 0.2, 9.8), (0.0, 0.0, 0.0))
              for s in stream(300)]
    assert verdict(feed(frozen, QualityMonitor()), "quality.stuck").level is Level.FAIL


def test_window_slides_and_memory_stays_bounded() -> None:
    monitor = QualityMonitor(window_s=2.0, nominal_rate_hz=RATE_HZ)
    drop = set(range(100, 400))  # a 1.5 s hole early on
    items = stream(12000, drop=drop)  # 60 s
    for k in range(0, len(items), 10):
        monitor.update(items[k:k + 10])
        if k % 2000 == 0:
            _ = monitor.verdicts_
        state = monitor._sensors["s1"]
        assert len(state.pending) <= state.capacity
        assert sum(c.n for c in state.chunks) <= 2 * state.capacity + len(state.pending)
    assert verdict(monitor, "quality.loss").level is Level.OK  # the hole has left the window
    # The window is 2 s rounded out to whole summaries (at most one read interval or one capacity of samples more).
    state = monitor._sensors["s1"]
    assert 2.0 * RATE_HZ - 2 <= monitor.stats_["s1"].n_samples <= 2.0 * RATE_HZ + state.capacity


def test_grid_blocks_give_loss_clipping_and_magnetic_figures() -> None:
    n = 500
    rng = np.random.default_rng(0)
    valid = np.ones(n, bool)
    valid[100:160] = False  # 60 of 500 rows missing
    acc = np.tile([0.0, 0.0, G_M_S2], (n, 1)) + 0.05 * rng.standard_normal((n, 3))
    acc[~valid] = np.nan
    gyr = 0.01 * rng.standard_normal((n, 3))
    gyr[~valid] = np.nan
    mag = np.tile([20.0, 0.0, -44.0], (n, 1))
    kit = KitSignals(100.0, np.arange(n) / 100.0, {Site.PELVIS: SiteSignals("p1", valid, acc, gyr, mag)})
    monitor = QualityMonitor(window_s=5.0)
    for k in range(0, n, 10):
        monitor.update(KitSignals(100.0, kit.time_s[k:k + 10], {Site.PELVIS: SiteSignals(
            "p1", valid[k:k + 10], acc[k:k + 10], gyr[k:k + 10], mag[k:k + 10])}))
    v = verdict(monitor, "quality.loss", "pelvis")
    assert v.level is Level.FAIL
    assert v.details["loss_pct"] == pytest.approx(12.0)
    assert v.details["longest_gap_s"] == pytest.approx(0.6)
    assert monitor.stats_["p1"].source == "grid"
    assert verdict(monitor, "quality.magnetic", "pelvis").level is Level.OK
