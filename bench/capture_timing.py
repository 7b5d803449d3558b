"""Capture timing: clock-sync accuracy and the CPU cost of timestamping + resampling (``stridetwin bench timing``).

(a) Clock sync: a 200 Hz sensor whose clock drifts by 100 ppm (and starts at an arbitrary offset) is delivered over
    simulated BLE (connection intervals 7.5, 15 and 30 ms, 100 ms stalls) and USB-serial (1-16 ms buffering) links;
    the mapped sample times are compared with the true host-clock sample times. Goal: ≤ 1 ms over 5 minutes.
    Figures for the batch fit of the recording and for the streaming (causal) estimate.
(b) CPU: 5 sensors × 200 Hz of ``ImuSample`` objects through :class:`~sensor_drivers.timing.assembler.GridAssembler`
    (clock mapping + streaming resampling to a 100 Hz grid, rows emitted every 50 ms), as % of one core (process
    time / duration of the data), and as a ratio against a baseline measured in the same run: iterating the same
    samples and appending their times and values to lists. Goal (with decoding): ≤ 2 % of one core.

All data is generated here (``sensor_drivers.timing.transport_sim``); fixed seeds, so runs are comparable.
"""

from __future__ import annotations

import time

import numpy as np

from sensor_drivers.sample import ImuSample
from sensor_drivers.sites import KIT_SITES
from sensor_drivers.timing.assembler import GridAssembler
from sensor_drivers.timing.clock import ClockSync
from sensor_drivers.timing.resample import sample_row
from sensor_drivers.timing.transport_sim import BleLatency, SerialLatency, device_clock

RATE_HZ = 200.0
DRIFT_PPM = 100.0
#: Streaming figures are also given after this much time: over BLE the envelope touches its floor only when the
#: slow phase slide of sample instants against connection events passes zero (every period / relative drift).
STREAM_SETTLE_S = 120.0

LINKS = {
    "ble_7.5ms": BleLatency(connection_interval_s=0.0075, max_packets_per_event=4),
    "ble_15ms": BleLatency(connection_interval_s=0.015, max_packets_per_event=6),
    "ble_30ms": BleLatency(connection_interval_s=0.030, max_packets_per_event=10),
    "serial": SerialLatency(),
}


def _ms(x: np.ndarray) -> tuple[float, float]:
    return round(float(np.max(np.abs(x))) * 1e3, 3), round(float(np.sqrt(np.mean(x**2))) * 1e3, 3)


def clock_accuracy(duration_s: float, seed: int = 7) -> dict[str, float]:
    """Errors of mapped sample times (ms) per simulated link, batch and streaming."""
    out: dict[str, float] = {}
    n = int(duration_s * RATE_HZ)
    for k, (name, link) in enumerate(LINKS.items()):
        rng = np.random.default_rng(seed + k)
        true_host_s, device_s = device_clock(n, RATE_HZ, DRIFT_PPM, offset_s=812.345, device_start_s=4711.0)
        host_s = link.arrivals(true_host_s, rng)
        # The latency floor is invisible to one-way timestamps; it is given as the known constant it is.
        sync = ClockSync(fixed_latency_s=link.floor_s)
        streamed = np.array([sync.update(d, h) for d, h in zip(device_s.tolist(), host_s.tolist(), strict=True)])
        stream_err = streamed - true_host_s
        sync.fit(device_s, host_s)
        batch_err = sync.mapped_s_ - true_host_s
        out[f"{name}_batch_max_ms"], out[f"{name}_batch_rms_ms"] = _ms(batch_err)
        out[f"{name}_drift_error_ppm"] = round(sync.drift_ppm_ - DRIFT_PPM, 3)
        out[f"{name}_stream_max_ms"], out[f"{name}_stream_rms_ms"] = _ms(stream_err)
        settled = true_host_s - true_host_s[0] >= STREAM_SETTLE_S
        if settled.any():
            out[f"{name}_stream_after_{STREAM_SETTLE_S:.0f}s_max_ms"] = _ms(stream_err[settled])[0]
        out[f"{name}_resets"] = sync.n_resets_
    return out


def _kit_items(duration_s: float, seed: int) -> tuple[list[ImuSample], list[bool]]:
    """Five sensors at 200 Hz with drifting clocks and quaternions, merged in host arrival order."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE_HZ)
    merged: list[tuple[float, int, ImuSample]] = []
    with_quat = []
    for k, site in enumerate(KIT_SITES):
        link = LINKS["serial"] if k % 2 else LINKS["ble_15ms"]
        # A common host clock (all sensors start near host time 500 s); device clocks with their own origins.
        drift_ppm = rng.uniform(-100, 100)
        dev_start_s = rng.uniform(10.0, 1000.0)
        offset_s = 500.0 - (1.0 + drift_ppm * 1e-6) * dev_start_s + rng.uniform(0.0, 1.0 / RATE_HZ)
        true_s, dev_s = device_clock(n, RATE_HZ, drift_ppm, offset_s, dev_start_s)
        host_s = link.arrivals(true_s, rng)
        t = true_s - true_s[0]
        acc = np.stack([np.sin(7 * t), np.cos(5 * t), 9.81 + 0.1 * np.sin(3 * t)], axis=1)
        gyr = np.stack([0.5 * np.cos(7 * t), 0.1 * np.sin(2 * t), 0.2 * np.cos(t)], axis=1)
        half = 0.3 * np.sin(2 * t)
        quat = np.stack([np.cos(half), np.sin(half), 0 * t, 0 * t], axis=1)
        has_quat = k == 0
        with_quat.append(has_quat)
        for i in range(n):
            sample = ImuSample(
                sensor_id=site.value,
                site=site,
                device_time_s=float(dev_s[i]),
                host_time_s=float(host_s[i]),
                seq=i % 65536,
                acc_m_s2=tuple(acc[i].tolist()),
                gyr_rad_s=tuple(gyr[i].tolist()),
                quat_wxyz=tuple(quat[i].tolist()) if has_quat else None,
            )
            merged.append((float(host_s[i]), k, sample))
    merged.sort(key=lambda x: (x[0], x[1]))
    return [m[2] for m in merged], with_quat


def _run_assembler(items: list[ImuSample], with_quat: list[bool], emit_period_s: float) -> float:
    assembler = GridAssembler(rate_hz=100.0)
    for site, has_quat in zip(KIT_SITES, with_quat, strict=True):
        assembler.add_sensor(site.value, RATE_HZ, has_quat=has_quat)
    feed = assembler.feed
    next_emit = items[0].host_time_s + emit_period_s
    start = time.process_time()
    for item in items:
        if item.host_time_s >= next_emit:
            assembler.emit(item.host_time_s)
            next_emit += emit_period_s
        feed(item)
    assembler.flush()
    return time.process_time() - start


def _run_baseline(items: list[ImuSample]) -> float:
    by_sensor: dict[str, tuple[list[float], list[tuple[float, ...]]]] = {s.value: ([], []) for s in KIT_SITES}
    start = time.process_time()
    for item in items:
        times, values = by_sensor[item.sensor_id]
        times.append(item.host_time_s)
        values.append(sample_row(item))
    return time.process_time() - start


def cpu_cost(duration_s: float, repeats: int) -> dict[str, float]:
    """CPU of the live timing path for 5 × 200 Hz, as % of one core, and against the list-append baseline."""
    items, with_quat = _kit_items(duration_s, seed=11)
    out: dict[str, float] = {"cpu_samples": len(items), "cpu_data_duration_s": duration_s}
    baseline = min(_run_baseline(items) for _ in range(repeats))
    out["cpu_baseline_append_pct_core"] = round(100.0 * baseline / duration_s, 3)
    for period_ms in (50, 100):
        cost = min(_run_assembler(items, with_quat, period_ms / 1000.0) for _ in range(repeats))
        out[f"cpu_timing_resample_emit{period_ms}ms_pct_core"] = round(100.0 * cost / duration_s, 3)
        out[f"cpu_timing_resample_emit{period_ms}ms_us_per_sample"] = round(1e6 * cost / len(items), 2)
        out[f"cpu_timing_resample_emit{period_ms}ms_vs_baseline"] = round(cost / baseline, 2)
    return out


def run(quick: bool) -> dict:
    """Both parts; ``quick`` shortens the CPU run to 10 s (the clock part always simulates 5 minutes: over BLE the
    envelope needs minutes to show its floor, so a shorter run would measure a different thing)."""
    figures: dict[str, float] = {
        "clock_duration_s": 300.0,
        "clock_rate_hz": RATE_HZ,
        "clock_drift_ppm": DRIFT_PPM,
    }
    figures.update(clock_accuracy(figures["clock_duration_s"]))
    figures.update(cpu_cost(10.0 if quick else 60.0, repeats=2 if quick else 3))
    return figures
