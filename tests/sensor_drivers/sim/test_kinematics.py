"""Physical consistency of the simulated walk: planted feet, speed and distance, and IMU signals that integrate to the
ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sensor_drivers.frames import G_M_S2, GRAVITY_WORLD_M_S2
from sensor_drivers.quaternion import rotation_from_wxyz
from sensor_drivers.sim import VirtualPatient, VirtualRecording
from sensor_drivers.sim.walk import PUSH_OFF_CYCLES, WEIGHT_ACCEPTANCE_CYCLES
from sensor_drivers.sites import KIT_SITES, Site

Sim = tuple[VirtualPatient, VirtualRecording]


def _feet(patient: VirtualPatient, dt: float = 0.002) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    t = np.arange(0.0, patient.duration_s, dt)
    state = patient.motion.state(t)
    feet = {s: (state.legs[s].heel_m + state.root_m, state.legs[s].toe_m + state.root_m) for s in "lr"}
    return t, feet


@pytest.mark.parametrize("which", ["healthy_ideal", "hemiparetic_ideal"])
def test_stance_feet_stay_planted_and_never_sink(which: str, request: pytest.FixtureRequest) -> None:
    patient, _ = request.getfixturevalue(which)
    t, feet = _feet(patient)
    cycle_s = patient.plan.timeline.cycle_time_s
    for side in "lr":
        heel, toe = feet[side]
        assert min(heel[:, 2].min(), toe[:, 2].min()) > -0.0015, "a foot sinks into the floor"
        ics = np.r_[0.0, patient.contact_times[side][0]]
        fcs = patient.contact_times[side][1]
        for ic in ics:
            later = fcs[fcs > ic]
            fc = later[0] if len(later) else patient.duration_s
            # Planted from the end of the weight acceptance to the start of push-off (both a few tens of ms).
            planted = (t >= ic + WEIGHT_ACCEPTANCE_CYCLES * cycle_s * 1.5) & (t <= fc - PUSH_OFF_CYCLES * cycle_s * 1.5)
            for point in (heel, toe):
                on_floor = planted & (point[:, 2] < 0.001)
                if on_floor.sum() > 2:
                    slide = np.ptp(point[on_floor, :2], axis=0).max()
                    assert slide < 0.01, f"{side} foot slides {slide * 1000:.1f} mm in stance from {ic:.2f} s"


@pytest.mark.parametrize("which", ["healthy_ideal", "hemiparetic_ideal"])
def test_speed_and_distance_are_as_requested(which: str, request: pytest.FixtureRequest) -> None:
    patient, rec = request.getfixturevalue(which)
    truth = rec.truth
    assert truth.distance_m == pytest.approx(patient.config.walkway_length_m, abs=1e-3)
    assert truth.steady_speed_m_s == pytest.approx(patient.speed_m_s, rel=0.01)
    # The pelvis really moves at that speed between steady initial contacts of one foot.
    right_ic = [s.ic_s for s in truth.strides if s.side == "right" and s.steady]
    x = np.interp(right_ic, truth.time_s, truth.position_world_m["pelvis"][:, 0])
    assert (x[-1] - x[0]) / (right_ic[-1] - right_ic[0]) == pytest.approx(patient.speed_m_s, rel=0.02)
    assert np.abs(truth.position_world_m["pelvis"][:, 1]).max() < 0.15, "the walker drifts sideways"


def test_standing_still_reads_gravity_and_no_rotation(healthy_ideal: Sim) -> None:
    patient, rec = healthy_ideal
    for track in rec.tracks.values():
        still = track.true_time_s < patient.plan.timeline.onset_s - 0.1
        assert np.linalg.norm(track.acc_m_s2[still], axis=1) == pytest.approx(G_M_S2, abs=1e-6)
        assert np.abs(track.gyr_rad_s[still]).max() < 1e-6


def _integrate_gyro(quat_wxyz0: np.ndarray, gyr_rad_s: np.ndarray, t: np.ndarray) -> Rotation:
    """Orientation from body angular velocity samples (midpoint rule on the rotation vector)."""
    rot = rotation_from_wxyz(quat_wxyz0)
    for k in range(len(t) - 1):
        rot = rot * Rotation.from_rotvec(0.5 * (gyr_rad_s[k] + gyr_rad_s[k + 1]) * (t[k + 1] - t[k]))
    return rot


@pytest.mark.parametrize("site", [Site.PELVIS, Site.THIGH_R, Site.SHANK_L])
def test_gyroscope_integrates_to_the_true_orientation(healthy_ideal: Sim, site: Site) -> None:
    _, rec = healthy_ideal
    track, truth = rec.tracks[site], rec.truth
    window = (track.true_time_s > truth.steady_start_s) & (track.true_time_s < truth.steady_start_s + 4.0)
    t = track.true_time_s[window]
    q_truth = truth.sensors[site].quat_wxyz_world_sensor
    start = np.array([np.interp(t[0], truth.time_s, q_truth[:, i]) for i in range(4)])
    end = np.array([np.interp(t[-1], truth.time_s, q_truth[:, i]) for i in range(4)])
    estimate = _integrate_gyro(start / np.linalg.norm(start), track.gyr_rad_s[window], t)
    error = (rotation_from_wxyz(end / np.linalg.norm(end)).inv() * estimate).magnitude()
    assert np.degrees(error) < 0.5, f"{site}: gyro integration off by {np.degrees(error):.3f}° over 4 s"


def test_accelerometer_integrates_to_the_pelvis_displacement(healthy_ideal: Sim) -> None:
    _, rec = healthy_ideal
    track, truth = rec.tracks[Site.PELVIS], rec.truth
    sensor = truth.sensors[Site.PELVIS]
    start = truth.steady_start_s
    window = (track.true_time_s > start) & (track.true_time_s < start + truth.stride_time_s)
    t = track.true_time_s[window]
    rot = rotation_from_wxyz(np.array([np.interp(t, truth.time_s, sensor.quat_wxyz_world_sensor[:, i])
                                       for i in range(4)]).T)
    acc_world = rot.apply(track.acc_m_s2[window]) + GRAVITY_WORLD_M_S2
    position = np.array([np.interp(t, truth.time_s, sensor.position_world_m[:, i]) for i in range(3)]).T
    dt = np.diff(t)
    velocity0 = (position[1] - position[0]) / dt[0] - 0.5 * acc_world[0] * dt[0]
    velocity = velocity0 + np.vstack([np.zeros(3), np.cumsum(0.5 * (acc_world[1:] + acc_world[:-1]) * dt[:, None],
                                                             axis=0)])
    displacement = np.vstack([np.zeros(3), np.cumsum(0.5 * (velocity[1:] + velocity[:-1]) * dt[:, None], axis=0)])
    error = np.abs(displacement[-1] - (position[-1] - position[0]))
    assert error.max() < 0.02, f"double integration off by {error * 1000} mm over a stride"


def test_sensor_tracks_cover_the_recording(healthy_ideal: Sim) -> None:
    patient, rec = healthy_ideal
    rate = patient.config.sampling_rate_hz
    for site in KIT_SITES:
        track = rec.tracks[site]
        assert len(track) == pytest.approx(patient.duration_s * rate, abs=2)
        assert np.all(np.diff(track.true_time_s) > 0)
        assert np.all(np.diff(track.seq) == 1)
        assert track.delivered.all()
