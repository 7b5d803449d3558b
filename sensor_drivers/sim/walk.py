"""The walk test as kinematics: standing, gait initiation, steady walking, termination, standing.

Time and phase
    The gait phase φ(t) (cycles) is frozen at ``phi_start`` while standing, then advances at a cadence that ramps up
    smoothly (C3) over one cycle time, runs steady, and ramps down to stop exactly at ``phi_end``. The joint-rotation
    amplitude ramps 0 → 1 over ``init_cycles`` of phase after ``phi_start`` and 1 → 0 over ``term_cycles`` before
    ``phi_end``, so the walker starts and ends in the neutral standing pose. Both phase ends lie in the middle of a
    double support, with both feet on the floor.

Contacts (derived, not taken from the recording)
    Everything below is a function of φ only, so the body is still whenever φ is.
    Each foot touches the floor with two points: the heel, and a toe pivot under the toes. Within a stance the
    weight moves from heel to toe around the phase where the two are level (mid-stance). A stance foot is planted:
    its heel and toe points have fixed floor positions ``P`` (set when the foot lands). The pelvis position follows
    from the planted foot (the *anchor*): ``root = Σᵢ wᵢ (Pᵢ − pᵢ(φ))``, pᵢ being the point relative to the pelvis.
    In double support the trailing foot stays the anchor until its final contact; the leading foot is kept planted
    by moving its ankle (two-link inverse kinematics) by exactly the slide the recorded angles would cause, and the
    trailing toe is kept on the floor by plantarflexing the trailing foot when the recorded angles would lift it.
    These corrections blend in before initial contact and out after the other foot's final contact with C3 ramps, so
    positions stay smooth; the joint angles of the ground truth are the corrected ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.sim.body import SIDES, BodyModel, LegPose, leg_forward, leg_shift_ankle, pitch_foot
from sensor_drivers.sim.gait_pattern import GaitPattern, JointPose
from sensor_drivers.sim.smooth import ramp, smoothstep_integral, soft_positive

FloatArray = NDArray[np.float64]

#: The trailing foot is let go over this much phase before its final contact (at most half the double support): it
#: rolls off on its recorded motion, which may move its toe by a few millimetres.
PUSH_OFF_CYCLES = 0.06
#: After initial contact the landing foot is brought to rest, and the body's height passes from the trailing to the
#: leading foot, over this many cycles (a heel strike lasting a few tens of milliseconds).
WEIGHT_ACCEPTANCE_CYCLES = 0.04
#: Width of the heel → toe weight transition within a stance, cycles.
HEEL_TO_TOE_CYCLES = 0.06
#: Smoothing width of the heel/toe minimum that sets a stance foot's height: where heel and toe are level the foot
#: stands at most half of it above the floor; wider means gentler pelvis accelerations as the foot rolls, m.
ROLL_WIDTH_M = 0.004
#: Smoothing width of soft maxima/minima of heights, m.
SOFT_MAX_WIDTH_M = 0.001
#: A free foot that would sink into the floor is lifted; deep penetrations are cut to at most half this width, m.
FLOOR_WIDTH_M = 0.002


def other(side: str) -> str:
    """The contralateral side."""
    return "r" if side == "l" else "l"


@dataclass(frozen=True)
class WalkTimeline:
    """When the walker moves: phase as a function of time, and the amplitude envelope as a function of phase."""

    onset_s: float
    cycle_time_s: float
    phi_start: float
    phi_end: float
    init_cycles: float
    term_cycles: float

    @property
    def ramp_s(self) -> float:
        """Duration of the cadence ramps (one steady cycle time)."""
        return self.cycle_time_s

    @property
    def cadence_stop_s(self) -> float:
        """When the cadence starts ramping down."""
        return self.onset_s + (self.phi_end - self.phi_start) * self.cycle_time_s

    @property
    def stop_s(self) -> float:
        """When the phase stops advancing (the walker is still from here on)."""
        return self.cadence_stop_s + self.ramp_s

    def phase(self, t_s: FloatArray) -> FloatArray:
        """φ(t): ``phi_start + f·R·[G((t−t0)/R) − G((t−t1)/R)]`` with G the smoothstep integral."""
        t = np.asarray(t_s, dtype=float)
        r = self.ramp_s
        g = smoothstep_integral((t - self.onset_s) / r) - smoothstep_integral((t - self.cadence_stop_s) / r)
        return self.phi_start + r / self.cycle_time_s * g

    def amplitude(self, phi: FloatArray) -> FloatArray:
        """Joint-rotation amplitude at phase φ (0 standing, 1 full gait)."""
        phi = np.asarray(phi, dtype=float)
        up = ramp(phi, self.phi_start, self.init_cycles)
        down = 1.0 - ramp(phi, self.phi_end - self.term_cycles, self.term_cycles)
        return up * down

    def time_of_phase(self, phi: FloatArray) -> FloatArray:
        """The time at which φ(t) reaches each given phase (within [phi_start, phi_end])."""
        phi = np.clip(np.asarray(phi, dtype=float), self.phi_start, self.phi_end)
        lo = np.full(phi.shape, self.onset_s)
        hi = np.full(phi.shape, self.stop_s)
        for _ in range(60):  # bisection: φ(t) is monotone
            mid = 0.5 * (lo + hi)
            below = self.phase(mid) < phi
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)


@dataclass(frozen=True)
class ContactPhases:
    """Each foot's contact events and heel → toe transition within its stance, as phases of the pattern cycle."""

    ic: dict[str, float]
    fc: dict[str, float]
    #: Phase from initial contact to the centre of the heel → toe weight transition.
    toe_shift: dict[str, float]


def contact_phases(body: BodyModel, pattern: GaitPattern, n_grid: int = 500) -> ContactPhases:
    """Refine the pattern's target events against the body's geometry at full amplitude.

    Initial contact is moved to the phase where the landing heel reaches the level of the other foot's lowest
    point (so the heel lands instead of hovering or sinking); final contact keeps its target phase (the trailing
    toe is held on the floor until then). The heel → toe transition is placed where heel and toe are level.
    """
    grid = np.arange(2 * n_grid) / n_grid - 0.5  # cycles -0.5 … 1.5, covering every wrap-around
    joints = pattern.joints(grid, np.ones_like(grid))
    legs = {s: leg_forward(body, s, joints.pelvis_rot, joints.hip_rot[s], joints.knee_rad[s], joints.ankle_rot[s])
            for s in SIDES}
    ic, fc, toe_shift = {}, {}, {}
    for side in SIDES:
        target_ic, target_fc = pattern.events[side]
        lowest_other = np.minimum(legs[other(side)].heel_m[:, 2], legs[other(side)].toe_m[:, 2])
        above = legs[side].heel_m[:, 2] - lowest_other
        window = np.flatnonzero((grid >= target_ic - 0.15) & (grid <= target_ic + 0.10))
        landed = window[above[window] <= 0.0]
        index = landed[0] if len(landed) else window[np.argmin(above[window])]
        ic[side] = float(np.mod(grid[index], 1.0))
        stance = np.mod(target_fc - ic[side], 1.0)
        if stance < 0.2:
            stance = np.mod(target_fc - target_ic, 1.0)
            ic[side] = float(target_ic)
        fc[side] = float(np.mod(ic[side] + stance, 1.0))
        # Heel and toe level: the last phase where (heel − toe) turns positive before final contact (the heel rises
        # for good from there), kept inside the stance so that the transition window fits.
        # A foot that lands toes first (slow, stiff gait) carries its weight on the toe from landing on.
        start = grid[index] if len(landed) else ic[side]
        inside = np.flatnonzero((grid >= start + WEIGHT_ACCEPTANCE_CYCLES) & (grid <= start + 0.85 * stance))
        diff = legs[side].heel_m[inside, 2] - legs[side].toe_m[inside, 2]
        crossing = np.flatnonzero((diff[:-1] <= 0.0) & (diff[1:] > 0.0))
        if diff[0] > 0.0:
            centre = start + WEIGHT_ACCEPTANCE_CYCLES - HEEL_TO_TOE_CYCLES / 2
        else:
            centre = grid[inside[crossing[-1]]] if len(crossing) else start + 0.5 * stance
        toe_shift[side] = float(centre - start)
    return ContactPhases(ic=ic, fc=fc, toe_shift=toe_shift)


@dataclass
class DoubleSupports:
    """The double supports of the walk in order: leading foot, its initial contact and the trailing final contact."""

    lead: list[str] = field(default_factory=list)
    phi_ic: list[float] = field(default_factory=list)
    phi_fc: list[float] = field(default_factory=list)

    @classmethod
    def enumerate(cls, contacts: ContactPhases, phi_first: float, phi_last: float) -> DoubleSupports:
        """Every double support whose initial contact lies in ``[phi_first, phi_last]``."""
        table = cls()
        items = []
        for side in SIDES:
            ic = contacts.ic[side]
            fc_other = contacts.fc[other(side)]
            for n in range(int(np.floor(phi_first)) - 1, int(np.ceil(phi_last)) + 2):
                phi_ic = n + ic
                if phi_first <= phi_ic <= phi_last:
                    items.append((phi_ic, side, phi_ic + np.mod(fc_other - ic, 1.0)))
        for phi_ic, side, phi_fc in sorted(items):
            table.lead.append(side)
            table.phi_ic.append(phi_ic)
            table.phi_fc.append(phi_fc)
        return table

    def __len__(self) -> int:
        return len(self.lead)


@dataclass
class BodyState:
    """Kinematics for n phases: corrected joint rotations, leg poses relative to the pelvis, the pelvis position."""

    phi: FloatArray
    amplitude: FloatArray
    joints: JointPose
    legs: dict[str, LegPose]
    root_m: FloatArray
    #: The foot the pelvis is referred to ("l"/"r"): the trailing foot until its final contact, then the leading one.
    anchor: NDArray[np.str_]
    support: _Support


@dataclass
class _Support:
    """Per sample: the governing double support (index, leading foot), where in it the sample lies, and the weights
    that shape the corrections."""

    j: NDArray[np.int_]
    lead: NDArray[np.str_]
    #: Phase since the governing double support began (its initial contact, or the start of the walk).
    since_start: FloatArray
    #: Phase since the trailing foot's final contact (negative before it).
    since_fc: FloatArray
    #: 0 → 1 over the weight acceptance after initial contact: how far the landing foot has been brought to rest.
    accept: FloatArray
    #: 1 → 0 over the push-off before the trailing final contact: how far the trailing foot is still held.
    release: FloatArray


class Walker:
    """Pelvis trajectory and corrected leg kinematics for a timeline, consistent with planted stance feet.

    In single support the pelvis follows the stance foot exactly. In double support it follows a quintic Hermite
    bridge from the trailing foot's implied state (position, velocity, acceleration) at initial contact to the
    leading foot's at final contact, and both legs are corrected by inverse kinematics to stay on their plants: the
    recorded feet disagree by millimetres (and near toe-off by metres per second squared), and the bridge spreads
    that over the double support instead of jolting the pelvis. The trailing foot's correction is released during
    push-off, so it leaves the floor on its recorded motion.
    """

    def __init__(self, body: BodyModel, pattern: GaitPattern, timeline: WalkTimeline, contacts: ContactPhases):
        self.body = body
        self.pattern = pattern
        self.timeline = timeline
        self.contacts = contacts
        table = DoubleSupports.enumerate(contacts, timeline.phi_start - 1.0, timeline.phi_end)
        first = max(i for i, p in enumerate(table.phi_ic) if p <= timeline.phi_start)
        self.ds = DoubleSupports(table.lead[first:], table.phi_ic[first:], table.phi_fc[first:])
        if not self.ds.phi_fc[0] > timeline.phi_start:
            raise ValueError("phi_start must lie inside a double support")
        self._refine_landings()
        self._lead = np.array(self.ds.lead)
        self._phi_ic = np.array(self.ds.phi_ic)
        self._phi_fc = np.array(self.ds.phi_fc)
        #: Where each double support's bridge starts: its initial contact, or the start of the walk.
        self._phi_from = self._phi_ic.copy()
        self._phi_from[0] = timeline.phi_start
        self._window_start = self._phi_ic.copy()
        self._window_start[0] = -np.inf
        self._stance_ics = np.array([self._stance_ic(j) for j in range(-1, len(self.ds))])
        self._toe_centres = self._heel_to_toe_centres()
        self._build_plant_table()
        self._build_bridges()

    def _refine_landings(self) -> None:
        """Land each step where its heel really reaches the floor at this step's amplitude.

        The contact phases are found at full amplitude; during gait initiation and termination the joint rotations
        are scaled down and the heel meets the trailing foot's level a little earlier or later.
        """
        n_grid = 160
        offsets = np.linspace(-0.12, 0.08, n_grid)
        steps = [j for j in range(1, len(self.ds)) if self.timeline.amplitude(np.array([self.ds.phi_ic[j]]))[0] < 1.0]
        if not steps:
            return
        phi = np.concatenate([self.ds.phi_ic[j] + offsets for j in steps])
        phi = np.clip(phi, self.timeline.phi_start, self.timeline.phi_end)
        amp = self.timeline.amplitude(phi)
        joints = self.pattern.joints(phi, amp)
        legs = {s: leg_forward(self.body, s, joints.pelvis_rot, joints.hip_rot[s], joints.knee_rad[s],
                               joints.ankle_rot[s]) for s in SIDES}
        for k, j in enumerate(steps):
            rows = slice(k * n_grid, (k + 1) * n_grid)
            lead, trail = self.ds.lead[j], other(self.ds.lead[j])
            trail_low = _soft_min(legs[trail].heel_m[rows, 2], legs[trail].toe_m[rows, 2], ROLL_WIDTH_M)
            above = legs[lead].heel_m[rows, 2] - trail_low
            landed = np.flatnonzero(above <= 0.0)
            if len(landed) == 0:
                continue
            new_ic = float(phi[rows][landed[0]])
            if self.ds.phi_ic[j - 1] < new_ic < self.ds.phi_fc[j] - 0.02:
                self.ds.phi_ic[j] = new_ic

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _stance_ic(self, j: int) -> float:
        """Initial contact phase of stance j (stance −1 is the trailing foot of the first double support)."""
        if j >= 0:
            return self.ds.phi_ic[j]
        lead = self.ds.lead[0]
        return self.ds.phi_ic[0] - np.mod(self.contacts.ic[lead] - self.contacts.ic[other(lead)], 1.0)

    def _toe_weight(self, j: NDArray[np.int_], phi: FloatArray, side: str) -> FloatArray:
        """Weight of the toe (vs the heel) in stance j's contact: 0 after landing, 1 from mid-stance on."""
        centre = self._toe_centres[np.asarray(j) + 1]
        return ramp(phi, centre - HEEL_TO_TOE_CYCLES / 2, HEEL_TO_TOE_CYCLES)

    def _heel_to_toe_centres(self) -> NDArray[np.float64]:
        """Phase at which each stance's contact passes from heel to toe: where the two are last level before the
        heel rises for good, or at landing for a step that lands toes first; found again at the step's own
        amplitude for the steps of gait initiation and termination."""
        n = len(self.ds)
        sides = [other(self.ds.lead[0]), *self.ds.lead]
        centres = np.array([self._stance_ics[k] + self.contacts.toe_shift[sides[k]] for k in range(n + 1)])
        rest = WEIGHT_ACCEPTANCE_CYCLES
        for k in range(1, n + 1):
            j = k - 1
            end = self.ds.phi_fc[j + 1] if j + 1 < n else self.timeline.phi_end
            span = np.linspace(self._stance_ics[k] + rest, max(end, self._stance_ics[k] + rest + 1e-3), 120)
            if self.timeline.amplitude(span).min() >= 1.0:
                continue  # full amplitude: as found for the pattern
            amp = self.timeline.amplitude(span)
            joints = self.pattern.joints(span, amp)
            side = sides[k]
            leg = leg_forward(self.body, side, joints.pelvis_rot, joints.hip_rot[side], joints.knee_rad[side],
                              joints.ankle_rot[side])
            level = leg.heel_m[:, 2] - leg.toe_m[:, 2]  # > 0: the toe is lower
            if level[0] > 0.0:
                centres[k] = self._stance_ics[k] + rest - HEEL_TO_TOE_CYCLES / 2
                continue
            up = np.flatnonzero((level[:-1] <= 0.0) & (level[1:] > 0.0))
            if len(up):
                centres[k] = span[up[-1]]
        return centres

    def _support(self, phi: FloatArray, j: NDArray[np.int_] | None = None) -> _Support:
        """The governing double support of each phase (or the given one) and its correction weights."""
        if j is None:
            j = np.clip(np.searchsorted(self._window_start, phi, side="right") - 1, 0, len(self.ds) - 1)
        accept = np.where(j == 0, 1.0, ramp(phi, self._phi_ic[j], WEIGHT_ACCEPTANCE_CYCLES))
        release_span = np.minimum(PUSH_OFF_CYCLES, 0.5 * (self._phi_fc - self._phi_from))[j]
        return _Support(
            j=j,
            lead=self._lead[j],
            since_start=phi - self._phi_from[j],
            since_fc=phi - self._phi_fc[j],
            accept=accept,
            release=1.0 - ramp(phi, self._phi_fc[j] - release_span, release_span),
        )

    # -- recorded kinematics and what they imply ----------------------------------------------------------------
    def _raw(self, phi: FloatArray, j: NDArray[np.int_] | None = None) -> BodyState:
        """The pattern's joint rotations and leg poses relative to the pelvis, before any correction."""
        phi = np.asarray(phi, dtype=float)
        amp = self.timeline.amplitude(phi)
        joints = self.pattern.joints(phi, amp)
        legs = {s: leg_forward(self.body, s, joints.pelvis_rot, joints.hip_rot[s], joints.knee_rad[s],
                               joints.ankle_rot[s]) for s in SIDES}
        sup = self._support(phi, j)
        return BodyState(phi, amp, joints, legs, np.zeros((len(phi), 3)), np.full(len(phi), ""), sup)

    def _implied_by(self, j: NDArray[np.int_], side: str, leg: LegPose, phi: FloatArray) -> FloatArray:
        """Pelvis position implied by foot ``side`` planted as in stance ``j``: (x, y) from its heel/toe plants,
        z from the lower of heel and toe at floor level (a smooth minimum, so neither sinks in)."""
        w = self._toe_weight(j, phi, side)[:, None]
        plant = self._plant[np.asarray(j) + 1]
        out = np.empty((len(phi), 3))
        out[:, :2] = (1 - w) * (plant[:, 0] - leg.heel_m[:, :2]) + w * (plant[:, 1] - leg.toe_m[:, :2])
        out[:, 2] = -_soft_min(leg.heel_m[:, 2], leg.toe_m[:, 2], ROLL_WIDTH_M)
        return out

    def _implied(self, sup: _Support, legs: dict[str, LegPose], phi: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Pelvis positions implied by the trailing and by the leading foot of each sample's double support."""
        trail = np.zeros((len(phi), 3))
        lead = np.zeros((len(phi), 3))
        for side in SIDES:
            m = sup.lead == side
            if np.any(m):
                trail[m] = self._implied_by(sup.j[m] - 1, other(side), _take(legs[other(side)], m), phi[m])
                lead[m] = self._implied_by(sup.j[m], side, _take(legs[side], m), phi[m])
        return trail, lead

    def _build_plant_table(self) -> None:
        """Floor positions (x, y) of heel and toe for every stance, set in the order the feet land."""
        n = len(self.ds)
        self._plant = np.zeros((n + 1, 2, 2))  # [stance j + 1, heel/toe, xy]
        start = self._raw(np.array([self.timeline.phi_start]))
        lead0 = self.ds.lead[0]
        self._plant[0] = [start.legs[other(lead0)].heel_m[0, :2], start.legs[other(lead0)].toe_m[0, :2]]
        self._plant[1, 0] = start.legs[lead0].heel_m[0, :2]
        # A foot's toe plant follows from its shape at the heel → toe transition (mid-stance).
        rest_phi = self._phi_ic + 0.5 * WEIGHT_ACCEPTANCE_CYCLES
        toe_phi = np.maximum(self._toe_centres[1:], rest_phi)
        at_toe = self._raw(toe_phi, np.arange(n))
        toe_from_heel = np.array([at_toe.legs[s].toe_m[j, :2] - at_toe.legs[s].heel_m[j, :2]
                                  for j, s in enumerate(self.ds.lead)])
        self._plant[1, 1] = self._plant[1, 0] + toe_from_heel[0]
        # The landing heel comes to rest half-way through the weight acceptance: plant it where it is then.
        rest = self._raw(self._phi_ic + 0.5 * WEIGHT_ACCEPTANCE_CYCLES, np.arange(n))
        for j in range(1, n):
            side = self.ds.lead[j]
            one = np.arange(n) == j
            anchor = self._implied_by(np.array([j - 1]), other(side), _take(rest.legs[other(side)], one),
                                      rest.phi[one])[0, :2]
            heel = rest.legs[side].heel_m[j, :2]
            self._plant[j + 1, 0] = anchor + heel
            self._plant[j + 1, 1] = anchor + heel + toe_from_heel[j]

    def _derivatives(self, quantity: Callable[[FloatArray, NDArray[np.int_]], FloatArray],
                     phi: FloatArray) -> FloatArray:
        """Value, first and second phase derivative (central differences) of ``quantity(phi, j)`` at each double
        support's phase ``phi[j]``: (n, 3, ...)."""
        h = 1e-4
        n = len(self.ds)
        j = np.concatenate([np.arange(n)] * 3)
        values = quantity(np.concatenate([phi - h, phi, phi + h]), j)
        fm, f0, fp = values[:n], values[n : 2 * n], values[2 * n :]
        return np.stack([f0, (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / h**2], axis=1)

    def _build_bridges(self) -> None:
        """Boundary states of each double support's pelvis bridge."""

        def trailing(phi: FloatArray, j: NDArray[np.int_]) -> FloatArray:
            raw = self._raw(phi, j)
            return self._implied(raw.support, raw.legs, phi)[0]

        def leading(phi: FloatArray, j: NDArray[np.int_]) -> FloatArray:
            raw = self._raw(phi, j)
            return self._implied(raw.support, raw.legs, phi)[1]

        self._bridge_from = self._derivatives(trailing, self._phi_from)
        self._bridge_to = self._derivatives(leading, self._phi_fc)

    # -- evaluation -------------------------------------------------------------------------------------------
    def _bridge(self, sup: _Support) -> FloatArray:
        """The pelvis position on each sample's double-support bridge (quintic Hermite in phase)."""
        span = (self._phi_fc - self._phi_from)[sup.j][:, None]
        u = np.clip(sup.since_start[:, None] / span, 0.0, 1.0)
        a, b = self._bridge_from[sup.j], self._bridge_to[sup.j]
        u2, u3 = u * u, u * u * u
        h00 = 1 - 10 * u3 + 15 * u3 * u - 6 * u3 * u2
        h10 = u - 6 * u3 + 8 * u3 * u - 3 * u3 * u2
        h20 = 0.5 * (u2 - 3 * u3 + 3 * u3 * u - u3 * u2)
        h01 = 10 * u3 - 15 * u3 * u + 6 * u3 * u2
        h11 = -4 * u3 + 7 * u3 * u - 3 * u3 * u2
        h21 = 0.5 * (u3 - 2 * u3 * u + u3 * u2)
        return (h00 * a[:, 0] + h10 * span * a[:, 1] + h20 * span**2 * a[:, 2]
                + h01 * b[:, 0] + h11 * span * b[:, 1] + h21 * span**2 * b[:, 2])

    def _shift_leg(self, legs: dict[str, LegPose], joints: JointPose, side: str, shift: FloatArray,
                   keep_knee: bool = False) -> None:
        """Move one foot by ``shift`` (per sample, relative to the pelvis) with leg inverse kinematics, in place."""
        moved = np.linalg.norm(shift, axis=1) > 1e-12
        if not np.any(moved):
            return
        shifted = leg_shift_ankle(self.body, _take(legs[side], moved), shift[moved], keep_knee=keep_knee)
        _put(legs[side], moved, shifted)
        idx = np.flatnonzero(moved)
        joints.hip_rot[side][idx] = np.swapaxes(joints.pelvis_rot[idx], -1, -2) @ shifted.thigh_rot
        joints.knee_rad[side][idx] = shifted.knee_flexion_rad
        joints.ankle_rot[side][idx] = np.swapaxes(shifted.shank_rot, -1, -2) @ shifted.foot_rot

    @staticmethod
    def _floor_lift(height_m: FloatArray) -> FloatArray:
        """How far to lift a point at ``height_m`` above the floor: its penetration, smoothed at the floor (C4); at
        most half of ``FLOOR_WIDTH_M`` of a deep penetration is left."""
        return FLOOR_WIDTH_M * smoothstep_integral(-np.asarray(height_m) / FLOOR_WIDTH_M)

    def _pitch(self, state: BodyState, side: str, point_x_m: float, rise_m: FloatArray) -> None:
        """Raise (or lower) one sole point of a foot by rotating the foot at the ankle, in place."""
        state.legs[side] = pitch_foot(self.body, state.legs[side], point_x_m, rise_m)
        state.joints.ankle_rot[side] = np.swapaxes(state.legs[side].shank_rot, -1, -2) @ state.legs[side].foot_rot

    def _correct_trailing(self, state: BodyState, side: str, shift: FloatArray) -> None:
        """Keep a trailing foot (on its toe, knee bent) on its plant: sideways and up with leg inverse kinematics,
        down by plantarflexing the foot."""
        down = soft_positive(-shift[:, 2], SOFT_MAX_WIDTH_M)
        move = shift.copy()
        move[:, 2] = soft_positive(shift[:, 2], SOFT_MAX_WIDTH_M)
        self._pitch(state, side, self.body.toe_x_m, -down)
        self._shift_leg(state.legs, state.joints, side, move)

    def _correct_landing(self, state: BodyState, side: str, shift: FloatArray) -> None:
        """Keep a landing foot on its plant: swing the leg at the hip to move it along the floor; set the height of
        its contact (the lower of heel and toe) at the ankle while the knee is nearly straight and the foot is
        still tilted, as a heel strike does, otherwise with the leg (a straight knee would have to move a lot for
        a millimetre; a flat foot cannot tilt without pushing its other end into the floor)."""

        def contact_z() -> FloatArray:
            leg = state.legs[side]
            return _soft_min(leg.heel_m[:, 2], leg.toe_m[:, 2], SOFT_MAX_WIDTH_M)

        target = contact_z() + shift[:, 2]
        self._shift_leg(state.legs, state.joints, side, shift, keep_knee=True)
        rise = target - contact_z()
        leg = state.legs[side]
        tilt = leg.heel_m[:, 2] - leg.toe_m[:, 2]  # > 0: the toe is the lower end
        by_ankle = (1.0 - ramp(np.degrees(leg.knee_flexion_rad), 6.0, 6.0)) * ramp(np.abs(tilt), 0.004, 0.008)
        # The leg may always shorten; lengthening it is left to the ankle.
        by_leg = (1.0 - by_ankle) * soft_positive(rise, SOFT_MAX_WIDTH_M)
        self._shift_leg(state.legs, state.joints, side, by_leg[:, None] * np.array([0.0, 0.0, 1.0]))
        rest = rise - by_leg
        toe_lower = tilt > 0.0
        self._pitch(state, side, self.body.heel_x_m, np.where(toe_lower, 0.0, rest))
        self._pitch(state, side, self.body.toe_x_m, np.where(toe_lower, rest, 0.0))

    def evaluate(self, phi: FloatArray) -> BodyState:
        """Corrected kinematics and the pelvis position at phases ``phi``."""
        state = self._raw(phi)
        sup = state.support
        trail_root, lead_root = self._implied(sup, state.legs, state.phi)
        in_ds = sup.since_fc < 0
        root = np.where(in_ds[:, None], self._bridge(sup), lead_root)
        # Corrections that keep each planted foot on its plant given this pelvis position. The trailing foot is let
        # go over the end of the double support (push-off), so that it leaves the floor on its recorded motion.
        trail_shift = np.where(in_ds[:, None], sup.release[:, None] * (trail_root - root), 0.0)
        lead_shift = np.where(in_ds[:, None], sup.accept[:, None] * (lead_root - root), 0.0)
        for side in SIDES:
            is_lead = sup.lead == side
            self._correct_landing(state, side, np.where(is_lead[:, None], lead_shift, 0.0))
            self._correct_trailing(state, side, np.where(is_lead[:, None], 0.0, trail_shift))
        state.root_m = root
        state.anchor = np.where(in_ds, np.where(sup.lead == "l", "r", "l"), sup.lead)
        # No swinging or landing foot sinks into the floor: lift the point that would, smoothly (C4) at the floor.
        # A toe is lifted by dorsiflexing the foot, a landing heel by plantarflexing it (rotations at the ankle are
        # cheap; the knee of a nearly straight leg would have to move a lot), a swinging heel by bending the leg.
        for side in SIDES:
            swinging = (sup.lead != side) & (sup.release < 1.0)
            landing = (sup.lead == side) & in_ds & (sup.accept < 1.0)
            free = swinging | landing
            toe_z = state.legs[side].toe_m[:, 2] + root[:, 2]
            self._pitch(state, side, self.body.toe_x_m, np.where(free, self._floor_lift(toe_z), 0.0))
            heel_lift = self._floor_lift(state.legs[side].heel_m[:, 2] + root[:, 2])
            self._pitch(state, side, self.body.heel_x_m, np.where(landing, heel_lift, 0.0))
            self._shift_leg(state.legs, state.joints, side,
                            np.where(swinging, heel_lift, 0.0)[:, None] * np.array([0.0, 0.0, 1.0]))
        return state


def _soft_min(a: FloatArray, b: FloatArray, width: float) -> FloatArray:
    """``(a + b − √((a − b)² + w²)) / 2``: at most min(a, b), within w/2 of it, smooth."""
    return 0.5 * (a + b - np.sqrt((a - b) ** 2 + width * width))


def _take(leg: LegPose, mask: NDArray[np.bool_]) -> LegPose:
    return LegPose(**{k: v[mask] for k, v in leg.__dict__.items()})


def _put(leg: LegPose, mask: NDArray[np.bool_], values: LegPose) -> None:
    for k, v in values.__dict__.items():
        getattr(leg, k)[mask] = v
