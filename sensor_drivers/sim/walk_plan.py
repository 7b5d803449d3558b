"""Plan a walk test: pick the gait cycle, fit speed, stride and heading, and time the walk to cover the walkway.

Healthy walking at a chosen speed: the library cycle nearest in speed (scaled to the body's leg length) is
time-resampled: its stride length is kept and its cycle time set to ``stride / speed``. Only cadence changes of
−25 % … +30 % relative to the recording are accepted (beyond, a time-resampled cycle stops looking like walking at that
speed); :func:`healthy_speed_range` gives the resulting range for a body.

Hemiparetic walking starts from the most symmetric library cycle, changed as documented (shorter strides through a
smaller hip excursion, asymmetric timing, stiff paretic knee, ...); its stride length follows from that geometry and
the cycle time is again ``L / v``: the speed is reached through cadence. Speeds 0.2–0.8 m/s are accepted (household
to limited-community walkers, Perry et al. 1995).

Walking speed, stride length and cadence are properties of the resulting kinematics and are reported as ground
truth; the requested speed is met in steady state because the cycle time is set from the kinematic stride length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sensor_drivers.errors import SourceError
from sensor_drivers.sim.body import BodyModel
from sensor_drivers.sim.gait_library import GaitCycle, GaitLibrary
from sensor_drivers.sim.gait_pattern import MAX_CIRCUMDUCTION_DEG, GaitPattern, HemipareticParams
from sensor_drivers.sim.walk import ContactPhases, Walker, WalkTimeline, contact_phases, other

#: Accepted cadence ratio (resampled / recorded) for healthy walking.
HEALTHY_CADENCE_RATIO = (0.75, 1.30)
HEMIPARETIC_SPEED_RANGE_M_S = (0.2, 0.8)
WALKWAY_RANGE_M = (2.0, 5000.0)
#: Amplitude ramps of gait initiation and termination, cycles of phase.
INIT_CYCLES = 2.0
TERM_CYCLES_RANGE = (1.5, 3.5)


@dataclass(frozen=True)
class WalkPlan:
    """Everything the kinematics needs, plus the figures it was fitted to."""

    body: BodyModel
    cycle: GaitCycle
    pattern: GaitPattern
    contacts: ContactPhases
    timeline: WalkTimeline
    #: Steady-state stride length and speed of the kinematics, m and m/s.
    stride_length_m: float
    speed_m_s: float
    #: Side that takes the first step.
    first_swing: str

    def walker(self) -> Walker:
        """The kinematics of this plan."""
        return Walker(self.body, self.pattern, self.timeline, self.contacts)


def healthy_speed_range(body: BodyModel, library: GaitLibrary | None = None) -> tuple[float, float]:
    """Speeds (m/s) accepted for healthy walking for this body (time-resampling limits)."""
    library = library or GaitLibrary.load()
    speeds = [c.speed_m_s * body.leg_scale for c in library.cycles]
    return min(speeds) * HEALTHY_CADENCE_RATIO[0], max(speeds) * HEALTHY_CADENCE_RATIO[1]


def _steady_stride(body: BodyModel, pattern: GaitPattern, contacts: ContactPhases) -> np.ndarray:
    """Mean stride vector (x, y) of steady walking with this pattern, from the planted foot positions."""
    first = other(pattern.paretic_side if pattern.profile == "hemiparetic" else "r")
    mid = _mid_double_support(contacts, lead=first)
    timeline = WalkTimeline(0.0, 1.0, mid, mid + 6.0, init_cycles=1e-6, term_cycles=1e-6)
    walker = Walker(body, pattern, timeline, contacts)
    heel = walker._plant[1:, 0]  # stance j's heel plant, j = 0 …
    lead = np.array(walker.ds.lead)
    strides = [heel[j + 2] - heel[j] for j in range(1, len(lead) - 3) if lead[j + 2] == lead[j]]
    return np.mean(strides, axis=0)


def _mid_double_support(contacts: ContactPhases, lead: str) -> float:
    """Phase in [0, 1) in the middle of the double support that follows ``lead``'s initial contact."""
    ic = contacts.ic[lead]
    return float(np.mod(ic + 0.5 * np.mod(contacts.fc[other(lead)] - ic, 1.0), 1.0))


def _fit_pattern(body: BodyModel, pattern: GaitPattern) -> tuple[GaitPattern, ContactPhases, float]:
    """Yaw the legs so that the pattern walks straight along +x; return it, its contacts and its stride length."""
    for _ in range(2):  # the footprint direction follows the leg yaw almost one to one
        contacts = contact_phases(body, pattern)
        stride = _steady_stride(body, pattern, contacts)
        pattern = pattern.with_(leg_yaw_rad=pattern.leg_yaw_rad - float(np.arctan2(stride[1], stride[0])))
    contacts = contact_phases(body, pattern)
    stride = _steady_stride(body, pattern, contacts)
    return pattern, contacts, float(np.linalg.norm(stride))


def _auto_toe_lift(body: BodyModel, pattern: GaitPattern, side: str, clearance_m: float) -> float:
    """The smallest extra swing dorsiflexion (°, at most 15) that keeps foot ``side`` ``clearance_m`` above the
    floor."""

    def clearance(deg: float) -> float:
        return pattern.with_(dorsiflexion_boost_deg={**pattern.dorsiflexion_boost_deg, side: deg}
                             ).swing_clearance_m(body, side)

    if clearance(0.0) >= clearance_m:
        return 0.0
    lo, hi = 0.0, 15.0
    for _ in range(8):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if clearance(mid) >= clearance_m else (mid, hi)
    return hi


def _auto_circumduction(body: BodyModel, pattern: GaitPattern, params: HemipareticParams) -> float:
    """The smallest paretic circumduction (≥ 2°) that keeps the toe clear in swing, as far as any angle can."""
    side = pattern.paretic_side

    def clearance(deg: float) -> float:
        return pattern.with_(circumduction_deg=deg).swing_clearance_m(body, side)

    target = min(params.min_toe_clearance_m, clearance(MAX_CIRCUMDUCTION_DEG) - 0.001)
    lo, hi = 2.0, MAX_CIRCUMDUCTION_DEG
    if clearance(lo) >= target:
        return lo
    for _ in range(8):  # to about 0.1°
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if clearance(mid) >= target else (mid, hi)
    return hi


def plan_walk(
    profile: str,
    speed_m_s: float,
    body: BodyModel,
    walkway_length_m: float,
    still_start_s: float,
    paretic_side: str = "l",
    params: HemipareticParams | None = None,
    library: GaitLibrary | None = None,
) -> WalkPlan:
    """Fit a walk: cycle, pattern, cadence, and a timeline whose pelvis covers ``walkway_length_m`` exactly."""
    library = library or GaitLibrary.load()
    if not WALKWAY_RANGE_M[0] <= walkway_length_m <= WALKWAY_RANGE_M[1]:
        raise SourceError(f"walkway length {walkway_length_m} m outside the accepted {WALKWAY_RANGE_M} m")
    cycle = library.nearest(speed_m_s, body.leg_scale)
    if profile == "healthy":
        lo, hi = healthy_speed_range(body, library)
        if not lo <= speed_m_s <= hi:
            raise SourceError(
                f"healthy walking speed {speed_m_s} m/s is outside {lo:.2f}–{hi:.2f} m/s for a {body.height_m} m "
                f"body (the recorded cycles are time-resampled to cadences of {HEALTHY_CADENCE_RATIO[0]:.0%}–"
                f"{HEALTHY_CADENCE_RATIO[1]:.0%} of the recording); use profile 'hemiparetic' for slower walking"
            )
        pattern, contacts, stride = _fit_pattern(body, GaitPattern(cycle))
        first = "r"
    elif profile == "hemiparetic":
        params = params or HemipareticParams()
        params.validate()
        lo, hi = HEMIPARETIC_SPEED_RANGE_M_S
        if not lo <= speed_m_s <= hi:
            raise SourceError(f"hemiparetic walking speed {speed_m_s} m/s is outside {lo}–{hi} m/s")
        # Start from the most symmetric recorded cycle, so that the modifications are the gait's only asymmetry.
        cycle = library.most_symmetric()
        base = GaitPattern(cycle, "hemiparetic", paretic_side, params, sagittal_scale=params.hip_excursion_scale)
        pattern, contacts, stride = _fit_hemiparetic(body, base, params)
        first = paretic_side
    else:
        raise SourceError(f"unknown gait profile {profile!r}; accepted: healthy, hemiparetic")
    cycle_time = stride / speed_m_s
    timeline = _fit_timeline(body, pattern, contacts, first, cycle_time, still_start_s, walkway_length_m)
    return WalkPlan(body, cycle, pattern, contacts, timeline, stride, speed_m_s, first)


def _fit_hemiparetic(
    body: BodyModel, base: GaitPattern, params: HemipareticParams
) -> tuple[GaitPattern, ContactPhases, float]:
    """The circumduction keeping the paretic toe clear, and contacts landing on their target phases."""
    circumduction = params.circumduction_deg
    pattern = base
    for _ in range(2):  # clearance and contact timing depend on each other a little
        if params.circumduction_deg is None:
            circumduction = _auto_circumduction(body, pattern, params)
        pattern = pattern.with_(circumduction_deg=circumduction)
        # Land on the target phases: shift the warp targets by how far the found contacts miss them.
        found = contact_phases(body, pattern)
        offsets = {
            s: pattern.ic_offsets.get(s, 0.0)
            - float(np.mod(found.ic[s] - pattern.events[s][0] + 0.5, 1.0) - 0.5)
            for s in ("l", "r")
        }
        pattern = pattern.with_(ic_offsets=offsets)
    return _fit_pattern(body, pattern)


def _solve(f: Callable[[float], float], x0: float, x1: float, bounds: tuple[float, float],
           tolerance: float) -> float:
    """A root of a smooth monotone ``f`` by the secant method from x0, x1, kept inside ``bounds``."""
    f0, f1 = f(x0), f(x1)
    for _ in range(12):
        if f1 == f0:
            break
        x2 = float(np.clip(x1 - f1 * (x1 - x0) / (f1 - f0), *bounds))
        x0, f0, x1, f1 = x1, f1, x2, f(x2)
        if abs(x1 - x0) < tolerance:
            break
    return x1


def _fit_timeline(
    body: BodyModel,
    pattern: GaitPattern,
    contacts: ContactPhases,
    first_swing: str,
    cycle_time_s: float,
    onset_s: float,
    walkway_length_m: float,
) -> WalkTimeline:
    """Start and end in mid double support; choose the end and the termination length to cover the walkway."""
    start = _mid_double_support(contacts, lead=other(first_swing)) - 1.0
    stride = _steady_stride(body, pattern, contacts)[0]
    # Candidate ends: mid double supports from a little before the estimate (the ramps cost about a stride).
    first = max(start + 0.75, start + walkway_length_m / stride - 1.0)
    ends = sorted(
        n + _mid_double_support(contacts, lead=s)
        for s in ("l", "r")
        for n in range(int(np.floor(first)), int(np.ceil(start + walkway_length_m / stride + 6.0)))
        if n + _mid_double_support(contacts, lead=s) > first
    )

    def distance(phi_end: float, term: float, init: float) -> float:
        timeline = WalkTimeline(onset_s, cycle_time_s, start, phi_end, init, term)
        walker = Walker(body, pattern, timeline, contacts)
        return float(walker.evaluate(np.array([phi_end])).root_m[0, 0])

    closest: tuple[float, float, float, float] | None = None  # (error, phi_end, term, init)
    for phi_end in ends:
        span = phi_end - start
        scale = min(1.0, span / (INIT_CYCLES + TERM_CYCLES_RANGE[1]))
        init = INIT_CYCLES * scale
        term_lo, term_hi = TERM_CYCLES_RANGE[0] * scale, TERM_CYCLES_RANGE[1] * scale
        d_lo, d_hi = distance(phi_end, term_lo, init), distance(phi_end, term_hi, init)
        for error, term in ((abs(d_lo - walkway_length_m), term_lo), (abs(d_hi - walkway_length_m), term_hi)):
            if closest is None or error < closest[0]:
                closest = (error, phi_end, term, init)
        if not d_hi <= walkway_length_m <= d_lo:
            continue
        # A longer termination shortens the last steps: distance falls with it, smoothly.
        term = _solve(lambda x, end=phi_end, ramp=init: distance(end, x, ramp) - walkway_length_m, term_lo, term_hi,
                      bounds=(term_lo, term_hi), tolerance=1e-6)
        return WalkTimeline(onset_s, cycle_time_s, start, phi_end, init, term)
    if closest is None:
        raise SourceError(f"cannot plan a walk of {walkway_length_m} m")
    # No ending covers the length exactly (rare): take the closest; the truth reports the distance walked.
    _, phi_end, term, init = closest
    return WalkTimeline(onset_s, cycle_time_s, start, phi_end, init, term)
