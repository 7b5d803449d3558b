"""Errors raised while reading motion files and building reference motions.

Each message names what was wrong (and the file, where there is one) and what is accepted.
"""

from __future__ import annotations

from cloud_trainer.errors import TrainerError


class MotionError(TrainerError):
    """Base class for errors of the reference-motion pipeline."""


class MotionFileError(MotionError, ValueError):
    """A file that is not a readable motion file of the expected format (OpenSim .mot, DeepMimic JSON, BVH, npz)."""


class MotionQualityError(MotionError, ValueError):
    """Motion data that were read but cannot make a reference motion: NaNs, too few strides, no straight walking."""


class LibraryError(MotionError, ValueError):
    """A healthy-library file that is missing or corrupt, or a query outside what the library accepts."""
