"""From the first strides: which sensor is on which segment and side, how each one is turned, and whether one is loose.

The kit's five sites are known, so this is verification rather than blind classification: every sensor gets a site
from its own motion, and the result is compared with the labels. The approach follows Weenk et al. 2013
(*Automatic identification of inertial sensor placement on human body segments during walking*, JNER 10:31: features
of angular velocity in a walking frame, correlations between sensors) and Baniasad et al. 2023 (*Automatic body
segment and side recognition of an IMU sensor during gait*, Sensors 23:3587: segment first, then side, features scaled
by the stride time so that they hold from 0.5 to 2.2 m/s and in pathological gait). We replace their trained decision
trees by physical relations that hold for a hemiparetic walk as well, since we cannot train on patients:

1. **Pelvis**: the quietest sensor (lowest angular-velocity spread).
2. **Legs**: the four others pair into two legs by the knee hinge constraint ``|ω_thigh × j_thigh| = |ω_shank ×
   j_shank|`` (Seel, Raisch & Schauer 2014, Sensors 14:6891, eq. 2; fitted with each axis in the sensor's horizontal
   plane), backed by the swing timing (a thigh and a shank of one leg swing together; the two legs alternate).
3. **Thigh or shank**: the shank swings faster (larger mid-swing angular velocity; in the simulated hemiparetic gait
   the ratio stays above 1.5).
4. **Left or right**: the pelvis turns forward on the side of the swinging leg (pelvic rotation; Perry 1992), so the
   pelvis yaw rate is in phase with the left leg's sagittal angular velocity at the stride frequency and in
   opposition with the right leg's; with no pelvis sensor, or no clear phase, the sensors' mountings decide.
5. **Mounting**: each sensor's up axis comes from gravity (still period), its left (flexion) axis from the principal
   horizontal direction of its angular velocity during walking (the knee hinge axis for a thigh whose hinge fit is
   good), signed so that the swing (fast forward rotation) is negative; the pelvis forward axis from the inverted
   pendulum: forward speed is highest when the pelvis is lowest, so forward acceleration is in opposition with
   vertical velocity. The twist of that mounting from the expected one about the long axis is how far the sensor is
   turned around the limb.
6. **Loose**: after heel strike a well-strapped sensor shares its segment's vibration; a loose one rings on its own.
   Between a thigh and a shank of one leg the 8–20 Hz angular velocity perpendicular to the knee axis should be the
   same (the knee adds rotation about its axis only, and is nearly straight at heel strike); the part they do not
   share, in the 300 ms after each heel strike, is the loose sensor's ringing. The pelvis has no partner: its own
   8–20 Hz horizontal angular velocity after heel strikes is used.

Thresholds and the figures behind them: ``docs/sensor-placement.md``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from capture_app.core.checks._tools import (
    angular_velocity_rad_s,
    band_pass,
    filled,
    horizontal,
    interval_mask,
    low_pass,
    phase_at_deg,
    principal_axis,
    skewness,
    stride_period_s,
    swing_ends,
    unit,
)
from capture_app.core.checks.placement import (
    EXPECTED_ROTATION_SEGMENT_SENSOR,
    FACE_TEXT,
    PLACEMENT_TEXT,
    angle_deg,
    expected_left_sensor,
    expected_up_sensor,
    site_name,
    twist_about_up_deg,
)
from capture_app.core.signals import KitSignals
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.sites import KIT_SITES, Site

FloatArray = NDArray[np.float64]
LEG_SITES = (Site.THIGH_L, Site.THIGH_R, Site.SHANK_L, Site.SHANK_R)


@dataclass(frozen=True)
class IdentificationThresholds:
    """Decision limits of the identification; ``docs/sensor-placement.md`` gives the measurements behind them."""

    #: Share of grid rows in the walking interval a sensor must deliver to take part.
    min_valid_fraction: float = 0.8
    #: The walking interval must span this many strides.
    min_strides: float = 2.5
    #: A leg sensor whose 99th-percentile swing rate is below this is not walking, °/s.
    min_swing_dps: float = 40.0
    #: The quietest sensor is named the pelvis only when the next quietest moves this many times more.
    pelvis_activity_ratio: float = 1.3
    #: The best leg pairing must have a hinge residual at most this fraction of the next best …
    pairing_hinge_ratio: float = 0.85
    #: … or its swing timing must agree better by this much (summed (1 − cos Δφ)/2 over its two pairs).
    pairing_phase_margin: float = 0.3
    #: Shank/thigh swing-rate ratio needed to tell them apart (either way).
    segment_ratio: float = 1.2
    #: Difference of the two legs' pelvis-rotation phase scores (cos φ averaged over a leg's sensors, ±1) needed to
    #: tell left from right.
    side_margin: float = 0.5
    #: A stride-averaged pelvis yaw rate above this is a turn; turning strides are left out of the side decision, °/s.
    turn_rate_dps: float = 20.0
    #: With the mountings deciding the side: the total twist error must differ by this much between the two
    #: assignments, degrees.
    side_mounting_margin_deg: float = 60.0
    #: Twist about the long axis: warning, fail (legs), degrees.
    rotation_warn_deg: float = 25.0
    rotation_fail_deg: float = 60.0
    #: Twist of the pelvis sensor about the vertical: warning, fail, degrees (its heading estimate is coarser).
    pelvis_rotation_warn_deg: float = 45.0
    pelvis_rotation_fail_deg: float = 90.0
    #: Correlation strength below which the pendulum estimate of the pelvis forward direction is not trusted.
    pelvis_heading_min_strength: float = 0.3
    #: First-steps estimate of the pelvis forward direction: window (this many strides, clamped to the range, s) …
    start_window_strides: float = 2.0
    start_window_s: tuple[float, float] = (3.0, 6.0)
    #: … the pelvis must be still over the first part (s, °/s) …
    start_still_s: float = 0.2
    #: … and the walk's onset is where the specific force leaves its standing value by this much (0.1 s mean), m/s².
    start_onset_m_s2: float = 0.3
    start_still_dps: float = 10.0
    #: … and move at least this fast on average, m/s.
    start_min_speed_m_s: float = 0.05
    #: A thigh's knee-axis estimate is used when its hinge residual is below this share of its angular velocity.
    thigh_hinge_max_relative: float = 0.35
    #: Band of a loose sensor's ringing, Hz, and the window after each heel strike, s.
    loose_band_hz: tuple[float, float] = (8.0, 20.0)
    loose_window_s: tuple[float, float] = (-0.05, 0.30)
    #: Unshared post-heel-strike vibration of a leg that makes it suspect, °/s rms …
    loose_floor_dps: float = 12.0
    #: … when it is also this many times the other leg's …
    loose_ratio: float = 2.5
    #: … or this much on its own (both legs loose, or no other leg to compare), °/s rms.
    loose_alone_dps: float = 60.0
    #: Share of the unshared vibration that names one sensor of the leg as the loose one.
    loose_share: float = 0.65
    #: Pelvis: 8–20 Hz horizontal angular velocity after heel strikes that means loose, °/s rms.
    pelvis_loose_dps: float = 12.0


@dataclass(frozen=True)
class StillReference:
    """What the still period before the walk measured, per site (all optional)."""

    #: Unit up direction in sensor coordinates.
    up_sensor: dict[Site, FloatArray] = field(default_factory=dict)
    #: Mean specific force, m/s² (gravity plus accelerometer bias).
    acc_m_s2: dict[Site, FloatArray] = field(default_factory=dict)
    #: Gyroscope bias, rad/s.
    gyr_bias_rad_s: dict[Site, FloatArray] = field(default_factory=dict)
    #: When the still period ended (clip clock, s): the walk starts from rest there.
    end_s: float | None = None


@dataclass
class _Motion:
    """One sensor's walking signals and the features derived from them."""

    label: Site
    sensor_id: str
    omega: FloatArray
    acc: FloatArray
    up: FloatArray
    up_from_still: bool
    rms_dps: float
    axis: FloatArray
    sagittal: FloatArray
    swing_dps: float


class SensorIdentification:
    """Identifies each sensor's segment and side from walking, checks its mounting about the limb axis, and finds
    loose sensors (module docstring for the method).

    ``identify(kit, walking_interval_s, still=None)`` fills:

    - ``verdicts_``: list of :class:`Verdict` (swaps, rotations, loose sensors, and ``ok`` ones);
    - ``assignment_``: identified site → sensor id (the labels where nothing could be identified);
    - ``site_of_sensor_``: sensor id → identified site;
    - ``confirmed_``: whether segment, side and pairing were all decided from the signals;
    - ``stride_period_s_``: the stride period found (``None`` if none);
    - ``rotation_segment_sensor_``: identified site → estimated ``R_segment_sensor`` (heading arbitrary for a pelvis
      whose forward direction could not be found, see ``heading_known_``);
    - ``heading_known_``: identified site → whether the estimate's rotation about the long axis is trusted;
    - ``twist_deg_``: identified site → twist about the long axis from the expected mounting, degrees;
    - ``loose_vibration_dps_``: per leg (``"left"``/``"right"``) and ``"pelvis"``, the post-heel-strike vibration
      measure, °/s rms;
    - ``evidence_``: the numbers behind each decision (pairing costs, side scores, swing ratios).

    ``still`` (a :class:`StillReference`, e.g. ``StaticCheck.reference_``) gives each labelled site's up direction
    from the still period; without it the mean specific force over the walk serves (a few degrees off for a thigh),
    and the pelvis forward direction comes from the inverted pendulum only.
    """

    def __init__(self, expected: dict[Site, FloatArray] | None = None,
                 thresholds: IdentificationThresholds | None = None, check_heading: bool = True) -> None:
        #: ``R_segment_sensor`` per site; ``None``: the placement guide.
        self.expected = expected
        self.thresholds = thresholds
        #: Whether to judge the rotation about the limb axis against ``expected`` (and let it break side ties).
        self.check_heading = check_heading

    # ------------------------------------------------------------------------------------------------------------
    def identify(self, kit: KitSignals, walking_interval_s: tuple[float, float],
                 still: StillReference | None = None) -> SensorIdentification:
        """Identify the sensors of ``kit`` from the walking interval ``[start, end)`` (clip clock, s); returns self.

        ``still`` carries what the still period measured (``StaticCheck.reference_``): the up direction, specific
        force and gyroscope bias per site. The walk should start from standing (the pelvis forward direction is
        taken from the first steps where it does).
        """
        still = still or StillReference()
        up_sensor = still.up_sensor
        limits = self.thresholds or IdentificationThresholds()
        expected = self.expected or EXPECTED_ROTATION_SEGMENT_SENSOR
        self.verdicts_: list[Verdict] = []
        self.assignment_: dict[Site, str] = {site: s.sensor_id for site, s in kit.sites.items()}
        self.site_of_sensor_: dict[str, Site] = {s.sensor_id: site for site, s in kit.sites.items()}
        self.confirmed_ = False
        self.stride_period_s_: float | None = None
        self.rotation_segment_sensor_: dict[Site, FloatArray] = {}
        self.heading_known_: dict[Site, bool] = {}
        self.twist_deg_: dict[Site, float] = {}
        self.loose_vibration_dps_: dict[str, float] = {}
        self.evidence_: dict[str, object] = {}
        self._rate_hz = kit.rate_hz
        self._still = still
        self._kit = kit
        self._walk_start_s = walking_interval_s[0]
        self._hinges: dict[tuple[str, str], tuple[FloatArray, FloatArray, float]] = {}

        motions = self._motions(kit, walking_interval_s, up_sensor, limits)
        if not motions:
            self.verdicts_.append(Verdict(
                Level.WARNING, "placement.identification.no_walk",
                "The sensors could not be checked during walking: no sensor sent enough data.",
                "Check that the sensors are connected, then walk again.",
                details={"walking_interval_s": list(walking_interval_s)}))
            return self
        leg_motions = [m for m in motions if m.label is not Site.PELVIS]
        periods = [p for p in (stride_period_s(m.sagittal, kit.rate_hz) for m in leg_motions) if p is not None]
        duration_s = motions[0].omega.shape[0] / kit.rate_hz
        swinging = [m for m in leg_motions if m.swing_dps >= limits.min_swing_dps]
        if not periods or not swinging or duration_s < limits.min_strides * float(np.median(periods)):
            self.verdicts_.append(Verdict(
                Level.WARNING, "placement.identification.too_short",
                "Too few steps to check which sensor is on which leg.",
                "Let the patient walk a few more steps (at least three strides).",
                details={"walking_s": round(duration_s, 2),
                         "stride_period_s": None if not periods else round(float(np.median(periods)), 3)}))
            return self
        self.stride_period_s_ = float(np.median(periods))

        identified = self._identify_sites(motions, limits, expected)
        self.assignment_ = {identified[m.sensor_id]: m.sensor_id for m in motions}
        # Sensors left out (no data) keep their labelled site unless another sensor was found there.
        for site, signals in kit.sites.items():
            if signals.sensor_id not in identified and site not in self.assignment_:
                self.assignment_[site] = signals.sensor_id
        self.site_of_sensor_ = {sensor_id: site for site, sensor_id in self.assignment_.items()}
        self._report_swaps(motions, identified)
        by_site = {identified[m.sensor_id]: m for m in motions}
        left_axes = self._mountings(by_site, limits)
        loose = self._report_loose(by_site, left_axes, limits)
        self._report_rotations(by_site, expected, limits, loose)
        return self

    # -- signals -------------------------------------------------------------------------------------------------
    def _motions(self, kit: KitSignals, interval_s: tuple[float, float], up_sensor: dict[Site, FloatArray],
                 limits: IdentificationThresholds) -> list[_Motion]:
        mask = interval_mask(kit, interval_s)
        out = []
        for site in KIT_SITES:
            signals = kit.sites.get(site)
            if signals is None:
                continue
            omega = angular_velocity_rad_s(signals, kit.rate_hz)[mask]
            acc = signals.acc_m_s2[mask]
            ok = signals.valid[mask] & np.all(np.isfinite(omega), axis=1) & np.all(np.isfinite(acc), axis=1)
            if mask.sum() and not np.isfinite(omega).any():
                self.verdicts_.append(Verdict(
                    Level.WARNING, "placement.identification.no_gyroscope",
                    f"The {site_name(site)} sensor sends no angular velocity, so its placement cannot be checked "
                    "from the walk.",
                    "Switch on the sensor's gyroscope output (see its settings), or accept an unchecked placement.",
                    subject=site.value, details={"sensor_id": signals.sensor_id}))
                continue
            if mask.sum() == 0 or ok.mean() < limits.min_valid_fraction:
                self.verdicts_.append(Verdict(
                    Level.WARNING, "placement.identification.gaps",
                    f"The {site_name(site)} sensor lost too much data during the walk to be checked.",
                    "Check its connection (distance to the receiver, battery); it is left out of the placement check.",
                    subject=site.value,
                    details={"sensor_id": signals.sensor_id, "valid_fraction": round(float(ok.mean()), 3)
                             if mask.sum() else 0.0}))
                continue
            omega = filled(np.where(ok[:, None], omega, np.nan))
            acc = filled(np.where(ok[:, None], acc, np.nan))
            if site in up_sensor:
                up, from_still = unit(np.asarray(up_sensor[site], dtype=float)), True
            else:
                up, from_still = unit(acc.mean(axis=0)), False
            flat = omega - np.outer(omega @ up, up)
            axis = principal_axis(flat)
            sagittal = omega @ axis
            if skewness(sagittal) > 0.0:  # the swing (short, fast, forward) is the negative side about "left"
                axis, sagittal = -axis, -sagittal
            out.append(_Motion(
                label=site, sensor_id=signals.sensor_id, omega=omega, acc=acc, up=up, up_from_still=from_still,
                rms_dps=float(np.degrees(np.linalg.norm(np.std(omega, axis=0)))), axis=axis, sagittal=sagittal,
                swing_dps=float(np.degrees(np.percentile(-sagittal, 99)))))
        return out

    # -- who is where --------------------------------------------------------------------------------------------
    def _identify_sites(self, motions: list[_Motion], limits: IdentificationThresholds,
                        expected: dict[Site, FloatArray]) -> dict[str, Site]:
        """Sensor id → site. Decides what the signals decide and keeps the labels for the rest."""
        labels = {m.sensor_id: m.label for m in motions}
        evidence = self.evidence_
        ordered = sorted(motions, key=lambda m: m.rms_dps)
        pelvis = next((m for m in motions if m.label is Site.PELVIS), None)
        if len(ordered) >= 2 and ordered[1].rms_dps >= limits.pelvis_activity_ratio * ordered[0].rms_dps:
            pelvis = ordered[0]
        evidence["activity_dps"] = {m.sensor_id: round(m.rms_dps, 1) for m in motions}
        legs = [m for m in motions if m is not pelvis]
        result = dict(labels)
        if pelvis is not None:
            result[pelvis.sensor_id] = Site.PELVIS
            if pelvis.label is not Site.PELVIS:
                # The labelled pelvis sensor moves like a leg: it takes the leg site the pelvis sensor was labelled.
                displaced = next((m for m in motions if m.label is Site.PELVIS), None)
                if displaced is not None:
                    result[displaced.sensor_id] = pelvis.label
        if len(legs) != 4:
            missing = [site_name(s) for s in LEG_SITES if s not in {m.label for m in legs}]
            self.verdicts_.append(Verdict(
                Level.WARNING, "placement.identification.partial",
                "Left/right and thigh/shank could not be cross-checked because the "
                + " and ".join(missing) + (" sensor is" if len(missing) == 1 else " sensors are") + " missing.",
                "Attach and connect all five sensors to have their placement checked.",
                details={"missing": missing}))
            return result

        pairs = self._pair_legs(legs, limits)
        if pairs is None:
            pairs = self._labelled_pairs(legs)
            decided = False
        else:
            decided = True
        roles: list[tuple[_Motion, _Motion]] = []
        for a, b in pairs:
            ratio = b.swing_dps / max(a.swing_dps, 1e-9)
            if ratio >= limits.segment_ratio:
                roles.append((a, b))  # (thigh, shank)
            elif ratio <= 1.0 / limits.segment_ratio:
                roles.append((b, a))
            else:
                decided = False
                roles.append((a, b) if a.label.segment == "thigh" else (b, a))
        evidence["swing_dps"] = {m.sensor_id: round(m.swing_dps, 1) for m in legs}
        sides = self._sides(roles, pelvis, limits, expected)
        if sides is None:
            decided = False
            sides = self._labelled_sides(roles)
        for (thigh, shank), side in zip(roles, sides, strict=True):
            result[thigh.sensor_id] = Site(f"thigh_{side[0]}")
            result[shank.sensor_id] = Site(f"shank_{side[0]}")
        self.confirmed_ = decided
        return result

    def _pair_legs(self, legs: list[_Motion],
                   limits: IdentificationThresholds) -> list[tuple[_Motion, _Motion]] | None:
        """The two legs as (sensor, sensor) pairs, or ``None`` if neither the hinge nor the timing decides."""
        period = self.stride_period_s_ or 1.0
        frequency = 1.0 / period
        options = []
        for first in itertools.combinations(range(4), 2):
            second = tuple(i for i in range(4) if i not in first)
            if first > second:
                continue
            pairing = [(legs[first[0]], legs[first[1]]), (legs[second[0]], legs[second[1]])]
            hinge = sum(self._hinge(a, b)[2] for a, b in pairing)
            phase = sum((1.0 - np.cos(np.radians(phase_at_deg(a.sagittal, b.sagittal, frequency, self._rate_hz))))
                        / 2.0 for a, b in pairing)
            options.append((hinge, phase, pairing))
        by_hinge = sorted(options, key=lambda o: o[0])
        by_phase = sorted(options, key=lambda o: o[1])
        self.evidence_["pairing"] = [
            {"pairs": [[a.sensor_id, b.sensor_id] for a, b in o[2]],
             "hinge_residual_dps": round(float(np.degrees(o[0])), 2), "phase_cost": round(float(o[1]), 3)}
            for o in by_hinge]
        if by_hinge[0][0] <= limits.pairing_hinge_ratio * by_hinge[1][0]:
            return by_hinge[0][2]
        if by_phase[1][1] - by_phase[0][1] >= limits.pairing_phase_margin and by_phase[0] is by_hinge[0]:
            return by_phase[0][2]
        return None

    def _hinge(self, a: _Motion, b: _Motion) -> tuple[FloatArray, FloatArray, float]:
        """:func:`_hinge_fit`, computed once per pair of sensors."""
        key = (a.sensor_id, b.sensor_id)
        if key not in self._hinges:
            ja, jb, residual = _hinge_fit(a, b)
            self._hinges[key] = (ja, jb, residual)
            self._hinges[(b.sensor_id, a.sensor_id)] = (jb, ja, residual)
        return self._hinges[key]

    @staticmethod
    def _labelled_pairs(legs: list[_Motion]) -> list[tuple[_Motion, _Motion]]:
        by_label = {m.label: m for m in legs}
        return [(by_label[Site.THIGH_L], by_label[Site.SHANK_L]), (by_label[Site.THIGH_R], by_label[Site.SHANK_R])]

    def _sides(self, roles: list[tuple[_Motion, _Motion]], pelvis: _Motion | None, limits: IdentificationThresholds,
               expected: dict[Site, FloatArray]) -> list[str] | None:
        """``["left", "right"]`` or the reverse for the two (thigh, shank) pairs; ``None`` if undecided."""
        frequency = 1.0 / (self.stride_period_s_ or 1.0)
        if pelvis is not None:
            # A turn of the whole walker is slower than a stride: a moving average over one stride period holds it
            # (and nothing at the stride frequency), so subtracting it leaves the pelvic rotation.
            yaw, turning = _without_turns(pelvis.omega @ pelvis.up, round(self._rate_hz / frequency))
            # Strides in a turn are left out: turning legs move asymmetrically and the turn swamps the rotation.
            straight = turning < np.radians(limits.turn_rate_dps)
            self.evidence_["straight_fraction"] = round(float(straight.mean()), 3)
            if straight.sum() >= limits.min_strides * self._rate_hz / frequency:
                scores = []
                for thigh, shank in roles:
                    phases = [phase_at_deg(yaw, m.sagittal, frequency, self._rate_hz, straight) for m in (thigh, shank)]
                    scores.append(float(np.mean(np.cos(np.radians(phases)))))
                self.evidence_["side_scores"] = [round(s, 3) for s in scores]
                if abs(scores[0] - scores[1]) >= limits.side_margin:
                    return ["left", "right"] if scores[0] > scores[1] else ["right", "left"]
        if not self.check_heading:
            return None
        # The mountings decide: which assignment needs the sensors turned least from where they belong?
        costs = []
        for order in (("l", "r"), ("r", "l")):
            total = 0.0
            for (thigh, shank), side in zip(roles, order, strict=True):
                for m, segment in ((thigh, "thigh"), (shank, "shank")):
                    total += abs(_twist_of_axis(m, expected[Site(f"{segment}_{side}")]))
            costs.append(total)
        self.evidence_["side_mounting_cost_deg"] = [round(c, 1) for c in costs]
        if abs(costs[0] - costs[1]) >= limits.side_mounting_margin_deg:
            return ["left", "right"] if costs[0] < costs[1] else ["right", "left"]
        return None

    @staticmethod
    def _labelled_sides(roles: list[tuple[_Motion, _Motion]]) -> list[str]:
        first = roles[0][0].label.side or "left"
        return [first, "right" if first == "left" else "left"]

    # -- verdicts on who is where ---------------------------------------------------------------------------------
    def _report_swaps(self, motions: list[_Motion], identified: dict[str, Site]) -> None:
        moved = {m.label: identified[m.sensor_id] for m in motions if identified[m.sensor_id] is not m.label}
        assignment = {site.value: sensor for site, sensor in self.assignment_.items()}
        details = {"assignment": assignment, "moved": {a.value: b.value for a, b in moved.items()},
                   **{k: v for k, v in self.evidence_.items() if k in ("side_scores", "swing_dps")}}
        action = "Swap them, or confirm and StrideTwin will relabel them."
        if not moved:
            if self.confirmed_:
                self.verdicts_.append(Verdict(
                    Level.OK, "placement.identification.ok", "Every sensor is on the body part it is labelled for.",
                    details=details))
            else:
                self.verdicts_.append(Verdict(
                    Level.WARNING, "placement.identification.unconfirmed",
                    "The walk did not show clearly which sensor is on which leg; the labels were kept.",
                    "Check that each sensor is on the body part shown on the screen.", details=details))
            return
        pairs = {frozenset((a, b)) for a, b in moved.items() if moved.get(b) is a}
        lr = {frozenset((Site.THIGH_L, Site.THIGH_R)), frozenset((Site.SHANK_L, Site.SHANK_R))}
        ts = {frozenset((Site.THIGH_L, Site.SHANK_L)), frozenset((Site.THIGH_R, Site.SHANK_R))}
        if len(pairs) * 2 == len(moved) and pairs == lr:
            code, message = "placement.swap_lr", "The left and right leg sensors appear to be swapped."
        elif len(pairs) * 2 == len(moved) and pairs == ts:
            code = "placement.swap_thigh_shank"
            message = "The thigh and shank sensors appear to be swapped on both legs."
        elif len(pairs) * 2 == len(moved) and len(pairs) == 1:
            a, b = sorted(next(iter(pairs)), key=lambda s: KIT_SITES.index(s))
            if pairs <= ts:
                code = "placement.swap_thigh_shank"
            elif pairs <= lr:
                code = "placement.swap_lr"
            else:
                code = "placement.swap"
            message = f"The {site_name(a)} and {site_name(b)} sensors appear to be swapped."
        else:
            code = "placement.swap"
            where = "; ".join(f"the one labelled {site_name(a)} is on the {site_name(b)}" for a, b in moved.items())
            message = f"Some sensors appear to be on the wrong body parts: {where}."
            action = "Move them to their labelled places, or confirm and StrideTwin will relabel them."
        self.verdicts_.append(Verdict(Level.FAIL, code, message, action, details=details))

    # -- mountings -------------------------------------------------------------------------------------------------
    def _mountings(self, by_site: dict[Site, _Motion], limits: IdentificationThresholds) -> dict[Site, FloatArray]:
        """Estimated ``R_segment_sensor`` per identified site; returns the left axis used per site."""
        left_axes: dict[Site, FloatArray] = {}
        for side in ("l", "r"):
            thigh, shank = by_site.get(Site(f"thigh_{side}")), by_site.get(Site(f"shank_{side}"))
            if thigh is not None:
                left_axes[Site(f"thigh_{side}")] = thigh.axis
            if shank is not None:
                left_axes[Site(f"shank_{side}")] = shank.axis
            if thigh is not None and shank is not None:
                j_thigh, _, residual = self._hinge(thigh, shank)
                relative = residual / max(np.radians(thigh.rms_dps), 1e-9)
                self.evidence_[f"hinge_relative_{side}"] = round(float(relative), 3)
                if relative < limits.thigh_hinge_max_relative:
                    left_axes[Site(f"thigh_{side}")] = j_thigh if np.dot(j_thigh, thigh.axis) > 0 else -j_thigh
        for site, m in by_site.items():
            if site is Site.PELVIS:
                forward, known = self._pelvis_forward(m, limits)
                x_axis = forward if known else horizontal(np.array([1.0, 0.0, 0.0]) if abs(m.up[0]) < 0.9
                                                          else np.array([0.0, 1.0, 0.0]), m.up)
                y_axis = np.cross(m.up, x_axis)
                left_axes[site] = y_axis
            else:
                known = True
                y_axis = horizontal(left_axes[site], m.up)
                x_axis = np.cross(y_axis, m.up)
            # Rows of R_segment_sensor are the segment axes in sensor coordinates.
            self.rotation_segment_sensor_[site] = np.vstack([x_axis, y_axis, m.up])
            self.heading_known_[site] = bool(known)
        return left_axes

    def _pelvis_forward(self, m: _Motion, limits: IdentificationThresholds) -> tuple[FloatArray, bool]:
        """The pelvis sensor's forward direction and whether it is trusted: from the first steps where the walk
        starts from standing, else from the inverted pendulum."""
        period = self.stride_period_s_ or 1.0
        duration = min(max(limits.start_window_strides * period, limits.start_window_s[0]), limits.start_window_s[1])
        reference = self._still.acc_m_s2.get(m.label)
        bias = self._still.gyr_bias_rad_s.get(m.label, np.zeros(3))
        if reference is not None:
            start = _pelvis_forward_from_start(self._from_rest(m, limits), reference, bias, self._rate_hz, duration,
                                               limits)
            if start is not None:
                forward, speed = start
                self.evidence_["pelvis_heading_source"] = "first steps"
                self.evidence_["pelvis_start_speed_m_s"] = round(speed, 3)
                return forward, True
        forward, strength = _pelvis_forward_pendulum(m, self._rate_hz)
        self.evidence_["pelvis_heading_source"] = "pendulum"
        self.evidence_["pelvis_heading_strength"] = round(strength, 3)
        return forward, strength >= limits.pelvis_heading_min_strength

    def _from_rest(self, m: _Motion, limits: IdentificationThresholds) -> _Motion:
        """The pelvis signals from just before the movement onset that follows the still period.

        A walking window may begin after the first movement; a slow (e.g. hemiparetic) pelvis already translates
        there while barely rotating, and integrating velocity from such a start gives a wrong heading. The onset is
        the first time after the still period that the pelvis rotates (``start_still_dps``) or its specific force
        leaves the standing value by more than ``start_onset_m_s2``; the integration window of fixed length starts
        ``start_still_s`` before it, so accelerometer drift stays as small as for a window that starts at rest.
        """
        still_end_s = self._still.end_s
        reference = self._still.acc_m_s2.get(m.label)
        signals = self._kit.sites.get(m.label)
        if still_end_s is None or reference is None or signals is None or still_end_s > self._walk_start_s:
            return m
        bias = self._still.gyr_bias_rad_s.get(m.label, np.zeros(3))
        rows = (self._kit.time_s >= still_end_s - limits.start_still_s) & (self._kit.time_s < self._walk_start_s)
        ok = signals.valid[rows]
        if not ok.any():
            return m
        omega = filled(np.where(ok[:, None], angular_velocity_rad_s(signals, self._rate_hz)[rows], np.nan))
        acc = filled(np.where(ok[:, None], signals.acc_m_s2[rows], np.nan))
        omega_all = np.vstack([omega, m.omega])
        acc_all = np.vstack([acc, m.acc])
        smooth = max(1, round(0.1 * self._rate_hz))
        kernel = np.ones(smooth) / smooth
        turning = np.degrees(np.linalg.norm(omega_all - bias, axis=1))
        pushing = np.linalg.norm(acc_all - reference, axis=1)
        moving = (np.convolve(turning, kernel, "same") > limits.start_still_dps) | (
            np.convolve(pushing, kernel, "same") > limits.start_onset_m_s2
        )
        lead = round(limits.start_still_s * self._rate_hz)
        onsets = np.flatnonzero(moving[lead:])
        if not onsets.size:
            return m
        first = int(onsets[0])  # = onset row - lead: the window starts start_still_s before the onset
        return replace(m, omega=omega_all[first:], acc=acc_all[first:])

    def _report_rotations(self, by_site: dict[Site, _Motion], expected: dict[Site, FloatArray],
                          limits: IdentificationThresholds, loose: set[Site]) -> None:
        if not self.check_heading:
            return
        for site in KIT_SITES:
            m = by_site.get(site)
            if m is None:
                continue
            name = site_name(site)
            if angle_deg(m.up, expected_up_sensor(expected[site])) > 90.0:
                continue  # upside down: the still-period check says so; a twist is meaningless then
            if site in loose or not self.heading_known_.get(site, False):
                self.verdicts_.append(Verdict(
                    Level.OK, "placement.rotation.unchecked",
                    f"Whether the {name} sensor is turned could not be checked from this walk"
                    + (" (it is loose)." if site in loose else "."),
                    subject=site.value, details={"sensor_id": m.sensor_id,
                                                 "heading_strength": self.evidence_.get("pelvis_heading_strength")}))
                continue
            twist = twist_about_up_deg(self.rotation_segment_sensor_[site], expected[site])
            self.twist_deg_[site] = twist
            warn, fail = ((limits.pelvis_rotation_warn_deg, limits.pelvis_rotation_fail_deg) if site is Site.PELVIS
                          else (limits.rotation_warn_deg, limits.rotation_fail_deg))
            details = {"sensor_id": m.sensor_id, "twist_deg": round(twist, 1)}
            about = "about the body's vertical axis" if site is Site.PELVIS else "around the leg"
            if abs(twist) >= warn:
                rounded = int(5 * round(abs(twist) / 5))
                self.verdicts_.append(Verdict(
                    Level.FAIL if abs(twist) >= fail else Level.WARNING, "placement.rotated",
                    f"The {name} sensor is turned about {rounded}° {about} from where it should face "
                    f"({FACE_TEXT[site]}).",
                    f"Re-attach it {PLACEMENT_TEXT[site]}, or confirm and StrideTwin will correct for it.",
                    subject=site.value, details=details))
            else:
                self.verdicts_.append(Verdict(Level.OK, "placement.rotation",
                                              f"The {name} sensor faces the right way.", subject=site.value,
                                              details=details))

    # -- loose sensors ---------------------------------------------------------------------------------------------
    def _report_loose(self, by_site: dict[Site, _Motion], left_axes: dict[Site, FloatArray],
                      limits: IdentificationThresholds) -> set[Site]:
        """Loose-sensor verdicts; returns the sites found (or suspected) loose."""
        loose: set[Site] = set()
        rate = self._rate_hz
        period = self.stride_period_s_ or 1.0
        low, high = limits.loose_band_hz
        start = round(limits.loose_window_s[0] * rate)
        stop = round(limits.loose_window_s[1] * rate)
        strikes: dict[str, NDArray[np.intp]] = {}
        for side in ("l", "r"):
            source = next((s for s in (Site(f"shank_{side}"), Site(f"thigh_{side}")) if s in by_site), None)
            if source is not None:
                m = by_site[source]
                strikes[side] = swing_ends(m.omega @ horizontal(left_axes[source], m.up), rate, period)[1]

        def windows(rows: NDArray[np.intp], n: int) -> NDArray[np.intp]:
            parts = [np.arange(r + start, r + stop) for r in rows if r + start >= 0 and r + stop <= n]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)

        def segment_frame_hf(m: _Motion, site: Site) -> FloatArray:
            omega_segment = m.omega @ self.rotation_segment_sensor_[site].T
            return band_pass(np.degrees(omega_segment), low, high, rate)

        found: dict[str, tuple[float, dict[Site, float]]] = {}
        for side in ("l", "r"):
            thigh_site, shank_site = Site(f"thigh_{side}"), Site(f"shank_{side}")
            present = [s for s in (thigh_site, shank_site) if s in by_site]
            if side not in strikes or not present:
                continue
            n = by_site[present[0]].omega.shape[0]
            rows = windows(strikes[side], n)
            if rows.size == 0:
                continue
            if len(present) == 2:
                a = segment_frame_hf(by_site[thigh_site], thigh_site)[rows][:, [0, 2]]
                b = segment_frame_hf(by_site[shank_site], shank_site)[rows][:, [0, 2]]
                unshared = a - b
                energy = float(np.sum(unshared**2))
                value = float(np.sqrt(energy / rows.size))
                shares = {thigh_site: float(np.sum(unshared * a) / max(energy, 1e-12)),
                          shank_site: float(-np.sum(unshared * b) / max(energy, 1e-12))}
            else:
                only = present[0]
                m = by_site[only]
                off = m.omega - np.outer(m.omega @ horizontal(left_axes[only], m.up), horizontal(left_axes[only], m.up))
                hf = band_pass(np.degrees(off), low, high, rate)[rows]
                value = float(np.sqrt(np.mean(np.sum(hf**2, axis=1))))
                shares = {only: 1.0}
            found["left" if side == "l" else "right"] = (value, shares)
            self.loose_vibration_dps_["left" if side == "l" else "right"] = round(value, 2)

        for leg, (value, shares) in found.items():
            other = found.get("right" if leg == "left" else "left")
            suspect = value >= limits.loose_alone_dps or (
                other is not None and value >= limits.loose_floor_dps and value >= limits.loose_ratio * other[0])
            details = {"vibration_dps": round(value, 1), "other_leg_dps": None if other is None else round(other[0], 1),
                       "shares": {s.value: round(v, 2) for s, v in shares.items()}}
            if not suspect:
                for site in shares:
                    self.verdicts_.append(Verdict(Level.OK, "placement.loose",
                                                  f"The {site_name(site)} sensor is firmly attached.",
                                                  subject=site.value, details=details))
                continue
            named = [s for s, share in shares.items() if share >= limits.loose_share]
            loose.update(named or shares)
            if named:
                site = named[0]
                self.verdicts_.append(Verdict(
                    Level.WARNING, "placement.loose",
                    f"The {site_name(site)} sensor seems loose: it keeps wobbling after each heel strike.",
                    "Tighten its strap so that it cannot move on the skin, then walk again.",
                    subject=site.value, details=details))
            else:
                self.verdicts_.append(Verdict(
                    Level.WARNING, "placement.loose",
                    f"One of the {leg} leg sensors seems loose: they wobble after each heel strike.",
                    f"Tighten the straps of the {leg} thigh and shank sensors, then walk again.",
                    subject=f"{leg}_leg", details=details))

        pelvis = by_site.get(Site.PELVIS)
        if pelvis is not None and strikes:
            n = pelvis.omega.shape[0]
            rows = windows(np.concatenate(list(strikes.values())), n)
            if rows.size:
                flat = pelvis.omega - np.outer(pelvis.omega @ pelvis.up, pelvis.up)
                hf = band_pass(np.degrees(flat), low, high, rate)[rows]
                value = float(np.sqrt(np.mean(np.sum(hf**2, axis=1))))
                self.loose_vibration_dps_["pelvis"] = round(value, 2)
                details = {"vibration_dps": round(value, 1)}
                if value >= limits.pelvis_loose_dps:
                    loose.add(Site.PELVIS)
                    self.verdicts_.append(Verdict(
                        Level.WARNING, "placement.loose",
                        "The pelvis sensor seems loose: it keeps wobbling after each heel strike.",
                        "Tighten its belt or re-stick it so that it cannot move on the skin, then walk again.",
                        subject=Site.PELVIS.value, details=details))
                else:
                    self.verdicts_.append(Verdict(Level.OK, "placement.loose", "The pelvis sensor is firmly attached.",
                                                  subject=Site.PELVIS.value, details=details))
        return loose


def _without_turns(rate: FloatArray, period_rows: int) -> tuple[FloatArray, FloatArray]:
    """``rate`` minus its moving average over ``period_rows``, and the absolute moving average (the turning rate).

    A boxcar of one stride has zeros at the stride frequency and its harmonics, so the stride-periodic pelvic rotation
    passes untouched while a turn of the whole walker (slower than a stride) is held in the average.
    """
    if period_rows < 2 or rate.size <= period_rows:
        return rate - rate.mean(), np.full(rate.size, abs(rate.mean()))
    kernel = np.ones(period_rows) / period_rows
    padded = np.pad(rate, (period_rows // 2, period_rows - 1 - period_rows // 2), mode="edge")
    trend = np.convolve(padded, kernel, mode="valid")
    return rate - trend, np.abs(trend)


def _twist_of_axis(m: _Motion, expected_rotation: FloatArray) -> float:
    """Angle about the sensor's up axis from the expected left axis to the estimated one, degrees."""
    expected_left = horizontal(expected_left_sensor(expected_rotation), m.up)
    estimated = horizontal(m.axis, m.up)
    return float(np.degrees(np.arctan2(np.dot(np.cross(expected_left, estimated), m.up),
                                       np.dot(expected_left, estimated))))


def _horizontal_basis(up: FloatArray) -> tuple[FloatArray, FloatArray]:
    a = horizontal(np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0]), up)
    return a, np.cross(up, a)


def _hinge_fit(a: _Motion, b: _Motion) -> tuple[FloatArray, FloatArray, float]:
    """Knee-hinge axes of two leg sensors, each constrained to its sensor's horizontal plane (the knee axis is
    perpendicular to the long axis of both segments), and the RMS hinge residual in rad/s.

    Minimises ``mean((|ω_a × j_a| − |ω_b × j_b|)²)`` (Seel et al. 2014, eq. 2) over the two heading angles: a grid of
    2.5° by matrix products, then a 0.25° grid around its best cell. Symmetric in ``a`` and ``b``.
    """
    step = 2
    wa, wb = a.omega[::step], b.omega[::step]

    def norms(w: FloatArray, up: FloatArray, angles: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        e1, e2 = _horizontal_basis(up)
        along = np.outer(w @ e1, np.cos(angles)) + np.outer(w @ e2, np.sin(angles))
        perpendicular = np.sqrt(np.maximum(np.sum(w**2, axis=1)[:, None] - along**2, 0.0))
        return perpendicular, e1, e2

    coarse = np.radians(np.arange(0.0, 180.0, 2.5))
    na, _, _ = norms(wa, a.up, coarse)
    nb, _, _ = norms(wb, b.up, coarse)
    cost = (np.mean(na**2, axis=0)[:, None] + np.mean(nb**2, axis=0)[None, :] - 2.0 * (na.T @ nb) / na.shape[0])
    i, k = np.unravel_index(int(np.argmin(cost)), cost.shape)
    fine_a = coarse[i] + np.radians(np.arange(-2.5, 2.75, 0.25))
    fine_b = coarse[k] + np.radians(np.arange(-2.5, 2.75, 0.25))
    na, ea1, ea2 = norms(wa, a.up, fine_a)
    nb, eb1, eb2 = norms(wb, b.up, fine_b)
    cost = (np.mean(na**2, axis=0)[:, None] + np.mean(nb**2, axis=0)[None, :] - 2.0 * (na.T @ nb) / na.shape[0])
    i, k = np.unravel_index(int(np.argmin(cost)), cost.shape)
    ja = np.cos(fine_a[i]) * ea1 + np.sin(fine_a[i]) * ea2
    jb = np.cos(fine_b[k]) * eb1 + np.sin(fine_b[k]) * eb2
    return ja, jb, float(np.sqrt(max(cost[i, k], 0.0)))


def _pelvis_forward_from_start(m: _Motion, still_acc_m_s2: FloatArray, gyr_bias_rad_s: FloatArray, rate_hz: float,
                               duration_s: float, limits: IdentificationThresholds) -> tuple[FloatArray, float] | None:
    """Forward direction of a pelvis sensor from its velocity over the first steps, or ``None`` if the walk does not
    start from standing or the pelvis hardly moves.

    Strapdown integration from rest: orientation from the bias-corrected gyroscope, free acceleration as the rotated
    specific force minus the one measured standing (so the accelerometer bias cancels while the orientation changes
    little), velocity by summation; its mean, expressed in the sensor's own frame at each instant (the walker may
    turn), points forward.
    """
    n = min(m.omega.shape[0], int(duration_s * rate_hz))
    omega = m.omega[:n] - gyr_bias_rad_s
    onset = int(limits.start_still_s * rate_hz)
    if n < 2 * onset:
        return None
    # At rest means neither turning nor pushing: a slow pelvis can translate while hardly rotating.
    turning_dps = np.degrees(np.max(np.linalg.norm(omega[:onset], axis=1)))
    pushing_m_s2 = np.linalg.norm(np.mean(m.acc[:onset], axis=0) - still_acc_m_s2)
    if turning_dps > limits.start_still_dps or pushing_m_s2 > limits.start_onset_m_s2:
        return None
    steps = Rotation.from_rotvec(omega / rate_hz)
    rotations = [Rotation.identity()]
    for step in steps[:-1]:
        rotations.append(rotations[-1] * step)
    orientation = Rotation.concatenate(rotations)
    velocity = np.cumsum(orientation.apply(m.acc[:n]) - still_acc_m_s2, axis=0) / rate_hz
    mean = np.mean(orientation.inv().apply(velocity), axis=0)
    speed = float(np.linalg.norm(mean - np.dot(mean, m.up) * m.up))
    if speed < limits.start_min_speed_m_s:
        return None
    return horizontal(mean, m.up), speed


def _pelvis_forward_pendulum(m: _Motion, rate_hz: float) -> tuple[FloatArray, float]:
    """The pelvis sensor's forward direction (sensor coordinates) and the strength of the evidence (0-1).

    Inverted-pendulum walking: forward speed peaks when the pelvis is lowest (Cavagna, Heglund & Taylor
    1977, Am J Physiol 233:R243), so horizontal acceleration along forward is in opposition with vertical velocity:
    ``forward ∝ −Σ a_h(t)·v_z(t)``. The strength is the normalised size of that covariance.
    """
    acc = band_pass(m.acc, 0.3, 6.0, rate_hz, order=2)
    vertical = acc @ m.up
    flat = acc - np.outer(vertical, m.up)
    velocity = np.cumsum(vertical) / rate_hz
    velocity = velocity - low_pass(velocity[:, None], 0.3, rate_hz)[:, 0]
    covariance = flat.T @ velocity
    scale = float(np.sqrt(np.sum(flat**2) * np.sum(velocity**2)))
    strength = 0.0 if scale == 0.0 else float(np.linalg.norm(covariance) / scale)
    return horizontal(-covariance, m.up), strength
