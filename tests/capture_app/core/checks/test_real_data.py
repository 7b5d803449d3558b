"""The placement checks on a real recording: the OpenSense example walk (8 Xsens MTw at 100 Hz, acceleration and
orientation only; about 4 s standing, then walking round a room). Correct placement raises no alarm; sites swapped
in software are found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capture_app.core.checks import PlacementCheck
from capture_app.core.checks.placement import rotation_from_axes
from capture_app.core.signals import KitSignals, signals_from_clip
from capture_app.core.verdict import Level
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.recording.importers import import_files
from sensor_drivers.sites import Site

pytestmark = pytest.mark.shared_data

SITES = {"00B42279": "pelvis", "00B4227C": "thigh_r", "00B4227D": "shank_r", "00B421EE": "thigh_l",
         "00B421ED": "shank_l"}
STILL_S = (0.5, 4.5)
WALK_S = (4.8, 24.5)
UP = np.array([0.0, 0.0, 1.0])
#: How the OpenSense kit is worn (found from its standing data and walking, docs/sensor-placement.md): x up, the case
#: face against the skin (z into the body), thighs and shanks on their outer sides, pelvis on the sacrum.
OPENSENSE_MOUNTING = {
    Site.PELVIS: rotation_from_axes(UP, np.array([1.0, 0.0, 0.0])),
    Site.THIGH_L: rotation_from_axes(UP, np.array([0.0, -1.0, 0.0])),
    Site.THIGH_R: rotation_from_axes(UP, np.array([0.0, 1.0, 0.0])),
    Site.SHANK_L: rotation_from_axes(UP, np.array([0.0, -1.0, 0.0])),
    Site.SHANK_R: rotation_from_axes(UP, np.array([0.0, 1.0, 0.0])),
}


def opensense_kit(shared_data_dir: Path, tmp_path: Path, **changes: str) -> KitSignals:
    folder = shared_data_dir / "imu" / "opensense_xsens" / "OpenSenseExampleIMUData"
    mapping = {**SITES, **changes}
    path = tmp_path / "opensense.stclip"
    import_files("xsens", [next(folder.glob(f"*_{key}.txt")) for key in mapping], path, sites=mapping)
    return signals_from_clip(read_clip(path))


def test_correct_placement_raises_no_alarm(shared_data_dir: Path, tmp_path: Path) -> None:
    kit = opensense_kit(shared_data_dir, tmp_path)
    check = PlacementCheck(expected=OPENSENSE_MOUNTING).check(kit, STILL_S, WALK_S)
    assert check.problems_ == []
    assert check.static_.is_still_
    assert check.identification_.confirmed_
    # Every sensor within 20° of its mounting about the limb; gravity within 20° (the sacrum slopes 17°).
    assert max(abs(t) for t in check.identification_.twist_deg_.values()) < 20.0
    assert max(check.static_.tilt_error_deg_.values()) < 20.0


def test_against_the_stridetwin_guide_the_sensors_face_the_other_way(shared_data_dir: Path, tmp_path: Path) -> None:
    """The OpenSense sensors are worn face-down: by our guide each is turned 180° (thighs, pelvis) or 45° (shanks on
    the outer instead of the inner-front face of the shin), and they are not taken for swapped."""
    kit = opensense_kit(shared_data_dir, tmp_path)
    check = PlacementCheck().check(kit, STILL_S, WALK_S)
    twist = {v.subject: v.details["twist_deg"] for v in check.problems_ if v.code == "placement.rotated"}
    assert set(twist) == {"pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"}
    for site in ("pelvis", "thigh_l", "thigh_r"):
        assert abs(twist[site]) > 160.0
    assert 25.0 < abs(twist["shank_l"]) < 60.0
    assert 25.0 < abs(twist["shank_r"]) < 60.0
    assert not any(v.code.startswith("placement.swap") for v in check.problems_)


@pytest.mark.parametrize(("changes", "code", "moved"), [
    ({"00B4227C": "thigh_l", "00B421EE": "thigh_r"}, "placement.swap_lr", {"thigh_l", "thigh_r"}),
    ({"00B4227C": "shank_r", "00B4227D": "thigh_r"}, "placement.swap_thigh_shank", {"thigh_r", "shank_r"}),
    ({"00B4227C": "thigh_l", "00B421EE": "thigh_r", "00B4227D": "shank_l", "00B421ED": "shank_r"},
     "placement.swap_lr", {"thigh_l", "thigh_r", "shank_l", "shank_r"}),
], ids=["thighs", "right-thigh-shank", "left-right"])
def test_sites_swapped_in_software_are_found(shared_data_dir: Path, tmp_path: Path, changes: dict[str, str],
                                             code: str, moved: set[str]) -> None:
    kit = opensense_kit(shared_data_dir, tmp_path, **changes)
    check = PlacementCheck(expected=OPENSENSE_MOUNTING).check(kit, STILL_S, WALK_S)
    assert [(v.level, v.code) for v in check.problems_] == [(Level.FAIL, code)]
    assert set(check.problems_[0].details["moved"]) == moved
    # The proposed assignment puts every sensor back where it really is.
    assert {site.value: sensor for site, sensor in check.assignment_.items()} == {v: k for k, v in SITES.items()}
