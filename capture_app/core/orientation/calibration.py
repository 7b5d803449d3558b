"""Sensor-to-segment calibration and heading alignment, from the standing pose and the walking itself.

Result per site: ``R_segment_sensor`` (sensor axes in the segment frame, frames of :mod:`sensor_drivers.frames`:
x anterior, y left, z superior) and a heading ``ψ`` that turns the sensor's fusion world (z up, arbitrary heading)
into the common *walkway* world (x along the walking direction, y left, z up), so that

    R_world_segment(t) = R_z(ψ) · R_fusionworld_sensor(t) · R_segment_sensorᵀ.

How each part is found (docs/joint-angles.md has the reasoning and the figures):

1. **Vertical axes from standing** (the walk test starts standing still, all joint angles taken as zero there):
   each segment's z axis in its sensor frame is the mean specific force over the standing period.
2. **Medio-lateral axes from walking.** Thigh and shank of one leg: the knee flexion axis by Seel et al. (2014)
   (:func:`~capture_app.core.orientation.joint_axis.hinge_axes`); a thigh or shank whose partner is missing: the
   principal axis of its angular velocity (less accurate: the thigh also rotates about other axes). The axis is
   made orthogonal to the vertical axis; its sign is chosen so that it points to the patient's left, judged by
   what walking does to the segments: the knee flexes (0-70°) but hardly hyperextends; on average the shank
   leans with the ankle behind the knee, the thigh with the knee ahead of the hip.
3. **Pelvis anterior axis and the walkway**: the walking direction in the pelvis sensor's fusion world, from its
   gravity-free acceleration integrated to a velocity between the standing period and the end of the walk (zero
   velocity at both ends: the drift is removed linearly; without a still end, from the start only). The pelvis
   faces that direction on average over the walk (pelvic rotation is symmetric about the line of progression).
4. **Heading alignment without the magnetometer**: in the standing pose all segments face the same way, so each
   leg sensor's ψ makes its segment's standing heading equal to the pelvis's. The knee hinge gives a second,
   independent estimate for each shank relative to its thigh (the knee axis is one line in the world); their
   difference is reported as a consistency figure. Without a pelvis sensor, the walking direction is the mean
   heading of the legs' anterior axes over the walk.

Verdicts (``verdicts_``): no standing period (fail: no vertical reference; a fallback from the mean walking
acceleration is used, with degrees of offset), too little walking (fail: no functional axes; angles are not
given), an axis far from horizontal in the standing pose or a poor hinge fit (warning), a pelvis walking
direction that is not straight (warning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from capture_app.core.orientation.joint_axis import (
    angular_acceleration_rad_s2,
    hinge_axes,
    joint_centre,
    point_acceleration,
    principal_axis,
)
from capture_app.core.orientation.rotations import (
    angle_between_deg,
    circular_mean_rad,
    frame_from_z_and_y,
    heading_rad,
    matrix_from_quat,
    quat_from_matrix,
    quat_multiply,
    rot_z,
    unit,
    wrap_rad,
)
from capture_app.core.signals import KitSignals
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.frames import G_M_S2
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

LEG_SITES = (Site.THIGH_L, Site.THIGH_R, Site.SHANK_L, Site.SHANK_R)
KNEES = ((Site.THIGH_L, Site.SHANK_L), (Site.THIGH_R, Site.SHANK_R))


@dataclass(frozen=True)
class StandingPose:
    """What the calibration needs from the standing period: per site the mean specific force (sensor frame) and
    the mean fused orientation. Built from rows (:meth:`from_rows`) or accumulated live."""

    start_s: float
    end_s: float
    acc_mean_m_s2: dict[Site, FloatArray]
    quat_wxyz_world_sensor: dict[Site, FloatArray]

    @classmethod
    def from_rows(
        cls, kit: KitSignals, quat_wxyz_world_sensor: dict[Site, FloatArray], start_s: float, end_s: float
    ) -> StandingPose | None:
        """Means over the rows in ``[start_s, end_s)`` for every site with valid rows there; None if none."""
        rows = (kit.time_s >= start_s) & (kit.time_s < end_s)
        acc, quat = {}, {}
        for site, s in kit.sites.items():
            q = quat_wxyz_world_sensor.get(site)
            if q is None:
                continue
            ok = rows & s.valid & np.all(np.isfinite(s.acc_m_s2), axis=1) & np.all(np.isfinite(q), axis=1)
            if ok.sum() < 2:
                continue
            acc[site] = s.acc_m_s2[ok].mean(axis=0)
            quat[site] = mean_quat(q[ok])
        if not acc:
            return None
        return cls(float(start_s), float(end_s), acc, quat)


def mean_quat(quat_wxyz: FloatArray) -> FloatArray:
    """The mean orientation of nearby unit quaternions (sign-aligned, normalised average; Markley et al. 2007 give
    the exact eigenvector form, equal to first order for the small spread of a standing pose)."""
    q = np.asarray(quat_wxyz, dtype=float)
    q = np.where((q @ q[0] < 0)[:, None], -q, q)
    m = q.mean(axis=0)
    return m / np.linalg.norm(m)


def standing_interval_s(still_period_s: dict[Site, tuple[float, float | None] | None], window_s: float,
                        end_of_data_s: float) -> tuple[float, float] | None:
    """The standing period common to the sensors that had one, from each sensor's first still stretch (a sensor
    without one, e.g. a dead one, is left out: the calibration says so for it). A still stretch is flagged ended
    one detection window after motion began, so that window is cut off its end."""
    periods = [p for p in still_period_s.values() if p is not None]
    if not periods:
        return None
    start = max(p[0] for p in periods)
    end = min((p[1] if p[1] is not None else end_of_data_s) for p in periods) - window_s
    return (start, end) if end > start else None


@dataclass
class SiteCalibration:
    """One site's calibration and how much to trust it."""

    R_segment_sensor: FloatArray
    heading_rad: float
    #: How the medio-lateral axis was found: ``hinge`` (knee axis), ``principal`` (one segment's main rotation
    #: axis), ``walking_direction`` (pelvis), ``standing`` (none: heading from the standing pose only).
    method: str
    #: 0 (unusable) … 1 (as good as the method gets); see ``figures`` for the numbers behind it.
    confidence: float
    figures: dict[str, float] = field(default_factory=dict)
    #: ``R_segment_sensorᵀ`` as a quaternion, filled on first use.
    quat_wxyz_sensor_segment: FloatArray | None = None


class SegmentCalibration:
    """Sensor-to-segment calibration and heading alignment of a kit (see the module docstring).

    Parameters: ``min_walk_s`` (walking needed for the functional step), ``moving_gyr_rad_s`` (leg rotation rate,
    1-s RMS, that counts as walking), ``max_axis_tilt_deg`` (how far from horizontal in the standing pose a
    functional axis may be before a warning), ``max_hinge_residual_ratio`` (hinge-fit residual relative to the
    angular rate, warning above), ``max_samples`` (rows used by the hinge and joint-centre fits),
    ``min_pelvis_confidence`` (below it a warning says the pelvis's forward direction is uncertain),
    ``max_turn_deg`` (a turn of the walk larger than this, in stride-averaged pelvis heading, gets a warning).

    Results of :meth:`calibrate`: ``sites_`` (site → :class:`SiteCalibration`), ``R_segment_sensor_`` and
    ``heading_rad_`` (site → value, for the calibrated sites), ``walking_s_`` ((start, end) or None),
    ``standing_s_``, ``walk_direction_rad_`` (heading of the walk in the pelvis fusion world, or None),
    ``verdicts_``.
    """

    def __init__(
        self,
        min_walk_s: float = 4.0,
        moving_gyr_rad_s: float = 0.6,
        max_axis_tilt_deg: float = 20.0,
        max_hinge_residual_ratio: float = 0.15,
        max_samples: int = 3000,
        min_pelvis_confidence: float = 0.3,
        max_turn_deg: float = 20.0,
    ) -> None:
        self.min_walk_s = min_walk_s
        self.moving_gyr_rad_s = moving_gyr_rad_s
        self.max_axis_tilt_deg = max_axis_tilt_deg
        self.max_hinge_residual_ratio = max_hinge_residual_ratio
        self.max_samples = max_samples
        self.min_pelvis_confidence = min_pelvis_confidence
        self.max_turn_deg = max_turn_deg

    # -- the verb ----------------------------------------------------------------------------------------------
    def calibrate(
        self,
        kit: KitSignals,
        quat_wxyz_world_sensor: dict[Site, FloatArray],
        standing: StandingPose | None,
        gyr_bias_rad_s: dict[Site, FloatArray] | None = None,
        final_still_s: dict[Site, float] | None = None,
    ) -> SegmentCalibration:
        """Calibrate from ``kit`` (standing and walking rows), the fused orientations on its rows, and the standing
        pose (None: none was found). ``gyr_bias_rad_s`` (from the fusion) is subtracted from the gyroscopes;
        ``final_still_s`` says per site when it stood still again after the walk (unknown: absent)."""
        self.verdicts_: list[Verdict] = []
        self.sites_: dict[Site, SiteCalibration] = {}
        self.standing_s_ = None if standing is None else (standing.start_s, standing.end_s)
        self.walk_direction_rad_: float | None = None
        rate_hz = kit.rate_hz
        bias = gyr_bias_rad_s or {}
        # Sites with an orientation for at least a second of rows (a dead sensor has none to calibrate).
        present = [s for s in kit.sites if s in quat_wxyz_world_sensor
                   and np.isfinite(quat_wxyz_world_sensor[s][:, 0]).sum() >= kit.rate_hz]
        gyr = {s: kit.sites[s].gyr_rad_s - bias.get(s, np.zeros(3)) for s in present}
        R = {s: matrix_from_quat(quat_wxyz_world_sensor[s]) for s in present}
        walking = self._walking_rows(kit, gyr, present)
        walk_rows = np.nonzero(walking)[0]
        self.walking_s_ = (
            (float(kit.time_s[walk_rows[0]]), float(kit.time_s[walk_rows[-1]])) if walk_rows.size else None
        )
        walk_s = walking.sum() / rate_hz
        if walk_s < self.min_walk_s:
            self.verdicts_.append(Verdict(
                Level.FAIL, "calibration.too_little_walking",
                f"Only {walk_s:.1f} s of walking were found; at least {self.min_walk_s:g} s are needed to find how "
                "the sensors sit on the legs, so joint angles cannot be given.",
                "Record a walk of several strides (the full walkway).",
                details={"walking_s": round(float(walk_s), 2), "min_walk_s": self.min_walk_s},
            ))
            self._collect()
            return self
        not_standing = [s for s in present if standing is None or s not in standing.acc_mean_m_s2]
        if standing is None:
            self.verdicts_.append(Verdict(
                Level.FAIL, "calibration.no_standing",
                "The patient did not stand still before walking, so the sensors' vertical axes could not be "
                "measured; angles are estimated from the walking alone and may be offset by several degrees.",
                "Ask the patient to stand still and upright for 3 seconds before starting to walk.",
            ))
        else:
            for s in not_standing:
                self.verdicts_.append(Verdict(
                    Level.WARNING, "calibration.no_standing",
                    f"The {_site_words(s)} sensor was not still while the patient stood, so its vertical axis comes "
                    "from the walking alone; its angles may be offset by several degrees.",
                    "Check that the sensor is strapped tight and delivering data from the start.",
                    subject=s.value,
                ))
        vertical = self._vertical_axes(kit, R, present, standing, walking)
        ml_axes = self._ml_axes(gyr, R, present, walking, vertical)
        leg_frames = self._leg_frames(present, vertical, ml_axes)
        pelvis_heading = self._pelvis(kit, gyr, R, present, standing, walking, vertical, leg_frames,
                                      final_still_s or {})
        self._leg_headings(R, standing, walking, leg_frames, pelvis_heading)
        self._collect()
        return self

    def walking_s(self, kit: KitSignals) -> float:
        """Seconds of walking in ``kit`` by the calibration's own criterion (gyroscopes as given)."""
        gyr = {s: kit.sites[s].gyr_rad_s for s in kit.sites}
        return float(self._walking_rows(kit, gyr, list(kit.sites)).sum() / kit.rate_hz)

    def world_segment_quat(self, site: Site, quat_wxyz_world_sensor: FloatArray) -> FloatArray:
        """``quat_wxyz_world_segment`` (N, 4) of a calibrated site from its fused orientations (NaN where unknown):
        ``q_z(ψ) ⊗ q_fusionworld_sensor ⊗ q_sensor_segment``."""
        cal = self.sites_[site]
        if cal.quat_wxyz_sensor_segment is None:
            cal.quat_wxyz_sensor_segment = quat_from_matrix(cal.R_segment_sensor.T)
        q_heading = np.array([np.cos(cal.heading_rad / 2.0), 0.0, 0.0, np.sin(cal.heading_rad / 2.0)])
        return quat_multiply(quat_multiply(q_heading, quat_wxyz_world_sensor), cal.quat_wxyz_sensor_segment)

    def world_segment(self, site: Site, quat_wxyz_world_sensor: FloatArray) -> FloatArray:
        """``R_world_segment`` (N, 3, 3) of a calibrated site from its fused orientations (NaN where unknown):
        ``R_z(ψ) · R_fusionworld_sensor · R_segment_sensorᵀ``."""
        return matrix_from_quat(self.world_segment_quat(site, quat_wxyz_world_sensor))

    # -- steps ---------------------------------------------------------------------------------------------------
    def _walking_rows(self, kit: KitSignals, gyr: dict[Site, FloatArray], present: list[Site]) -> BoolArray:
        """Rows where the legs (else the pelvis, at a third of the rate) move as in walking: 1-s RMS rotation rate."""
        legs = [s for s in present if s in LEG_SITES]
        sources, threshold = (legs, self.moving_gyr_rad_s) if legs else (present, self.moving_gyr_rad_s / 3.0)
        n_window = max(1, round(kit.rate_hz))
        activity = np.zeros(kit.n_samples)
        for s in sources:
            rate2 = np.sum(gyr[s] ** 2, axis=1)
            ok = np.isfinite(rate2)
            c = np.concatenate([[0.0], np.cumsum(np.where(ok, rate2, 0.0))])
            cn = np.concatenate([[0], np.cumsum(ok)])
            lo = np.clip(np.arange(kit.n_samples) - n_window // 2, 0, kit.n_samples)
            hi = np.clip(np.arange(kit.n_samples) + n_window // 2 + 1, 0, kit.n_samples)
            with np.errstate(invalid="ignore", divide="ignore"):
                rms = np.sqrt((c[hi] - c[lo]) / (cn[hi] - cn[lo]))
            activity = np.fmax(activity, rms)
        return activity > threshold

    def _vertical_axes(self, kit, R, present, standing: StandingPose | None, walking) -> dict[Site, FloatArray]:
        """Each segment's z axis in its sensor frame: gravity while standing, else the mean walking acceleration."""
        out = {}
        for s in present:
            if standing is not None and s in standing.acc_mean_m_s2:
                out[s] = unit(standing.acc_mean_m_s2[s])
            else:
                acc = kit.sites[s].acc_m_s2[walking]
                out[s] = unit(np.nanmean(acc, axis=0))
        return out

    def _ml_axes(self, gyr, R, present, walking, vertical) -> dict[Site, tuple[FloatArray, str, dict[str, float]]]:
        """Medio-lateral axis (sign to the left) of each leg segment in its sensor frame, with method and figures."""
        out: dict[Site, tuple[FloatArray, str, dict[str, float]]] = {}
        for thigh, shank in KNEES:
            if thigh in present and shank in present:
                fit = hinge_axes(gyr[thigh][walking], gyr[shank][walking], max_samples=self.max_samples,
                                 normal_1=vertical[thigh], normal_2=vertical[shank])
                if np.all(np.isfinite(fit.axis_1)):
                    j_t, j_s = self._hinge_signs(fit.axis_1, fit.axis_2, R, thigh, shank, walking, vertical)
                    figures = {"hinge_residual_ratio": fit.residual_ratio, "hinge_samples": fit.n_samples}
                    tilts = [abs(90.0 - angle_between_deg(free, vertical[s]))
                             for free, s in ((fit.free_axis_1, thigh), (fit.free_axis_2, shank))]
                    out[thigh] = (j_t, "hinge", {**figures, "free_axis_tilt_deg": float(tilts[0])})
                    out[shank] = (j_s, "hinge", {**figures, "free_axis_tilt_deg": float(tilts[1])})
                    continue
            for s in (thigh, shank):
                if s in present:
                    axis, explained = principal_axis(gyr[s][walking])
                    if np.all(np.isfinite(axis)):
                        axis = axis * self._single_sign(axis, R[s], walking, vertical[s], s)
                        out[s] = (axis, "principal", {"principal_fraction": explained})
        return out

    def _hinge_signs(self, j_t, j_s, R, thigh, shank, walking, vertical) -> tuple[FloatArray, FloatArray]:
        """Signs of the two knee axes, both pointing left: of the four sign pairs, the one whose knee angle (shank
        pitch minus thigh pitch) is most rarely negative, i.e. has the largest 5th percentile. The true knee stays
        near or above 0° (full extension); a wrong pair gives the sum of the pitches, or the negated angle,
        which go tens of degrees negative in every stride."""
        p_t = _pitch(R[thigh], j_t, vertical[thigh], walking)
        p_s = _pitch(R[shank], j_s, vertical[shank], walking)
        best = max(
            ((s_t, s_s) for s_t in (1.0, -1.0) for s_s in (1.0, -1.0)),
            key=lambda signs: np.nanpercentile(signs[1] * p_s - signs[0] * p_t, 5.0),
        )
        return best[0] * j_t, best[1] * j_s

    def _single_sign(self, axis, R, walking, vertical, site: Site) -> float:
        """Sign of one leg segment's axis from its mean pitch in walking: the shank leans with the ankle behind the
        knee (+), the thigh with the knee ahead of the hip (−)."""
        pitch = np.nanmean(_pitch(R, axis, vertical, walking))
        expected = 1.0 if site.segment == "shank" else -1.0
        return 1.0 if pitch * expected >= 0 else -1.0

    def _pelvis(self, kit, gyr, R, present, standing, walking, vertical, leg_frames, final_still_s) -> float | None:
        """Calibrate the pelvis: anterior axis from the hip link to the thighs (else from the walking direction),
        heading so that the pelvis faces the walkway's x on average over the walk. Returns the pelvis segment's
        heading in the standing pose in the walkway world (None without a pelvis sensor)."""
        s = Site.PELVIS
        if s not in present:
            return None
        z = vertical[s]
        e1 = unit(np.cross(np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0]), z))
        e2 = np.cross(z, e1)
        rows = walking & np.all(np.isfinite(R[s][:, 0, :]), axis=1)
        figures: dict[str, float] = {}
        # Two independent estimates of the pelvis's forward axis; each says how far to trust it.
        target, link_fit = self._hip_link_heading(kit, gyr, R, present, standing, walking, leg_frames, figures)
        direction, straightness, drift_ratio = self._walk_direction(kit, R[s], standing, walking,
                                                                    final_still_s.get(s))
        if direction is not None:
            figures["walk_straightness"] = straightness
            figures["walk_velocity_error_ratio"] = drift_ratio
        # The walking direction is good when the integration is short against the speed (a residual acceleration
        # error of ~0.03 m/s² grows a velocity error of ~T·0.03/4 after drift removal) and the walk was straight.
        walk_conf = 0.0 if direction is None else float(
            np.clip((straightness - 0.5) / 0.4, 0.0, 1.0) * np.clip(1.0 - drift_ratio / 0.5, 0.0, 1.0))
        has_pose = standing is not None and s in standing.quat_wxyz_world_sensor
        link_conf = link_fit if (target is not None and has_pose) else 0.0
        if link_conf == 0.0 and walk_conf == 0.0 and direction is None:
            return None
        if link_conf >= max(walk_conf, 0.15) or direction is None:
            method, confidence = "hip_link", link_conf
            # The pelvis's anterior axis points, in the standing pose, where the thighs point (seen in the pelvis
            # world through the hip link).
            R0 = matrix_from_quat(standing.quat_wxyz_world_sensor[s])
            phi = 0.0
            for _ in range(3):  # the heading is nearly linear in φ
                phi += float(wrap_rad(target - heading_rad(R0 @ (np.cos(phi) * e1 + np.sin(phi) * e2))))
        else:
            method, confidence = "walking_direction", walk_conf
            self.walk_direction_rad_ = direction
            # The pelvis faces the walking direction on average over the walk.
            phi = 0.0
            for _ in range(3):
                x = np.cos(phi) * e1 + np.sin(phi) * e2
                phi += circular_mean_rad(wrap_rad(direction - heading_rad(R[s][rows] @ x)))
        turn_deg = _largest_turn_deg(R[s][rows] @ e1, round(2.0 * kit.rate_hz))
        figures["walk_turn_deg"] = turn_deg
        if turn_deg > self.max_turn_deg:
            self.verdicts_.append(Verdict(
                Level.WARNING, "calibration.walk_not_straight",
                f"The patient turned during the walk (by up to {turn_deg:.0f}°), so the walkway direction, and "
                "with it the pelvic rotation angle and the pelvis's forward axis, are uncertain.",
                "Walk straight along the walkway; do not turn within the recording.",
                subject=s.value, details={"turn_deg": round(turn_deg, 1)},
            ))
        x = np.cos(phi) * e1 + np.sin(phi) * e2
        # Walkway x: the pelvis's mean heading over the walk (pelvic rotation is symmetric about the line of
        # progression in straight walking).
        walkway = circular_mean_rad(heading_rad(R[s][rows] @ x))
        if self.walk_direction_rad_ is None:
            self.walk_direction_rad_ = walkway
        R_sensor_segment = np.column_stack([x, np.cross(z, x), z])
        self.sites_[s] = SiteCalibration(R_sensor_segment.T, float(-walkway), method, confidence, figures)
        if confidence < self.min_pelvis_confidence:
            self.verdicts_.append(Verdict(
                Level.WARNING, "calibration.pelvis_uncertain",
                "The pelvis sensor's forward direction could not be measured reliably from this walk, so the "
                "pelvic angles and the hips' ab/adduction and rotation are uncertain (hip and knee flexion are not "
                "affected much).",
                "Walk straight along the whole walkway at a comfortable speed.",
                subject=s.value, details={"method": method, "confidence": round(confidence, 2)},
            ))
        if standing is not None and s in standing.quat_wxyz_world_sensor:
            R0 = matrix_from_quat(standing.quat_wxyz_world_sensor[s])
            return float(wrap_rad(heading_rad(R0 @ x) - walkway))
        return 0.0

    def _hip_link_heading(
        self, kit, gyr, R, present, standing, walking, leg_frames, figures
    ) -> tuple[float | None, float]:
        """Where the thighs point in the standing pose, as a heading in the pelvis's fusion world, and a fit figure
        in [0, 1]; (None, 0) when no thigh can be linked.

        The hip centre belongs to pelvis and thigh, so its acceleration, computed from either sensor
        (:func:`~capture_app.core.orientation.joint_axis.joint_centre`, Seel et al. 2014 Section 3.2) and turned
        into that sensor's fusion world, is one vector seen in two worlds that differ by a heading: the heading
        that best maps the thigh's horizontal hip accelerations onto the pelvis's (least squares, closed form)."""
        P = Site.PELVIS
        if standing is None or P not in standing.quat_wxyz_world_sensor:
            return None, 0.0
        rate = kit.rate_hz
        acc_p, gyr_p = kit.sites[P].acc_m_s2, gyr[P]
        dot_p = angular_acceleration_rad_s2(gyr_p, rate)
        headings, weights = [], []
        for thigh in (Site.THIGH_L, Site.THIGH_R):
            if thigh not in leg_frames or thigh not in standing.quat_wxyz_world_sensor:
                continue
            acc_t, gyr_t = kit.sites[thigh].acc_m_s2, gyr[thigh]
            dot_t = angular_acceleration_rad_s2(gyr_t, rate)
            fit = joint_centre(acc_p[walking], gyr_p[walking], dot_p[walking], acc_t[walking], gyr_t[walking],
                               dot_t[walking], np.zeros(3), np.zeros(3), max_samples=self.max_samples)
            if not np.all(np.isfinite(fit.position_1_m)):
                continue
            A_p = np.einsum("nij,nj->ni", R[P], point_acceleration(acc_p, gyr_p, dot_p, fit.position_1_m))
            A_t = np.einsum("nij,nj->ni", R[thigh], point_acceleration(acc_t, gyr_t, dot_t, fit.position_2_m))
            ok = walking & np.all(np.isfinite(A_p), axis=1) & np.all(np.isfinite(A_t), axis=1)
            if ok.sum() < kit.rate_hz:
                continue
            a = A_t[ok, :2] - A_t[ok, :2].mean(axis=0)
            b = A_p[ok, :2] - A_p[ok, :2].mean(axis=0)
            delta = float(np.arctan2(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]), np.sum(a * b)))
            c, sn = np.cos(delta), np.sin(delta)
            rotated = np.column_stack([c * a[:, 0] - sn * a[:, 1], sn * a[:, 0] + c * a[:, 1]])
            r2 = 1.0 - float(np.sum((rotated - b) ** 2) / max(np.sum(b * b), 1e-12))
            R0 = matrix_from_quat(standing.quat_wxyz_world_sensor[thigh])
            headings.append(float(heading_rad(R0 @ leg_frames[thigh][:, 0])) + delta)
            weights.append(max(r2, 0.0))
            figures[f"hip_link_r2_{thigh.side}"] = r2
        if not headings or max(weights) < 0.2:
            return None, 0.0
        if len(headings) == 2:
            figures["hip_link_disagreement_deg"] = float(np.degrees(abs(wrap_rad(headings[0] - headings[1]))))
        return circular_mean_rad(np.array(headings), np.array(weights)), float(np.clip(max(weights), 0.0, 1.0))

    def _walk_direction(self, kit, R, standing, walking, final_still_s) -> tuple[float | None, float, float]:
        """Heading of the walk in the pelvis fusion world, how straight it was (|mean v| / mean |v|), and the
        expected velocity error relative to the mean speed.

        The gravity-free acceleration is integrated from the end of the standing period; where the pelvis is known
        to stand still again at the end (``final_still_s``), the velocity is zero there too and a constant
        acceleration error (a tilt error of the fusion) is removed linearly."""
        acc = kit.sites[Site.PELVIS].acc_m_s2
        a_world = np.einsum("nij,nj->ni", R, acc) - np.array([0.0, 0.0, G_M_S2])
        moving = np.nonzero(walking)[0]
        start = moving[0]
        if standing is not None:
            start = max(0, min(start, int(np.searchsorted(kit.time_s, standing.end_s))))
        # A final still period means the recording ends standing: integrate to its end, where v = 0 for sure
        # (the still period's detected start lags the true one by up to a detection window).
        ends_still = final_still_s is not None and final_still_s > kit.time_s[moving[0]]
        stop = kit.n_samples if ends_still else moving[-1] + 1
        a = a_world[start:stop, :2]
        a = np.where(np.isfinite(a), a, 0.0)
        v = np.cumsum(a, axis=0) / kit.rate_hz
        if ends_still:
            v -= np.outer(np.arange(1, len(v) + 1) / len(v), v[-1])  # zero velocity at both ends
        v_walk = v[walking[start:stop]]
        if not v_walk.size:
            return None, 0.0, np.inf
        mean_v = v_walk.mean(axis=0)
        speed = np.linalg.norm(v_walk, axis=1).mean()
        straightness = float(np.linalg.norm(mean_v) / speed) if speed > 0 else 0.0
        duration_s = len(v) / kit.rate_hz
        # Residual acceleration error after the fusion, ~0.03 m/s² on the virtual patient; without the end
        # anchor the error is not removed and grows with the whole duration.
        error_m_s = 0.03 * duration_s / (4.0 if ends_still else 1.0)
        ratio = float(error_m_s / speed) if speed > 0 else np.inf
        return float(np.arctan2(mean_v[1], mean_v[0])), straightness, ratio

    def _leg_frames(self, present, vertical, ml_axes) -> dict[Site, FloatArray]:
        """Leg segment frames (R_sensor_segment) from the vertical and medio-lateral axes, with their checks."""
        frames: dict[Site, FloatArray] = {}
        for s, (axis, method, figures) in ml_axes.items():
            # How far the functional axis leans out of the horizontal of the standing pose (for the hinge: its
            # unconstrained solution; the one used is constrained to the horizontal).
            tilt_deg = float(figures.get("free_axis_tilt_deg", abs(90.0 - angle_between_deg(axis, vertical[s]))))
            R_sensor_segment = frame_from_z_and_y(vertical[s], axis)
            frames[s] = R_sensor_segment
            figures = {k: v for k, v in figures.items() if k != "free_axis_tilt_deg"} | {"axis_tilt_deg": tilt_deg}
            confidence = 1.0 if method == "hinge" else 0.5
            if tilt_deg > self.max_axis_tilt_deg:
                confidence *= 0.3
                self.verdicts_.append(Verdict(
                    Level.WARNING, "calibration.axis_not_horizontal",
                    f"The {_site_words(s)} sensor's knee axis found from the walk is {tilt_deg:.0f}° from "
                    "horizontal in the standing pose; the sensor may have moved, or the standing pose was not "
                    "upright. Its angles are less certain.",
                    "Check that the sensor is strapped tight, then record again with an upright standing start.",
                    subject=s.value, details={"axis_tilt_deg": round(tilt_deg, 1)},
                ))
            ratio = figures.get("hinge_residual_ratio")
            if ratio is not None and ratio > self.max_hinge_residual_ratio:
                confidence *= 0.5
                self.verdicts_.append(Verdict(
                    Level.WARNING, "calibration.poor_hinge_fit",
                    f"The {_site_words(s)} sensor does not move like a leg segment at a knee (fit residual "
                    f"{ratio:.0%} of the rotation rate); it may be loose or on the wrong segment.",
                    "Check the sensor's placement and strap.",
                    subject=s.value, details={"hinge_residual_ratio": round(float(ratio), 3)},
                ))
            self.sites_[s] = SiteCalibration(R_sensor_segment.T, 0.0, method, confidence, figures)
        return frames

    def _leg_headings(self, R, standing, walking, frames, pelvis_heading: float | None) -> None:
        """Leg headings: the standing pose faces where the pelvis faces; the knee hinge as a check."""
        for s, R_sensor_segment in frames.items():
            x = R_sensor_segment[:, 0]
            if standing is not None and pelvis_heading is not None and s in standing.quat_wxyz_world_sensor:
                R0 = matrix_from_quat(standing.quat_wxyz_world_sensor[s])
                psi = wrap_rad(pelvis_heading - heading_rad(R0 @ x))
                self.sites_[s].figures["heading_source"] = 0.0  # standing pose
            else:
                rows = walking & np.all(np.isfinite(R[s][:, 0, :]), axis=1)
                psi = wrap_rad(-circular_mean_rad(heading_rad(R[s][rows] @ x)))
                self.sites_[s].figures["heading_source"] = 1.0  # mean walking heading
            self.sites_[s].heading_rad = float(psi)
        for thigh, shank in KNEES:
            if thigh in frames and shank in frames and self.sites_[shank].method == "hinge":
                rows = walking & np.all(np.isfinite(R[thigh][:, 0, :]), axis=1) & np.all(
                    np.isfinite(R[shank][:, 0, :]), axis=1)
                y_t = rot_z(self.sites_[thigh].heading_rad) @ R[thigh][rows] @ frames[thigh][:, 1]
                y_s = rot_z(self.sites_[shank].heading_rad) @ R[shank][rows] @ frames[shank][:, 1]
                mismatch = circular_mean_rad(wrap_rad(heading_rad(y_t) - heading_rad(y_s)))
                self.sites_[shank].figures["knee_heading_mismatch_deg"] = float(np.degrees(mismatch))

    def _collect(self) -> None:
        self.R_segment_sensor_ = {s: c.R_segment_sensor for s, c in self.sites_.items()}
        self.heading_rad_ = {s: c.heading_rad for s, c in self.sites_.items()}


def _largest_turn_deg(axis_world: FloatArray, n_window: int) -> float:
    """How far the heading of a body axis, averaged over ``n_window`` rows (about a stride, so that pelvic rotation
    averages out), strays from its mean over the walk, degrees."""
    heading = heading_rad(axis_world)
    if heading.size < n_window:
        return 0.0
    c, s = np.cos(heading), np.sin(heading)
    kernel = np.ones(n_window) / n_window
    smooth = np.arctan2(np.convolve(s, kernel, mode="valid"), np.convolve(c, kernel, mode="valid"))
    return float(np.degrees(np.max(np.abs(wrap_rad(smooth - circular_mean_rad(heading))))))


def _pitch(R: FloatArray, axis: FloatArray, vertical: FloatArray, rows: BoolArray) -> FloatArray:
    """Forward lean of a segment's long axis about a candidate left axis, rad, on ``rows``: positive when the
    segment's top is ahead of its bottom (a shank with the ankle behind, a thigh extended)."""
    Rr = R[rows]
    y_w = Rr @ axis
    z_w = Rr @ vertical
    forward = unit(np.cross(y_w, [0.0, 0.0, 1.0]))  # left × up = anterior
    return np.arctan2(np.sum(z_w * forward, axis=1), z_w[:, 2])


def _site_words(site: Site) -> str:
    return site.segment if site.side is None else f"{site.side} {site.segment}"
