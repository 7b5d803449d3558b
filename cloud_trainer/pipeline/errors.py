"""Errors of the patient pipeline. Each message names what was wrong and what is accepted."""

from __future__ import annotations

from cloud_trainer.errors import TrainerError


class PatientDataError(TrainerError, ValueError):
    """A patient clip or motion file the pipeline cannot build a reference from: not readable, no joint angles, too
    few usable strides, NaNs throughout the walk. The message names the problem and the accepted minimum."""


class PipelineCancelled(TrainerError):  # noqa: N818 (a cancellation, not an error of the input)
    """The run was asked to stop (its cancel event was set); everything up to the last checkpoint is kept."""


class PipelineStateError(TrainerError):
    """An output directory holding another run (other input, tasks, budget, method or seed), or a damaged one."""
