"""Degrees of freedom five IMUs do not measure (trunk, ankles), filled from healthy phase-locked patterns.

Five IMUs on the pelvis, thighs and shanks give the pelvis orientation, the hips and the knees; the lumbar joint and
the ankles are not observed. Each unmeasured joint takes the healthy library's mean pattern at the same gait phase
(phase 0 = right heel strike, as every library cycle starts), and its imitation weight is set low
(:data:`~cloud_trainer.motion.trajectory.FILLED_WEIGHT`): the policy is told the pattern but not held to it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.joints import JOINT_NAMES, N_JOINTS
from cloud_trainer.motion.library import HealthyMotionLibrary
from cloud_trainer.motion.trajectory import FILLED_WEIGHT, JointTrajectory

FloatArray = NDArray[np.float64]


def gait_phase(time_s: ArrayLike, heel_strike_times_s: ArrayLike) -> FloatArray:
    """Phase in [0, 1) at ``time_s``: 0 at each right heel strike, rising linearly to the next.

    Before the first and after the last heel strike the neighbouring stride's period is extended.
    """
    t = np.asarray(time_s, dtype=float)
    hs = np.asarray(heel_strike_times_s, dtype=float)
    if hs.size < 2 or np.any(np.diff(hs) <= 0):
        raise MotionQualityError(
            f"the gait phase needs at least 2 increasing heel-strike times (one full stride), got {hs.size}"
        )
    cycles = np.interp(t, hs, np.arange(len(hs)), left=np.nan, right=np.nan)
    first_period = hs[1] - hs[0]
    last_period = hs[-1] - hs[-2]
    before = t < hs[0]
    after = t > hs[-1]
    cycles[before] = (t[before] - hs[0]) / first_period
    cycles[after] = len(hs) - 1 + (t[after] - hs[-1]) / last_period
    return np.mod(cycles, 1.0)


class PhaseLockedFiller:
    """Fill unmeasured joints from a mean healthy cycle at the same gait phase.

    Parameters:
        mean_cycle_rad: (n_phase, 15) mean joint angles over one cycle at phases 0…1 (0 = right heel strike);
            ``None`` takes the shipped healthy library's (:meth:`HealthyMotionLibrary.mean_cycle_rad`).
        filled_weight: imitation weight given to the filled joints.
        joints: which joints to fill; ``None`` fills every joint the trajectory does not mark as measured.

    Results (after :meth:`fill`): ``trajectory_``, ``filled_joints_`` (names).
    """

    def __init__(
        self,
        mean_cycle_rad: ArrayLike | None = None,
        filled_weight: float = FILLED_WEIGHT,
        joints: tuple[str, ...] | None = None,
    ) -> None:
        self.mean_cycle_rad = mean_cycle_rad
        self.filled_weight = filled_weight
        self.joints = joints

    def fill(self, trajectory: JointTrajectory, heel_strike_times_s: ArrayLike) -> PhaseLockedFiller:
        """Fill ``trajectory`` using its right heel-strike times (e.g. from :class:`GaitCycleSegmenter` events)."""
        if self.mean_cycle_rad is None:
            pattern = HealthyMotionLibrary.load().mean_cycle_rad()
        else:
            pattern = np.asarray(self.mean_cycle_rad, dtype=float)
        if pattern.ndim != 2 or pattern.shape[1] != N_JOINTS or pattern.shape[0] < 2:
            raise MotionQualityError(f"mean cycle must have shape (n_phase ≥ 2, {N_JOINTS}), got {pattern.shape}")
        if self.joints is None:
            targets = [i for i in range(N_JOINTS) if not trajectory.joints_measured[i]]
        else:
            unknown = [j for j in self.joints if j not in JOINT_NAMES]
            if unknown:
                raise KeyError(f"unknown joints {unknown}; accepted: {', '.join(JOINT_NAMES)}")
            targets = [JOINT_NAMES.index(j) for j in self.joints]
        phase = gait_phase(trajectory.time_s, heel_strike_times_s)
        grid = np.linspace(0.0, 1.0, pattern.shape[0])
        angles = trajectory.joint_angles_rad.copy()
        weights = trajectory.joint_weights.copy()
        measured = trajectory.joints_measured.copy()
        for i in targets:
            angles[:, i] = np.interp(phase, grid, pattern[:, i])
            weights[i] = self.filled_weight
            measured[i] = False
        self.filled_joints_ = tuple(JOINT_NAMES[i] for i in targets)
        self.trajectory_ = trajectory.with_values(
            joint_angles_rad=angles,
            joint_weights=weights,
            joints_measured=measured,
            meta={"filled_joints": list(self.filled_joints_), "filled_from": "healthy mean cycle, phase-locked"},
        )
        return self
