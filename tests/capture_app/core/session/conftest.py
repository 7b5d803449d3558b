"""Virtual-patient clips for the session tests, written as real clips with realistic receive times, and the bad
inputs of the issue derived from them (a missing sensor, NaNs, saturation, a patient standing still).

Walkways of 6 m and still periods of 2.5 s keep every clip under 15 s of data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sensor_drivers.sim import VirtualPatient, from_source_options
from sensor_drivers.sim.clip_export import write_virtual_clip
from sensor_drivers.sim.patient import SensorTrack, VirtualRecording
from sensor_drivers.sites import Site

SHORT = {"walkway": "6", "still_start": "2.5", "still_end": "2"}



def generate(profile: str, **options: str) -> VirtualRecording:
    return VirtualPatient(from_source_options(profile, {**SHORT, **options})).generate()


def write_variant(
    recording: VirtualRecording,
    path: Path,
    sites: tuple[Site, ...] | None = None,
    until_s: float | None = None,
    mutate: Callable[[Site, SensorTrack], SensorTrack] | None = None,
) -> Path:
    """``recording`` written as a clip with only ``sites``, cut at ``until_s``, and each track changed by ``mutate``."""
    tracks = {}
    for site, track in recording.tracks.items():
        if sites is not None and site not in sites:
            continue
        if until_s is not None:
            keep = track.true_time_s < until_s
            fields = ["true_time_s", "device_time_s", "seq", "acc_m_s2", "gyr_rad_s", "mag_ut", "delivered",
                      "battery_pct", "acc_clip_count", "gyr_clip_count"]  # fmt: skip
            if track.quat_wxyz is not None:
                fields.append("quat_wxyz")
            track = replace(track, **{f: getattr(track, f)[keep] for f in fields})
        if mutate is not None:
            track = mutate(site, track)
        tracks[site] = track
    write_virtual_clip(replace(recording, tracks=tracks), path)
    return path


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session_clips")


@pytest.fixture(scope="session")
def healthy_recording() -> VirtualRecording:
    return generate("healthy", seed="21")


@pytest.fixture(scope="session")
def healthy_clip(clip_folder: Path, healthy_recording: VirtualRecording) -> Path:
    path = clip_folder / "healthy.stclip"
    write_virtual_clip(healthy_recording, path)
    return path


@pytest.fixture(scope="session")
def hemiparetic_clip(clip_folder: Path) -> Path:
    path = clip_folder / "hemiparetic.stclip"
    write_virtual_clip(generate("hemiparetic", side="right", speed="0.45", seed="22"), path)
    return path


@pytest.fixture(scope="session")
def bad_clips(clip_folder: Path, healthy_recording: VirtualRecording) -> dict[str, Path]:
    """The issue's bad inputs, by name."""
    rec = healthy_recording
    out = {
        "no_thighs": write_variant(rec, clip_folder / "no_thighs.stclip",
                                   sites=(Site.PELVIS, Site.SHANK_L, Site.SHANK_R)),
        "standing": write_variant(rec, clip_folder / "standing.stclip", until_s=rec.truth.walk_start_s - 0.2),
        "shanks_only_standing": write_variant(rec, clip_folder / "shanks_standing.stclip",
                                              sites=(Site.SHANK_L, Site.SHANK_R), until_s=2.0),
    }

    def nan_burst(site: Site, track: SensorTrack) -> SensorTrack:
        if site is not Site.SHANK_L:
            return track
        acc, gyr = track.acc_m_s2.copy(), track.gyr_rad_s.copy()
        rows = (track.true_time_s > 5.0) & (track.true_time_s < 5.6)
        acc[rows], gyr[rows] = np.nan, np.nan
        return replace(track, acc_m_s2=acc, gyr_rad_s=gyr)

    def saturated(site: Site, track: SensorTrack) -> SensorTrack:
        if site is not Site.SHANK_R:
            return track
        limit = np.radians(200.0)  # a gyroscope set to ±200 °/s: mid-swing peaks are clipped
        return replace(track, gyr_rad_s=np.clip(track.gyr_rad_s, -limit, limit))

    out["nan"] = write_variant(rec, clip_folder / "nan.stclip", mutate=nan_burst)
    out["saturated"] = write_variant(rec, clip_folder / "saturated.stclip", mutate=saturated)
    lost = clip_folder / "lost.stclip"
    write_virtual_clip(generate("healthy", seed="21", disconnect="shank_l:6.5:30"), lost)
    out["lost_mid_walk"] = lost
    short = clip_folder / "short.stclip"
    write_virtual_clip(generate("healthy", seed="23", walkway="2"), short)
    out["short"] = short
    return out
