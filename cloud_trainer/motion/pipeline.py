"""From a walking trajectory to clean reference cycles: segment, close each cycle, fill, clean.

The steps (each its own module): :class:`~cloud_trainer.motion.segmentation.GaitCycleSegmenter` finds straight,
consistent strides; :func:`~cloud_trainer.motion.cycles.extract_cycle` and
:func:`~cloud_trainer.motion.cycles.make_cyclic`
turn each into a loop; :class:`~cloud_trainer.motion.filling.PhaseLockedFiller` fills what was not measured from the
healthy mean cycle; :class:`~cloud_trainer.motion.cleanup.FootContactCleaner` plants the feet on the model's body.
"""

from __future__ import annotations

import copy

import numpy as np

from cloud_trainer.motion.cleanup import FootContactCleaner
from cloud_trainer.motion.cycles import extract_cycle, make_cyclic
from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.filling import PhaseLockedFiller
from cloud_trainer.motion.segmentation import GaitCycleSegmenter, time_normalised
from cloud_trainer.motion.trajectory import JointTrajectory

#: Fewest straight, consistent strides a patient clip must hold (a 20 m walk holds 8-15).
MIN_STRIDES = 3


class ReferenceCycleBuilder:
    """Clean, cyclic reference cycles from a walking trajectory.

    Parameters:
        segmenter: finds the cycles (a copy is used, its ``min_cycles`` replaced by ``min_strides``).
        cleaner: plants the feet (its kinematics is the body the reference is for).
        filler: fills unmeasured joints (trunk, ankles for an IMU clip); ``None`` leaves them as read.
        min_strides: fewest accepted strides; fewer raise :class:`MotionQualityError` naming both numbers.
        max_slide_m: cycles whose cleaned stance feet still slide more than this are dropped (reported).
        n_cycle_frames: if given, each closed cycle is resampled to this many frames (plus the closing one) before
            filling and clean-up, so that what is cleaned is exactly what is stored.

    Results (after :meth:`build`): ``cycles_`` (cleaned cyclic cycle trajectories), ``reference_`` (the cycle
    nearest the mean of all, the clip's representative stride; None without cycles), ``segmenter_``,
    ``dropped_`` (reasons).
    """

    def __init__(
        self,
        segmenter: GaitCycleSegmenter | None = None,
        cleaner: FootContactCleaner | None = None,
        filler: PhaseLockedFiller | None = None,
        min_strides: int = MIN_STRIDES,
        max_slide_m: float = 0.01,
        n_cycle_frames: int | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.cleaner = cleaner
        self.filler = filler
        self.min_strides = min_strides
        self.max_slide_m = max_slide_m
        self.n_cycle_frames = n_cycle_frames

    def build(self, trajectory: JointTrajectory) -> ReferenceCycleBuilder:
        """Segment, close, fill and clean ``trajectory``'s strides."""
        # A copy, so that the segmenter passed in keeps its own minimum and results.
        segmenter = copy.copy(self.segmenter) if self.segmenter is not None else GaitCycleSegmenter()
        segmenter.min_cycles = self.min_strides
        segmenter.segment(trajectory)
        cleaner = self.cleaner if self.cleaner is not None else FootContactCleaner()
        cycles, dropped = [], []
        for cycle in segmenter.accepted_cycles_:
            if cycle.end >= trajectory.n_frames:
                dropped.append(f"cycle at {cycle.start_time_s:.2f} s: no closing frame")
                continue
            loop = make_cyclic(extract_cycle(trajectory, cycle))
            if self.n_cycle_frames is not None:
                loop = loop.resample(np.linspace(0.0, loop.duration_s, self.n_cycle_frames + 1))
            if self.filler is not None and not loop.joints_measured.all():
                loop = self.filler.fill(loop, [0.0, loop.duration_s]).trajectory_
            cleaner.clean(loop)
            if cleaner.max_slide_m_ > self.max_slide_m:
                dropped.append(
                    f"cycle at {cycle.start_time_s:.2f} s: stance foot still slides "
                    f"{100 * cleaner.max_slide_m_:.1f} cm "
                    f"after clean-up (> {100 * self.max_slide_m:.1f} cm)"
                )
                continue
            cycles.append(cleaner.trajectory_)
        if len(cycles) < self.min_strides:
            raise MotionQualityError(
                f"{trajectory.source}: {len(cycles)} clean strides (of {len(segmenter.cycles_)} found"
                f"{'; ' + '; '.join(dropped) if dropped else ''}); at least {self.min_strides} needed"
            )
        self.segmenter_ = segmenter
        self.cycles_ = cycles
        self.dropped_ = dropped
        self.reference_ = None
        if cycles:
            normalised = np.stack([time_normalised(c, 0, c.n_frames - 1) for c in cycles])
            distance = np.sqrt(np.mean((normalised - normalised.mean(axis=0)) ** 2, axis=(1, 2)))
            self.reference_ = cycles[int(np.argmin(distance))]
        return self
