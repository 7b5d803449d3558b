"""Shared fixtures of the patient-output tests: the shipped atlas as a walking policy (its first reference is
``walk_reference``, tests/cloud_trainer/conftest.py), a standing reference with a policy that holds the reference
pose (actions zero)."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_trainer.atlas.weights import load_atlas
from cloud_trainer.motion.synthetic import standing_reference
from cloud_trainer.twin.model import build_twin


@pytest.fixture(scope="session")
def atlas():
    return load_atlas()


@pytest.fixture(scope="session")
def stand_reference():
    return standing_reference(build_twin().model)


def hold_pose(obs: np.ndarray) -> np.ndarray:
    """A policy whose actions are zero: PD targets on the reference pose, 60 % of the torque ceilings."""
    return np.zeros((len(obs), 22), np.float32)
