"""The virtual patient: a planned walk test turned into five IMU tracks and their ground truth.

Usage::

    patient = VirtualPatient(from_source_options("hemiparetic", {"speed": "0.5", "seed": "3"}))
    recording = patient.generate()            # tracks + truth, all in memory
    for true_time_s, reading in recording.tracks[Site.SHANK_L].readings():
        ...                                   # delivered samples only, as a device would send them
    recording.truth.save("walk.truth.npz")    # beside the clip

For long recordings, :meth:`VirtualPatient.iter_chunks` yields consecutive chunks of the tracks (memory stays flat)
and :meth:`VirtualPatient.ground_truth` can be computed at a lower rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from sensor_drivers.frames import GRAVITY_WORLD_M_S2
from sensor_drivers.quaternion import wxyz_from_rotation
from sensor_drivers.sample import DeviceReading, DeviceStatus
from sensor_drivers.sim.body import BodyModel, axis_rotation, rotvec_to_matrix
from sensor_drivers.sim.config import DEFAULT_HEMIPARETIC_SPEED_M_S, VirtualPatientConfig
from sensor_drivers.sim.gait_library import GaitLibrary
from sensor_drivers.sim.imu_errors import SensorErrors
from sensor_drivers.sim.magnetic import MagneticEnvironment
from sensor_drivers.sim.motion import SEGMENTS, BodyMotion, MotionSpline
from sensor_drivers.sim.mounting import Mounting, apply_faults, default_mounting
from sensor_drivers.sim.truth import GaitEvent, GroundTruth, SensorTruth, Stride, joint_angles_deg
from sensor_drivers.sim.walk_plan import WalkPlan, plan_walk
from sensor_drivers.sites import KIT_SITES, Site

FloatArray = NDArray[np.float64]

#: Fine grid the sensor splines are fitted on, at least this rate and twice the sampling rate, Hz.
MIN_SPLINE_RATE_HZ = 400.0
#: Extra spline grid before and after each chunk, s (quintic spline ends settle within a few knots).
SPLINE_MARGIN_S = 0.15
CHUNK_S = 20.0


@dataclass(frozen=True)
class Ringing:
    """A damped oscillation of a sensor on its segment after each heel strike: a rotation about the sensor's y axis
    and a displacement along ``(0.3, 0, 1)`` (mostly out of the skin) in the sensor frame."""

    frequency_hz: float
    damping_ratio: float
    rotation_deg: float
    displacement_m: float
    #: Onset time constant, s: the response starts smoothly (zero velocity) instead of jumping.
    onset_s: float = 0.002


#: A well-strapped sensor still shows a small, stiff heel-strike transient, largest on the shank.
TIGHT_RINGING = Ringing(frequency_hz=30.0, damping_ratio=0.3, rotation_deg=0.3, displacement_m=0.0003)
TIGHT_SCALE = {"shank": 1.0, "thigh": 0.5, "pelvis": 0.3}
#: A loose strap: lower, less damped and larger.
LOOSE_RINGING = Ringing(frequency_hz=12.0, damping_ratio=0.12, rotation_deg=1.5, displacement_m=0.002)
RINGING_DIRECTION = np.array([0.3, 0.0, 1.0]) / np.hypot(0.3, 1.0)


@dataclass
class SensorTrack:
    """Everything one virtual sensor produced, sample by sample (lost samples included, flagged undelivered)."""

    sensor_id: str
    site: Site
    true_time_s: FloatArray
    device_time_s: FloatArray
    seq: NDArray[np.int64]
    acc_m_s2: FloatArray
    gyr_rad_s: FloatArray
    mag_ut: FloatArray
    quat_wxyz: FloatArray | None
    #: False where the sample was lost (packet loss) or the link was down (disconnect).
    delivered: NDArray[np.bool_]
    battery_pct: FloatArray
    acc_clip_count: NDArray[np.int64]
    gyr_clip_count: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.true_time_s)

    def readings(self) -> Iterator[tuple[float, DeviceReading]]:
        """(true time, reading) for each delivered sample, in order."""
        for i in np.flatnonzero(self.delivered):
            status = DeviceStatus(
                battery_pct=float(self.battery_pct[i]),
                acc_clip_count=int(self.acc_clip_count[i]),
                gyr_clip_count=int(self.gyr_clip_count[i]),
            )
            quat = None if self.quat_wxyz is None else tuple(float(x) for x in self.quat_wxyz[i])
            yield float(self.true_time_s[i]), DeviceReading(
                acc_m_s2=tuple(float(x) for x in self.acc_m_s2[i]),  # type: ignore[arg-type]
                gyr_rad_s=tuple(float(x) for x in self.gyr_rad_s[i]),  # type: ignore[arg-type]
                device_time_s=float(self.device_time_s[i]),
                seq=int(self.seq[i]),
                mag_ut=tuple(float(x) for x in self.mag_ut[i]),  # type: ignore[arg-type]
                quat_wxyz=quat,  # type: ignore[arg-type]
                status=status,
            )

    @classmethod
    def concatenate(cls, parts: list[SensorTrack]) -> SensorTrack:
        """One track from consecutive chunks of the same sensor."""
        first = parts[0]
        arrays = {}
        for name in ("true_time_s", "device_time_s", "seq", "acc_m_s2", "gyr_rad_s", "mag_ut", "delivered",
                     "battery_pct", "acc_clip_count", "gyr_clip_count"):
            arrays[name] = np.concatenate([getattr(p, name) for p in parts])
        quat = None if first.quat_wxyz is None else np.concatenate([p.quat_wxyz for p in parts])  # type: ignore[misc]
        return cls(sensor_id=first.sensor_id, site=first.site, quat_wxyz=quat, **arrays)


@dataclass
class VirtualRecording:
    """A generated walk test: its configuration, the five tracks, and the ground truth."""

    config: VirtualPatientConfig
    tracks: dict[Site, SensorTrack]
    truth: GroundTruth


class VirtualPatient:
    """A virtual five-IMU patient walking the walkway once, standing still before and after."""

    def __init__(self, config: VirtualPatientConfig | None = None):
        self.config = config or VirtualPatientConfig()

    # -- the plan and its fixed parts ----------------------------------------------------------------------------
    @cached_property
    def body(self) -> BodyModel:
        """The simulated body."""
        return BodyModel.from_height(self.config.height_m, self.config.mass_kg, GaitLibrary.load().source)

    @cached_property
    def speed_m_s(self) -> float:
        """The steady speed asked for: the configured one, or the default of the profile."""
        if self.config.speed_m_s is not None:
            return self.config.speed_m_s
        if self.config.profile == "healthy":
            library = GaitLibrary.load()
            return float(np.mean([c.speed_m_s for c in library.cycles]) * self.body.leg_scale)
        return DEFAULT_HEMIPARETIC_SPEED_M_S

    @cached_property
    def plan(self) -> WalkPlan:
        """The fitted walk (cycle, pattern, timing)."""
        c = self.config
        return plan_walk(c.profile, self.speed_m_s, self.body, c.walkway_length_m, c.still_start_s,
                         paretic_side=c.paretic_side[0], params=c.hemiparesis)

    @cached_property
    def motion(self) -> BodyMotion:
        """Segment poses over time."""
        return BodyMotion(self.plan)

    @property
    def duration_s(self) -> float:
        """Length of the recording, s."""
        return float(self.plan.timeline.stop_s + self.config.still_end_s)

    @cached_property
    def mountings(self) -> dict[Site, Mounting]:
        """Where each labelled sensor actually sits (intended mountings with the faults applied)."""
        intended = self.config.mountings or {site: default_mounting(site, self.body) for site in KIT_SITES}
        return apply_faults(dict(intended), self.config.faults, self.body)

    @cached_property
    def magnetic(self) -> MagneticEnvironment:
        """The field along the walkway."""
        return self.config.magnetic or MagneticEnvironment.indoor(self.config.walkway_length_m)

    @cached_property
    def contact_times(self) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """(initial contact times, final contact times) per foot "l"/"r", s."""
        walker, timeline = self.motion.walker, self.plan.timeline
        ic = {"l": [], "r": []}
        fc = {"l": [], "r": []}
        for j, lead in enumerate(walker.ds.lead):
            trail = "r" if lead == "l" else "l"
            if j > 0:
                ic[lead].append(walker.ds.phi_ic[j])
            if walker.ds.phi_fc[j] < timeline.phi_end:
                fc[trail].append(walker.ds.phi_fc[j])
        return {s: (timeline.time_of_phase(np.array(ic[s])), timeline.time_of_phase(np.array(fc[s]))) for s in "lr"}

    def _ringing(self, site: Site) -> list[tuple[Ringing, float, NDArray[np.float64]]]:
        """(ringing, scale, excitation times) acting on the sensor labelled ``site``."""
        mounting = self.mountings[site]
        segment = mounting.segment.split("_")[0]
        side = mounting.segment[-1] if mounting.segment != "pelvis" else None
        times = (np.sort(np.concatenate([self.contact_times[s][0] for s in "lr"])) if side is None
                 else self.contact_times[side][0])
        out = []
        if self.config.imu.impacts:
            out.append((TIGHT_RINGING, TIGHT_SCALE.get(segment, 0.5), times))
        if mounting.loose:
            out.append((LOOSE_RINGING, 1.0, times))
        return out

    # -- sensors ---------------------------------------------------------------------------------------------------
    def iter_chunks(self, chunk_s: float = CHUNK_S) -> Iterator[dict[Site, SensorTrack]]:
        """Consecutive chunks of all tracks (true time [k·chunk_s, (k+1)·chunk_s)); reproducible for a given
        configuration whatever the chunk length."""
        c = self.config
        seeds = np.random.SeedSequence(c.seed).spawn(len(KIT_SITES))
        drift = c.imu.clock_drift_ppm
        errors = {site: SensorErrors(c.imu, seeds[i], c.sampling_rate_hz, drift.get(site.value))
                  for i, site in enumerate(KIT_SITES)}
        offline = {site: self._offline_intervals(site, errors[site]) for site in KIT_SITES}
        next_index = {site: 0 for site in KIT_SITES}
        spline_rate = max(MIN_SPLINE_RATE_HZ, 2.0 * c.sampling_rate_hz)
        duration = self.duration_s
        start = 0.0
        while start < duration:
            end = min(start + chunk_s, duration)
            first = int(np.floor((start - SPLINE_MARGIN_S) * spline_rate))
            last = int(np.ceil((end + SPLINE_MARGIN_S) * spline_rate))
            grid = np.arange(first, last + 1) / spline_rate
            frames = self.motion.frames(grid)
            spline = MotionSpline(frames, {s.value: (m.segment, np.array(m.offset_m))
                                           for s, m in self.mountings.items()})
            chunk = {}
            for site in KIT_SITES:
                stop = errors[site].index_at(end)
                chunk[site] = self._track(site, spline, errors[site], next_index[site], stop, offline[site])
                next_index[site] = stop
            yield chunk
            start = end

    def _offline_intervals(self, site: Site, errors: SensorErrors) -> list[tuple[float, float]]:
        fixed = [(d.start_s, d.start_s + d.duration_s) for d in self.config.disconnects if d.site is site]
        return fixed + errors.random_disconnects(self.duration_s)

    def _sensor_motion(self, site: Site, spline: MotionSpline, t: FloatArray
                       ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """True orientation (world ← sensor), angular velocity and specific force in the sensor frame, and
        position of the sensor labelled ``site`` at true times ``t``."""
        mounting = self.mountings[site]
        R_seg, omega_seg = spline.orientation(mounting.segment, t)
        position, acc_world = spline.point(site.value, t)
        R_m = mounting.rotation_segment_sensor
        R_ws = R_seg @ R_m
        omega = omega_seg @ R_m  # R_mᵀ ω for each row
        theta = np.zeros(len(t))
        theta_rate = np.zeros(len(t))
        disp_acc = np.zeros(len(t))
        for ringing, scale, events in self._ringing(site):
            value, rate, accel = _ringing_response(ringing, events, t)
            theta += scale * np.radians(ringing.rotation_deg) * value
            theta_rate += scale * np.radians(ringing.rotation_deg) * rate
            disp_acc += scale * ringing.displacement_m * accel
        if np.any(theta != 0.0):
            wobble = axis_rotation(1, theta)
            R_ws = R_ws @ wobble
            omega = np.einsum("nji,nj->ni", wobble, omega)
            omega[:, 1] += theta_rate
        specific_force = np.einsum("nji,nj->ni", R_ws, acc_world - GRAVITY_WORLD_M_S2)
        specific_force += disp_acc[:, None] * RINGING_DIRECTION
        return R_ws, omega, specific_force, position

    def _track(self, site: Site, spline: MotionSpline, errors: SensorErrors, start: int, stop: int,
               offline: list[tuple[float, float]]) -> SensorTrack:
        c = self.config
        n = max(stop - start, 0)
        true_s, device_s = errors.sample_times(start, n)
        R_ws, omega, force, position = self._sensor_motion(site, spline, true_s)
        field_sensor = np.einsum("nji,nj->ni", R_ws, self.magnetic.field_ut(position))
        acc, acc_clip = errors.apply("acc", force)
        gyr, gyr_clip = errors.apply("gyr", omega)
        mag, _ = errors.apply("mag", field_sensor)
        delivered = ~errors.lost(n)
        for lo, hi in offline:
            delivered &= ~((true_s >= lo) & (true_s < hi))
        quat = None
        if c.imu.device_quaternion:
            heading = errors.quat_heading_rad + errors.quat_heading_rate_rad_s * true_s
            reference = rotvec_to_matrix(errors.quat_tilt_rotvec[None, :]) @ axis_rotation(2, heading)
            quat = wxyz_from_rotation(Rotation.from_matrix(reference @ R_ws))
        acc_clips = errors.clip_count("acc") - int(acc_clip.sum()) + np.cumsum(acc_clip)
        gyr_clips = errors.clip_count("gyr") - int(gyr_clip.sum()) + np.cumsum(gyr_clip)
        battery = c.imu.battery_start_pct - c.imu.battery_drain_pct_per_h * true_s / 3600.0
        return SensorTrack(
            sensor_id=c.sensor_id(site), site=site, true_time_s=true_s, device_time_s=device_s,
            seq=errors.first_seq + np.arange(start, start + n, dtype=np.int64), acc_m_s2=acc, gyr_rad_s=gyr,
            mag_ut=mag, quat_wxyz=quat, delivered=delivered, battery_pct=battery,
            acc_clip_count=acc_clips.astype(np.int64), gyr_clip_count=gyr_clips.astype(np.int64),
        )

    # -- truth -------------------------------------------------------------------------------------------------
    def ground_truth(self, rate_hz: float | None = None, chunk_s: float = CHUNK_S) -> GroundTruth:
        """The ground truth on a uniform grid (default: the configuration's truth rate)."""
        c = self.config
        rate = rate_hz or c.truth_rate_hz or c.sampling_rate_hz
        time_s = np.arange(int(np.floor(self.duration_s * rate))) / rate
        seg_quat: dict[str, list[FloatArray]] = {s: [] for s in SEGMENTS}
        seg_pos: dict[str, list[FloatArray]] = {s: [] for s in SEGMENTS}
        angles: dict[str, list[FloatArray]] = {}
        sensor_quat: dict[Site, list[FloatArray]] = {s: [] for s in KIT_SITES}
        sensor_pos: dict[Site, list[FloatArray]] = {s: [] for s in KIT_SITES}
        step = max(1, int(chunk_s * rate))
        for i in range(0, len(time_s), step):
            t = time_s[i : i + step]
            frames = self.motion.frames(t)
            for seg in SEGMENTS:
                seg_quat[seg].append(wxyz_from_rotation(Rotation.from_matrix(frames.rotation[seg])))
                seg_pos[seg].append(frames.origin_m[seg])
            for name, values in joint_angles_deg(frames.rotation).items():
                angles.setdefault(name, []).append(values)
            for site, m in self.mountings.items():
                R = frames.rotation[m.segment] @ m.rotation_segment_sensor
                theta = sum((scale * np.radians(r.rotation_deg) * _ringing_response(r, ev, t)[0]
                             for r, scale, ev in self._ringing(site)), np.zeros(len(t)))
                sensor_quat[site].append(wxyz_from_rotation(Rotation.from_matrix(R @ axis_rotation(1, theta))))
                sensor_pos[site].append(frames.point(m.segment, np.array(m.offset_m)))
        sensors = {
            site: SensorTruth(c.sensor_id(site), site, self.mountings[site],
                              tuple(str(f) for f in c.faults if f.site in (None, site)),
                              np.concatenate(sensor_quat[site]), np.concatenate(sensor_pos[site]))
            for site in KIT_SITES
        }
        return self._summarise(
            time_s,
            {s: np.concatenate(v) for s, v in seg_quat.items()},
            {s: np.concatenate(v) for s, v in seg_pos.items()},
            {k: np.concatenate(v) for k, v in angles.items()},
            sensors,
        )

    def _summarise(self, time_s: FloatArray, seg_quat: dict[str, FloatArray], seg_pos: dict[str, FloatArray],
                   angles: dict[str, FloatArray], sensors: dict[Site, SensorTruth]) -> GroundTruth:
        plan, walker, tl = self.plan, self.motion.walker, self.plan.timeline
        side_name = {"l": "left", "r": "right"}
        events = sorted(
            [GaitEvent(side_name[s], "ic", float(t)) for s in "lr" for t in self.contact_times[s][0]]
            + [GaitEvent(side_name[s], "fc", float(t)) for s in "lr" for t in self.contact_times[s][1]],
            key=lambda e: e.time_s,
        )
        ramped_up = tl.time_of_phase(np.array([tl.phi_start + tl.init_cycles]))[0]
        steady_start = float(max(tl.onset_s + tl.ramp_s, ramped_up))
        steady_end = float(min(tl.cadence_stop_s, tl.time_of_phase(np.array([tl.phi_end - tl.term_cycles]))[0]))
        # Strides from one foot's heel print to its next, in the order the feet land.
        strides = []
        heel_plants = walker._plant[1:, 0]
        ic_times = tl.time_of_phase(np.array(walker.ds.phi_ic))
        for side in "lr":
            stances = [j for j, lead in enumerate(walker.ds.lead) if lead == side and j > 0]
            for a, b in itertools.pairwise(stances):
                t0, t1 = float(ic_times[a]), float(ic_times[b])
                strides.append(Stride(side_name[side], t0, t1, float(np.linalg.norm(heel_plants[b] - heel_plants[a])),
                                      steady_start <= t0 and t1 <= steady_end))
        strides.sort(key=lambda s: s.ic_s)
        steady = [s for s in strides if s.steady]
        stance, double = {}, []
        for stride in steady:
            side = "l" if stride.side == "left" else "r"
            other = "r" if side == "l" else "l"
            own_fc = [t for t in self.contact_times[side][1] if stride.ic_s < t < stride.next_ic_s]
            other_ic = [t for t in self.contact_times[other][0] if stride.ic_s < t < stride.next_ic_s]
            other_fc = [t for t in self.contact_times[other][1] if stride.ic_s < t < stride.next_ic_s]
            if own_fc:
                stance.setdefault(stride.side, []).append((own_fc[0] - stride.ic_s) / stride.duration_s)
            if own_fc and other_ic and other_fc:
                double.append(((other_fc[0] - stride.ic_s) + (own_fc[0] - other_ic[0])) / stride.duration_s)
        length = float(np.mean([s.length_m for s in steady])) if steady else float("nan")
        duration = float(np.mean([s.duration_s for s in steady])) if steady else float("nan")
        distance = float(seg_pos["pelvis"][-1, 0] - seg_pos["pelvis"][0, 0])
        pattern = plan.pattern
        parameters: dict[str, object] = {
            "profile": self.config.profile,
            "requested_speed_m_s": self.speed_m_s,
            "height_m": self.config.height_m,
            "mass_kg": self.config.mass_kg,
            "walkway_length_m": self.config.walkway_length_m,
            "seed": self.config.seed,
            "gait_cycle": {"source_file": plan.cycle.source_file, "frames": list(plan.cycle.source_frames),
                           "recorded_speed_m_s": plan.cycle.speed_m_s},
            "cycle_time_s": tl.cycle_time_s,
            "leg_yaw_deg": float(np.degrees(pattern.leg_yaw_rad)),
            "first_step_side": side_name[plan.first_swing],
            "faults": [str(f) for f in self.config.faults],
        }
        if self.config.profile == "hemiparetic":
            parameters["paretic_side"] = self.config.paretic_side
            parameters["hemiparesis"] = {k: v for k, v in self.config.hemiparesis.__dict__.items()}
            parameters["circumduction_deg_used"] = pattern.circumduction_deg
            parameters["sagittal_scale"] = pattern.sagittal_scale
        return GroundTruth(
            time_s=time_s,
            quat_wxyz_world_segment=seg_quat,
            position_world_m=seg_pos,
            joint_angles_deg=angles,
            sensors=sensors,
            events=events,
            strides=strides,
            walk_start_s=float(tl.onset_s),
            walk_end_s=float(tl.stop_s),
            steady_start_s=steady_start,
            steady_end_s=steady_end,
            distance_m=distance,
            steady_speed_m_s=length / duration if steady else float("nan"),
            mean_speed_m_s=distance / float(tl.stop_s - tl.onset_s),
            cadence_steps_per_min=120.0 / duration if steady else float("nan"),
            stride_length_m=length,
            stride_time_s=duration,
            stance_pct={k: 100.0 * float(np.mean(v)) for k, v in stance.items()},
            double_support_pct=100.0 * float(np.mean(double)) if double else float("nan"),
            parameters=parameters,
        )

    def generate(self, chunk_s: float = CHUNK_S) -> VirtualRecording:
        """The whole recording: all tracks and the ground truth."""
        parts: dict[Site, list[SensorTrack]] = {site: [] for site in KIT_SITES}
        for chunk in self.iter_chunks(chunk_s):
            for site, track in chunk.items():
                parts[site].append(track)
        tracks = {site: SensorTrack.concatenate(p) for site, p in parts.items()}
        return VirtualRecording(self.config, tracks, self.ground_truth())


def _ringing_response(ringing: Ringing, events: NDArray[np.float64], t: FloatArray
                      ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Sum over heel strikes of a unit-peak damped oscillation with a smooth onset: value, rate, acceleration.

    ``f(τ) = Im(e^{cτ} − e^{c'τ}) / peak`` for τ ≥ 0 with ``c = −ζω + iω√(1−ζ²)``, ``c' = c − 1/τ_on``: zero value
    and slope at the strike, then a ring-down.
    """
    w = 2.0 * np.pi * ringing.frequency_hz
    c = complex(-ringing.damping_ratio * w, w * np.sqrt(1.0 - ringing.damping_ratio**2))
    c_on = c - 1.0 / ringing.onset_s
    probe = np.linspace(0.0, 3.0 / ringing.frequency_hz, 2000)
    peak = float(np.max(np.abs(np.imag(np.exp(c * probe) - np.exp(c_on * probe)))))
    value = np.zeros(len(t))
    rate = np.zeros(len(t))
    accel = np.zeros(len(t))
    horizon = 8.0 / (ringing.damping_ratio * w)  # decayed below 0.04 %
    for event in events:
        m = (t >= event) & (t < event + horizon)
        if not np.any(m):
            continue
        tau = t[m] - event
        e1, e2 = np.exp(c * tau), np.exp(c_on * tau)
        value[m] += np.imag(e1 - e2) / peak
        rate[m] += np.imag(c * e1 - c_on * e2) / peak
        accel[m] += np.imag(c * c * e1 - c_on * c_on * e2) / peak
    return value, rate, accel


__all__ = ["SensorTrack", "VirtualPatient", "VirtualRecording"]
