"""ONNX export: parity with PyTorch (normaliser baked in, actions clipped and scaled), the manifest's contents, the
torch-free runner, and refusals of damaged or mismatched files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from cloud_trainer.envs.constants import ACTION_LAYOUT, CONTROL_PERIOD_S, FRAME_LAYOUT, OBSERVATION_WIDTH
from cloud_trainer.envs.registry import make_env
from cloud_trainer.envs.stairs import StairsEnv, climbing_share
from cloud_trainer.learn.ppo import GaussianPolicy, PPOArgs
from cloud_trainer.pipeline.onnx_export import OPSET, OnnxExportError, export_onnx
from cloud_trainer.pipeline.onnx_policy import MANIFEST_SCHEMA, OnnxPolicy, OnnxPolicyError
from cloud_trainer.pipeline.rollout import EvalSetting, run_rollouts
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.constants import N_ROOT_QPOS

PATIENT = Anthropometry(height_m=1.62, mass_kg=58.0, sex="female")


@pytest.fixture(scope="module")
def small_policy() -> GaussianPolicy:
    """A small policy whose normaliser has non-trivial statistics and whose outputs reach beyond ±1."""
    torch.manual_seed(0)
    policy = GaussianPolicy(OBSERVATION_WIDTH, 22, PPOArgs(policy_hidden=(32, 32), last_layer_gain=3.0))
    rng = np.random.default_rng(1)
    policy.normalizer.mean.copy_(torch.from_numpy(rng.normal(0, 2, OBSERVATION_WIDTH)))
    policy.normalizer.var.copy_(torch.from_numpy(rng.uniform(1e-6, 4.0, OBSERVATION_WIDTH)))
    policy.normalizer.count.fill_(1000.0)
    return policy.eval()


@pytest.fixture(scope="module")
def setting(walk_reference) -> EvalSetting:
    return EvalSetting("stairs", 3, (walk_reference,), anthropometry=PATIENT, affected_side="right")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_policy, setting):
    path = tmp_path_factory.mktemp("onnx") / "policy_stairs.onnx"
    return export_onnx(small_policy, path, setting, n_random=256, provenance={"run": "test"})


def test_onnx_runtime_matches_pytorch(exported):
    v = exported.manifest["verification"]
    assert v["passed"]
    assert v["tolerance"] == 1e-4
    assert v["max_abs_diff_random"] < 1e-4
    assert v["max_abs_diff_real"] < 1e-4
    assert v["n_random_observations"] == 256
    assert v["n_real_observations"] > 0


def test_graph_holds_normaliser_clip_and_scaling(exported, small_policy, setting):
    policy = OnnxPolicy(exported.onnx_path)
    record = run_rollouts(small_policy, setting, n_episodes=2, duration_s=1.0)
    obs = record.obs[record.alive]
    with torch.inference_mode():
        raw = small_policy(torch.from_numpy(obs)).numpy()
    outputs = policy.run(obs)
    assert np.abs(raw).max() > 1.0  # the clip is exercised
    expected = np.clip(raw, -1.0, 1.0)
    np.testing.assert_allclose(outputs["action"], expected, atol=1e-5)
    np.testing.assert_allclose(outputs["target_residual_rad"], 0.5 * expected[:, :15], atol=1e-5)
    np.testing.assert_allclose(outputs["torque_limit_fraction"], 0.2 + 0.4 * (expected[:, 15:] + 1.0), atol=1e-5)
    single = policy.act(obs[0])
    assert single.shape == (22,)
    np.testing.assert_allclose(single, expected[0], atol=1e-5)


def test_manifest_describes_the_policy(exported):
    m = exported.manifest
    on_disk = json.loads(exported.manifest_path.read_text())
    assert on_disk == m
    assert exported.manifest_path.name == "policy_stairs.json"
    assert m["schema"] == MANIFEST_SCHEMA
    assert m["task"] == "stairs"
    assert m["level"] == 3
    assert m["terrain"] == "stairs:3"
    assert m["opset"] == OPSET
    assert m["onnx_file"] == "policy_stairs.onnx"
    assert m["sha256"] == hashlib.sha256(exported.onnx_path.read_bytes()).hexdigest()
    assert m["size_bytes"] == exported.onnx_path.stat().st_size
    assert m["observation"]["layout"] == [[name, width] for name, width in FRAME_LAYOUT]
    assert m["observation"]["width"] == OBSERVATION_WIDTH == 3 * sum(w for _, w in FRAME_LAYOUT)
    assert set(m["observation"]["units"]) == {name for name, _ in FRAME_LAYOUT}
    assert m["normalisation"]["baked_into_graph"]
    assert m["normalisation"]["clip"] == 5.0
    assert m["action"]["layout"] == [[name, width] for name, width in ACTION_LAYOUT]
    assert m["action"]["residual_scale_rad"] == 0.5
    assert m["action"]["torque_fraction_range"] == [0.2, 1.0]
    assert m["control_period_s"] == pytest.approx(CONTROL_PERIOD_S)
    assert m["control_rate_hz"] == 30.0
    assert m["model"]["anthropometry"] == {"height_m": 1.62, "mass_kg": 58.0, "sex": "female"}
    assert m["model"]["affected_side"] == "right"
    assert len(m["model"]["torque_ceiling_nm"]) == 15
    assert [o["name"] for o in m["outputs"]] == ["action", "target_residual_rad", "torque_limit_fraction"]
    assert m["provenance"] == {"run": "test"}
    model = onnx.load(str(exported.onnx_path))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == OPSET


def test_manifest_carries_the_reference_frames_a_runner_needs_for_its_pd_targets(exported, setting):
    # what the trainer's episodes imitate at the manifest's level: on stairs of 7.5 cm, the level gait on the run-in
    # and the landing, the reference climbing them on the stairs, blended by the pelvis's place
    env = make_env("stairs", setting.references, level=3, anthropometry=PATIENT, n_envs=1, n_threads=1)
    climbing = StairsEnv.climbing(setting.references, env.twin.model, env.terrain)[0]
    for block, reference in (("reference", env.bank.motions[0]), ("reference_on_stairs", climbing)):
        frames = exported.manifest[block]["frames"]
        assert exported.manifest[block]["source"] == reference.source
        qpos = np.array(frames["qpos"])
        np.testing.assert_allclose(qpos, reference.qpos, atol=1e-6)
        assert (frames["dt_s"], frames["cyclic"]) == (reference.dt_s, True)
        # the documented reading (linear between frames, wrapping after the last) gives the trainer's own targets
        clip_time_s = np.array([0.0, 0.37, reference.cycle_period_s - 0.5 * reference.dt_s,
                                2.3 * reference.cycle_period_s])  # fmt: skip
        position = (clip_time_s / frames["dt_s"]) % len(qpos)
        i0 = np.floor(position).astype(int)
        alpha = (position - i0)[:, None]
        j = N_ROOT_QPOS  # joint angles follow the root's position and orientation
        joints = (1 - alpha) * qpos[i0, j:] + alpha * qpos[(i0 + 1) % len(qpos), j:]
        np.testing.assert_allclose(joints, reference.sample(clip_time_s).qpos[:, j:], atol=1e-5)
    assert "climbing" in climbing.source
    # the documented share (minimum jerk over each span) is the trainer's; the curve is written here from the
    # manifest's text, not imported, so that the text itself is checked
    share = exported.manifest["reference_on_stairs"]["share"]
    x = np.linspace(0.0, env.terrain.course_end_x_m, 301)

    def minimum_jerk(s: np.ndarray) -> np.ndarray:
        s = np.clip(s, 0.0, 1.0)
        return s**3 * (10 - 15 * s + 6 * s**2)

    (a, b), (c, d) = share["rises_m"], share["falls_m"]
    documented = np.minimum(minimum_jerk((x - a) / (b - a)), 1.0 - minimum_jerk((x - c) / (d - c)))
    np.testing.assert_allclose(documented, climbing_share(x, env.terrain), atol=1e-5)


def test_manifest_says_how_the_reference_clock_follows_the_walker_on_stairs(exported, setting, small_policy):
    clock = exported.manifest["reference_clock"]
    assert clock["follows_walker"]
    lo, hi = clock["rate_range"]
    # the documented rule, replayed beside the trainer's own clock over a walk on the PD targets alone
    env = make_env("stairs", setting.references, level=3, anthropometry=PATIENT, n_envs=2, n_threads=1, seed=5)
    env.reset()
    dt, speed = exported.manifest["control_period_s"], env._goal_speed
    t, steps = np.zeros(2), 0
    while steps < 30:
        # the reference placed on the course with its clock at t + dt (_placed holds the trainer's clock back itself)
        x_ref = env._placed(env.bank, t + dt + env._clock_lag_s, slice(None), False).qpos[:, 0]
        _, _, terminated, truncated, _ = env.step(np.zeros((2, env.single_action_space.shape[0])))
        if (terminated | truncated).any():  # a new episode restarts its clock
            break
        t += np.clip(dt - (x_ref - env._qpos[:, 0]) / speed, lo * dt, hi * dt)
        steps += 1
        np.testing.assert_allclose(t, env._time_s() - env._clock_lag_s, atol=1e-9)
    assert steps >= 10
    assert np.abs(t - env._time_s()).max() > 0.01  # the walker did not keep the reference's pace
    flat = EvalSetting("slope", 2, setting.references, anthropometry=PATIENT, affected_side="right")
    path = exported.onnx_path.with_name("policy_slope.onnx")
    assert not export_onnx(small_policy, path, flat, n_random=16).manifest["reference_clock"]["follows_walker"]


def test_runner_needs_no_torch(exported):
    code = (
        "import sys, numpy as np\n"
        "from cloud_trainer.pipeline.onnx_policy import OnnxPolicy\n"
        f"p = OnnxPolicy({str(exported.onnx_path)!r})\n"
        "a = p.act(np.zeros((3, 249), np.float32))\n"
        "assert a.shape == (3, 22) and np.all(np.abs(a) <= 1)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert not any(m.startswith('cloud_trainer.') and m != 'cloud_trainer.pipeline.onnx_policy'\n"
        "               and m != 'cloud_trainer.pipeline' for m in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_damaged_or_mismatched_files_are_refused(exported, tmp_path):
    data = bytearray(exported.onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "policy_stairs.onnx"
    damaged.write_bytes(bytes(data))
    (tmp_path / "policy_stairs.json").write_text(exported.manifest_path.read_text())
    with pytest.raises(OnnxPolicyError, match="does not match the manifest"):
        OnnxPolicy(damaged)
    lonely = tmp_path / "other.onnx"
    lonely.write_bytes(exported.onnx_path.read_bytes())
    with pytest.raises(OnnxPolicyError, match="manifest is missing"):
        OnnxPolicy(lonely)
    with pytest.raises(OnnxPolicyError, match="no such ONNX policy"):
        OnnxPolicy(tmp_path / "absent.onnx")
    policy = OnnxPolicy(exported.onnx_path)
    with pytest.raises(OnnxPolicyError, match=r"observations must be \(249,\)"):
        policy.act(np.zeros(83))


def test_an_export_that_fails_verification_is_not_written(small_policy, setting, tmp_path):
    path = tmp_path / "policy_stairs.onnx"
    with pytest.raises(OnnxExportError, match="differs from PyTorch"):
        export_onnx(small_policy, path, setting, n_random=8, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []
