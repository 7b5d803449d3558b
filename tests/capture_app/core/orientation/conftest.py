"""Short virtual-patient clips shared by the orientation tests (generated once per test session)."""

from __future__ import annotations

import pytest

from bench.accuracy_angles import virtual_kit
from capture_app.core.signals import KitSignals
from sensor_drivers.sim.truth import GroundTruth

#: Short walks keep the tests fast: 6 m walkway, 3 s standing before and 2 s after.
SHORT = {"walkway": "6", "still_start": "3", "still_end": "2"}


def _kit(tmp_path_factory: pytest.TempPathFactory, profile: str, **options: str) -> tuple[KitSignals, GroundTruth]:
    return virtual_kit(profile, {**SHORT, **options}, tmp_path_factory.mktemp(profile))


@pytest.fixture(scope="session")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[KitSignals, GroundTruth]:
    """Healthy walk at 1.1 m/s, realistic sensor errors."""
    return _kit(tmp_path_factory, "healthy", speed="1.1", seed="21")


@pytest.fixture(scope="session")
def hemiparetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[KitSignals, GroundTruth]:
    """Hemiparetic walk (right side paretic) at 0.5 m/s, realistic sensor errors."""
    return _kit(tmp_path_factory, "hemiparetic", side="right", speed="0.5", seed="22")


@pytest.fixture(scope="session")
def rotated_thigh(tmp_path_factory: pytest.TempPathFactory) -> tuple[KitSignals, GroundTruth]:
    """Healthy walk with the left thigh sensor turned 30° about the limb axis."""
    return _kit(tmp_path_factory, "healthy", seed="23", fault="rotated:thigh_l:30")
