"""The vectorised environments: shapes, stability on every course, reference-state initialisation, PD standing,
torque limits, goals, autoreset, and clear errors."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from cloud_trainer.envs import stairs
from cloud_trainer.envs.constants import (
    ACTION_WIDTH,
    CONTROL_PERIOD_S,
    FRAME_WIDTH,
    N_STACKED_FRAMES,
    OBSERVATION_WIDTH,
    RAY_ANGLES_RAD,
    RAY_MAX_M,
    frame_slices,
)
from cloud_trainer.envs.registry import ENV_NAMES, make_env
from cloud_trainer.envs.stairs import (
    CLIMBING_BLEND_M,
    CLIMBING_FROM_RISER_M,
    StairsEnv,
    climbing_share,
    climbing_span_m,
)
from cloud_trainer.envs.stairs import default_config as stairs_config
from cloud_trainer.envs.walk import WalkEnv, default_config
from cloud_trainer.errors import UnknownNameError
from cloud_trainer.motion.reference import ReferenceBank
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference, standing_reference
from cloud_trainer.twin.constants import GROUP_NAMES, JOINT_GROUP_INDEX, N_JOINTS, N_ROOT_QPOS, N_ROOT_QVEL
from cloud_trainer.twin.kinematics import quat_tilt_rad
from cloud_trainer.twin.model import build_twin
from cloud_trainer.twin.terrain import RUN_IN_M, STAIR_TREAD_M, TERRAIN_NAMES

SLOTS = frame_slices()


@pytest.fixture(scope="module")
def model():
    return build_twin().model


@pytest.fixture(scope="module")
def gait(model):
    return sinusoidal_gait_reference(model, speed_m_s=1.0, stride_length_m=1.2)


@pytest.fixture(scope="module")
def stand(model):
    return standing_reference(model)


def _standing_env(stand, n_envs: int = 2, **changes) -> WalkEnv:
    config = dataclasses.replace(default_config(), speed_range_m_s=None, stride_length_range_m=None, **changes)
    return WalkEnv([stand], n_envs=n_envs, config=config, n_threads=1, seed=0)


def _last_frame(obs: np.ndarray) -> np.ndarray:
    return obs.reshape(len(obs), N_STACKED_FRAMES, FRAME_WIDTH)[:, -1]


def test_layout_widths() -> None:
    assert FRAME_WIDTH == 83
    assert OBSERVATION_WIDTH == 3 * 83
    assert ACTION_WIDTH == N_JOINTS + len(GROUP_NAMES) == 22


@pytest.mark.parametrize("terrain", TERRAIN_NAMES)
def test_random_actions_on_every_course_keep_shapes_and_numbers_finite(gait, terrain: str) -> None:
    task = terrain.split(":")[0].replace("flat", "walk")
    config = dataclasses.replace(
        make_env(task, [gait], n_envs=1, n_threads=1).config,
        terrain=terrain,
        start_x_range_m=(1.5, 2.5),  # close enough to the feature to reach it before falling
    )
    env = make_env(task, [gait], config=config, n_envs=3, n_threads=1, seed=1)
    obs, _ = env.reset(seed=2)
    assert obs.shape == (3, OBSERVATION_WIDTH)
    assert obs.dtype == np.float32
    rng = np.random.default_rng(3)
    n_done = 0
    for _ in range(200):
        action = rng.uniform(-1, 1, (3, ACTION_WIDTH)) if rng.random() < 0.5 else np.zeros((3, ACTION_WIDTH))
        obs, reward, terminated, truncated, infos = env.step(action)
        assert obs.shape == (3, OBSERVATION_WIDTH)
        assert np.isfinite(obs).all()
        assert np.isfinite(reward).all()
        assert reward.shape == terminated.shape == truncated.shape == (3,)
        n_done += int((terminated | truncated).sum())
    assert n_done > 0  # random actions fall, and the environment resets them
    assert set(infos["log"]) >= {"goal/speed", "imitation/joint_angles", "cost/foot_slide", "reward/total"}
    env.close()


def test_reference_state_initialisation_reproduces_the_reference_pose(gait) -> None:
    env = WalkEnv([gait], n_envs=6, n_threads=1, seed=4)
    obs, _ = env.reset()
    for i in range(env.num_envs):
        frames = env.bank.sample(
            np.array([env._ref[i]]), np.array([env._clip_time0_s[i]]), env._time_scale[i], env._stride_scale[i]
        )
        qpos = frames.qpos[0]
        np.testing.assert_allclose(env._qpos[i, N_ROOT_QPOS:], qpos[N_ROOT_QPOS:], atol=1e-12)
        np.testing.assert_allclose(env._qpos[i, 2:7], qpos[2:7], atol=1e-12)
        np.testing.assert_allclose(env._qpos[i, :2], [0.0, 0.0], atol=1e-12)  # placed at the course start
        np.testing.assert_allclose(env._qvel[i], frames.qvel[0], atol=1e-12)
    # the observation shows that pose and the phase it was drawn at
    frame = _last_frame(obs)
    np.testing.assert_allclose(frame[:, SLOTS["joint_angle"]], env._qpos[:, N_ROOT_QPOS:], atol=1e-6)
    phase = np.mod(env._clip_time0_s / gait.cycle_period_s, 1.0)
    np.testing.assert_allclose(frame[:, SLOTS["phase"]][:, 0], np.sin(2 * np.pi * phase), atol=1e-6)
    # distinct random phases
    assert len(np.unique(np.round(env._clip_time0_s, 6))) == env.num_envs


def test_standing_reference_with_zero_residuals_stays_upright(stand) -> None:
    env = _standing_env(stand)
    obs, _ = env.reset()
    start_height = env._qpos[:, 2].copy()
    for _ in range(45):  # 1.5 s
        obs, reward, terminated, truncated, _ = env.step(np.zeros((2, ACTION_WIDTH)))
        assert not (terminated | truncated).any()
    np.testing.assert_allclose(env._qpos[:, 2], start_height, atol=0.01)
    assert np.all(quat_tilt_rad(env._qpos[:, 3:7]) < np.deg2rad(3))
    frame = _last_frame(obs)
    np.testing.assert_array_equal(frame[:, SLOTS["foot_contact"]], 1.0)
    assert reward.min() > 0.9


def test_observation_of_a_standing_walker_on_flat_ground(stand) -> None:
    env = _standing_env(stand)
    obs, _ = env.reset()
    frame = _last_frame(obs)[0]
    height = env._qpos[0, 2]
    assert frame[SLOTS["root_height"]][0] == pytest.approx(height, abs=1e-6)
    rays = frame[SLOTS["terrain_rays"]]
    down = int(np.argmin(np.abs(RAY_ANGLES_RAD)))
    assert rays[down] == pytest.approx(height, abs=1e-5)
    assert rays[0] == rays[-1] == RAY_MAX_M  # horizontal rays on flat ground hit nothing
    np.testing.assert_allclose(rays, np.minimum(height / np.cos(RAY_ANGLES_RAD.clip(-1.5, 1.5)), RAY_MAX_M), atol=1e-4)
    np.testing.assert_allclose(frame[SLOTS["hip_ground"]], height, atol=1e-6)
    np.testing.assert_allclose(frame[SLOTS["torque_limit"]], 0.6)  # the middle of the default 0.2-1.0 range


def test_rays_see_the_stairs_ahead(stand) -> None:
    env = _standing_env(stand, terrain="stairs:5", start_x_range_m=(2.4, 2.4))
    obs, _ = env.reset()
    rays = _last_frame(obs)[0][SLOTS["terrain_rays"]]
    flat = _last_frame(_standing_env(stand).reset()[0])[0][SLOTS["terrain_rays"]]
    ahead = np.deg2rad(30) < RAY_ANGLES_RAD
    assert np.all(rays[ahead] < flat[ahead] - 0.05)
    np.testing.assert_allclose(rays[~ahead & (RAY_ANGLES_RAD < 0)], flat[~ahead & (RAY_ANGLES_RAD < 0)], atol=1e-5)


def test_pelvis_height_on_stairs_is_measured_from_the_pitch_line(stand) -> None:
    """A pelvis carried level over a 15 cm riser: its height above the surface changes by the pitch line's 1 cm
    over those 2 cm, not by the riser (the root-stability reward and the fall rule read it)."""
    riser_x, offset_m = RUN_IN_M + 3 * STAIR_TREAD_M, 0.01
    env = _standing_env(stand, terrain="stairs:5", start_x_range_m=(riser_x, riser_x))
    env.reset()
    env._qpos[:, 0] = [riser_x - offset_m, riser_x + offset_m]
    env._qpos[:, 2] = env._qpos[0, 2]
    env.batch.forward(np.arange(2, dtype=np.int32), stage=mujoco.mjtStage.mjSTAGE_POS)
    m = env._measure(slice(None), env._reference(env._time_s(), kinematic_targets=False))
    pitch = env.terrain.step_height_m / STAIR_TREAD_M
    assert m.root_height_m[0] - m.root_height_m[1] == pytest.approx(pitch * 2 * offset_m)
    env.close()


def test_torque_limit_actions_bound_the_actuator_force(stand) -> None:
    env = _standing_env(stand, terminate_on_non_foot_contact=False, fall_height_fraction=0.0)
    force = env.batch.bind("actuator_force")
    ceiling = env.twin.torque_ceiling_nm
    env.reset()
    saturating = np.ones((2, ACTION_WIDTH))  # every target +0.5 rad away
    saturating[0, N_JOINTS:] = -1.0  # lowest limit: 20 % of the ceiling
    saturating[1, N_JOINTS:] = 1.0  # full ceiling
    env.step(saturating)
    low, high = np.abs(force[0]), np.abs(force[1])
    assert np.all(low <= 0.2 * ceiling + 1e-9)
    assert np.all(high <= ceiling + 1e-9)
    # a 0.5 rad error asks for twice the ceiling: the low limit holds most joints at it after a whole control
    # step, while the full ceiling lets the same command push far beyond it
    assert np.sum(np.isclose(low, 0.2 * ceiling)) >= 10
    assert np.sum(high > 0.5 * ceiling) >= 7
    # a per-group limit: only the left knee free, every other group at its lowest
    env.reset()
    mixed = np.ones((2, ACTION_WIDTH))
    mixed[:, N_JOINTS:] = -1.0
    mixed[:, N_JOINTS + GROUP_NAMES.index("knee_l")] = 1.0
    env.step(mixed)
    knee = GROUP_NAMES.index("knee_l") == JOINT_GROUP_INDEX
    assert np.all(np.abs(force[:, ~knee]) <= 0.2 * ceiling[~knee] + 1e-9)
    assert np.all(np.abs(force[:, knee]) > 0.2 * ceiling[knee])


def test_goals_come_from_the_ranges_and_pick_the_nearest_reference(model) -> None:
    slow = sinusoidal_gait_reference(model, speed_m_s=0.6, stride_length_m=0.9)
    fast = sinusoidal_gait_reference(model, speed_m_s=1.3, stride_length_m=1.45)
    env = WalkEnv([slow, fast], n_envs=64, n_threads=1, seed=5)
    env.reset()
    cfg = env.config
    assert np.all((cfg.speed_range_m_s[0] <= env._goal_speed) & (env._goal_speed <= cfg.speed_range_m_s[1]))
    frequency = env._goal_speed / env._goal_stride
    assert np.all((frequency >= cfg.stride_frequency_range_hz[0]) & (frequency <= cfg.stride_frequency_range_hz[1]))
    distance = np.stack(
        [np.hypot(env._goal_speed - r.speed_m_s, env._goal_stride - r.stride_length_m) for r in (slow, fast)], axis=1
    )
    np.testing.assert_array_equal(env._ref, np.argmin(distance, axis=1))
    assert len(np.unique(env._ref)) == 2
    # resampled to the goal: the reference's speed times the time scale, its stride times the stride scale
    np.testing.assert_allclose(env.bank.speed_m_s[env._ref] * env._time_scale * env._stride_scale, env._goal_speed)
    np.testing.assert_allclose(env.bank.stride_length_m[env._ref] * env._stride_scale, env._goal_stride)


def test_same_step_autoreset_returns_the_final_observation(gait) -> None:
    env = WalkEnv([gait], n_envs=4, n_threads=1, seed=6, config=dataclasses.replace(default_config(), episode_steps=3))
    env.reset()
    for _ in range(2):
        _, _, terminated, truncated, infos = env.step(np.zeros((4, ACTION_WIDTH)))
        assert "final_obs" not in infos
    obs, _, terminated, truncated, infos = env.step(np.zeros((4, ACTION_WIDTH)))
    assert truncated.all()
    assert not terminated.any()
    assert infos["_final_obs"].all()
    assert infos["final_obs"].shape == obs.shape
    np.testing.assert_array_equal(infos["episode_length"], 3)
    assert np.all(env._steps == 0)
    # the new episode's stack holds its first frame three times
    stack = obs.reshape(4, N_STACKED_FRAMES, FRAME_WIDTH)
    np.testing.assert_array_equal(stack[:, 0], stack[:, 2])
    assert not np.array_equal(infos["final_obs"], obs)


def test_reset_with_a_seed_is_reproducible(gait) -> None:
    first = WalkEnv([gait], n_envs=3, n_threads=1).reset(seed=7)[0]
    second = WalkEnv([gait], n_envs=3, n_threads=1).reset(seed=7)[0]
    np.testing.assert_array_equal(first, second)


def test_unknown_environment_lists_known_names(gait) -> None:
    with pytest.raises(UnknownNameError) as caught:
        make_env("jump", [gait])
    for name in ENV_NAMES:
        assert name in str(caught.value)


def test_bad_levels_and_configs_are_refused(gait) -> None:
    with pytest.raises(ValueError, match="no levels"):
        make_env("walk", [gait], level=2)
    with pytest.raises(ValueError, match=r"one of \(1, 2, 3, 4, 5\)"):
        make_env("stairs", [gait], level=6)
    with pytest.raises(UnknownNameError, match="known terrains"):
        dataclasses.replace(default_config(), terrain="hills")
    with pytest.raises(ValueError, match="known terms"):
        WalkEnv([gait], n_envs=1, config=dataclasses.replace(default_config(), cost_terms={"effort": 1.0}))
    env = WalkEnv([gait], n_envs=2, n_threads=1)
    env.reset()
    with pytest.raises(ValueError, match="actions must have shape"):
        env.step(np.zeros((2, 5)))


def test_slope_and_stairs_levels_pick_their_course(gait) -> None:
    assert make_env("slope", [gait], level=3, n_envs=1, n_threads=1).terrain.name == "slope:3"
    assert make_env("stairs", [gait], n_envs=1, n_threads=1).terrain.name == "stairs:5"


def test_stairs_from_7_5_cm_imitate_their_references_climbing_them_on_the_stairs_only(gait, monkeypatch) -> None:
    monkeypatch.setattr(stairs, "STEP_ALIGNED_STARTS", False)  # starts where asked, in the blend
    for level in (1, 2):  # no risers, 3.75 cm: the level gait as given, all along the course
        env = make_env("stairs", [gait], level=level, n_envs=1, n_threads=1)
        assert env.bank.motions[0] is gait
        assert StairsEnv.climbing([gait], env.twin.model, env.terrain) is None
    config = dataclasses.replace(stairs_config(3), start_x_range_m=(2.4, 2.4))  # where the climb starts to blend in
    env = StairsEnv([gait], config=config, n_envs=3, n_threads=1)
    assert env.terrain.step_height_m >= CLIMBING_FROM_RISER_M
    assert env.bank.motions[0] is gait  # on the run-in and the landing
    climbing = StairsEnv.climbing([gait], env.twin.model, env.terrain)[0]
    rise_m = env.terrain.step_height_m * gait.stride_length_m / STAIR_TREAD_M
    assert climbing.source.endswith(f"climbing {rise_m * 100:.1f} cm a stride")
    # the share of the climbing reference by the pelvis's place: none on the run-in, all of it on the stairs
    full_from_m, full_to_m = climbing_span_m(env.terrain)
    assert full_from_m < env.terrain.feature_start_x_m < env.terrain.feature_end_x_m < full_to_m
    half = CLIMBING_BLEND_M / 2
    x = np.array([0.0, full_from_m - 2 * half, full_from_m - half, full_from_m, 4.0, full_to_m, full_to_m + half,
                  full_to_m + 2 * half, env.terrain.course_end_x_m])  # fmt: skip
    np.testing.assert_allclose(climbing_share(x, env.terrain), [0, 0, 0.5, 1, 1, 1, 0.5, 0, 0], atol=1e-12)

    env.reset()
    time_s = np.full(3, 0.4)
    level = env._placed(env.bank, time_s, slice(None), True)
    climb = env._placed(ReferenceBank([climbing]), time_s, slice(None), True)
    assert np.abs(level.qpos[:, N_ROOT_QPOS:] - climb.qpos[:, N_ROOT_QPOS:]).max() > 0.1  # hips and knees, rad
    targets = env._reference(time_s, root_x_m=np.array([0.5, 4.0, full_from_m - half]))
    np.testing.assert_allclose(targets.qpos[0], level.qpos[0], atol=1e-9)
    np.testing.assert_allclose(targets.qpos[1], climb.qpos[1], atol=1e-9)
    np.testing.assert_allclose(targets.ends_rel_m[1], climb.ends_rel_m[1], atol=1e-9)
    np.testing.assert_allclose(targets.qpos[2], 0.5 * (level.qpos[2] + climb.qpos[2]), atol=1e-9)
    # an episode starting in the blend starts from the blended pose, at its own place
    start = env._reference(np.zeros(3), kinematic_targets=False)
    np.testing.assert_allclose(env._qpos[:, N_ROOT_QPOS:], start.qpos[:, N_ROOT_QPOS:], atol=1e-9)
    np.testing.assert_allclose(climbing_share(env.root_x_m, env.terrain), 0.5)  # 2.4 m: halfway into the climb


def test_playing_the_reference_itself_earns_the_full_goal_and_imitation_reward(gait) -> None:
    """A walker that is exactly the (goal-resampled) reference: every goal and imitation term near 1."""
    import mujoco

    env = WalkEnv([gait], n_envs=4, n_threads=1, seed=8)
    env.reset()
    assert not np.allclose(env._time_scale, 1.0)  # goals differ from the clip: the resampling is exercised
    sink_m = 1e-3  # MuJoCo reports a contact once the soles penetrate; the reference's soles only touch
    for _ in range(90):  # 3 s: the goal window is full and every foot has touched down twice
        env._steps += 1
        ref = env._reference(env._time_s(), kinematic_targets=False)
        env._qpos[:] = ref.qpos
        env._qpos[:, 2] -= sink_m
        env._qvel[:] = ref.qvel
        env.batch.forward(stage=mujoco.mjtStage.mjSTAGE_POS)
        m = env._measure(slice(None), ref)
        env._update_goal_window(m)
        terms, _ = env._reward(m)
    for name in ("goal/speed", "goal/heading", "goal/root_stability", "imitation/joint_angles"):
        np.testing.assert_allclose(terms[name], 1.0, atol=1e-3, err_msg=name)
    for name in ("imitation/joint_velocities", "imitation/com", "imitation/limb_ends"):
        np.testing.assert_allclose(terms[name], 1.0, atol=0.03, err_msg=name)  # one substep of lag
    np.testing.assert_allclose(m.stride_measured_m, env._goal_stride, atol=0.06)  # touchdowns on the 30 Hz grid
    assert terms["goal/stride_length"].min() > 0.9


def test_sidestepping_costs_speed_reward(gait) -> None:
    """The speed goal is a velocity: the reference played while sliding sideways at the speed kernel's scale loses
    the speed term to exp(−1) of what it earns walking straight (the heading stays exact)."""
    import mujoco

    env = WalkEnv([gait], n_envs=2, n_threads=1, seed=8)
    env.reset()
    scale = env.config.speed_scale_m_s
    sideways_m_s = np.array([0.0, scale])
    for _ in range(60):  # 2 s: the goal window is full
        env._steps += 1
        ref = env._reference(env._time_s(), kinematic_targets=False)
        env._qpos[:] = ref.qpos
        env._qpos[:, 1] += sideways_m_s * env._time_s()
        env._qvel[:] = ref.qvel
        env.batch.forward(stage=mujoco.mjtStage.mjSTAGE_POS)
        m = env._measure(slice(None), ref)
        env._update_goal_window(m)
        terms, _ = env._reward(m)
    np.testing.assert_allclose(m.lateral_speed_m_s - m.lateral_speed_m_s[0], sideways_m_s, atol=1e-9)
    np.testing.assert_allclose(terms["goal/heading"], terms["goal/heading"][0])
    speed = terms["goal/speed"]
    np.testing.assert_allclose(speed[1] / speed[0], np.exp(-1.0), rtol=0.05)


def _landings_on_treads_m(env: StairsEnv) -> np.ndarray:
    """Where along its tread each foot of each episode's reference, followed from its start, lands in its first two
    steps (where a swing stops carrying the foot forward), m from the tread's start; (envs, landings)."""
    env.reset()
    ids = np.arange(env.num_envs)
    frames = [env._placed(env.bank, np.full(env.num_envs, k * 0.02), ids, True) for k in range(150)]  # 3 s
    feet_x = np.array([f.qpos[:, None, 0] + f.ends_rel_m[:, :2, 0] for f in frames])  # (steps, envs, 2 feet)
    moving = np.diff(feet_x, axis=0) > 0.1 * np.diff(feet_x, axis=0).max(axis=0)
    landed = moving[:-1] & ~moving[1:]
    along = (feet_x[1:-1] - env.terrain.feature_start_x_m) % STAIR_TREAD_M
    return np.array([[*along[:, e, 0][landed[:, e, 0]][:2], *along[:, e, 1][landed[:, e, 1]][:2]] for e in ids])


def test_stairs_episodes_start_with_the_reference_in_step_with_the_treads(model, monkeypatch) -> None:
    walk = sinusoidal_gait_reference(model, speed_m_s=0.6, stride_length_m=0.6)  # one foot on every tread
    config = dataclasses.replace(stairs_config(3), start_x_range_m=(1.5, 2.5))
    landings = _landings_on_treads_m(StairsEnv([walk], config=config, n_envs=12, n_threads=1, seed=4))
    # mid-tread, whatever the phase and start (within what 32 samples a cycle resolve)
    np.testing.assert_allclose(landings, STAIR_TREAD_M / 2, atol=0.035)
    monkeypatch.setattr(stairs, "STEP_ALIGNED_STARTS", False)
    landings = _landings_on_treads_m(StairsEnv([walk], config=config, n_envs=12, n_threads=1, seed=4))
    assert np.ptp(landings) > 0.2  # started anywhere: on the risers' edges too
    # level 1 has no risers: its starts are drawn as on level ground (the same draws with and without alignment)
    flat = dataclasses.replace(stairs_config(1), start_x_range_m=(1.5, 2.5))
    started = []
    for aligned in (True, False):
        monkeypatch.setattr(stairs, "STEP_ALIGNED_STARTS", aligned)
        env = StairsEnv([walk], config=flat, n_envs=6, n_threads=1, seed=4)
        env.reset()
        started.append(env._qpos[:, 0].copy())
    np.testing.assert_array_equal(*started)


def test_on_stairs_with_risers_the_reference_clock_follows_the_walker(model) -> None:
    walk = sinusoidal_gait_reference(model, speed_m_s=0.6, stride_length_m=0.6)
    config = dataclasses.replace(stairs_config(2), start_x_range_m=(1.0, 1.0))
    env = StairsEnv([walk], config=config, n_envs=3, n_threads=1, seed=2)
    env.reset()
    lo, hi = StairsEnv.clock_rate_range(env.terrain)
    speed = env._goal_speed.copy()
    dt = CONTROL_PERIOD_S
    # the reference's pelvis ahead of the walker's by 1 mm, 20 cm, and behind by 20 cm after a step
    ahead_m = np.array([0.001, 0.2, -0.2])
    ref = env._reference(np.full(3, dt))
    ref.qpos[:, 0] = env._qpos[:, 0] + ahead_m
    env._advance_clock(SimpleNamespace(ref=ref, qpos=env._qpos))
    # a small lead is caught up at once; a large one at the clock's slowest or fastest rate
    np.testing.assert_allclose(env._clock_lag_s, [0.001 / speed[0], (1 - lo) * dt, (1 - hi) * dt], atol=1e-12)
    rate = np.array([1 - 0.001 / speed[0] / dt, lo, hi])
    np.testing.assert_allclose(env._clock_rate, rate, atol=1e-9)
    # the reference's velocities are those of a motion played at that rate; its pose does not depend on the rate
    scaled = env._reference(np.full(3, 2 * dt))
    env._clock_rate[:] = 1.0
    real_time = env._reference(np.full(3, 2 * dt))
    env._clock_rate[:] = rate
    joints = slice(N_ROOT_QVEL, None)
    np.testing.assert_allclose(scaled.qvel[:, joints], rate[:, None] * real_time.qvel[:, joints], atol=1e-12)
    np.testing.assert_allclose(scaled.qpos, real_time.qpos, atol=1e-12)
    # the reference is read, and the phase observed, at the held-back clock
    time_s = env._time_s() + 0.1
    held, lag_s = env._reference(time_s), env._clock_lag_s.copy()
    env._clock_lag_s[:] = 0.0
    np.testing.assert_allclose(held.qpos, env._reference(time_s - lag_s).qpos, atol=1e-12)  # as if started later
    env._clock_lag_s[:] = lag_s
    frame = env._frame(slice(None), env._measure(slice(None), held))
    phase = env.bank.phase(env._ref, env._clip_time0_s + (env._time_s() - env._clock_lag_s) * env._time_scale)
    sin_cos = np.stack([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)], axis=1)
    np.testing.assert_allclose(frame[:, SLOTS["phase"]], sin_cos, atol=1e-6)
    env._reset_envs(np.array([1]))  # a new episode starts on time
    assert env._clock_lag_s[1] == 0.0
    assert env._clock_rate[1] == 1.0
    assert env._clock_lag_s[2] != 0.0
    assert env._clock_rate[2] == pytest.approx(hi)

    # walking (zero residuals around the reference): the reference's pelvis stays with the walker's
    env.reset()
    for _ in range(40):
        env.step(np.zeros((3, ACTION_WIDTH)))
    gap_m = env._reference(env._time_s()).qpos[:, 0] - env._qpos[:, 0]
    assert np.abs(gap_m).max() < 0.05
    # on level 1 (no risers) the reference plays in real time
    flat = StairsEnv([walk], config=dataclasses.replace(stairs_config(1), start_x_range_m=(1.0, 1.0)), n_envs=3,
                     n_threads=1, seed=2)  # fmt: skip
    assert StairsEnv.clock_rate_range(flat.terrain) is None
    flat.reset()
    for _ in range(10):
        flat.step(np.zeros((3, ACTION_WIDTH)))
    assert not flat._clock_lag_s.any()
