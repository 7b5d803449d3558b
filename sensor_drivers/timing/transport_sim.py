"""Transport latency models: when does a sample taken at a given host instant reach the host program?

For tests and benchmarks of the clock model (and for anything that wants realistic arrival times without a radio).
Each model turns true sample instants on the host clock into host receive times, in arrival order, never earlier
than the sample plus the model's ``floor_s`` and never decreasing (a host stamps in the order it reads).

- :class:`BleLatency`: notifications leave the peripheral only at connection events, every ``connection_interval_s``
  on the central's controller clock (Bluetooth Core Specification v5.3, Vol 6, Part B, 4.5.1), at most
  ``max_packets_per_event`` per event; the controller hands them over USB (polled every ``usb_poll_s``) and the OS
  schedules the callback. Occasional stalls (missed events, interference) delay everything for ``stall_s``.
- :class:`SerialLatency`: a frame is complete after its transmission time; a USB-serial bridge forwards buffered
  bytes in bulk transfers every 1-16 ms (FTDI's latency timer defaults to 16 ms, AN232B-04), then the OS wakes the
  reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def device_clock(
    n_samples: int, sampling_rate_hz: float, drift_ppm: float, offset_s: float, device_start_s: float = 0.0
) -> tuple[FloatArray, FloatArray]:
    """A device sampling at exact intervals of its own clock: ``(true_host_time_s, device_time_s)``.

    ``host = offset_s + (1 + drift_ppm·1e-6) · device``: a positive drift means the device clock runs slow.
    """
    device_s = device_start_s + np.arange(n_samples) / sampling_rate_hz
    return offset_s + (1.0 + drift_ppm * 1e-6) * device_s, device_s


def _host_delay(n: int, rng: np.random.Generator, mean_s: float, spike_prob: float, spike_max_s: float) -> FloatArray:
    """OS scheduling delay: exponential, with rare longer spikes."""
    delay = rng.exponential(mean_s, n)
    spikes = rng.random(n) < spike_prob
    delay[spikes] += rng.uniform(0.0, spike_max_s, int(spikes.sum()))
    return delay


def _in_order(arrival_s: FloatArray, min_step_s: float) -> FloatArray:
    """Make receive times non-decreasing: the host reads one delivery after another."""
    i = np.arange(arrival_s.size) * min_step_s
    return np.maximum.accumulate(arrival_s - i) + i


@dataclass(frozen=True)
class BleLatency:
    """BLE notification delivery (see the module docstring). Defaults: a 15 ms interval, a USB dongle, a busy OS."""

    connection_interval_s: float = 0.015
    max_packets_per_event: int = 6
    #: Radio time plus the peripheral's processing before a sample can be sent.
    floor_s: float = 0.0005
    #: The controller's clock against the host clock (its crystal error), ppm.
    controller_ppm: float = 20.0
    usb_poll_s: float = 0.001
    os_delay_mean_s: float = 0.0003
    os_spike_prob: float = 0.01
    os_spike_max_s: float = 0.01
    #: Stalls per second (missed connection events in a row) and how long each lasts.
    stall_rate_hz: float = 0.05
    stall_s: float = 0.1

    def arrivals(self, true_host_s: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Host receive time of each sample (samples given in the order taken)."""
        ready = np.asarray(true_host_s, dtype=float) + self.floor_s
        interval = self.connection_interval_s * (1.0 + self.controller_ppm * 1e-6)
        first = ready[0] - rng.uniform(0.0, interval)
        duration = ready[-1] - first + 10.0
        events = first + np.arange(int(duration / interval) + 1) * interval
        n_stalls = rng.poisson(self.stall_rate_hz * duration)
        for start in rng.uniform(first, first + duration, n_stalls):
            events = events[(events < start) | (events >= start + self.stall_s)]
        delay = rng.uniform(0.0, self.usb_poll_s, events.size) + _host_delay(
            events.size, rng, self.os_delay_mean_s, self.os_spike_prob, self.os_spike_max_s
        )
        arrival = np.empty_like(ready)
        head = 0
        n = ready.size
        cap = self.max_packets_per_event
        # Each event sends the oldest queued samples that were ready before it (FIFO), up to its capacity.
        for e, d in zip(events.tolist(), delay.tolist(), strict=True):
            if head >= n:
                break
            avail = int(np.searchsorted(ready, e, side="right")) - head
            k = min(avail, cap)
            if k > 0:
                arrival[head : head + k] = e + d + 3e-5 * np.arange(k)
                head += k
        if head < n:
            raise ValueError(
                "BleLatency: the simulated link cannot carry this sample rate (raise max_packets_per_event)"
            )
        return _in_order(arrival, 1e-6)


@dataclass(frozen=True)
class SerialLatency:
    """USB-serial delivery (see the module docstring). Defaults: a 1-16 ms bridge and a lightly loaded OS."""

    #: Transmission time of one sample's frames (e.g. 44 bytes at 230400 baud ≈ 1.9 ms).
    floor_s: float = 0.002
    transfer_min_s: float = 0.001
    transfer_max_s: float = 0.016
    os_delay_mean_s: float = 0.0002
    os_spike_prob: float = 0.005
    os_spike_max_s: float = 0.02

    def arrivals(self, true_host_s: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Host receive time of each sample (samples given in the order taken)."""
        ready = np.asarray(true_host_s, dtype=float) + self.floor_s
        duration = ready[-1] - ready[0] + 1.0
        n_transfers = int(duration / self.transfer_min_s) + 2
        transfers = (
            ready[0]
            - rng.uniform(0.0, self.transfer_max_s)
            + np.cumsum(rng.uniform(self.transfer_min_s, self.transfer_max_s, n_transfers))
        )
        which = np.searchsorted(transfers, ready, side="left")
        delay = _host_delay(n_transfers, rng, self.os_delay_mean_s, self.os_spike_prob, self.os_spike_max_s)
        return _in_order(transfers[which] + delay[which], 1e-6)
