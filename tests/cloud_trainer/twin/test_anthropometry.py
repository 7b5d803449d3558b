"""The twin scales to a patient: segment lengths, total mass, stature, and it stands in its keyframe."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from cloud_trainer.errors import AnthropometryError
from cloud_trainer.twin.anthropometry import DE_LEVA_1996, DE_LEVA_STATURE_MM, Anthropometry, body_dimensions
from cloud_trainer.twin.constants import HEAD_TOP_SITE, STAND_KEYFRAME
from cloud_trainer.twin.model import build_twin

SMALL = Anthropometry(height_m=1.25, mass_kg=32.0, sex="female")
TALL = Anthropometry(height_m=2.1, mass_kg=115.0, sex="male")


@pytest.mark.parametrize("patient", [SMALL, TALL], ids=["small", "tall"])
def test_model_mass_and_stature_match_the_patient(patient: Anthropometry) -> None:
    twin = build_twin(patient)
    model = twin.model
    assert model.body_mass.sum() == pytest.approx(patient.mass_kg, rel=1e-9)
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key(STAND_KEYFRAME).id)
    mujoco.mj_kinematics(model, data)
    assert data.site(HEAD_TOP_SITE).xpos[2] == pytest.approx(patient.height_m, abs=1e-6)


@pytest.mark.parametrize("patient", [SMALL, TALL], ids=["small", "tall"])
def test_segment_lengths_follow_de_leva(patient: Anthropometry) -> None:
    dims = body_dimensions(patient)
    model = build_twin(patient).model
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key(STAND_KEYFRAME).id)
    mujoco.mj_kinematics(model, data)
    # the model's joint centres are where the dimensions put them
    thigh = data.body("thigh_r").xpos[2] - data.body("shank_r").xpos[2]
    shank = data.body("shank_r").xpos[2] - data.body("foot_r").xpos[2]
    assert thigh == pytest.approx(dims.thigh_length_m, abs=1e-9)
    assert shank == pytest.approx(dims.shank_length_m, abs=1e-9)
    # and those are de Leva's fractions of stature, within the ≤ 3 % stretch that closes the stature
    table, stature_mm = DE_LEVA_1996[patient.sex], DE_LEVA_STATURE_MM[patient.sex]
    for length, name in ((thigh, "thigh"), (shank, "shank")):
        assert length / patient.height_m == pytest.approx(table[name].length_mm / stature_mm, rel=0.03)
    assert dims.foot_length_m == pytest.approx(table["foot"].length_mm / stature_mm * patient.height_m)


def test_taller_patient_has_longer_heavier_segments() -> None:
    small, tall = body_dimensions(SMALL), body_dimensions(TALL)
    assert tall.thigh_length_m > small.thigh_length_m * 1.5
    for body in ("pelvis", "torso", "thigh_r", "foot_l"):
        assert tall.segments[body].mass_kg > small.segments[body].mass_kg
        assert np.all(np.array(tall.segments[body].inertia_kg_m2) > np.array(small.segments[body].inertia_kg_m2))


@pytest.mark.parametrize("patient", [SMALL, TALL], ids=["small", "tall"])
def test_stands_in_keyframe_without_penetration(patient: Anthropometry) -> None:
    model = build_twin(patient).model
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key(STAND_KEYFRAME).id)
    mujoco.mj_forward(model, data)
    assert all(data.contact[i].dist > -1e-6 for i in range(data.ncon))
    start = data.qpos.copy()
    for _ in range(round(1.0 / model.opt.timestep)):  # one second on the PD gains alone
        mujoco.mj_step(model, data)
    assert data.ncon >= 4
    assert min(data.contact[i].dist for i in range(data.ncon)) > -2e-3
    assert np.linalg.norm(data.qpos[:3] - start[:3]) < 5e-3


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"height_m": 0.3}, ["height_m", "[1.2, 2.2] m", "0.3"]),
        ({"height_m": 3.0}, ["height_m", "[1.2, 2.2] m"]),
        ({"height_m": math.nan}, ["height_m"]),
        ({"mass_kg": 0.0}, ["mass_kg", "[30.0, 200.0] kg"]),
        ({"mass_kg": "heavy"}, ["mass_kg", "number"]),
        ({"sex": "unknown"}, ["sex", "'female'", "'male'", "'unknown'"]),
        ({"height_m": 2.2, "mass_kg": 30.0}, ["body-mass index", "12.0-60.0"]),
    ],
)
def test_implausible_anthropometrics_are_refused_with_the_accepted_range(kwargs, fragments) -> None:
    with pytest.raises(AnthropometryError) as caught:
        Anthropometry(**kwargs)
    for fragment in fragments:
        assert fragment in str(caught.value)
