"""The live pipeline: driver stream items → 100 Hz grid → per-block ``KitSignals`` → live components → plot buffers.

::

    pipeline = LivePipeline(sensors, clock_origin_host_s=origin)
    for item in stream:                 # ImuSample / LinkEvent, as the driver delivers them
        pipeline.feed(item)
        if due:                         # every 50-100 ms
            update = pipeline.step()    # LiveUpdate: new provisional events, angles, verdicts … (or None)
    pipeline.plots_.snapshot()          # the last ``plot_window_s`` of every channel, for the UI's timer

Per block the pipeline runs the orientation's live form (fusion, calibration once enough walking was seen, joint
angles), :class:`~capture_app.core.gait.LiveGait` (provisional events and strides) and the live
``QualityMonitor`` (stream items and grid rows), and depending on the session's state (:meth:`on_transition`) the
placement checks: the standing check while in ``placement_check``, the segment/side identification once the first
strides of the walk are in. Everything it holds is bounded: ring buffers of fixed length (plots: ``plot_window_s``;
checks: ``check_buffer_s``), the components' own bounded state, and the items of one step. It never runs on a GUI
thread: :mod:`.runner` drives it from an asyncio task in a worker thread.

Times: grid rows are at ``k / rate_hz`` of host time (``GridAssembler``); the pipeline shifts them to the clip clock
(host time − ``clock_origin_host_s``). The session picks an origin on the grid, so live rows fall on the same clip
times as the offline grid of the finished clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capture_app.core.gait import GaitEvent, LiveGait, Stride
from capture_app.core.session import stages
from capture_app.core.session.ring import PlotBuffers, RingBuffer
from capture_app.core.session.state import SessionState, Transition
from capture_app.core.signals import KitSignals, SiteSignals
from capture_app.core.verdict import Level, Verdict, worst
from sensor_drivers.drivers.base import SensorInfo
from sensor_drivers.sample import ImuSample, StreamItem
from sensor_drivers.sites import Site
from sensor_drivers.timing.assembler import GridAssembler
from sensor_drivers.timing.resample import GridBlock

FloatArray = NDArray[np.float64]


@dataclass
class LiveUpdate:
    """What one :meth:`LivePipeline.step` produced (clip clock)."""

    #: First and last grid time of the block, s.
    start_s: float
    end_s: float
    n_rows: int
    new_events: list[GaitEvent] = field(default_factory=list)
    new_strides: list[Stride] = field(default_factory=list)
    cadence_steps_min: float | None = None
    #: Latest finite value of each joint angle in the block, degrees (empty before the calibration).
    angles_deg: dict[str, float] = field(default_factory=dict)
    #: The live quality verdicts, when they were evaluated in this step (else ``None``).
    quality_verdicts: list[Verdict] | None = None
    #: The placement verdicts, when a check ran in this step (else ``None``).
    placement_verdicts: list[Verdict] | None = None
    #: Seconds of still period so far (in the ``still`` state).
    still_s: float = 0.0


class _CheckBuffer:
    """The last ``capacity`` grid rows of every site (valid, acc, gyr): what the placement checks read."""

    def __init__(self, sites: dict[str, Site], capacity: int, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        self.time_s = RingBuffer(capacity)
        self.sites = {sensor_id: (site, RingBuffer(capacity, 7)) for sensor_id, site in sites.items()}

    def append(self, block: KitSignals) -> None:
        self.time_s.append(block.time_s)
        for sensor_id, (site, ring) in self.sites.items():
            s = block.sites.get(site)
            if s is None or s.sensor_id != sensor_id:
                ring.append(np.full((block.n_samples, 7), np.nan))
            else:
                ring.append(np.column_stack([s.valid, s.acc_m_s2, s.gyr_rad_s]))

    def kit(self) -> KitSignals:
        time_s = self.time_s.view()[:, 0]
        sites = {}
        for sensor_id, (site, ring) in self.sites.items():
            rows = ring.view()
            sites[site] = SiteSignals(sensor_id, rows[:, 0] > 0.5, rows[:, 1:4], rows[:, 4:7])
        return KitSignals(self.rate_hz, time_s, sites)

    @property
    def nbytes(self) -> int:
        return self.time_s.nbytes + sum(r.nbytes for _, r in self.sites.values())


class LivePipeline:
    """The live processing of a kit's stream (module docstring).

    Parameters: ``sensors`` (the kit; sensors on unknown sites are timed but not analysed), ``clock_origin_host_s``
    (host time of the clip clock's zero), ``rate_hz`` (grid), ``plot_window_s`` (plot buffers), ``check_buffer_s``
    (rows kept for the placement checks), ``quality_interval_s`` (how often the quality verdicts are evaluated),
    ``static_window_s`` / ``min_static_s`` / ``static_every_s`` (the standing check: window, least data, repeat),
    ``identify_after_s`` (walking before the identification runs), ``with_mag`` (carry magnetometers on the grid),
    ``orientation`` / ``gait`` / ``quality`` (live components; ``None``: the defaults, ``False``: off).

    Results, over the stream so far: ``plots_`` (:class:`PlotBuffers`), ``gait_`` (the ``LiveGait``, with
    ``events_``/``strides_``), ``quality_verdicts_``, ``placement_verdicts_``, ``placement_level_`` (``None`` before
    the standing check ran), ``proposed_assignment_`` (site → sensor id from the identification, ``{}`` before),
    ``calibrated_``, ``still_s_``, ``n_rows_``.
    """

    def __init__(
        self,
        sensors: Sequence[SensorInfo],
        clock_origin_host_s: float = 0.0,
        rate_hz: float = 100.0,
        plot_window_s: float = 10.0,
        check_buffer_s: float = 30.0,
        quality_interval_s: float = 0.5,
        static_window_s: float = 3.0,
        min_static_s: float = 1.5,
        static_every_s: float = 1.0,
        identify_after_s: float = 8.0,
        with_mag: bool = False,
        orientation: Any | None = None,
        gait: LiveGait | None = None,
        quality: Any | None = None,
    ) -> None:
        self.sensors = list(sensors)
        self.clock_origin_host_s = clock_origin_host_s
        self.rate_hz = rate_hz
        self.plot_window_s = plot_window_s
        self.check_buffer_s = check_buffer_s
        self.quality_interval_s = quality_interval_s
        self.static_window_s = static_window_s
        self.min_static_s = min_static_s
        self.static_every_s = static_every_s
        self.identify_after_s = identify_after_s
        self.with_mag = with_mag
        self.orientation = orientation
        self.gait = gait
        self.quality = quality
        self.reset()

    def reset(self) -> LivePipeline:
        """Start afresh (a new trial): new grid, components and buffers."""
        self._sites = {s.sensor_id: s.site for s in self.sensors if isinstance(s.site, Site)}
        self.assembler = GridAssembler(rate_hz=self.rate_hz)
        for s in self.sensors:
            self.assembler.add_sensor(s.sensor_id, s.nominal_rate_hz or 100.0, has_mag=self.with_mag,
                                      transport=s.transport if s.transport in ("serial", "ble", "sim") else "serial")
        self.orientation_ = (None if self.orientation is False
                             else (self.orientation or stages.orientation_pipeline()))  # fmt: skip
        if self.orientation_ is not None:
            self.orientation_.reset()
        self.gait_ = None if self.gait is False else (self.gait or LiveGait(rate_hz=self.rate_hz))
        if self.gait_ is not None:
            self.gait_.reset()
        nominal = {s.sensor_id: s.nominal_rate_hz for s in self.sensors if s.nominal_rate_hz}
        self.quality_ = (None if self.quality is False else (self.quality or stages.quality_monitor(
            nominal_rate_hz=nominal or None, expected_sensors=dict(self._sites) or None,
            uses_magnetometer=self.with_mag,
        )))  # fmt: skip
        if self.quality_ is not None:
            self.quality_.reset()
        self._angle_names = stages.angle_names() if self.orientation_ is not None else ()
        channels = {f"{site.value}.{kind}": 3 for site in self._sites.values() for kind in ("acc_m_s2", "gyr_rad_s")}
        channels.update({name: 1 for name in self._angle_names})
        self.plots_ = PlotBuffers(channels, self.plot_window_s, self.rate_hz)
        self._checks = _CheckBuffer(self._sites, max(1, round(self.check_buffer_s * self.rate_hz)), self.rate_hz)
        self._items: list[StreamItem] = []
        self._latest_host_s: float | None = None
        self._state = SessionState.CONNECTED
        self._state_since_s: float | None = None
        self._last_quality_s = -np.inf
        self._last_static_s = -np.inf
        self._identified = False
        self._still_reference: Any | None = None
        self._static_verdicts: list[Verdict] = []
        self.quality_verdicts_: list[Verdict] = []
        self.placement_verdicts_: list[Verdict] = []
        self.placement_level_: Level | None = None
        self.proposed_assignment_: dict[Site, str] = {}
        self.still_s_ = 0.0
        self.n_rows_ = 0
        self.end_s_: float | None = None
        return self

    # -- input -------------------------------------------------------------------------------------------------------
    def feed(self, item: StreamItem) -> None:
        """One stream item, in arrival order. Cheap: timing and a list append."""
        self.assembler.feed(item)
        self._items.append(item)
        if type(item) is ImuSample and (self._latest_host_s is None or item.host_time_s > self._latest_host_s):
            self._latest_host_s = item.host_time_s

    def on_transition(self, transition: Transition) -> None:
        """Follow the session's state (subscribe this to the state machine)."""
        self._state = transition.state
        self._state_since_s = transition.time_s if transition.time_s is not None else self.end_s_
        if transition.state is SessionState.PLACEMENT_CHECK:
            self._last_static_s = -np.inf
            self.placement_verdicts_, self.placement_level_, self._static_verdicts = [], None, []
        elif transition.state is SessionState.WALKING:
            self._identified = False
        elif transition.state is SessionState.STILL:
            self.still_s_ = 0.0

    # -- processing --------------------------------------------------------------------------------------------------
    def step(self, now_host_s: float | None = None) -> LiveUpdate | None:
        """Process the grid rows final at ``now_host_s`` (default: the latest sample's host time, so that a delayed
        step never drops samples that were waiting in a queue); ``None`` when no row is final yet."""
        now = now_host_s if now_host_s is not None else self._latest_host_s
        items, self._items = self._items, []
        if self.quality_ is not None and items:
            self.quality_.update(items)
        if now is None:
            return None
        return self._process(self.assembler.emit(now))

    def finish(self) -> LiveUpdate | None:
        """Process the rows left at the end of the stream."""
        items, self._items = self._items, []
        if self.quality_ is not None and items:
            self.quality_.update(items)
        return self._process(self.assembler.flush())

    def _process(self, block: GridBlock | None) -> LiveUpdate | None:
        if block is None or block.n_rows == 0:
            return None
        kit = self._kit(block)
        update = LiveUpdate(float(kit.time_s[0]), float(kit.time_s[-1]), kit.n_samples)
        self.n_rows_ += kit.n_samples
        self.end_s_ = update.end_s
        values: dict[str, FloatArray] = {}
        for site, s in kit.sites.items():
            values[f"{site.value}.acc_m_s2"] = s.acc_m_s2
            values[f"{site.value}.gyr_rad_s"] = s.gyr_rad_s
        if self.orientation_ is not None:
            self.orientation_.update(kit)
            for name, angle in self.orientation_.angles_deg_.items():
                values[name] = angle
                finite = np.flatnonzero(np.isfinite(angle))
                if finite.size:
                    update.angles_deg[name] = float(angle[finite[-1]])
        if self.gait_ is not None:
            self.gait_.update(kit)
            update.new_events = list(self.gait_.new_events_)
            update.new_strides = list(self.gait_.new_strides_)
            update.cadence_steps_min = self.gait_.cadence_steps_min_
        self.plots_.append(kit.time_s, values)
        self._checks.append(kit)
        if self.quality_ is not None:
            self.quality_.update(kit)
            if update.end_s - self._last_quality_s >= self.quality_interval_s:
                self._last_quality_s = update.end_s
                self.quality_verdicts_ = list(self.quality_.verdicts_)
                update.quality_verdicts = self.quality_verdicts_
        update.placement_verdicts = self._state_checks(update.end_s)
        update.still_s = self.still_s_
        return update

    def _kit(self, block: GridBlock) -> KitSignals:
        time_s = block.time_s - self.clock_origin_host_s
        sites: dict[Site, SiteSignals] = {}
        for sensor_id, grid in block.sensors.items():
            site = self._sites.get(sensor_id)
            if site is None or site in sites:
                continue
            sites[site] = SiteSignals(sensor_id, grid.valid, grid.acc_m_s2, grid.gyr_rad_s, grid.mag_ut, grid.quat_wxyz)
        return KitSignals(self.rate_hz, time_s, sites)

    def _state_checks(self, now_s: float) -> list[Verdict] | None:
        """The placement checks that belong to the current state; their verdicts when one ran."""
        since = self._state_since_s if self._state_since_s is not None else now_s
        if self._state is SessionState.STILL:
            self.still_s_ = max(0.0, now_s - since)
            return None
        if self._state is SessionState.PLACEMENT_CHECK:
            elapsed = now_s - since
            if elapsed < self.min_static_s or now_s - self._last_static_s < self.static_every_s:
                return None
            self._last_static_s = now_s
            check = stages.static_check()
            start = max(since, now_s - self.static_window_s)
            check.check(self._checks.kit(), (start, now_s + 0.5 / self.rate_hz))
            self._still_reference = check.reference_
            self._static_verdicts = list(check.verdicts_)
            self.placement_verdicts_ = list(check.verdicts_)
            self.placement_level_ = worst(self.placement_verdicts_)
            return self.placement_verdicts_
        if self._state is SessionState.WALKING and not self._identified:
            walked = self.gait_ is not None and sum(self.gait_.n_strides_.values()) >= 3
            if now_s - since < self.identify_after_s or not walked:
                return None
            self._identified = True
            identification = stages.sensor_identification()
            start = max(since, now_s - self.check_buffer_s + 0.1)
            identification.identify(self._checks.kit(), (start, now_s), self._still_reference)
            self.proposed_assignment_ = dict(identification.assignment_)
            self.placement_verdicts_ = self._static_verdicts + list(identification.verdicts_)
            self.placement_level_ = worst(self.placement_verdicts_)
            return self.placement_verdicts_
        return None

    @property
    def buffer_nbytes(self) -> int:
        """Memory of the pipeline's own ring buffers, bytes (constant for a kit)."""
        return self.plots_.nbytes + self._checks.nbytes

    @property
    def calibrated_(self) -> bool:
        return bool(getattr(self.orientation_, "calibrated_", False))
