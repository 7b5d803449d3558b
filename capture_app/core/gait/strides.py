"""Strides per side (initial contact to the next of the same foot) and the steady-state section used for metrics.

A stride is built only between two swings of the same leg that lie in one run of valid rows, so a sensor gap never
joins two contacts it separates. Each stride carries its own toe-off and the other leg's events inside it (for
stance, swing, double support and step time). Strides are then marked steady or excluded, with the reason:

- ``acceleration`` / ``deceleration``: the first and last ``n_transition_strides`` (2) strides of each leg in each
  walking bout. Speed and cadence build up over the first steps and fall over the last (gait initiation: Miller &
  Verstraete 1996; longer in frail walkers: Lindemann et al. 2008); clinical walk tests leave out the first and last
  metres for the same reason.
- ``turn``: the walker's heading changed more than ``turn_threshold_deg`` (20°) over the stride, or a neighbouring
  stride turned. The heading change is the gyroscope's rotation about the sensor's mean 'up' (gravity) direction
  integrated over the stride, bias-corrected: from the pelvis sensor, else from the shank of that side (over a whole
  stride the shank's sagittal swing integrates to about zero and what remains is the change of heading).
- ``pause``: a stride lasting more than ``pause_factor`` (1.5) times the leg's median stride (a hesitation or a stop).

A steady stride one of whose events was estimated across a short gap in the data (:mod:`.events`) stays steady: it
counts for the number of strides, the cadence and the speed, but it is left out of the timing metrics that need that
event (``timing_excluded_from``, :data:`TIMING_EVENTS`), with the reason ``timing_excluded = "short_data_loss"``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from capture_app.core.gait.events import SIDES, Swing, valid_runs
from capture_app.core.signals import KitSignals
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.frames import G_M_S2
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]

SHANK_SITES: dict[str, Site] = {"left": Site.SHANK_L, "right": Site.SHANK_R}


#: The timing metric families and the stride events each one needs (docs/gait-metrics.md, "Timing around a short
#: data loss"): a stride whose event was estimated across a short gap is left out of the families that use that
#: event. ``stride_time``: stride time and its CV; ``step_time``: step time; ``stance_swing``: stance and swing times
#: and %, swing-time CV; ``double_support``: double support % (needs the stride time as its denominator too).
TIMING_EVENTS: dict[str, tuple[str, ...]] = {
    "stride_time": ("ic", "next_ic"),
    "step_time": ("previous_contra_ic", "ic"),
    "stance_swing": ("ic", "fc", "next_ic"),
    "double_support": ("ic", "contra_fc", "contra_ic", "fc", "next_ic"),
}
#: ``Stride.timing_excluded`` of a stride left out of some timing metrics: a short loss of sensor data around one of
#: its steps hid the exact moment of that event.
SHORT_DATA_LOSS = "short_data_loss"


def other_side(side: str) -> str:
    """``"right"`` for ``"left"`` and vice versa."""
    return "right" if side == "left" else "left"


@dataclass(frozen=True)
class Stride:
    """One stride of one leg, from its initial contact to the next one (clip clock, s)."""

    side: str
    ic_s: float
    next_ic_s: float
    #: This foot's toe-off inside the stride (end of stance), or ``None`` where it could not be placed.
    fc_s: float | None
    #: Mid-swing of the swing inside the stride.
    ms_s: float
    #: Other foot's toe-off after ``ic_s`` (end of the initial double support), or ``None``.
    contra_fc_s: float | None
    #: Other foot's initial contact inside the stride (start of the terminal double support), or ``None``.
    contra_ic_s: float | None
    #: Other foot's initial contact before ``ic_s`` (start of the step ending at ``ic_s``), or ``None``.
    previous_contra_ic_s: float | None
    #: Which walking bout the stride belongs to (0, 1, …), and the positions of its opening and closing swings among
    #: the leg's swings in that bout, counted from the bout's start and from its end (0 = first / last).
    bout: int = 0
    swings_from_start: int = 0
    swings_from_end: int = 0
    #: Shank rotation of the swing inside the stride (FC to next IC), rad; the stride-length model's input.
    excursion_rad: float | None = None
    #: Stride length (this foot's displacement over the stride) and the step length ending at ``ic_s``, m.
    length_m: float | None = None
    step_length_m: float | None = None
    #: Heading change over the stride, degrees (+ turning left), and the site it was measured on.
    heading_change_deg: float | None = None
    heading_site: str | None = None
    steady: bool = False
    #: Why the stride is not steady: "acceleration", "deceleration", "turn", "pause"; empty when steady.
    excluded: str = ""
    #: Which of the stride's event times were estimated across a short gap in the data (``GaitEvent.estimated``):
    #: names among "ic", "next_ic", "fc", "contra_fc", "contra_ic", "previous_contra_ic" (the fields above).
    estimated: tuple[str, ...] = ()

    @property
    def timing_excluded_from(self) -> tuple[str, ...]:
        """Timing metric families (:data:`TIMING_EVENTS`) this stride is left out of: those using an estimated event."""
        return tuple(family for family, needs in TIMING_EVENTS.items() if set(needs) & set(self.estimated))

    @property
    def timing_excluded(self) -> str:
        """Why the stride is left out of some timing metrics (:data:`SHORT_DATA_LOSS`), or empty."""
        return SHORT_DATA_LOSS if self.timing_excluded_from else ""

    @property
    def duration_s(self) -> float:
        """Stride time, s."""
        return self.next_ic_s - self.ic_s

    @property
    def stance_s(self) -> float | None:
        """Stance time (IC to FC), s."""
        return None if self.fc_s is None else self.fc_s - self.ic_s

    @property
    def swing_s(self) -> float | None:
        """Swing time (FC to next IC), s."""
        return None if self.fc_s is None else self.next_ic_s - self.fc_s

    @property
    def step_time_s(self) -> float | None:
        """Time from the other foot's contact to this foot's contact at ``ic_s``, s."""
        return None if self.previous_contra_ic_s is None else self.ic_s - self.previous_contra_ic_s

    @property
    def double_support_s(self) -> float | None:
        """Initial plus terminal double support inside the stride, s."""
        if None in (self.fc_s, self.contra_fc_s, self.contra_ic_s):
            return None
        initial = self.contra_fc_s - self.ic_s  # type: ignore[operator]
        terminal = self.fc_s - self.contra_ic_s  # type: ignore[operator]
        if initial < 0 or terminal < 0:
            return None
        return initial + terminal

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (``strides`` items of ``stridetwin analyze --json``)."""
        return {
            "side": self.side, "ic_s": self.ic_s, "next_ic_s": self.next_ic_s, "fc_s": self.fc_s,
            "duration_s": self.duration_s, "stance_s": self.stance_s, "swing_s": self.swing_s,
            "step_time_s": self.step_time_s, "double_support_s": self.double_support_s,
            "length_m": self.length_m, "step_length_m": self.step_length_m,
            "heading_change_deg": self.heading_change_deg, "heading_site": self.heading_site, "bout": self.bout,
            "steady": self.steady, "excluded": self.excluded, "estimated": list(self.estimated),
            "timing_excluded": self.timing_excluded, "timing_excluded_from": list(self.timing_excluded_from),
        }  # fmt: skip


class HeadingChange:
    """Heading change of the walker over a stride, from one sensor's gyroscope and accelerometer.

    The gyroscope (bias from the still rows removed: |ω| < 0.1 rad/s and |a| within 0.5 m/s² of g; zero without
    any) is integrated over the interval to the sensor's rotation relative to its start. Over a stride of walking the
    mean linear acceleration is about zero, so the specific force rotated into that start frame and averaged points
    up; the heading change is the net rotation's angle about that 'up'. The sensor ends a stride in the pose it began
    it, so the net rotation is a turn about the vertical, exact also for a shank or foot that pitches ±40–60° in
    between.

    Results (after ``estimate``): ``bias_rad_s_`` (dict site → 3-vector).
    """

    def __init__(self, still_gyr_rad_s: float = 0.1, still_acc_m_s2: float = 0.5, min_coverage: float = 0.9):
        #: Still rows: |ω| below this, rad/s …
        self.still_gyr_rad_s = still_gyr_rad_s
        #: … and |a| within this of g, m/s².
        self.still_acc_m_s2 = still_acc_m_s2
        #: An interval with less than this share of valid rows gives no heading change.
        self.min_coverage = min_coverage

    def estimate(self, kit: KitSignals) -> HeadingChange:
        """Prepare the per-site gyroscope biases; then call :meth:`change_deg`."""
        self._kit = kit
        self.bias_rad_s_: dict[Site, FloatArray] = {}
        for site, signals in kit.sites.items():
            gyr, acc = signals.gyr_rad_s, signals.acc_m_s2
            ok = signals.valid & np.all(np.isfinite(gyr), axis=1) & np.all(np.isfinite(acc), axis=1)
            still = ok.copy()
            still[ok] = (np.linalg.norm(gyr[ok], axis=1) < self.still_gyr_rad_s) & (
                np.abs(np.linalg.norm(acc[ok], axis=1) - G_M_S2) < self.still_acc_m_s2
            )
            self.bias_rad_s_[site] = np.median(gyr[still], axis=0) if still.sum() >= 10 else np.zeros(3)
        return self

    def change_deg(self, site: Site, t0_s: float, t1_s: float) -> float | None:
        """Heading change from ``t0_s`` to ``t1_s`` (degrees, + turning left), or ``None`` without enough data."""
        signals = self._kit.sites.get(site)
        if signals is None:
            return None
        time_s = self._kit.time_s
        i0, i1 = np.searchsorted(time_s, [t0_s, t1_s])
        if i1 - i0 < 3:
            return None
        gyr, acc = signals.gyr_rad_s[i0:i1], signals.acc_m_s2[i0:i1]
        ok = signals.valid[i0:i1] & np.all(np.isfinite(gyr), axis=1) & np.all(np.isfinite(acc), axis=1)
        if ok.mean() < self.min_coverage:
            return None
        t = time_s[i0:i1][ok]
        rotation = integrate_rotation(gyr[ok] - self.bias_rad_s_[site], np.diff(t))
        up = np.einsum("nij,nj->i", rotation, acc[ok]) / ok.sum()
        norm = float(np.linalg.norm(up))
        if norm < 0.5 * G_M_S2:
            return None
        up /= norm
        # a horizontal direction of the start frame, and where the net rotation takes it
        helper = np.eye(3)[int(np.argmin(np.abs(up)))]
        before = helper - (helper @ up) * up
        after = rotation[-1] @ before
        after -= (after @ up) * up
        angle = np.arctan2(np.cross(before, after) @ up, before @ after)
        return float(np.degrees(angle))


def integrate_rotation(gyr_rad_s: FloatArray, dt_s: FloatArray) -> FloatArray:
    """Rotation matrices (N, 3, 3) of a sensor relative to its first row, from body-frame angular velocity."""
    from scipy.spatial.transform import Rotation

    steps = Rotation.from_rotvec(0.5 * (gyr_rad_s[1:] + gyr_rad_s[:-1]) * dt_s[:, None]).as_matrix()
    out = np.empty((gyr_rad_s.shape[0], 3, 3))
    out[0] = np.eye(3)
    for k, step in enumerate(steps):
        out[k + 1] = out[k] @ step
    return out


class StrideSegmentation:
    """Strides per side from swings, with bouts, heading changes and the steady-state selection (module docstring).

    Results: ``strides_`` (list of :class:`Stride` in time order, both sides), ``bouts_`` (list of ``(start_s,
    end_s)`` walking bouts: first toe-off to last contact), ``verdicts_`` (list of :class:`Verdict`: turns, pauses).
    """

    def __init__(
        self,
        min_stride_s: float = 0.5,
        max_stride_s: float = 5.0,
        n_transition_strides: int = 2,
        turn_threshold_deg: float = 20.0,
        pause_factor: float = 1.5,
        heading: HeadingChange | None = None,
    ):
        #: Shortest and longest stride accepted, s (shorter: a double detection; longer: a stop).
        self.min_stride_s = min_stride_s
        self.max_stride_s = max_stride_s
        #: Strides left out at each end of a bout, per leg.
        self.n_transition_strides = n_transition_strides
        #: Heading change over one stride above which it is a turn, degrees.
        self.turn_threshold_deg = turn_threshold_deg
        #: A stride longer than this multiple of the leg's median stride is a pause.
        self.pause_factor = pause_factor
        #: Heading-change estimator (``HeadingChange()`` when ``None``).
        self.heading = heading

    def segment(self, swings: dict[str, list[Swing]], kit: KitSignals | None = None) -> StrideSegmentation:
        """Build strides from each side's swings; ``kit`` (optional) gives the heading changes for turn detection."""
        self.bouts_ = self._bouts(swings)
        strides: list[Stride] = []
        for side in SIDES:
            strides += self._side_strides(side, swings.get(side, []), swings.get(other_side(side), []))
        strides.sort(key=lambda s: s.ic_s)
        self.verdicts_: list[Verdict] = []
        if kit is not None:
            strides = self._headings(strides, kit)
        self.strides_ = self._mark_steady(strides)
        return self

    def _bouts(self, swings: dict[str, list[Swing]]) -> list[tuple[float, float]]:
        """Walking bouts: runs of swings (either leg) with no pause longer than ``max_stride_s`` between them."""
        times = sorted(
            (s.fc_s if s.fc_s is not None else s.ms_s, s.ic_s if s.ic_s is not None else s.ms_s)
            for side in SIDES
            for s in swings.get(side, [])
        )
        bouts: list[list[float]] = []
        for start, end in times:
            if bouts and start - bouts[-1][1] <= self.max_stride_s:
                bouts[-1][1] = max(bouts[-1][1], end)
            else:
                bouts.append([start, end])
        return [(a, b) for a, b in bouts]

    def _bout_of(self, t: float) -> int:
        for k, (a, b) in enumerate(self.bouts_):
            if a - 1e-9 <= t <= b + 1e-9:
                return k
        return -1

    def _side_strides(self, side: str, own: list[Swing], other: list[Swing]) -> list[Stride]:
        bout_of = [self._bout_of(s.ms_s) for s in own]
        out = []
        for k, (first, second) in enumerate(itertools.pairwise(own)):
            stride = stride_between(first, second, other, self.min_stride_s, self.max_stride_s)
            if stride is None:
                continue
            in_bout = [j for j, b in enumerate(bout_of) if b == bout_of[k]]
            out.append(replace(stride, bout=bout_of[k], swings_from_start=k - in_bout[0],
                               swings_from_end=in_bout[-1] - (k + 1)))  # fmt: skip
        return out

    def _headings(self, strides: list[Stride], kit: KitSignals) -> list[Stride]:
        heading = (self.heading or HeadingChange()).estimate(kit)
        out = []
        for stride in strides:
            change, site = None, None
            for candidate in (Site.PELVIS, SHANK_SITES[stride.side]):
                change = heading.change_deg(candidate, stride.ic_s, stride.next_ic_s)
                if change is not None:
                    site = candidate.value
                    break
            out.append(replace(stride, heading_change_deg=change, heading_site=site))
        return out

    def _mark_steady(self, strides: list[Stride]) -> list[Stride]:
        n_turn = n_pause = 0
        reasons = {id(s): "" for s in strides}
        turning = [
            s for s in strides
            if s.heading_change_deg is not None and abs(s.heading_change_deg) > self.turn_threshold_deg
        ]  # fmt: skip
        for stride in strides:
            # a turn stride and any stride overlapping it (its neighbours on both legs) are part of the turn
            if any(stride.ic_s < t.next_ic_s and t.ic_s < stride.next_ic_s for t in turning):
                reasons[id(stride)] = "turn"
        for bout in range(len(self.bouts_)):
            for side in SIDES:
                legs = [s for s in strides if s.side == side and s.bout == bout]
                if not legs:
                    continue
                durations = np.array([s.duration_s for s in legs])
                median = float(np.median(durations))
                bout_start, bout_end = self.bouts_[bout]
                for stride in legs:
                    if reasons[id(stride)]:
                        continue
                    # the first / last strides of the leg, counted in swings and, in case a swing was not seen
                    # (a tiny first step, a gap), in median stride times from the bout's first toe-off / last contact
                    n = self.n_transition_strides
                    if stride.swings_from_start < n or (stride.ic_s - bout_start) / median < n - 0.25:
                        reasons[id(stride)] = "acceleration"
                    elif stride.swings_from_end < n or (bout_end - stride.next_ic_s) / median < n - 0.25:
                        reasons[id(stride)] = "deceleration"
                    elif stride.duration_s > self.pause_factor * median:
                        reasons[id(stride)] = "pause"
        out = []
        for stride in strides:
            reason = reasons[id(stride)]
            n_turn += reason == "turn"
            n_pause += reason == "pause"
            out.append(replace(stride, steady=not reason, excluded=reason))
        if n_turn:
            self.verdicts_.append(Verdict(
                Level.WARNING, "gait.turn_detected",
                f"The walker turned during the walk; {n_turn} strides around the turn are left out of the metrics.",
                "Walk the 20 m in a straight line and stop at the end instead of turning.",
                "kit", {"n_strides": n_turn, "turn_threshold_deg": self.turn_threshold_deg},
            ))  # fmt: skip
        if n_pause:
            self.verdicts_.append(Verdict(
                Level.WARNING, "gait.pause",
                f"The walker hesitated or stopped during the walk; {n_pause} strides are left out of the metrics.",
                "If the patient had to stop, note it; otherwise repeat the walk without stopping.",
                "kit", {"n_strides": n_pause},
            ))  # fmt: skip
        return out


def stride_between(
    first: Swing, second: Swing, other: list[Swing], min_stride_s: float = 0.5, max_stride_s: float = 5.0
) -> Stride | None:
    """The stride from ``first``'s contact to ``second``'s (same leg), with the other leg's events inside it.

    ``None`` where a gap separates the two swings, a contact is missing or the duration is implausible. Events
    estimated across a short gap are used and named in ``estimated``.
    """
    if first.ic_s is None or second.ic_s is None or first.run_start_s != second.run_start_s:
        return None  # a gap lies between the two contacts, or one could not be placed
    t0, t1 = first.ic_s, second.ic_s
    if not min_stride_s <= t1 - t0 <= max_stride_s:
        return None
    other_ic = sorted((s.ic_s, s.ic_gap_s is not None) for s in other if s.ic_s is not None)
    other_fc = sorted((s.fc_s, s.fc_gap_s is not None) for s in other if s.fc_s is not None)
    fc = second.fc_s if second.fc_s is not None and t0 < second.fc_s < t1 else None
    end_search = fc if fc is not None else t1
    contra_fc = _first_in(other_fc, t0, end_search)
    contra_ic = _last_in(other_ic, t0, end_search)
    previous_contra_ic = _last_in(other_ic, t0 - max_stride_s / 2, t0)
    estimated = [name for name, hit in (
        ("ic", first.ic_gap_s is not None), ("next_ic", second.ic_gap_s is not None),
        ("fc", fc is not None and second.fc_gap_s is not None), ("contra_fc", contra_fc[1]),
        ("contra_ic", contra_ic[1]), ("previous_contra_ic", previous_contra_ic[1]),
    ) if hit]  # fmt: skip
    return Stride(
        first.side, t0, t1, fc, second.ms_s,
        contra_fc_s=contra_fc[0], contra_ic_s=contra_ic[0], previous_contra_ic_s=previous_contra_ic[0],
        excursion_rad=second.excursion_rad, estimated=tuple(estimated),
    )  # fmt: skip


def _first_in(events: list[tuple[float, bool]], lo: float, hi: float) -> tuple[float | None, bool]:
    """The first ``(time, estimated)`` of time-sorted ``events`` strictly inside ``(lo, hi)``; ``(None, False)``."""
    return next(((t, e) for t, e in events if lo < t < hi), (None, False))


def _last_in(events: list[tuple[float, bool]], lo: float, hi: float) -> tuple[float | None, bool]:
    """The last ``(time, estimated)`` of time-sorted ``events`` strictly inside ``(lo, hi)``; ``(None, False)``."""
    return next(((t, e) for t, e in reversed(events) if lo < t < hi), (None, False))


def lost_intervals(valid: NDArray[np.bool_], time_s: FloatArray, min_gap_s: float) -> list[tuple[float, float]]:
    """Gaps (rows not valid) of at least ``min_gap_s``, as ``(start_s, end_s)``."""
    rate = 1.0 / float(np.median(np.diff(time_s))) if time_s.size > 1 else 1.0
    return [
        (float(time_s[a]), float(time_s[b - 1]) + 1.0 / rate)
        for a, b in valid_runs(~np.asarray(valid, dtype=bool), min_samples=1)
        if (b - a) / rate >= min_gap_s
    ]
