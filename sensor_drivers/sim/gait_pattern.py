"""Periodic joint-rotation patterns: a healthy library cycle, or a hemiparetic one derived from it.

A pattern maps the global gait phase φ (cycles; right initial contact of the library cycle at integer φ) and an
amplitude ``A`` in [0, 1] to joint rotations. ``A = 0`` is the neutral standing pose (all joint rotations zero),
``A = 1`` the full pattern; intermediate values scale every rotation towards neutral (gait initiation and
termination).

The hemiparetic profile changes the healthy cycle by documented, parameterised modifications
(``docs/virtual-patient.md`` lists defaults and sources):

- asymmetric timing: each leg's trajectory is time-warped by a smooth periodic map so that its initial and final
  contacts fall on the target phases (paretic stance shorter, non-paretic stance longer); the pelvis is warped to
  follow the mean of the two legs' phases;
- reduced paretic knee flexion in swing (a factor on knee flexion inside a smooth swing window);
- reduced paretic push-off (a factor on ankle plantar-/dorsiflexion in early swing);
- circumduction: extra paretic hip abduction in swing;
- pelvic hike: pelvic obliquity raising the paretic side during its swing, with the non-paretic (stance) hip
  compensating so that the stance thigh keeps its orientation;
- shorter strides: hip flexion/extension excursion (and pelvic rotation) scaled about their means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.errors import SourceError
from sensor_drivers.sim.body import SIDES, BodyModel, axis_rotation, leg_forward, rotvec_to_matrix
from sensor_drivers.sim.gait_library import GaitCycle
from sensor_drivers.sim.smooth import ramp

FloatArray = NDArray[np.float64]


MAX_CIRCUMDUCTION_DEG = 25.0


@dataclass(frozen=True)
class HemipareticParams:
    """Parameters of the hemiparetic profile. Phases in % of the gait cycle; see ``docs/virtual-patient.md``."""

    #: Paretic stance phase, % of the cycle (target; the realised value is in the ground truth).
    paretic_stance_pct: float = 60.0
    #: Non-paretic stance phase, % of the cycle.
    nonparetic_stance_pct: float = 70.0
    #: Double support after paretic initial contact (until non-paretic final contact), % of the cycle.
    initial_double_support_pct: float = 12.0
    #: Factor on paretic knee flexion in swing (1 = healthy).
    knee_swing_flexion_scale: float = 0.6
    #: Factor on paretic ankle plantar-/dorsiflexion in early swing (weak push-off leaves the foot less
    #: plantarflexed; 1 = healthy).
    push_off_scale: float = 0.5
    #: Extra paretic hip abduction at mid-swing, degrees; ``None``: the smallest that keeps the paretic toe at least
    #: ``min_toe_clearance_m`` above the floor in swing (at least 2°).
    circumduction_deg: float | None = None
    #: Toe clearance the automatic circumduction keeps, m.
    min_toe_clearance_m: float = 0.01
    #: Pelvic obliquity raising the paretic side at its mid-swing, degrees.
    pelvic_hike_deg: float = 5.0
    #: Factor on the hip flexion/extension excursion (and pelvic rotation) of both legs: shorter strides.
    hip_excursion_scale: float = 0.8

    def validate(self) -> None:
        """Raise :class:`SourceError` for parameters that cannot describe a walking gait."""
        st_p, st_n, ds1 = self.paretic_stance_pct, self.nonparetic_stance_pct, self.initial_double_support_pct
        if not (40.0 <= st_p <= 90.0 and 40.0 <= st_n <= 90.0):
            raise SourceError(f"stance phases must lie in [40, 90] % of the cycle, got paretic {st_p}, "
                              f"non-paretic {st_n}")
        second_ds = st_p + st_n - 100.0 - ds1
        if not (1.0 <= ds1 <= 40.0) or second_ds < 1.0:
            raise SourceError(
                f"double supports must be at least 1 % each: initial {ds1} %, second {second_ds:.1f} % "
                f"(= paretic stance + non-paretic stance − 100 − initial double support)"
            )
        if not 0.1 <= self.knee_swing_flexion_scale <= 1.0:
            raise SourceError(f"knee_swing_flexion_scale must lie in [0.1, 1], got {self.knee_swing_flexion_scale}")
        if not 0.0 <= self.push_off_scale <= 1.0:
            raise SourceError(f"push_off_scale must lie in [0, 1], got {self.push_off_scale}")
        if self.circumduction_deg is not None and not 0.0 <= self.circumduction_deg <= MAX_CIRCUMDUCTION_DEG:
            raise SourceError(f"circumduction_deg must lie in [0, {MAX_CIRCUMDUCTION_DEG:g}] (or be automatic)")
        if not 0.0 <= self.pelvic_hike_deg <= 15.0:
            raise SourceError("pelvic_hike_deg must lie in [0, 15]")
        if not 0.5 <= self.hip_excursion_scale <= 1.0:
            raise SourceError(f"hip_excursion_scale must lie in [0.5, 1], got {self.hip_excursion_scale}")


@dataclass(frozen=True)
class PeriodicWarp:
    """A smooth monotone periodic phase map ``φ ↦ φ + c0 + Σₖ (aₖ cos 2πkφ + bₖ sin 2πkφ)`` (k = 1, 2)."""

    coefficients: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def through(cls, target: FloatArray, source: FloatArray) -> PeriodicWarp:
        """The map taking each ``target`` phase to the matching ``source`` phase with the least curvature
        (weighted least-norm harmonic interpolation)."""
        target = np.asarray(target, dtype=float)
        shift = np.asarray(source, dtype=float) - target
        shift = shift - np.round(shift - shift[0])  # same turn as the first knot
        w = 2.0 * np.pi * target
        design = np.stack([np.ones_like(w), np.cos(w), np.sin(w), np.cos(2 * w), np.sin(2 * w)], axis=1)
        weights = np.array([1e-6, 1.0, 1.0, 4.0, 4.0])  # penalise curvature; a constant shift is free
        inv = design / weights
        coef = (inv.T @ np.linalg.solve(design @ inv.T, shift)) if len(target) else np.zeros(5)
        warp = cls(tuple(float(c) for c in coef))
        slope_min = 1.0 + np.min(warp.derivative(np.linspace(0.0, 1.0, 721)) - 1.0)
        if slope_min <= 0.05:
            raise SourceError("the requested gait timing needs a phase warp that is not monotone; choose stance and "
                              "double-support percentages closer to healthy gait")
        return warp

    def __call__(self, phi: FloatArray) -> FloatArray:
        c0, a1, b1, a2, b2 = self.coefficients
        w = 2.0 * np.pi * np.asarray(phi, dtype=float)
        return phi + c0 + a1 * np.cos(w) + b1 * np.sin(w) + a2 * np.cos(2 * w) + b2 * np.sin(2 * w)

    def derivative(self, phi: FloatArray) -> FloatArray:
        """dψ/dφ."""
        _, a1, b1, a2, b2 = self.coefficients
        w = 2.0 * np.pi * np.asarray(phi, dtype=float)
        return 1.0 + 2.0 * np.pi * (-a1 * np.sin(w) + b1 * np.cos(w) - 2 * a2 * np.sin(2 * w) + 2 * b2 * np.cos(2 * w))


@dataclass
class JointPose:
    """Joint rotations for n samples: pelvis orientation in the world (heading included), hip and ankle joint
    rotations (child relative to parent), knee flexion (rad)."""

    pelvis_rot: FloatArray
    hip_rot: dict[str, FloatArray]
    knee_rad: dict[str, FloatArray]
    ankle_rot: dict[str, FloatArray]


def swing_window(psi: FloatArray, fc: float, ic: float, rise: float, fall: float, lead: float,
                 end_gap: float) -> FloatArray:
    """1 through a leg's swing, 0 in stance: rises over ``rise`` ending ``rise − lead`` after final contact ``fc`` and
    falls over ``fall`` ending ``end_gap`` before initial contact ``ic`` (phases in cycles of the leg's own pattern).
    """
    since = np.mod(np.asarray(psi, dtype=float) - (fc - lead), 1.0)
    span = np.mod(ic - fc, 1.0) + lead
    return ramp(since, 0.0, rise) * (1.0 - ramp(since, span - end_gap - fall, fall))


class GaitPattern:
    """Joint rotations as a function of gait phase for one profile.

    ``events`` holds each leg's target (initial contact, final contact) phase in [0, 1).
    """

    def __init__(
        self,
        cycle: GaitCycle,
        profile: str = "healthy",
        paretic_side: str = "l",
        params: HemipareticParams | None = None,
        sagittal_scale: float = 1.0,
        leg_yaw_rad: float = 0.0,
        circumduction_deg: float = 0.0,
        ic_offsets: dict[str, float] | None = None,
        dorsiflexion_boost_deg: dict[str, float] | None = None,
    ) -> None:
        self.cycle = cycle
        self.profile = profile
        self.paretic_side = paretic_side
        self.params = params or HemipareticParams()
        self.sagittal_scale = sagittal_scale
        #: Yaw of both legs at the hips that makes the footprints run straight ahead: the recorded cycles come
        #: from a walker turning a few degrees per stride, which, made periodic, would drift sideways.
        self.leg_yaw_rad = leg_yaw_rad
        #: Extra paretic hip abduction at mid-swing actually used (the parameter, or the automatic value), degrees.
        self.circumduction_deg = circumduction_deg
        #: Shifts added to the hemiparetic initial-contact targets of the warps, so that the contacts found in the
        #: kinematics (which land a little early or late) fall on the targets.
        self.ic_offsets = dict(ic_offsets or {})
        #: Extra ankle dorsiflexion in swing per side, degrees: where the changed gait would leave a swinging toe
        #: grazing the floor, the toes are lifted a little more (the non-paretic side of the hemiparetic profile).
        self.dorsiflexion_boost_deg = dict(dorsiflexion_boost_deg or {})
        self._spline = cycle.spline()
        self._lib_events = {"r": (0.0, cycle.fc_r_phase), "l": (cycle.ic_l_phase, cycle.fc_l_phase)}
        self._hip_y_mean = {
            s: float(np.mean(cycle.joint_rad[:, cycle.channel(f"hip_{s}_ry")])) for s in SIDES
        }
        self._pelvis_z_mean = float(np.mean(cycle.joint_rad[:, cycle.channel("pelvis_rz")]))
        if profile == "hemiparetic":
            self.params.validate()
            self.events = self._hemiparetic_events()
            warp_events = {s: (self.events[s][0] + self.ic_offsets.get(s, 0.0), self.events[s][1]) for s in SIDES}
            self._leg_warp = {s: PeriodicWarp.through(np.array(warp_events[s]), np.array(self._lib_events[s]))
                              for s in SIDES}
            # The pelvis moves with both legs: its phase is the mean of theirs (monotone, as both are).
            self._pelvis_warp = PeriodicWarp(tuple(
                0.5 * (a + b) for a, b in zip(self._leg_warp["l"].coefficients, self._leg_warp["r"].coefficients,
                                              strict=True)
            ))  # type: ignore[arg-type]
        else:
            self.events = dict(self._lib_events)
            self._leg_warp = {s: PeriodicWarp() for s in SIDES}
            self._pelvis_warp = PeriodicWarp()

    def with_(self, **changes: object) -> GaitPattern:
        """A copy with some of ``sagittal_scale``, ``leg_yaw_rad``, ``circumduction_deg``, ``ic_offsets`` and
        ``dorsiflexion_boost_deg`` changed."""
        return GaitPattern(
            self.cycle,
            self.profile,
            self.paretic_side,
            self.params,
            sagittal_scale=float(changes.get("sagittal_scale", self.sagittal_scale)),  # type: ignore[arg-type]
            leg_yaw_rad=float(changes.get("leg_yaw_rad", self.leg_yaw_rad)),  # type: ignore[arg-type]
            circumduction_deg=float(changes.get("circumduction_deg", self.circumduction_deg)),  # type: ignore[arg-type]
            ic_offsets=changes.get("ic_offsets", self.ic_offsets),  # type: ignore[arg-type]
            dorsiflexion_boost_deg=changes.get("dorsiflexion_boost_deg", self.dorsiflexion_boost_deg),  # type: ignore[arg-type]
        )

    def _hemiparetic_events(self) -> dict[str, tuple[float, float]]:
        p = self.params
        st_p, st_n, ds1 = p.paretic_stance_pct / 100, p.nonparetic_stance_pct / 100, p.initial_double_support_pct / 100
        # Relative to paretic initial contact at 0: non-paretic FC at ds1, non-paretic IC after its swing.
        rel = {"p": (0.0, st_p), "n": ((ds1 + 1.0 - st_n) % 1.0, ds1)}
        paretic, other = self.paretic_side, "r" if self.paretic_side == "l" else "l"
        # Place the right leg's IC at phase 0, as in the library.
        offset = -rel["p"][0] if paretic == "r" else -rel["n"][0]
        return {
            paretic: tuple(float((x + offset) % 1.0) for x in rel["p"]),
            other: tuple(float((x + offset) % 1.0) for x in rel["n"]),
        }

    # -- evaluation ---------------------------------------------------------------------------------------------
    def leg_phase(self, side: str, phi: FloatArray) -> FloatArray:
        """The library phase driving leg ``side`` at global phase ``phi``."""
        return self._leg_warp[side](phi)

    def swing_weight(self, side: str, phi: FloatArray, kind: str = "circumduction") -> FloatArray:
        """Smooth swing window of leg ``side`` (``"knee"``, ``"push_off"`` or ``"circumduction"`` shape) at global
        phase ``phi``, placed on the leg's target contacts (where its foot actually leaves and meets the floor)."""
        ic, fc = self.events[side]
        psi = np.asarray(phi, dtype=float)
        # All windows open at toe-off: the stance (and so both feet on the floor in double support) stays as
        # recorded, and the swing changes. They rise gently enough that the knee keeps flexing after toe-off.
        if kind == "knee":
            return swing_window(psi, fc, ic, rise=0.10, fall=0.10, lead=0.0, end_gap=0.02)
        if kind == "push_off":  # the early-swing ankle, still plantarflexed from push-off
            return swing_window(psi, fc, np.mod(fc + 0.25, 1.0), rise=0.06, fall=0.10, lead=0.0, end_gap=0.0)
        return swing_window(psi, fc, ic, rise=0.10, fall=0.12, lead=0.0, end_gap=0.02)

    def swing_clearance_m(self, body: BodyModel, side: str, n_grid: int = 600) -> float:
        """Lowest height of foot ``side`` above the other (stance) foot's lowest point during its swing (leaving out
        the first and last 8 %, where the foot leaves or meets the floor), m."""
        ic, fc = self.events[side]
        swing = np.mod(ic - fc, 1.0)
        phi = fc + 0.08 * swing + 0.84 * swing * np.arange(n_grid) / n_grid
        joints = self.joints(phi, np.ones_like(phi))
        legs = {s: leg_forward(body, s, joints.pelvis_rot, joints.hip_rot[s], joints.knee_rad[s], joints.ankle_rot[s])
                for s in SIDES}
        other = "r" if side == "l" else "l"
        support = np.minimum(legs[other].heel_m[:, 2], legs[other].toe_m[:, 2])
        foot = np.minimum(legs[side].heel_m[:, 2], legs[side].toe_m[:, 2])
        return float(np.min(foot - support))

    def joints(self, phi: FloatArray, amplitude: FloatArray) -> JointPose:
        """Joint rotations at phases ``phi`` with amplitudes ``amplitude`` (same shape, 1-D)."""
        phi = np.asarray(phi, dtype=float)
        amp = np.asarray(amplitude, dtype=float)[:, None]
        c = self.cycle
        pelvis_vals = self._spline(np.mod(self._pelvis_warp(phi), 1.0))
        pelvis_rv = pelvis_vals[:, [c.channel("pelvis_rx"), c.channel("pelvis_ry"), c.channel("pelvis_rz")]]
        pelvis_rv[:, 2] = self._pelvis_z_mean + self.sagittal_scale * (pelvis_rv[:, 2] - self._pelvis_z_mean)
        # Face the walking direction on average (the recorded pelvis may have been turned a little).
        pelvis_rv[:, 2] -= self._pelvis_z_mean
        pelvis_rot = rotvec_to_matrix(amp * pelvis_rv)
        hip_rot, knee, ankle_rot = {}, {}, {}
        hemi = self.profile == "hemiparetic"
        hike = np.zeros(len(phi))
        if hemi:
            sign = 1.0 if self.paretic_side == "l" else -1.0  # +x rotation lifts the left side
            hike = sign * np.radians(self.params.pelvic_hike_deg) * self.swing_weight(self.paretic_side, phi)
            hike = hike * amp[:, 0]
            pelvis_rot = pelvis_rot @ axis_rotation(0, hike)
        for side in SIDES:
            vals = self._spline(np.mod(self.leg_phase(side, phi), 1.0))
            hip_rv = vals[:, [c.channel(f"hip_{side}_r{a}") for a in "xyz"]]
            mean = self._hip_y_mean[side]
            hip_rv[:, 1] = mean + self.sagittal_scale * (hip_rv[:, 1] - mean)
            k = vals[:, c.channel(f"knee_{side}_flexion")]
            # Both legs yawed at the hips so that the footprints run straight (see ``leg_yaw_rad``).
            hip = axis_rotation(2, amp[:, 0] * self.leg_yaw_rad) @ rotvec_to_matrix(amp * hip_rv)
            if hemi and side == self.paretic_side:
                k = k * (1.0 - (1.0 - self.params.knee_swing_flexion_scale) * self.swing_weight(side, phi, "knee"))
                abduction = np.radians(self.circumduction_deg) * self.swing_weight(side, phi) * amp[:, 0]
                sign = 1.0 if side == "l" else -1.0  # +x rotation moves the left leg outwards
                hip = axis_rotation(0, sign * abduction) @ hip
            elif hemi:
                hip = axis_rotation(0, -hike) @ hip  # the stance hip absorbs the pelvic obliquity
            hip_rot[side] = hip
            # Knees come to full amplitude sooner than the other joints (√A): small steps still lift the foot.
            knee[side] = np.sqrt(np.clip(amp[:, 0], 0.0, 1.0)) * k
            ankle_rv = vals[:, [c.channel(f"ankle_{side}_r{a}") for a in "xyz"]]
            if hemi and side == self.paretic_side:
                ankle_rv[:, 1] *= 1.0 - (1.0 - self.params.push_off_scale) * self.swing_weight(side, phi, "push_off")
            if side in self.dorsiflexion_boost_deg:  # dorsiflexion is a negative rotation about y
                ankle_rv[:, 1] -= np.radians(self.dorsiflexion_boost_deg[side]) * self.swing_weight(side, phi)
            ankle_rot[side] = rotvec_to_matrix(amp * ankle_rv)
        return JointPose(pelvis_rot=pelvis_rot, hip_rot=hip_rot, knee_rad=knee, ankle_rot=ankle_rot)
