"""Every course builds, its ground-height function agrees with MuJoCo's ray casting, the stairs' pitch line is the
surface averaged over a tread, unknown names are refused."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from cloud_trainer.errors import UnknownNameError
from cloud_trainer.twin.model import build_twin
from cloud_trainer.twin.terrain import (
    COURSE_HALF_WIDTH_M,
    N_STAIR_STEPS,
    RAMP_LENGTH_M,
    RUN_IN_M,
    STAIR_TREAD_M,
    TERRAIN_GEOM_GROUP,
    TERRAIN_NAMES,
    get_terrain,
)


def test_levels_are_the_papers() -> None:
    assert [get_terrain(f"slope:{k}").rise_m for k in range(1, 6)] == [0.0, 0.1875, 0.375, 0.5625, 0.75]
    assert [get_terrain(f"stairs:{k}").step_height_m for k in range(1, 6)] == [0.0, 0.0375, 0.075, 0.1125, 0.15]
    ramp = get_terrain("slope:5")
    assert ramp.rise_m / RAMP_LENGTH_M == pytest.approx(1 / 12)
    assert ramp.ground_height_m(RUN_IN_M + RAMP_LENGTH_M / 2) == pytest.approx(0.375)
    stairs = get_terrain("stairs:5")
    assert stairs.ground_height_m(RUN_IN_M + 0.5 * STAIR_TREAD_M) == pytest.approx(0.15)
    assert stairs.ground_height_m(stairs.feature_end_x_m + 1.0) == pytest.approx(N_STAIR_STEPS * 0.15)
    assert stairs.ground_height_m(RUN_IN_M - 0.01) == 0.0


@pytest.mark.parametrize("name", TERRAIN_NAMES)
def test_ground_height_agrees_with_mj_ray(name: str) -> None:
    twin = build_twin(terrain=name)
    terrain, model = twin.terrain, twin.model
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    rng = np.random.default_rng(1)
    x = rng.uniform(-2.0, terrain.course_end_x_m + 2.0, 300)
    y = rng.uniform(-COURSE_HALF_WIDTH_M - 0.5, COURSE_HALF_WIDTH_M + 0.5, 300)
    # stay clear of vertical faces, where "the height under a point" is a matter of millimetres
    edges = np.array([terrain.feature_start_x_m, terrain.feature_end_x_m, terrain.course_end_x_m])
    if terrain.kind == "stairs":
        edges = np.concatenate([edges, RUN_IN_M + STAIR_TREAD_M * np.arange(N_STAIR_STEPS)])
    clear = (np.min(np.abs(x[:, None] - edges[None]), axis=1) > 2e-3) & (np.abs(np.abs(y) - COURSE_HALF_WIDTH_M) > 2e-3)
    groups = np.zeros(6, np.uint8)
    groups[TERRAIN_GEOM_GROUP] = 1
    geomid = np.zeros(1, np.int32)
    expected = terrain.ground_height_m(x, y)
    for xi, yi, zi in zip(x[clear], y[clear], expected[clear], strict=True):
        top = 5.0
        dist = mujoco.mj_ray(model, data, np.array([xi, yi, top]), np.array([0.0, 0.0, -1.0]), groups, 1, -1, geomid)
        assert top - dist == pytest.approx(zi, abs=1e-9), (xi, yi)


@pytest.mark.parametrize("name", TERRAIN_NAMES)
def test_pitch_line_is_the_surface_averaged_over_one_tread_on_stairs_and_the_surface_elsewhere(name: str) -> None:
    terrain = get_terrain(name)
    x = np.linspace(-1.0, terrain.course_end_x_m - 1.0, 997)
    if terrain.kind != "stairs":
        np.testing.assert_array_equal(terrain.pitch_line_height_m(x), terrain.ground_height_m(x))
        return
    offsets = np.linspace(-0.5, 0.5, 2001) * STAIR_TREAD_M  # a fine numerical mean over one tread
    averaged = terrain.ground_height_m(x[:, None] + offsets[None]).mean(axis=1)
    np.testing.assert_allclose(terrain.pitch_line_height_m(x), averaged, atol=1e-3 * max(terrain.step_height_m, 1e-9))
    # no jumps: a pelvis passing over a riser sees the surface under it rise by at most the pitch over 1 cm
    rises = np.diff(terrain.pitch_line_height_m(np.arange(0.0, terrain.course_end_x_m - 1.0, 0.01)))
    assert rises.max() <= terrain.step_height_m / STAIR_TREAD_M * 0.01 + 1e-12
    assert terrain.pitch_line_height_m(RUN_IN_M, COURSE_HALF_WIDTH_M + 0.1) == 0.0  # off the course: the floor


@pytest.mark.parametrize("name", ["slope:0", "slope:6", "stairs", "ramp", "", None])
def test_unknown_terrain_lists_known_names(name) -> None:
    with pytest.raises(UnknownNameError) as caught:
        build_twin(terrain=name)
    message = str(caught.value)
    assert repr(name) in message
    for known in ("flat", "slope:1", "slope:5", "stairs:1", "stairs:5"):
        assert known in message
