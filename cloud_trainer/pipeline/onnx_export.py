"""One ONNX policy per task, with its manifest, verified against PyTorch and run with ONNX Runtime.

The graph takes raw observations ``obs`` (n, 249) float32 and holds everything between them and the environment's
actuation inputs (STYLE.md: "every exported policy ships a manifest"):

- the running observation normaliser (mean, standard deviation floored, clip at ±5), frozen into constants;
- the policy MLP (the Gaussian's mean: deterministic use);
- the action clip to [-1, 1] the environment applies, and the action scaling: outputs ``action`` (n, 22),
  ``target_residual_rad`` (n, 15: added to the reference's joint angles, then clipped to the joint ranges) and
  ``torque_limit_fraction`` (n, 7: of each joint group's ceiling).

Exported with ``torch.onnx.export`` (the TorchScript exporter: the newer ``torch.export`` one needs ``onnxscript``,
which the trainer does not install), opset :data:`OPSET`, a dynamic batch axis. Verified before it is written: the
ONNX checker, then ONNX Runtime against PyTorch on random observations (normal around the normaliser's statistics,
three standard deviations wide, so the ±5 clip is exercised) and on real observations from a rollout of the policy;
the largest absolute difference over all outputs must stay below ``tolerance`` (1e-4) or the export is refused.
Manifest schema ``stridetwin.onnx-policy/2``: docs/patient-outputs.md, "ONNX policies".
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from cloud_trainer.atlas.weights import task_config_document
from cloud_trainer.atomic_files import write_json_atomic
from cloud_trainer.envs.base import TwinVecEnv
from cloud_trainer.envs.constants import (
    ACTION_LAYOUT,
    ACTION_WIDTH,
    CONTROL_PERIOD_S,
    CONTROL_RATE_HZ,
    FRAME_LAYOUT,
    FRAME_WIDTH,
    N_STACKED_FRAMES,
    N_SUBSTEPS,
    OBSERVATION_WIDTH,
)
from cloud_trainer.envs.registry import ENVIRONMENTS
from cloud_trainer.envs.stairs import CLIMBING_BLEND_M, climbing_span_m
from cloud_trainer.errors import TrainerError
from cloud_trainer.learn.ppo import GaussianPolicy
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.pipeline.onnx_policy import MANIFEST_SCHEMA, OnnxPolicy, manifest_path_for
from cloud_trainer.pipeline.rollout import EvalSetting, PolicyLike, run_rollouts
from cloud_trainer.twin.actuation import KV_PER_KP_S, SATURATION_ANGLE_RAD
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.constants import GROUP_NAMES, JOINT_NAMES
from cloud_trainer.twin.model import PHYSICS_TIMESTEP_S, Twin, build_twin

OPSET = 17
OUTPUT_NAMES = ("action", "target_residual_rad", "torque_limit_fraction")
#: Units and meaning of each observation block, for the manifest (docs/environments.md).
OBSERVATION_UNITS: dict[str, str] = {
    "phase": "sin, cos of 2π·phase of the reference cycle",
    "goal": "target speed m/s, target stride length m",
    "goal_error": "measured − target over the goal window: speed m/s, stride length m",
    "torque_limit": "current torque limit per joint group, fraction of its ceiling",
    "root_height": "pelvis origin above the ground under it, m",
    "root_quat": "pelvis orientation quat_wxyz, world frame, w ≥ 0",
    "joint_angle": "hinge angles, rad",
    "root_linvel": "pelvis linear velocity in the heading frame, m/s",
    "root_angvel": "pelvis angular velocity in the pelvis frame, rad/s",
    "joint_velocity": "hinge rates, rad/s",
    "com": "centre of mass relative to the pelvis, heading frame, m",
    "limb_ends": "right sole, left sole, spine top relative to the pelvis, heading frame, m",
    "foot_contact": "right, left foot on the terrain, 0/1",
    "hip_ground": "right, left hip joint centre above the ground under it, m",
    "terrain_rays": "distance pelvis → terrain along 13 sagittal rays, −90° … +90° from straight down, m, ≤ 3",
}


class OnnxExportError(TrainerError):
    """An export that failed verification (ONNX Runtime disagrees with PyTorch) or could not be written."""


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    onnx_path: Path
    manifest_path: Path
    manifest: dict


class _ExportedPolicy(torch.nn.Module):
    """Normaliser → MLP mean → clip → scaled outputs (see the module docstring)."""

    def __init__(self, policy: GaussianPolicy, residual_scale_rad: float, fraction_range: tuple[float, float]):
        super().__init__()
        self.policy = policy
        self.residual_scale_rad = float(residual_scale_rad)
        self.fraction_lo, self.fraction_hi = (float(v) for v in fraction_range)
        self.n_joints = len(JOINT_NAMES)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        action = self.policy(obs).clamp(-1.0, 1.0)
        residual = self.residual_scale_rad * action[:, : self.n_joints]
        fraction = self.fraction_lo + (action[:, self.n_joints :] + 1.0) * 0.5 * (self.fraction_hi - self.fraction_lo)
        return action, residual, fraction


def gaussian_policy_of(policy: PolicyLike) -> GaussianPolicy:
    """The :class:`GaussianPolicy` inside a ``PPO``, ``AtlasPolicy`` or the policy itself.

    Raises:
        TypeError: nothing exportable in ``policy``.
    """
    inner = getattr(policy, "policy", policy)
    if not isinstance(inner, GaussianPolicy):
        raise TypeError(f"cannot export a {type(policy).__name__}: a GaussianPolicy (or PPO / AtlasPolicy) is needed")
    return inner


def export_onnx(
    policy: PolicyLike,
    onnx_path: Path,
    setting: EvalSetting,
    *,
    real_obs: np.ndarray | None = None,
    n_random: int = 512,
    tolerance: float = 1e-4,
    provenance: dict | None = None,
    seed: int = 0,
) -> OnnxExport:
    """Export ``policy`` for the task of ``setting`` to ``onnx_path`` and its manifest beside it (``.json``).

    Args:
        policy: the task's final policy.
        onnx_path: where the model goes (its folder must exist).
        setting: the task (its level: the curriculum level the policy was trained up to), the patient's twin and goal.
        real_obs: observations the policy met (n, 249); None: a 4 s rollout of two episodes on ``setting`` makes them.
        n_random: random observations for the parity check.
        tolerance: largest accepted |ONNX − PyTorch| over all outputs.
        provenance: extra manifest entries (training counters, run id, clip checksum …).
        seed: seed of the random observations.

    Raises:
        OnnxExportError: the graph fails the ONNX checker or ONNX Runtime differs from PyTorch by ≥ ``tolerance``.
    """
    import onnx

    started = time.perf_counter()
    gaussian = gaussian_policy_of(policy)
    gaussian.eval()
    config = setting.task_config()
    module = _ExportedPolicy(gaussian, config.residual_scale_rad, config.torque_fraction_range).eval()
    example = torch.zeros(2, OBSERVATION_WIDTH)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter announces its deprecation; it is the one that runs without onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), buffer, input_names=["obs"], output_names=list(OUTPUT_NAMES),
            dynamic_axes={"obs": {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}},
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )  # fmt: skip
    model_bytes = buffer.getvalue()
    try:
        onnx.checker.check_model(onnx.load_from_string(model_bytes))
    except onnx.checker.ValidationError as exc:
        raise OnnxExportError(f"{onnx_path}: the exported graph fails the ONNX checker ({exc})") from None
    export_s = time.perf_counter() - started

    onnx_path = Path(onnx_path)
    tmp = onnx_path.with_name(f".{onnx_path.name}.tmp")
    tmp.write_bytes(model_bytes)
    started = time.perf_counter()
    if real_obs is None:
        record = run_rollouts(policy, setting, n_episodes=2, duration_s=4.0)
        real_obs = record.obs[record.alive]
    real_obs = np.asarray(real_obs, dtype=np.float32).reshape(-1, OBSERVATION_WIDTH)
    random_obs = _random_observations(gaussian, n_random, seed)
    manifest = _manifest(gaussian, setting, onnx_path, model_bytes, provenance)
    session = OnnxPolicy(tmp, manifest)
    diffs = {}
    for label, obs in (("random", random_obs), ("real", real_obs)):
        with torch.inference_mode():
            expected = [t.numpy() for t in module(torch.from_numpy(obs))]
        got = session.run(obs)
        diffs[label] = max(float(np.max(np.abs(got[n] - e))) for n, e in zip(OUTPUT_NAMES, expected, strict=True))
    verify_s = time.perf_counter() - started
    passed = max(diffs.values()) < tolerance
    if not passed:
        tmp.unlink(missing_ok=True)
        raise OnnxExportError(
            f"{onnx_path}: ONNX Runtime differs from PyTorch by {max(diffs.values()):.3g} "
            f"(random {diffs['random']:.3g}, real {diffs['real']:.3g}); accepted < {tolerance:g}"
        )
    import onnxruntime

    manifest["verification"] = {
        "reference": f"torch {torch.__version__}",
        "runtime": f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)",
        "n_random_observations": len(random_obs),
        "n_real_observations": len(real_obs),
        "max_abs_diff_random": diffs["random"],
        "max_abs_diff_real": diffs["real"],
        "tolerance": tolerance,
        "passed": passed,
    }
    manifest["timing_s"] = {"export": round(export_s, 3), "verify": round(verify_s, 3)}
    os.replace(tmp, onnx_path)
    manifest_path = manifest_path_for(onnx_path)
    write_json_atomic(manifest_path, manifest, indent=2)
    return OnnxExport(onnx_path, manifest_path, manifest)


def _random_observations(policy: GaussianPolicy, n: int, seed: int) -> np.ndarray:
    """Half around the normaliser's statistics (±3 σ: the ±5 clip is reached), half standard normal."""
    rng = np.random.default_rng(seed)
    mean = policy.normalizer.mean.numpy()
    std = np.sqrt(policy.normalizer.var.numpy())
    half = n // 2
    around = mean + 3.0 * std * rng.standard_normal((half, OBSERVATION_WIDTH))
    plain = rng.standard_normal((n - half, OBSERVATION_WIDTH))
    return np.concatenate([around, plain]).astype(np.float32)


def _reference_frames(reference: ReferenceMotion) -> dict:
    """The reference's poses and how to read them at a walking instant: the PD targets are the reference's joint
    angles plus the policy's residuals, so a runner without the trainer's files needs them (the bedside)."""
    return {
        "dt_s": reference.dt_s,
        "cyclic": reference.cyclic,
        "qpos_layout": "root position (m, world), root orientation quat_wxyz, joint angles (rad, action.joint_names)",
        "qpos": np.round(reference.qpos, 6).tolist(),
        "cycle_offset_m": np.round(reference.cycle_offset_m, 6).tolist(),
        "clip_time": (
            "t_clip = t_clip,0 + t × cycle_period_s × goal speed / goal stride (t: s walked; 1 s a second at the "
            "reference's own speed and stride); frames linearly interpolated, a cyclic motion wrapping after its "
            "last frame to the first, its root moved on by cycle_offset_m each cycle"
        ),
        "phase": "t_clip / cycle_period_s mod 1; the observation's phase block holds sin and cos of 2π·phase",
    }


def _reference_clock(env_class: type[TwinVecEnv], twin: Twin) -> dict:
    """How the time ``t`` of the reference's ``clip_time`` runs: the time walked, or a clock that follows the
    walker (:meth:`~cloud_trainer.envs.base.TwinVecEnv.clock_rate_range`)."""
    rates = env_class.clock_rate_range(twin.terrain)
    if rates is None:
        return {"follows_walker": False, "meaning": "t is the time walked since the episode's start"}
    return {
        "follows_walker": True,
        "rate_range": [float(r) for r in rates],
        "meaning": (
            "t starts at 0; each control step of Δt = control_period_s moves it from t to t + clip(Δt − (x_ref − x) "
            "/ goal speed, rate_range × Δt), where x is the walker's pelvis along the course after the step and x_ref "
            "the reference's pelvis at t + Δt (the instant of the step's PD targets), placed on the course"
        ),
    }


def _on_stairs(env_class: type[TwinVecEnv], references: list[ReferenceMotion], twin: Twin) -> dict:
    """On stairs with a climbing reference: its frames and where along the course it takes over; else nothing."""
    motions = env_class.climbing(references, twin.model, twin.terrain)
    if motions is None:
        return {}
    full_from_m, full_to_m = climbing_span_m(twin.terrain)
    return {
        "reference_on_stairs": {
            "name": motions[0].name,
            "source": motions[0].source,
            "frames": _reference_frames(motions[0]),
            "share": {
                "meaning": (
                    "imitated target = reference + share × (reference_on_stairs − reference), both read at the same "
                    "clip time (root orientation renormalised); share by the pelvis's x along the course"
                ),
                "rises_m": [round(full_from_m - CLIMBING_BLEND_M, 6), round(full_from_m, 6)],
                "falls_m": [round(full_to_m, 6), round(full_to_m + CLIMBING_BLEND_M, 6)],
                "curve": "minimum jerk s³(10 − 15s + 6s²) over each span; 1 between them, 0 outside",
            },
        }
    }


def _manifest(
    policy: GaussianPolicy, setting: EvalSetting, onnx_path: Path, model_bytes: bytes, provenance: dict | None
) -> dict:
    import onnx

    config = setting.task_config()
    anthropometry = setting.anthropometry or Anthropometry()
    twin = build_twin(anthropometry, config.terrain)
    speed, stride = setting.resolved_goal()
    env_class = ENVIRONMENTS[setting.task][0]
    # the motion the policy imitates along the course; on high stairs _on_stairs adds the climb it blends in there
    reference = setting.references[0]
    ceiling = dict(zip(JOINT_NAMES, np.round(twin.torque_ceiling_nm, 4).tolist(), strict=True))
    model = onnx.load_from_string(model_bytes)
    return {
        "schema": MANIFEST_SCHEMA,
        "task": setting.task,
        "level": setting.level,
        "terrain": config.terrain,
        "onnx_file": onnx_path.name,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "size_bytes": len(model_bytes),
        "opset": OPSET,
        "ir_version": int(model.ir_version),
        "producer": f"{model.producer_name} {model.producer_version} (torch.onnx.export, TorchScript exporter)",
        "inputs": [{"name": "obs", "shape": ["batch", OBSERVATION_WIDTH], "dtype": "float32"}],
        "outputs": [
            {"name": "action", "shape": ["batch", ACTION_WIDTH], "dtype": "float32", "range": [-1.0, 1.0]},
            {
                "name": "target_residual_rad",
                "shape": ["batch", len(JOINT_NAMES)],
                "dtype": "float32",
                "meaning": (
                    "PD target = reference joint angle at the end of the control step + this, clipped to the joint "
                    "range"
                ),
            },
            {
                "name": "torque_limit_fraction",
                "shape": ["batch", len(GROUP_NAMES)],
                "dtype": "float32",
                "meaning": "torque limit of each joint group as a fraction of its ceiling",
            },
        ],
        "observation": {
            "layout": [[name, width] for name, width in FRAME_LAYOUT],
            "units": OBSERVATION_UNITS,
            "frame_width": FRAME_WIDTH,
            "n_stacked_frames": N_STACKED_FRAMES,
            "stacking": "frames t-2, t-1, t, oldest first",
            "width": OBSERVATION_WIDTH,
            "dtype": "float32",
        },
        "normalisation": {
            "baked_into_graph": True,
            "formula": "clip((obs − mean) / max(sqrt(var), std_floor), ±clip)",
            "clip": policy.normalizer.clip,
            "std_floor": policy.normalizer.std_floor,
            "n_observations_seen": float(policy.normalizer.count),
        },
        "action": {
            "layout": [[name, width] for name, width in ACTION_LAYOUT],
            "clip": [-1.0, 1.0],
            "clipped_in_graph": True,
            "residual_scale_rad": config.residual_scale_rad,
            "torque_fraction_range": list(config.torque_fraction_range),
            "joint_names": list(JOINT_NAMES),
            "group_names": list(GROUP_NAMES),
        },
        "control_period_s": CONTROL_PERIOD_S,
        "control_rate_hz": CONTROL_RATE_HZ,
        "physics_timestep_s": PHYSICS_TIMESTEP_S,
        "n_substeps": N_SUBSTEPS,
        "model": {
            "anthropometry": dataclasses.asdict(anthropometry),
            "affected_side": setting.affected_side,
            "torque_ceiling_nm": ceiling,
            "pd_gains": f"kp = ceiling / {SATURATION_ANGLE_RAD} rad, kv = {KV_PER_KP_S} s × kp (docs/twin-model.md)",
            "joint_range_deg": {
                name: np.round(np.degrees(r), 3).tolist()
                for name, r in zip(JOINT_NAMES, twin.joint_range_rad, strict=True)
            },
        },
        "goal": {"speed_m_s": speed, "stride_length_m": stride},
        "reference": {
            "name": reference.name,
            "source": reference.source,
            "speed_m_s": reference.speed_m_s,
            "stride_length_m": reference.stride_length_m,
            "cycle_period_s": reference.cycle_period_s,
            "frames": _reference_frames(reference),
        },
        "reference_clock": _reference_clock(env_class, twin),
        **_on_stairs(env_class, [reference], twin),
        "task_config": task_config_document(config),
        "provenance": provenance or {},
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
