"""Walking on flat ground towards a goal speed and stride length: the Healthy Motion Atlas's task.

Each episode draws a goal (speed, stride length) and imitates the reference nearest to it, time-resampled to the
goal (Dai et al. 2025, Methods, Stage I). The reward terms below are the paper's structure in our own words
(``r = 0.5·r_goal + 0.5·r_imitation − p_physics``); their weights and kernel scales are in :func:`default_config`.
Every term returns one value per environment; goal and imitation terms lie in [0, 1].
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cloud_trainer.envs.base import LocomotionConfig, TwinVecEnv
from cloud_trainer.twin.constants import N_ROOT_QPOS, N_ROOT_QVEL


def default_config() -> LocomotionConfig:
    """Flat ground, goals over the paper's atlas ranges (0.4-1.4 m/s, 0.5-1.7 m), DeepMimic's imitation weights
    (pose 0.65, velocity 0.1, centre of mass 0.1, limb ends 0.15; Peng et al. 2018)."""
    return LocomotionConfig(terrain="flat")


def _kernel(squared_error: np.ndarray) -> np.ndarray:
    return np.exp(-squared_error)


class WalkEnv(TwinVecEnv):
    """Goal-conditioned imitation of walking references on a course (flat by default)."""

    default_config = staticmethod(default_config)

    # --- goal terms: evaluated over the goal window

    def _reward_speed(self, m: SimpleNamespace) -> np.ndarray:
        """Mean velocity over the window versus the goal's: the goal speed along the course, none across it. Without
        the across part a walker facing the course could sidestep freely: stair policies drifted 3 m sideways within
        5 m of climbing, off the course's side, their pelvis within 9° of the course direction until they fell."""
        along = (m.speed_measured_m_s - self._goal_speed) / self.config.speed_scale_m_s
        across = m.lateral_speed_m_s / self.config.speed_scale_m_s
        return _kernel(along**2 + across**2)

    def _reward_stride_length(self, m: SimpleNamespace) -> np.ndarray:
        """Latest measured stride length (touchdown to touchdown of the same foot) versus the goal."""
        return _kernel(((m.stride_measured_m - self._goal_stride) / self.config.stride_length_scale_m) ** 2)

    def _reward_heading(self, m: SimpleNamespace) -> np.ndarray:
        """Mean pelvis heading over the window versus the course direction (+x)."""
        return _kernel((m.heading_error_rad / self.config.heading_scale_rad) ** 2)

    def _reward_root_stability(self, m: SimpleNamespace) -> np.ndarray:
        """Pelvis height above the ground and pelvis lean versus the reference's, averaged over the window."""
        return _kernel(self._window_root_error())

    # --- imitation terms: the pose at the control instant versus the resampled reference

    def _reward_joint_angles(self, m: SimpleNamespace) -> np.ndarray:
        """Weighted mean squared joint-angle error (weights: the reference's per-joint imitation weights)."""
        weights = self.bank.joint_weights[self._ref]
        error = m.qpos[:, N_ROOT_QPOS:] - m.ref.qpos[:, N_ROOT_QPOS:]
        mse = (weights * error**2).sum(axis=1) / weights.sum(axis=1)
        return _kernel(mse / self.config.joint_angle_scale_rad**2)

    def _reward_joint_velocities(self, m: SimpleNamespace) -> np.ndarray:
        """Weighted mean squared joint-rate error."""
        weights = self.bank.joint_weights[self._ref]
        error = m.qvel[:, N_ROOT_QVEL:] - m.ref.qvel[:, N_ROOT_QVEL:]
        mse = (weights * error**2).sum(axis=1) / weights.sum(axis=1)
        return _kernel(mse / self.config.joint_velocity_scale_rad_s**2)

    def _reward_com(self, m: SimpleNamespace) -> np.ndarray:
        """Centre of mass relative to the pelvis (heading frame) versus the reference's."""
        error = np.sum((m.com_rel - m.ref_kin.com_rel_m) ** 2, axis=1)
        return _kernel(error / self.config.com_scale_m**2)

    def _reward_limb_ends(self, m: SimpleNamespace) -> np.ndarray:
        """Soles and spine top relative to the pelvis (heading frame) versus the reference's, mean over the ends."""
        error = np.sum((m.ends_rel - m.ref_kin.ends_rel_m) ** 2, axis=2).mean(axis=1)
        return _kernel(error / self.config.limb_end_scale_m**2)

    # --- physical-feasibility costs

    def _cost_foot_slide(self, m: SimpleNamespace) -> np.ndarray:
        """Horizontal speed of soles that stayed in contact over the control step, m/s, summed over the feet."""
        return m.slip_m_s.sum(axis=1)

    def _cost_floating(self, m: SimpleNamespace) -> np.ndarray:
        """1 while neither foot touches the ground (walking always has one down)."""
        return (~m.contact.any(axis=1)).astype(float)
