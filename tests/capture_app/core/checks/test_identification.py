"""Identification from walking on virtual-patient clips: every deliberate fault found, no false alarm on correct
placements (healthy and hemiparetic, several seeds), clear verdicts for bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from capture_app.core.checks import PlacementCheck, SensorIdentification, relabel
from capture_app.core.signals import KitSignals, SiteSignals
from capture_app.core.verdict import Level
from sensor_drivers.sites import Site

CLEAN = [
    ("healthy", {"seed": "1"}),
    ("healthy", {"seed": "2", "speed": "1.25"}),
    ("hemiparetic", {"seed": "1"}),
    ("hemiparetic", {"seed": "2", "side": "right"}),
]


def problems(check: PlacementCheck) -> list[tuple[str, str]]:
    return [(v.code, v.subject) for v in check.problems_]


@pytest.mark.parametrize(("profile", "options"), CLEAN, ids=lambda x: x if isinstance(x, str) else "-".join(x.values()))
def test_correct_placement_raises_no_alarm(walk_factory, profile: str, options: dict[str, str]) -> None:
    walk = walk_factory(profile, **options)
    check = PlacementCheck().check(walk.kit, walk.still_s, walk.walking_s)
    assert problems(check) == []
    ident = check.identification_
    assert ident.confirmed_
    assert {site: sid for site, sid in check.assignment_.items()} == {s: f"sim-{s.value}" for s in walk.kit.sites}
    assert max(abs(t) for t in ident.twist_deg_.values()) < 15.0
    assert any(v.code == "placement.identification.ok" for v in check.verdicts_)


@pytest.mark.parametrize("profile", ["healthy", "hemiparetic"])
def test_left_right_swap_is_found_and_relabelling_fixes_it(walk_factory, profile: str) -> None:
    walk = walk_factory(profile, seed="1", fault="swap_lr")
    check = PlacementCheck().check(walk.kit, walk.still_s, walk.walking_s)
    assert problems(check) == [("placement.swap_lr", "kit")]
    verdict = check.problems_[0]
    assert verdict.message == "The left and right leg sensors appear to be swapped."
    assert verdict.action == "Swap them, or confirm and StrideTwin will relabel them."
    assert check.assignment_[Site.THIGH_L] == "sim-thigh_r"
    assert check.assignment_[Site.SHANK_R] == "sim-shank_l"
    fixed = relabel(walk.kit, check.assignment_)
    again = PlacementCheck().check(fixed, None, walk.walking_s)
    assert problems(again) == []


@pytest.mark.parametrize(
    ("fault", "moved"),
    [
        ("swap_thigh_shank:l", {"thigh_l": "shank_l", "shank_l": "thigh_l"}),
        ("swap_thigh_shank", {"thigh_l": "shank_l", "shank_l": "thigh_l", "thigh_r": "shank_r", "shank_r": "thigh_r"}),
    ],
)
@pytest.mark.parametrize("profile", ["healthy", "hemiparetic"])
def test_thigh_shank_swap_is_found(walk_factory, profile: str, fault: str, moved: dict[str, str]) -> None:
    walk = walk_factory(profile, seed="1", fault=fault)
    check = PlacementCheck().check(walk.kit, walk.still_s, walk.walking_s)
    assert problems(check) == [("placement.swap_thigh_shank", "kit")]
    assert check.problems_[0].details["moved"] == moved


@pytest.mark.parametrize(
    ("profile", "site", "angle"),
    [
        ("healthy", "thigh_l", 90.0),
        ("healthy", "shank_r", 60.0),
        ("healthy", "pelvis", 90.0),
        ("hemiparetic", "thigh_l", 90.0),
        ("hemiparetic", "shank_r", 60.0),
        ("hemiparetic", "pelvis", 90.0),
    ],
)
def test_rotated_sensor_is_found_with_its_angle(walk_factory, profile: str, site: str, angle: float) -> None:
    walk = walk_factory(profile, seed="1", fault=f"rotated:{site}:{angle:g}")
    check = PlacementCheck().check(walk.kit, walk.still_s, walk.walking_s)
    assert problems(check) == [("placement.rotated", site)]
    verdict = check.problems_[0]
    tolerance = 25.0 if site == "pelvis" else 15.0
    assert verdict.details["twist_deg"] == pytest.approx(angle, abs=tolerance)
    assert "turned about" in verdict.message
    assert verdict.action


@pytest.mark.parametrize("site", ["shank_l", "thigh_r", "pelvis"])
@pytest.mark.parametrize("profile", ["healthy", "hemiparetic"])
def test_loose_sensor_is_found(walk_factory, profile: str, site: str) -> None:
    walk = walk_factory(profile, seed="1", fault=f"loose:{site}")
    check = PlacementCheck().check(walk.kit, walk.still_s, walk.walking_s)
    assert problems(check) == [("placement.loose", site)]
    assert "loose" in check.problems_[0].message


def test_standing_still_instead_of_walking_asks_for_steps(walk_factory) -> None:
    walk = walk_factory("healthy", seed="1")
    ident = SensorIdentification().identify(walk.kit, walk.still_s)
    assert [(v.level, v.code) for v in ident.verdicts_] == [(Level.WARNING, "placement.identification.too_short")]
    assert ident.assignment_ == {s: sig.sensor_id for s, sig in walk.kit.sites.items()}


def test_missing_thigh_sensors_give_a_partial_check(walk_factory) -> None:
    walk = walk_factory("healthy", seed="1")
    sites = {s: sig for s, sig in walk.kit.sites.items() if s.segment != "thigh"}
    check = PlacementCheck().check(replace(walk.kit, sites=sites), walk.still_s, walk.walking_s)
    found = problems(check)
    assert ("placement.missing", "thigh_l") in found
    assert ("placement.missing", "thigh_r") in found
    assert ("placement.identification.partial", "kit") in found
    assert not any(code.startswith(("placement.swap", "placement.rotated", "placement.loose")) for code, _ in found)


def test_sensor_lost_during_the_walk_is_left_out_with_a_verdict(walk_factory) -> None:
    walk = walk_factory("healthy", seed="1")
    kit = walk.kit
    lost = kit.sites[Site.SHANK_L]
    gone = kit.time_s > walk.walking_s[0] + 1.0
    nan = np.where(gone[:, None], np.nan, lost.acc_m_s2)
    sites = {
        **kit.sites,
        Site.SHANK_L: SiteSignals(
            lost.sensor_id, lost.valid & ~gone, nan, np.where(gone[:, None], np.nan, lost.gyr_rad_s), None
        ),
    }
    check = PlacementCheck().check(KitSignals(kit.rate_hz, kit.time_s, sites), walk.still_s, walk.walking_s)
    found = problems(check)
    assert ("placement.identification.gaps", "shank_l") in found
    assert ("placement.identification.partial", "kit") in found
    assert check.assignment_[Site.SHANK_L] == "sim-shank_l"


def test_no_intervals_at_all_is_a_warning_not_a_crash(walk_factory) -> None:
    walk = walk_factory("healthy", seed="1")
    check = PlacementCheck().check(walk.kit)
    assert problems(check) == [("placement.unchecked", "kit")]
    assert check.level_ is Level.WARNING


def test_relabel_rejects_unknown_sensors(walk_factory) -> None:
    walk = walk_factory("healthy", seed="1")
    with pytest.raises(ValueError, match="not in this recording"):
        relabel(walk.kit, {Site.PELVIS: "nope"})


def test_sensor_without_angular_velocity_is_named(walk_factory) -> None:
    walk = walk_factory("healthy", seed="1")
    s = walk.kit.sites[Site.THIGH_R]
    blind = SiteSignals(s.sensor_id, s.valid, s.acc_m_s2, np.full_like(s.gyr_rad_s, np.nan), s.mag_ut, None)
    kit = replace(walk.kit, sites={**walk.kit.sites, Site.THIGH_R: blind})
    ident = SensorIdentification().identify(kit, walk.walking_s)
    found = [(v.code, v.subject) for v in ident.verdicts_ if v.level is not Level.OK]
    assert ("placement.identification.no_gyroscope", "thigh_r") in found
    assert ("placement.identification.partial", "kit") in found


@pytest.mark.parametrize("late_s", [0.0, 1.0, 2.0])
def test_pelvis_heading_comes_from_rest_even_when_the_window_starts_late(walk_factory, late_s: float) -> None:
    """A walking window may start after the first movement: the slow hemiparetic pelvis then already moves while
    barely rotating. The first-steps heading must still be integrated from the end of the still period."""
    walk = walk_factory("hemiparetic", seed="3")
    start_s, end_s = walk.walking_s
    check = PlacementCheck().check(walk.kit, walk.still_s, (start_s + late_s, end_s))
    assert check.identification_.evidence_["pelvis_heading_source"] == "first steps"
    assert not [v for v in check.verdicts_ if v.code == "placement.rotated"], check.verdicts_
