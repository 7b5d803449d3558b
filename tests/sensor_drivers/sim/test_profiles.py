"""The gait profiles: healthy timing and ranges, and the documented hemiparetic asymmetries."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sensor_drivers.errors import SourceError
from sensor_drivers.sim import GroundTruth, VirtualPatient, VirtualRecording, from_source_options
from sensor_drivers.sim.gait_library import GaitLibrary

Sim = tuple[VirtualPatient, VirtualRecording]


def test_library_holds_periodic_cycles() -> None:
    library = GaitLibrary.load()
    assert len(library.cycles) >= 1
    for cycle in library.cycles:
        assert cycle.joint_rad.shape == (160, len(cycle.channels))
        assert 0.0 < cycle.fc_l_phase < cycle.ic_l_phase < cycle.fc_r_phase < 1.0
        spline = cycle.spline()
        assert np.allclose(spline(0.0), spline(1.0), atol=1e-9)
        assert 0.5 < cycle.speed_m_s < 2.0


def _steady(rec: VirtualRecording) -> np.ndarray:
    t = rec.truth.time_s
    return (t > rec.truth.steady_start_s) & (t < rec.truth.steady_end_s)


def test_healthy_gait_is_symmetric_and_typical(healthy_ideal: Sim) -> None:
    _, rec = healthy_ideal
    truth = rec.truth
    assert 55.0 < truth.stance_pct["left"] < 68.0
    assert 55.0 < truth.stance_pct["right"] < 68.0
    assert abs(truth.stance_pct["left"] - truth.stance_pct["right"]) < 5.0
    angles, steady = truth.joint_angles_deg, _steady(rec)
    for side in "lr":
        assert 50.0 < angles[f"knee_flexion_{side}_deg"][steady].max() < 80.0
        assert 20.0 < np.ptp(angles[f"hip_flexion_{side}_deg"][steady]) < 60.0
    # Events alternate: every initial contact of one foot is followed by a final contact of the other.
    kinds = [(e.side, e.kind) for e in truth.events if truth.steady_start_s < e.time_s < truth.steady_end_s]
    assert len(kinds) > 8


def test_hemiparetic_gait_shows_the_documented_asymmetries(hemiparetic_ideal: Sim, healthy_ideal: Sim) -> None:
    patient, rec = hemiparetic_ideal
    assert patient.config.paretic_side == "left"
    truth, angles, steady = rec.truth, rec.truth.joint_angles_deg, _steady(rec)
    # Shorter paretic stance, longer non-paretic stance.
    assert truth.stance_pct["right"] - truth.stance_pct["left"] > 5.0
    # Stiff paretic knee in swing.
    assert angles["knee_flexion_r_deg"][steady].max() - angles["knee_flexion_l_deg"][steady].max() > 10.0
    # Circumduction: the paretic hip abducts more during its swing.
    assert angles["hip_adduction_l_deg"][steady].min() < angles["hip_adduction_r_deg"][steady].min() - 3.0
    # Pelvic hike: the paretic (left) side is higher during its swing than without the hike.
    def swing_obliquity(truth: GroundTruth) -> float:
        fc, ic = np.array(truth.events_of("left", "fc")), np.array(truth.events_of("left", "ic"))
        swing = np.zeros_like(truth.time_s, dtype=bool)
        for start in fc:
            later = ic[ic > start]
            if len(later) and truth.steady_start_s < start < truth.steady_end_s:
                swing |= (truth.time_s > start) & (truth.time_s < later[0])
        return float(truth.joint_angles_deg["pelvis_obliquity_deg"][swing].mean())

    no_hike = replace(patient.config, hemiparesis=replace(patient.config.hemiparesis, pelvic_hike_deg=0.0))
    assert swing_obliquity(truth) > swing_obliquity(VirtualPatient(no_hike).ground_truth(rate_hz=50.0)) + 2.0
    # Slower and with a lower cadence than healthy walking.
    assert truth.steady_speed_m_s < healthy_ideal[1].truth.steady_speed_m_s
    assert truth.cadence_steps_per_min < healthy_ideal[1].truth.cadence_steps_per_min


def test_speeds_outside_the_accepted_range_are_refused_clearly() -> None:
    with pytest.raises(SourceError, match=r"healthy walking speed 0\.3 m/s is outside .* m/s"):
        _ = VirtualPatient(from_source_options("healthy", {"speed": "0.3"})).plan
    with pytest.raises(SourceError, match=r"hemiparetic walking speed 1\.2 m/s is outside 0\.2–0\.8 m/s"):
        _ = VirtualPatient(from_source_options("hemiparetic", {"speed": "1.2"})).plan


@pytest.mark.parametrize(("profile", "options"), [
    ("hemiparetic", {"speed": "0.3", "side": "right"}),
    ("hemiparetic", {"speed": "0.8", "height": "1.6"}),
    ("healthy", {"speed": "1.25", "height": "1.9"}),
])
def test_other_speeds_sides_and_heights_walk_the_walkway(profile: str, options: dict[str, str]) -> None:
    patient = VirtualPatient(from_source_options(profile, {**options, "walkway": "6", "noise": "ideal"}))
    t = np.arange(0.0, patient.duration_s, 0.005)
    state = patient.motion.state(t)
    assert state.root_m[-1, 0] - state.root_m[0, 0] == pytest.approx(6.0, abs=0.01)
    for side in "lr":
        lowest = np.minimum(state.legs[side].heel_m[:, 2], state.legs[side].toe_m[:, 2]) + state.root_m[:, 2]
        assert lowest.min() > -0.0015
