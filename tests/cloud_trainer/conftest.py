"""Fixtures shared by the trainer's tests."""

from __future__ import annotations

import dataclasses

import pytest

from cloud_trainer.atlas.references import library_path
from cloud_trainer.motion.library import HealthyMotionLibrary
from cloud_trainer.motion.twin_adapter import to_reference_motion
from cloud_trainer.twin.kinematics import lowest_sole_m
from cloud_trainer.twin.model import build_twin


@pytest.fixture(scope="session")
def walk_reference():
    """The atlas's first reference (a healthy library cycle, 1.0 m/s, 1.28 m strides) on the default twin, made as
    ``atlas_references`` makes it, without converting the other clips."""
    model = build_twin().model
    library = HealthyMotionLibrary.load(library_path())
    clip = next(c for c in library.clips if not c.flags.get("atypical", False))
    motion = to_reference_motion(clip.trajectory, model, name=clip.clip_id)
    qpos = motion.qpos.copy()
    qpos[:, 2] -= lowest_sole_m(model, qpos).min()
    return dataclasses.replace(motion, qpos=qpos)
