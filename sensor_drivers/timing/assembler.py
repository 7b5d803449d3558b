"""The live timing path of a kit: stream items in, grid rows out.

One :class:`~sensor_drivers.timing.sample_timer.SampleTimer` per sensor maps each sample to host time, and one
:class:`~sensor_drivers.timing.resample.StreamingResampler` puts all sensors on one grid. Link events mark gaps in
both (a gap is never interpolated across) and tell the timer that an index can no longer be trusted.

Per sample this is a few dozen float operations and list appends; the numpy work happens once per :meth:`emit`,
vectorised over everything that arrived since the last call (call it every 50-100 ms). Fed blocks
(:class:`~sensor_drivers.blocks.SampleBlock`, from a driver's ``stream_blocks()``) instead of single samples, the
clock mapping and the resampler take each block in one call: the same grid, at a fraction of the cost per sample.
"""

from __future__ import annotations

from collections.abc import Callable

from sensor_drivers.blocks import SampleBlock
from sensor_drivers.sample import ImuSample, LinkEvent, LinkState, StreamItem
from sensor_drivers.timing.clock import ClockSync
from sensor_drivers.timing.resample import GridBlock, StreamingResampler, sample_row
from sensor_drivers.timing.sample_timer import SampleTimer


class GridAssembler:
    """Timestamps and resamples the samples of several sensors as they arrive.

    Parameters
    ----------
    rate_hz, gap_factor, latency_budget_s
        Passed to :class:`~sensor_drivers.timing.resample.StreamingResampler`.
    """

    def __init__(self, rate_hz: float = 100.0, gap_factor: float = 1.5, latency_budget_s: float = 0.25) -> None:
        self.rate_hz = rate_hz
        self.gap_factor = gap_factor
        self.latency_budget_s = latency_budget_s
        self.resampler = StreamingResampler(rate_hz, gap_factor, latency_budget_s)
        #: Per sensor: its timer (clock model and counters).
        self.timers: dict[str, SampleTimer] = {}
        # The timers' stamp methods, looked up once per sample.
        self._routes: dict[str, Callable[[float | None, int | None, float], float | None]] = {}
        self._push = self.resampler.push

    def add_sensor(
        self,
        sensor_id: str,
        nominal_rate_hz: float,
        has_mag: bool = False,
        has_quat: bool = False,
        transport: str = "serial",
        seq_modulus: int | None = None,
        clock: ClockSync | None = None,
        device_seq: bool = True,
    ) -> None:
        """Declare a sensor before its first sample (``has_mag``/``has_quat``: which optional channels the grid
        carries for it; ``transport``, ``seq_modulus``, ``clock`` and ``device_seq`` as for ``SampleTimer``)."""
        self.resampler.add_sensor(sensor_id, nominal_rate_hz, has_mag, has_quat)
        timer = SampleTimer(nominal_rate_hz, seq_modulus, transport, clock, device_seq)
        self.timers[sensor_id] = timer
        self._routes[sensor_id] = timer.stamp

    def feed(self, item: StreamItem | SampleBlock) -> None:
        """One sample, block of samples or link event from a driver's stream (``stream()`` or ``stream_blocks()``)."""
        kind = type(item)
        if kind is SampleBlock:
            self.feed_block(item)  # type: ignore[arg-type]
            return
        if kind is ImuSample:
            stamp = self._routes.get(item.sensor_id)
            if stamp is None:
                raise KeyError(
                    f"GridAssembler: sample of unknown sensor {item.sensor_id!r}; added: {sorted(self.timers)}"
                )
            time_s = stamp(item.device_time_s, item.seq, item.host_time_s)
            if time_s is not None:
                self._push(item.sensor_id, time_s, sample_row(item))
            return
        timer = self.timers.get(item.sensor_id)
        if timer is None:
            raise KeyError(
                f"GridAssembler: link event of unknown sensor {item.sensor_id!r}; added: {sorted(self.timers)}"
            )
        timer.link_event(item)
        if item.state is not LinkState.CONNECTED:
            self.resampler.mark_gap(item.sensor_id)

    def feed_block(self, block: SampleBlock) -> None:
        """A block of samples: the same as feeding its samples one by one, mapped per block."""
        timer = self.timers.get(block.sensor_id)
        if timer is None:
            raise KeyError(f"GridAssembler: block of unknown sensor {block.sensor_id!r}; added: {sorted(self.timers)}")
        times = timer.stamp_block(block.device_time_s, block.seq, [block.host_time_s] * len(block))
        rows = block.rows
        if None in times:  # duplicates (a repeated counter value) are dropped, as in feed()
            kept = [k for k, t in enumerate(times) if t is not None]
            rows = tuple(rows[k] for k in kept)
            times = [times[k] for k in kept]
        self.resampler.push_block(block.sensor_id, times, rows)  # type: ignore[arg-type]

    def link_event(self, event: LinkEvent) -> None:
        """Same as :meth:`feed` for a link event (for callers that dispatch by type)."""
        self.feed(event)

    def emit(self, now_s: float) -> GridBlock | None:
        """Grid rows final at host time ``now_s`` (see ``StreamingResampler.emit``)."""
        return self.resampler.emit(now_s)

    def flush(self) -> GridBlock | None:
        """The remaining rows at the end of the stream."""
        return self.resampler.flush()
