"""Climbing stairs: the walk task's reward on ``stairs:<level>`` (risers 0 … 15 cm, 30 cm treads).

The paper trains stairs "without preset speed targets"; we keep a speed goal so that the reward still asks for
progress (the imitation terms are relative to the pelvis and reward none), but over a slow range, and the stride goal
is two treads: step-over-step climbing puts one foot on every tread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from types import SimpleNamespace

import mujoco
import numpy as np

from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.walk import WalkEnv
from cloud_trainer.envs.walk import default_config as walk_config
from cloud_trainer.motion.climb import climbing, minimum_jerk
from cloud_trainer.motion.planting import landing_samples
from cloud_trainer.motion.reference import ReferenceBank, ReferenceFrames, ReferenceMotion
from cloud_trainer.twin.constants import FOOT_BODIES
from cloud_trainer.twin.terrain import N_STAIR_STEPS, STAIR_HEIGHTS_M, STAIR_TREAD_M, Terrain

LEVELS = tuple(range(1, len(STAIR_HEIGHTS_M) + 1))
#: Stride of step-over-step stair climbing: one foot on every tread.
STAIR_STRIDE_M = 2 * STAIR_TREAD_M
#: Stair ascent of healthy adults is slower than level walking: about 0.4-0.8 m/s horizontal progress.
STAIR_SPEED_RANGE_M_S = (0.4, 0.8)
#: Imitation kernels twice as wide as level walking's (0.25 rad, 0.1 m): the level-walking reference says less about
#: a stair gait (more hip and knee flexion, the leading foot a riser higher), the paper's "large mismatches between
#: reference actions and task objectives"; the terms still pull towards the patient's pattern without dominating.
#: Measured on the healthy virtual patient (docs/pipeline.md): level 2 check return 334 instead of 149 after 2 M
#: samples, one seed.
STAIR_JOINT_ANGLE_SCALE_RAD = 0.5
STAIR_LIMB_END_SCALE_M = 0.2
#: The stair cue (Dai et al. 2025, "Task II"): a riser this close ahead of a foot's front asks for a raised leg.
STEP_CUE_DISTANCE_M = 0.05
#: A foot counts as raised over a riser when its lowest point is no lower than this below the riser's top, m.
STEP_CUE_CLEARANCE_TOLERANCE_M = 0.01
#: A foot moving forward faster than this (along the course, m/s) is stepping and is asked to clear a riser ahead; a
#: foot in stance (≈ 0) is not: a foot placed on a 30 cm tread has the next riser within 5 cm of its front for most
#: of its stance, and asking it to rise there rewarded lifting the supporting foot early (kicked back behind the body).
STEP_CUE_SWING_SPEED_M_S = 0.2
#: Risers from which the stairs imitate the reference climbing them (levels 3-5, 7.5 cm and up). Measured
#: (docs/pipeline.md, "Stairs above 3.75 cm"): with the level gait both twins master 3.75 cm and neither 7.5 cm within
#: `quick`; with the climbing reference at 7.5 cm the healthy twin's checks fell in 38-55 % of walks instead of 97 %,
#: while climbing 3.75 cm slowed the hemiparetic twin there (its weak knee asked to lift the body).
CLIMBING_FROM_RISER_M = 0.05
#: Where the climbing reference takes over, by the pelvis's place along the course: from the level gait to the
#: climbing one over a stride that ends a tread before the first riser (the foot that lands on the first tread swings
#: while the pelvis covers it), and back over a stride that starts a tread past the last riser (the trailing foot's
#: last climbing step onto the landing), along minimum-jerk curves. On the run-in and the landing the twin imitates
#: the level gait: imitated there, the climbing reference asks a swing foot to land on a tread that is not there
#: (falls on the run-in at 7.5 cm, docs/pipeline.md).
CLIMBING_BLEND_M = STAIR_STRIDE_M
#: Episodes on stairs with risers start in step with the treads (:meth:`StairsEnv._start_x_m`).
STEP_ALIGNED_STARTS = True
#: On stairs with risers the reference's clock follows the walker (:meth:`StairsEnv.clock_rate_range`), running at
#: this range of rates of real time: at the lowest a walker that stops still sees the reference walk on, slowly. The
#: upper 2.0 rather than 1.5: a walker that lurched ahead of the reference fell where 1.5 bound, and with 2.0 the
#: whole `quick` runs mastered one stairs level more, the healthy twin 7.5 cm and the hemiparetic one 3.75 cm
#: (docs/pipeline.md, "Stop 21" and "Stop 22"). Only 1.5 and 2.0 measured.
LOCKED_CLOCK_RATE_RANGE = (0.5, 2.0)
#: Samples of one reference cycle read to find where its feet stand.
_ALIGN_SAMPLES = 32
#: Weight of the cue when a curriculum switches it on (``guidance_terms={"step_cue": STEP_CUE_WEIGHT}``): a fifth of
#: the largest per-step task reward (1), enough to matter early, small beside the imitation and goal terms.
STEP_CUE_WEIGHT = 0.2


def default_config(level: int = len(STAIR_HEIGHTS_M)) -> LocomotionConfig:
    """The walk task on the stairs of curriculum level ``level`` (1-5).

    Raises:
        ValueError: a level outside 1-5.
    """
    if level not in LEVELS:
        raise ValueError(f"stairs level must be one of {LEVELS}, got {level!r}")
    return replace(
        walk_config(),
        terrain=f"stairs:{level}",
        speed_range_m_s=STAIR_SPEED_RANGE_M_S,
        stride_length_range_m=(STAIR_STRIDE_M, STAIR_STRIDE_M),
        stride_frequency_range_hz=(0.5, 1.4),
        joint_angle_scale_rad=STAIR_JOINT_ANGLE_SCALE_RAD,
        limb_end_scale_m=STAIR_LIMB_END_SCALE_M,
    )


class StairsEnv(WalkEnv):
    """Goal-conditioned imitation on stairs; with ``guidance_terms={"step_cue": w}`` also the stair cue."""

    default_config = staticmethod(default_config)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._geom_xpos = self.batch.bind("geom_xpos")
        self._forefoot_ids = np.array([self.model.geom(f"forefoot_{b[-1]}").id for b in FOOT_BODIES])
        self._forefoot_radius_m = self.model.geom_size[self._forefoot_ids, 0]
        climbing_motions = self.climbing(self.bank.motions, self.twin.model, self.terrain)
        self._climbing_bank = None if climbing_motions is None else ReferenceBank(climbing_motions)

    @classmethod
    def climbing(
        cls, references: Sequence[ReferenceMotion], model: mujoco.MjModel, terrain: Terrain
    ) -> list[ReferenceMotion] | None:
        """What the episodes imitate on the stairs themselves, blended in by :func:`climbing_share`: on risers of
        ``CLIMBING_FROM_RISER_M`` and more, each travelling reference climbing them with its own gait
        (:func:`~cloud_trainer.motion.climb.climbing`; a stride of ``s`` metres rises ``s / tread`` risers); None on
        lower risers and on level 1, where the references are imitated as given all along the course."""
        step_m = terrain.step_height_m
        if step_m < CLIMBING_FROM_RISER_M:
            return None
        return [climbing(r, model, step_m * r.stride_length_m / STAIR_TREAD_M) if r.speed_m_s > 0 else r
                for r in references]  # fmt: skip

    def _reference(
        self, time_s: np.ndarray, ids=slice(None), *, kinematic_targets: bool = True, root_x_m: np.ndarray | None = None
    ) -> ReferenceFrames:
        """The level gait's reference, blended into the climbing one by the pelvis's place (:func:`climbing_share`)."""
        frames = super()._reference(time_s, ids, kinematic_targets=kinematic_targets)
        if self._climbing_bank is None:
            return frames
        share = climbing_share(self._qpos[ids, 0] if root_x_m is None else root_x_m, self.terrain)
        if not share.any():
            return frames
        return frames.blended(self._placed(self._climbing_bank, time_s, ids, kinematic_targets), share)

    def _start_x_m(self, ids: np.ndarray) -> np.ndarray:
        """A start drawn as on level ground, then moved by at most half a tread so that the feet of the episode's
        reference, followed at its goal speed, land in the middle of the treads (their sole centres, on the mean over
        both feet). Started anywhere, the reference put a foot across a riser in most episodes (a 30 cm tread holds
        the default twin's 21 cm sole over a 9 cm range of starts): imitating it meant stepping on a riser's edge, and
        a policy had to learn to leave the reference to find the treads. Landings rather than stances: a reference
        fitted to the stairs' stride by its hip swing alone lets its stance foot slide back under the body
        (:mod:`cloud_trainer.motion.stride`), a foot on a step cannot; the pipeline's stairs reference holds it where
        it lands (:mod:`cloud_trainer.motion.planting`)."""
        start_x = super()._start_x_m(ids)
        if not STEP_ALIGNED_STARTS or self.terrain.step_height_m <= 0.0:
            return start_x
        return start_x + self._tread_offset_m(ids, start_x)

    def _tread_offset_m(self, ids: np.ndarray, start_x: np.ndarray) -> np.ndarray:
        """How far episodes ``ids`` starting at ``start_x`` must move for their references' feet to land mid-tread
        (0 for a reference that does not travel)."""
        bank, n = self.bank, len(ids)
        ref = self._ref[ids]
        travels = bank.cyclic[ref] & (bank.speed_m_s[ref] > 0)
        cycle = np.arange(_ALIGN_SAMPLES + 1) / _ALIGN_SAMPLES  # one cycle of clip time and its first sample again
        times = self._clip_time0_s[ids, None] + cycle * bank.cycle_period_s[ref, None]
        frames = bank.sample(
            np.repeat(ref, len(cycle)), times.ravel(), np.repeat(self._time_scale[ids], len(cycle)),
            np.repeat(self._stride_scale[ids], len(cycle)),
        )  # fmt: skip
        root_x = frames.qpos[:, 0].reshape(n, len(cycle), 1)
        feet_x = root_x + frames.ends_rel_m[:, :2, 0].reshape(n, len(cycle), 2)  # (n, samples, 2 feet)
        feet_x += start_x[:, None, None] - root_x[:, :1]  # the pelvis starting at start_x
        # each foot's landing: where its swing stops carrying it forward, as the planting has it
        landing = landing_samples(np.moveaxis(np.diff(feet_x, axis=1), 1, -1))  # (n, 2 feet)
        landed_x = np.take_along_axis(feet_x, landing[:, None, :], axis=1)[:, 0]
        # where along a tread, as an angle (a tread is 2π), averaged over both feet as unit vectors
        along_rad = 2 * np.pi * (landed_x - self.terrain.feature_start_x_m) / STAIR_TREAD_M
        mean_rad = np.angle(np.exp(1j * along_rad).sum(axis=1))
        to_middle_rad = np.angle(np.exp(1j * (np.pi - mean_rad)))  # the tread's middle is π; wrapped to (-π, π]
        return np.where(travels, to_middle_rad * STAIR_TREAD_M / (2 * np.pi), 0.0)

    @classmethod
    def clock_rate_range(cls, terrain: Terrain) -> tuple[float, float] | None:
        """The range of rates at which the reference's clock runs on ``terrain`` (the rule:
        :meth:`~cloud_trainer.envs.base.TwinVecEnv._advance_clock`): ``LOCKED_CLOCK_RATE_RANGE`` on stairs with
        risers, None (real time) on level 1. The episodes start with the reference landing its feet mid-tread
        (:meth:`_start_x_m`); played in real time, a walker that fell behind it (7-20 cm on the treads, traced at
        7.5 cm) was asked to land a foot where the reference's pelvis was, across a riser or on the edge of a tread.
        With the clock following the walker, the reference's feet land mid-tread wherever the walker's pace puts
        them. Measured: docs/environments.md; docs/pipeline.md, "Stop 20"."""
        return LOCKED_CLOCK_RATE_RANGE if terrain.step_height_m > 0.0 else None

    def _guidance_step_cue(self, m: SimpleNamespace) -> np.ndarray:
        """The paper's minimal terrain cue, per foot, mean over both: 1 where no riser lies within
        ``STEP_CUE_DISTANCE_M`` ahead of the foot's front (the forefoot contact capsule's leading edge) or where the
        foot is not stepping (moving forward no faster than ``STEP_CUE_SWING_SPEED_M_S``: stance); for a stepping
        foot with a riser ahead, 1 if it is raised (off the ground, its lowest point at least the riser's top less
        ``STEP_CUE_CLEARANCE_TOLERANCE_M``), else 0. Level 1 (no risers) always gives 1."""
        step = self.terrain.step_height_m
        n = len(m.qpos)
        if step <= 0.0:
            return np.ones(n)
        centre = self._geom_xpos[m.ids][:, self._forefoot_ids]  # (N, 2 feet, 3)
        front_x = centre[:, :, 0] + self._forefoot_radius_m
        lowest_z = centre[:, :, 2] - self._forefoot_radius_m
        x0 = self.terrain.feature_start_x_m
        # risers stand at x0 + k·tread (k = 0 … N-1), riser k rising to (k + 1)·step
        k = np.ceil((front_x - x0) / STAIR_TREAD_M)
        riser_x = x0 + k * STAIR_TREAD_M
        ahead = (k >= 0) & (k < N_STAIR_STEPS) & (riser_x - front_x <= STEP_CUE_DISTANCE_M)
        ahead &= m.foot_forward_m_s > STEP_CUE_SWING_SPEED_M_S
        raised = ~m.contact & (lowest_z >= (k + 1) * step - STEP_CUE_CLEARANCE_TOLERANCE_M)
        return np.where(ahead, raised, True).astype(float).mean(axis=1)


def climbing_span_m(terrain: Terrain) -> tuple[float, float]:
    """Where along ``terrain``'s course the pelvis imitates only the climbing reference, m (``CLIMBING_BLEND_M``)."""
    return terrain.feature_start_x_m - STAIR_TREAD_M, terrain.feature_end_x_m + STAIR_TREAD_M


def climbing_share(root_x_m: np.ndarray, terrain: Terrain) -> np.ndarray:
    """How much of the climbing reference a walker whose pelvis is at ``root_x_m`` imitates on ``terrain``'s stairs:
    0 (the level gait) … 1, rising over ``CLIMBING_BLEND_M`` up to :func:`climbing_span_m` and falling after it."""
    x = np.asarray(root_x_m, dtype=float)
    full_from_m, full_to_m = climbing_span_m(terrain)
    rising = minimum_jerk((x - full_from_m) / CLIMBING_BLEND_M + 1.0)
    return np.minimum(rising, 1.0 - minimum_jerk((x - full_to_m) / CLIMBING_BLEND_M))
