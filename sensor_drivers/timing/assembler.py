"""The live timing path of a kit: stream items in, grid rows out.

One :class:`~sensor_drivers.timing.sample_timer.SampleTimer` per sensor maps each sample to host time, and one
:class:`~sensor_drivers.timing.resample.StreamingResampler` puts all sensors on one grid. Link events mark gaps in
both (a gap is never interpolated across) and tell the timer that an index can no longer be trusted.

:meth:`GridAssembler.feed` only queues an item; :meth:`~GridAssembler.emit` (call it every 50-100 ms) times and
resamples everything queued since the last call, in order, then interpolates the rows that became final: one burst
of work while the code and the sensors' state are in the CPU's caches (a live consumer wakes 25 times a second to
cold caches, and that, not the arithmetic, is most of what the path costs: ``docs/drivers.md``, "Measured"). Per
sample this is a few dozen float operations and list appends. Fed blocks (:class:`~sensor_drivers.blocks.SampleBlock`,
from a driver's ``stream_blocks()``) instead of single samples, the clock mapping and the resampler take each block
in one call: the same grid, at a fraction of the cost per sample.
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
        self._queued: list[StreamItem | SampleBlock] = []

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
        """One sample, block of samples or link event from a driver's stream (``stream()`` or ``stream_blocks()``).

        Only queued (after checking that its sensor was added): the queue is timed and resampled, in order, at the
        next :meth:`emit` or :meth:`flush`, in one go while the code and the sensors' state are in the CPU's caches.
        """
        if item.sensor_id not in self.timers:
            kind = {ImuSample: "sample", SampleBlock: "block"}.get(type(item), "link event")
            raise KeyError(f"GridAssembler: {kind} of unknown sensor {item.sensor_id!r}; added: {sorted(self.timers)}")
        self._queued.append(item)

    def feed_block(self, block: SampleBlock) -> None:
        """Same as :meth:`feed` for a block of samples."""
        self.feed(block)

    def link_event(self, event: LinkEvent) -> None:
        """Same as :meth:`feed` for a link event (for callers that dispatch by type)."""
        self.feed(event)

    def emit(self, now_s: float) -> GridBlock | None:
        """Grid rows final at host time ``now_s`` (see ``StreamingResampler.emit``), after timing what was fed."""
        if self._queued:
            self._process()
        return self.resampler.emit(now_s)

    def flush(self) -> GridBlock | None:
        """The remaining rows at the end of the stream."""
        if self._queued:
            self._process()
        return self.resampler.flush()

    def _process(self) -> None:
        """Time and resample the queued items, in the order they were fed."""
        items, self._queued = self._queued, []
        timers = self.timers
        routes = self._routes
        push, push_block = self._push, self.resampler.push_block
        for item in items:
            kind = type(item)
            if kind is SampleBlock:
                times = timers[item.sensor_id].stamp_block(item.device_time_s, item.seq, [item.host_time_s] * len(item))
                rows = item.rows
                if None in times:  # duplicates (a repeated counter value) are dropped
                    kept = [k for k, t in enumerate(times) if t is not None]
                    rows = tuple(rows[k] for k in kept)
                    times = [times[k] for k in kept]
                push_block(item.sensor_id, times, rows)  # type: ignore[arg-type]
            elif kind is ImuSample:
                time_s = routes[item.sensor_id](item.device_time_s, item.seq, item.host_time_s)
                if time_s is not None:
                    push(item.sensor_id, time_s, sample_row(item))
            else:
                timers[item.sensor_id].link_event(item)
                if item.state is not LinkState.CONNECTED:
                    self.resampler.mark_gap(item.sensor_id)
