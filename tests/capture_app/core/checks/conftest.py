"""Short virtual-patient clips for the placement tests, generated once per session (about 2 s each).

Each clip goes through a real clip file and back onto the 100 Hz grid, as the app sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from capture_app.core.signals import KitSignals, signals_from_clip
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.sim import GroundTruth, VirtualPatient, from_source_options
from sensor_drivers.sim.clip_export import write_virtual_clip

STILL_S = 2.5


@dataclass(frozen=True)
class Walk:
    """A virtual walk on the grid, with the intervals the session would hand to the checks."""

    kit: KitSignals
    truth: GroundTruth

    @property
    def still_s(self) -> tuple[float, float]:
        return (0.3, STILL_S - 0.1)

    @property
    def walking_s(self) -> tuple[float, float]:
        return (self.truth.walk_start_s, self.truth.walk_end_s)


_CACHE: dict[tuple, Walk] = {}


def make_walk(tmp: Path, profile: str = "healthy", **options: str) -> Walk:
    """A short walk (5 m healthy, 4 m hemiparetic) with realistic sensor errors; cached per session."""
    key = (profile, tuple(sorted(options.items())))
    if key not in _CACHE:
        opts = {"walkway": "5" if profile == "healthy" else "4", "still_start": str(STILL_S), "still_end": "1",
                **options}
        recording = VirtualPatient(from_source_options(profile, opts)).generate()
        path = tmp / f"walk{len(_CACHE)}.stclip"
        write_virtual_clip(recording, path, transport="serial", seed=1)
        _CACHE[key] = Walk(signals_from_clip(read_clip(path)), recording.truth)
    return _CACHE[key]


@pytest.fixture(scope="session")
def walk_factory(tmp_path_factory: pytest.TempPathFactory):
    """``walk_factory(profile, **options)`` → :class:`Walk`."""
    folder = tmp_path_factory.mktemp("walks")
    return lambda profile="healthy", **options: make_walk(folder, profile, **options)
