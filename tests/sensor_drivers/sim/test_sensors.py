"""Sensor errors, timing, loss, faults, determinism, options and files of the virtual patient."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sensor_drivers.errors import SourceError
from sensor_drivers.frames import G_M_S2
from sensor_drivers.sample import DeviceReading
from sensor_drivers.sim import (
    Disconnect,
    GroundTruth,
    ImuErrorConfig,
    MagneticEnvironment,
    SensorTrack,
    VirtualPatient,
    VirtualPatientConfig,
    VirtualRecording,
    from_source_options,
)
from sensor_drivers.sim.imu_errors import CONSUMER_ACC, CONSUMER_GYR, SensorErrors
from sensor_drivers.sites import KIT_SITES, Site

Sim = tuple[VirtualPatient, VirtualRecording]
SHORT = {"walkway": "4", "still_start": "3", "still_end": "2"}


def _quick(profile: str = "healthy", **options: str) -> VirtualRecording:
    return VirtualPatient(from_source_options(profile, {**SHORT, **options})).generate()


# -- noise, bias, quantisation, clock ---------------------------------------------------------------------------
def test_still_noise_matches_the_noise_density(healthy_realistic: Sim) -> None:
    patient, rec = healthy_realistic
    rate = patient.config.sampling_rate_hz
    for track in rec.tracks.values():
        still = (track.true_time_s > 0.5) & (track.true_time_s < patient.plan.timeline.onset_s - 0.2)
        gyr_std = np.std(track.gyr_rad_s[still], axis=0)
        acc_std = np.std(track.acc_m_s2[still], axis=0)
        assert gyr_std == pytest.approx(CONSUMER_GYR.noise_density * np.sqrt(rate), rel=0.2)
        assert acc_std == pytest.approx(CONSUMER_ACC.noise_density * np.sqrt(rate), rel=0.2)
        # Biases make the still means differ from the exact values (gravity, zero rate).
        assert np.abs(np.mean(track.gyr_rad_s[still], axis=0)).max() > 1e-4


def test_samples_are_quantised_and_clipped_as_configured(healthy_realistic: Sim) -> None:
    _, rec = healthy_realistic
    for track in rec.tracks.values():
        steps = track.acc_m_s2 / CONSUMER_ACC.lsb
        assert np.allclose(steps, np.round(steps), atol=1e-6)
        assert np.abs(track.gyr_rad_s).max() <= CONSUMER_GYR.full_scale + 1e-12


def test_clock_drift_and_offset_are_as_configured() -> None:
    imu = replace(ImuErrorConfig.ideal(), clock_drift_ppm={"pelvis": 100.0, "shank_l": -50.0})
    patient = VirtualPatient(VirtualPatientConfig(imu=imu, walkway_length_m=3.0, still_start_s=2.0))
    rec = patient.generate()
    for site, ppm in ((Site.PELVIS, 100.0), (Site.SHANK_L, -50.0)):
        track = rec.tracks[site]
        slope = np.polyfit(track.true_time_s, track.device_time_s, 1)[0]
        assert slope - 1.0 == pytest.approx(ppm * 1e-6, abs=1e-9)
        # The device clock has its own origin: not the recording's.
        assert abs(track.device_time_s[0] - track.true_time_s[0]) > 1.0
        assert np.diff(track.device_time_s) == pytest.approx(1.0 / patient.config.sampling_rate_hz)


def test_packet_loss_rate_and_burstiness() -> None:
    config = replace(ImuErrorConfig.ideal(), packet_loss=0.1, loss_burst_mean=5.0)
    errors = SensorErrors(config, np.random.SeedSequence(1), 200.0)
    lost = np.concatenate([errors.lost(997) for _ in range(200)])
    assert lost.mean() == pytest.approx(0.1, abs=0.01)
    edges = np.diff(np.r_[0, lost.astype(int), 0])
    bursts = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert bursts.mean() == pytest.approx(5.0, rel=0.1)


def test_disconnects_leave_intervals_without_delivered_samples() -> None:
    rec = _quick(noise="ideal", disconnect="shank_l:4:1.5")
    track = rec.tracks[Site.SHANK_L]
    gap = (track.true_time_s >= 4.0) & (track.true_time_s < 5.5)
    assert gap.any()
    assert not track.delivered[gap].any()
    assert track.delivered[~gap].all()
    assert rec.tracks[Site.SHANK_R].delivered.all()
    delivered = [t for t, _ in track.readings()]
    assert len(delivered) == int(track.delivered.sum())
    assert not any(4.0 <= t < 5.5 for t in delivered)


def test_readings_are_device_readings_with_status() -> None:
    rec = _quick(loss="5%")
    track = rec.tracks[Site.PELVIS]
    readings = list(track.readings())
    assert len(readings) == int(track.delivered.sum()) < len(track)
    _t, reading = readings[10]
    assert isinstance(reading, DeviceReading)
    assert reading.seq is not None
    assert reading.device_time_s is not None
    assert reading.quat_wxyz is not None
    assert reading.mag_ut is not None
    assert reading.status is not None
    assert 0.0 < reading.status.battery_pct <= 100.0


def test_magnetometer_reads_the_earth_field_when_clean_and_disturbed_indoors() -> None:
    clean = _quick(noise="ideal", mag="clean").tracks[Site.PELVIS]
    earth = np.linalg.norm(MagneticEnvironment().earth_field_world_ut)
    assert np.linalg.norm(clean.mag_ut, axis=1) == pytest.approx(earth, rel=1e-6)
    indoor = _quick(noise="ideal", walkway="20").tracks[Site.SHANK_R]
    assert np.ptp(np.linalg.norm(indoor.mag_ut, axis=1)) > 3.0


# -- faults ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline() -> VirtualRecording:
    return _quick(noise="ideal", seed="4")


def _at(track: SensorTrack, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t, track.true_time_s, values[:, i]) for i in range(values.shape[1])], axis=1)


def _same_signals(a: SensorTrack, b: SensorTrack) -> None:
    """Two noise-free tracks of the same sensor motion, sampled at slightly different times, agree."""
    t = a.true_time_s[10:-10]
    for name in ("gyr_rad_s", "acc_m_s2"):
        diff = np.abs(_at(a, t, getattr(a, name)) - _at(b, t, getattr(b, name)))
        scale = np.ptp(getattr(b, name))
        assert diff.mean() < 0.005 * scale
        assert np.percentile(diff, 99) < 0.05 * scale  # sharp heel-strike features interpolate poorly


def test_swap_lr_exchanges_the_sides(baseline: VirtualRecording) -> None:
    swapped = _quick(noise="ideal", seed="4", fault="swap_lr")
    _same_signals(swapped.tracks[Site.THIGH_L], baseline.tracks[Site.THIGH_R])
    _same_signals(swapped.tracks[Site.SHANK_R], baseline.tracks[Site.SHANK_L])
    assert swapped.truth.sensors[Site.THIGH_L].mounting.segment == "thigh_r"
    assert swapped.truth.sensors[Site.PELVIS].mounting.segment == "pelvis"


def test_swap_thigh_shank_puts_the_thigh_sensor_on_the_shank(baseline: VirtualRecording) -> None:
    swapped = _quick(noise="ideal", seed="4", fault="swap_thigh_shank:l")
    _same_signals(swapped.tracks[Site.THIGH_L], baseline.tracks[Site.SHANK_L])
    _same_signals(swapped.tracks[Site.SHANK_L], baseline.tracks[Site.THIGH_L])
    assert swapped.truth.sensors[Site.THIGH_L].mounting.segment == "shank_l"
    assert swapped.truth.sensors[Site.SHANK_R].mounting.segment == "shank_r"


def test_upside_down_flips_gravity_along_the_limb(baseline: VirtualRecording) -> None:
    flipped = _quick(noise="ideal", seed="4", fault="upside_down:shank_r")
    for rec, sign in ((baseline, 1.0), (flipped, -1.0)):
        track = rec.tracks[Site.SHANK_R]
        still = track.true_time_s < 2.5
        assert track.acc_m_s2[still, 0].mean() == pytest.approx(sign * G_M_S2, abs=1e-6)


def test_rotated_sensor_turns_about_the_limb(baseline: VirtualRecording) -> None:
    turned = _quick(noise="ideal", seed="4", fault="rotated:thigh_l:90")
    a, b = baseline.tracks[Site.THIGH_L], turned.tracks[Site.THIGH_L]
    t = a.true_time_s[10:-10]
    ga, gb = _at(a, t, a.gyr_rad_s), _at(b, t, b.gyr_rad_s)
    assert np.linalg.norm(ga, axis=1) == pytest.approx(np.linalg.norm(gb, axis=1), abs=0.05)
    # Rotation about the sensor x (limb) axis keeps gyro x and swaps the y/z roles.
    assert np.abs(ga[:, 0] - gb[:, 0]).max() < 0.05
    assert np.abs(ga[:, 1]).max() > 0.5
    assert np.abs(gb[:, 2]).max() > 0.5
    assert turned.truth.sensors[Site.THIGH_L].faults == ("rotated:thigh_l:90",)


def test_loose_sensor_rings_after_heel_strikes(baseline: VirtualRecording) -> None:
    loose = _quick(noise="ideal", seed="4", fault="loose:shank_l")
    a, b = loose.tracks[Site.SHANK_L], baseline.tracks[Site.SHANK_L]
    t = a.true_time_s[10:-10]
    extra = _at(a, t, a.acc_m_s2) - _at(b, t, b.acc_m_s2)
    still = t < 2.5
    assert np.abs(extra[still]).max() < 1e-6  # no ringing before the first heel strike
    assert np.std(extra[~still]) > 1.0
    # It rings: the extra acceleration changes sign about 2 × 12 times a second after a strike.
    first_strike = loose.truth.events_of("left", "ic")[0]
    ring = extra[(t > first_strike) & (t < first_strike + 0.25), 2]
    assert np.count_nonzero(np.diff(np.sign(ring))) >= 4
    assert loose.truth.sensors[Site.SHANK_L].mounting.loose


# -- determinism, options, files ---------------------------------------------------------------------------------
def test_same_seed_same_recording_other_seed_other_noise() -> None:
    patient = VirtualPatient(from_source_options("healthy", {**SHORT, "seed": "11"}))
    first, second = patient.generate(), VirtualPatient(patient.config).generate()
    other = VirtualPatient(replace(patient.config, seed=12)).generate()
    for site in KIT_SITES:
        assert np.array_equal(first.tracks[site].acc_m_s2, second.tracks[site].acc_m_s2)
        assert np.array_equal(first.tracks[site].delivered, second.tracks[site].delivered)
        assert not np.array_equal(first.tracks[site].acc_m_s2, other.tracks[site].acc_m_s2)


def test_chunk_length_does_not_change_the_recording() -> None:
    patient = VirtualPatient(from_source_options("healthy", {**SHORT, "seed": "3"}))
    whole = patient.generate(chunk_s=100.0)
    pieces = patient.generate(chunk_s=2.7)
    for site in KIT_SITES:
        a, b = whole.tracks[site], pieces.tracks[site]
        assert np.array_equal(a.true_time_s, b.true_time_s)
        assert np.array_equal(a.delivered, b.delivered)
        assert np.abs(a.acc_m_s2 - b.acc_m_s2).max() <= CONSUMER_ACC.lsb
        assert np.abs(a.gyr_rad_s - b.gyr_rad_s).max() <= CONSUMER_GYR.lsb


def test_source_options_are_parsed_and_bad_ones_explained() -> None:
    options = {"speed": "0.4", "side": "r", "seed": "3", "fault": "swap_lr,loose:pelvis",
               "disconnect": "thigh_r:3:2", "loss": "2%", "noise": "realistic"}
    config = from_source_options("hemiparetic", options)
    assert config.profile == "hemiparetic"
    assert config.speed_m_s == 0.4
    assert config.paretic_side == "right"
    assert [str(f) for f in config.faults] == ["swap_lr", "loose:pelvis"]
    assert config.disconnects == (Disconnect(Site.THIGH_R, 3.0, 2.0),)
    assert config.imu.packet_loss == pytest.approx(0.02)
    with pytest.raises(SourceError, match=r"unknown sim option.*accepted: speed"):
        from_source_options("healthy", {"sped": "1"})
    with pytest.raises(SourceError, match="expected a number"):
        from_source_options("healthy", {"speed": "fast"})
    with pytest.raises(SourceError, match="unknown fault 'swap_ud'; accepted: swap_lr"):
        from_source_options("healthy", {"fault": "swap_ud"})
    with pytest.raises(SourceError, match="unknown sensor site"):
        from_source_options("healthy", {"fault": "loose:knee"})
    with pytest.raises(SourceError, match="unknown virtual patient profile 'zombie'; accepted: healthy, hemiparetic"):
        from_source_options("zombie", {})


def test_truth_round_trips_through_its_files(tmp_path: Path, hemiparetic_ideal: Sim) -> None:
    _, rec = hemiparetic_ideal
    npz, json_path = rec.truth.save(tmp_path / "walk.truth.npz")
    assert npz.exists()
    assert json_path.exists()
    loaded = GroundTruth.load(json_path)
    assert np.array_equal(loaded.time_s, rec.truth.time_s)
    name = "knee_flexion_l_deg"
    assert np.array_equal(loaded.joint_angles_deg[name], rec.truth.joint_angles_deg[name])
    assert loaded.events == rec.truth.events
    assert loaded.strides == rec.truth.strides
    assert loaded.sensors[Site.THIGH_L].mounting == rec.truth.sensors[Site.THIGH_L].mounting
    assert loaded.steady_speed_m_s == rec.truth.steady_speed_m_s
    assert loaded.parameters["profile"] == "hemiparetic"
