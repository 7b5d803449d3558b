"""Virtual-patient walks for the gait tests: written as real clips (realistic receive times), read back onto the grid.

Short walkways (6–8 m, 2 s still) keep the event and stride tests fast; the two 20 m walks are for the speed target,
which needs the whole walkway (docs/gait-metrics.md, "Accuracy").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from capture_app.core.signals import KitSignals, SiteSignals, signals_from_clip
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.sim import VirtualPatient, from_source_options
from sensor_drivers.sim.clip_export import write_virtual_clip
from sensor_drivers.sim.truth import GroundTruth


@dataclass(frozen=True)
class Walk:
    """A simulated walk test as the capture core sees it, with its truth."""

    kit: KitSignals
    truth: GroundTruth
    walkway_length_m: float


def make_walk(folder: Path, name: str, profile: str, **options: str) -> Walk:
    """Generate, write as a clip, read back and grid a virtual walk."""
    recording = VirtualPatient(from_source_options(profile, options)).generate()
    path = folder / f"{name}.stclip"
    write_virtual_clip(recording, path)
    clip = read_clip(path)
    return Walk(signals_from_clip(clip), recording.truth, float(clip.metadata["protocol"]["walkway_length_m"]))


@pytest.fixture(scope="session")
def walk_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gait_walks")


@pytest.fixture(scope="session")
def healthy_short(walk_folder: Path) -> Walk:
    return make_walk(walk_folder, "healthy_short", "healthy", walkway="8", still_start="2", still_end="2", seed="11")


@pytest.fixture(scope="session")
def hemiparetic_short(walk_folder: Path) -> Walk:
    return make_walk(walk_folder, "hemi_short", "hemiparetic", walkway="6", still_start="2", still_end="2",
                     speed="0.4", side="right", seed="12")  # fmt: skip


@pytest.fixture(scope="session")
def healthy_20m(walk_folder: Path) -> Walk:
    return make_walk(walk_folder, "healthy_20m", "healthy", still_start="2", still_end="2", seed="13")


@pytest.fixture(scope="session")
def hemiparetic_20m(walk_folder: Path) -> Walk:
    return make_walk(walk_folder, "hemi_20m", "hemiparetic", still_start="2", still_end="2", speed="0.5",
                     side="left", seed="14")  # fmt: skip


def blocks(kit: KitSignals, n_rows: int) -> list[KitSignals]:
    """The grid cut into consecutive blocks of ``n_rows``, as the live pipeline feeds them."""
    out = []
    for start in range(0, kit.n_samples, n_rows):
        rows = slice(start, start + n_rows)
        out.append(
            KitSignals(
                kit.rate_hz,
                kit.time_s[rows],
                {
                    site: SiteSignals(s.sensor_id, s.valid[rows], s.acc_m_s2[rows], s.gyr_rad_s[rows])
                    for site, s in kit.sites.items()
                },
            )
        )
    return out


def with_sites(kit: KitSignals, sites: dict) -> KitSignals:
    """The same grid with other site signals."""
    return KitSignals(kit.rate_hz, kit.time_s, sites)


def invalidated(signals: SiteSignals, rows: np.ndarray) -> SiteSignals:
    """``signals`` with ``rows`` marked invalid (NaN), as a lost sensor leaves them."""
    valid = signals.valid.copy()
    valid[rows] = False
    acc, gyr = signals.acc_m_s2.copy(), signals.gyr_rad_s.copy()
    acc[rows], gyr[rows] = np.nan, np.nan
    return SiteSignals(signals.sensor_id, valid, acc, gyr)


def match_events(detected: np.ndarray, truth: np.ndarray, tolerance_s: float = 0.15) -> np.ndarray:
    """Signed error (s) of the nearest detection for each truth time; NaN where none lies within tolerance."""
    out = np.full(truth.size, np.nan)
    for k, t in enumerate(truth):
        if detected.size:
            nearest = detected[np.argmin(np.abs(detected - t))]
            if abs(nearest - t) <= tolerance_s:
                out[k] = nearest - t
    return out
