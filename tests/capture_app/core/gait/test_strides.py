"""Strides and the steady state: transitions, turns from the pelvis or a shank, no stride across a gap."""

from __future__ import annotations

import numpy as np

from capture_app.core.gait.analysis import GaitAnalysis
from capture_app.core.gait.strides import HeadingChange, StrideSegmentation
from capture_app.core.signals import SiteSignals
from sensor_drivers.quaternion import rotation_from_wxyz
from sensor_drivers.sites import Site

from .conftest import Walk, with_sites


def _with_turn(walk: Walk, site: Site, start_s: float, duration_s: float, angle_deg: float) -> dict:
    """The kit's sites with one sensor's walker turning ``angle_deg`` about the vertical: the turn rate, expressed in
    the sensor frame through the sensor's true orientation, is added to its gyroscope (a turn about the vertical does
    not change the specific force, centripetal terms aside)."""
    signals = walk.kit.sites[site]
    t = walk.kit.time_s
    quat = walk.truth.sensors[site].quat_wxyz_world_sensor
    rotation = rotation_from_wxyz(quat).as_matrix()
    up_sensor = np.stack([np.interp(t, walk.truth.time_s, rotation[:, 2, k]) for k in range(3)], axis=1)  # Rᵀ z
    phase = np.clip((t - start_s) / duration_s, 0.0, 1.0)
    angle = np.radians(angle_deg) * (phase - np.sin(2 * np.pi * phase) / (2 * np.pi))
    gyr = signals.gyr_rad_s + np.gradient(angle, t)[:, None] * up_sensor
    return {**walk.kit.sites, site: SiteSignals(signals.sensor_id, signals.valid, signals.acc_m_s2, gyr)}


def test_transition_strides_are_left_out(healthy_short: Walk) -> None:
    strides = GaitAnalysis().analyze(healthy_short.kit, healthy_short.walkway_length_m).strides_
    for side in ("left", "right"):
        leg = [s for s in strides if s.side == side]
        assert [s.excluded for s in leg[:2]] == ["acceleration"] * 2
        assert [s.excluded for s in leg[-2:]] == ["deceleration"] * 2
        assert all(s.steady for s in leg[2:-2])


def test_turn_on_the_pelvis_is_detected(hemiparetic_short: Walk) -> None:
    walk = hemiparetic_short
    middle = 0.5 * (walk.truth.walk_start_s + walk.truth.walk_end_s)
    sites = _with_turn(walk, Site.PELVIS, middle - 1.0, 2.0, 120.0)
    analysis = GaitAnalysis().analyze(with_sites(walk.kit, sites), walk.walkway_length_m)
    turning = [s for s in analysis.strides_ if s.excluded == "turn"]
    assert turning
    assert all(s.heading_site == "pelvis" for s in turning)
    assert all(s.ic_s < middle + 1.0 + 2.5 and s.next_ic_s > middle - 1.0 - 2.5 for s in turning)
    assert "gait.turn_detected" in {v.code for v in analysis.verdicts_}
    straight = GaitAnalysis().analyze(walk.kit, walk.walkway_length_m)
    assert max(abs(s.heading_change_deg) for s in straight.strides_) < 10.0


def test_turn_without_pelvis_uses_the_shanks(hemiparetic_short: Walk) -> None:
    walk = hemiparetic_short
    middle = 0.5 * (walk.truth.walk_start_s + walk.truth.walk_end_s)
    sites = _with_turn(walk, Site.SHANK_L, middle - 1.0, 2.0, 120.0)
    sites = {k: v for k, v in sites.items() if k is not Site.PELVIS}
    analysis = GaitAnalysis().analyze(with_sites(walk.kit, sites), walk.walkway_length_m)
    assert any(s.excluded == "turn" and s.heading_site == "shank_l" for s in analysis.strides_)


def test_heading_change_needs_enough_data(healthy_short: Walk) -> None:
    heading = HeadingChange().estimate(healthy_short.kit)
    assert heading.change_deg(Site.PELVIS, 5.0, 5.01) is None
    assert abs(heading.change_deg(Site.PELVIS, 5.0, 7.0)) < 5.0
    assert StrideSegmentation().segment({"left": [], "right": []}).strides_ == []
