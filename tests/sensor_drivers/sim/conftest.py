"""Recordings shared by the virtual-patient tests (generated once per session: each takes about a second)."""

from __future__ import annotations

import pytest

from sensor_drivers.sim import VirtualPatient, VirtualRecording, from_source_options


def _generate(profile: str, **options: str) -> tuple[VirtualPatient, VirtualRecording]:
    patient = VirtualPatient(from_source_options(profile, options))
    return patient, patient.generate()


@pytest.fixture(scope="session")
def healthy_ideal() -> tuple[VirtualPatient, VirtualRecording]:
    """Healthy walk, exact sensors (no errors), 10 m."""
    return _generate("healthy", noise="ideal", walkway="10", still_start="3", still_end="3")


@pytest.fixture(scope="session")
def hemiparetic_ideal() -> tuple[VirtualPatient, VirtualRecording]:
    """Hemiparetic walk (paretic left, 0.5 m/s), exact sensors, 10 m."""
    return _generate("hemiparetic", noise="ideal", walkway="10", still_start="3", still_end="3")


@pytest.fixture(scope="session")
def healthy_realistic() -> tuple[VirtualPatient, VirtualRecording]:
    """Healthy walk with the default (consumer MEMS) sensor errors, 10 m, long still start for noise statistics."""
    return _generate("healthy", walkway="10", still_start="8", still_end="3", seed="7")
