"""Still-period checks: the right way up, stillness, noise, bias, magnetic field; bad input gives verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from capture_app.core.checks import StaticCheck
from capture_app.core.checks.placement import EXPECTED_ROTATION_SEGMENT_SENSOR
from capture_app.core.signals import KitSignals, SiteSignals
from capture_app.core.verdict import Level
from sensor_drivers.frames import EARTH_FIELD_WORLD_UT, G_M_S2
from sensor_drivers.sites import KIT_SITES, Site

RATE_HZ = 100.0


def still_kit(n: int = 300, seed: int = 0, *, mounting: dict[Site, np.ndarray] | None = None,
              acc_noise: float = 0.02, gyr_noise: float = 0.0015, bias_rad_s: float = 0.01,
              mag: bool = True) -> KitSignals:
    """Five sensors standing still with consumer-MEMS noise, mounted as ``mounting`` (default: the guide)."""
    rng = np.random.default_rng(seed)
    sites = {}
    for site in KIT_SITES:
        R = (mounting or {}).get(site, EXPECTED_ROTATION_SEGMENT_SENSOR[site])
        acc = R.T @ np.array([0.0, 0.0, G_M_S2]) + acc_noise * rng.standard_normal((n, 3))
        gyr = bias_rad_s * rng.standard_normal(3) + gyr_noise * rng.standard_normal((n, 3))
        field = (R.T @ EARTH_FIELD_WORLD_UT + 0.3 * rng.standard_normal((n, 3))) if mag else None
        sites[site] = SiteSignals(f"id-{site.value}", np.ones(n, bool), acc, gyr, field)
    return KitSignals(RATE_HZ, np.arange(n) / RATE_HZ, sites)


def codes(check: StaticCheck, level: Level | None = None) -> set[tuple[str, str]]:
    return {(v.code, v.subject) for v in check.verdicts_ if level is None or v.level is level}


def test_correct_placement_is_all_ok() -> None:
    check = StaticCheck().check(still_kit(), (0.0, 3.0))
    assert check.is_still_
    assert all(v.level is Level.OK for v in check.verdicts_), [v.message for v in check.verdicts_]
    assert {v.code for v in check.verdicts_} >= {"placement.still.ok", "placement.gravity", "placement.noise",
                                                  "placement.gyro_bias", "placement.magnetic"}
    for site in KIT_SITES:
        np.testing.assert_allclose(check.up_sensor_[site], [1.0, 0.0, 0.0], atol=0.01)
        assert check.tilt_error_deg_[site] < 1.0
        assert site in check.reference_.gyr_bias_rad_s


@pytest.mark.parametrize("site", list(KIT_SITES))
def test_upside_down_sensor_fails_on_its_site_only(site: Site) -> None:
    flipped = EXPECTED_ROTATION_SEGMENT_SENSOR[site] @ Rotation.from_euler("z", 180, degrees=True).as_matrix()
    check = StaticCheck().check(still_kit(mounting={site: flipped}), (0.0, 3.0))
    problems = codes(check, Level.FAIL)
    assert problems == {("placement.upside_down", site.value)}
    message = next(v for v in check.verdicts_ if v.code == "placement.upside_down")
    assert "upside down" in message.message
    assert message.action


def test_tilt_levels_on_a_thigh() -> None:
    for angle, level in ((20.0, Level.OK), (40.0, Level.WARNING), (80.0, Level.FAIL)):
        tilted = Rotation.from_euler("y", angle, degrees=True).as_matrix() @ EXPECTED_ROTATION_SEGMENT_SENSOR[
            Site.THIGH_R]
        check = StaticCheck().check(still_kit(mounting={Site.THIGH_R: tilted}), (0.0, 3.0))
        verdict = next(v for v in check.verdicts_ if v.subject == "thigh_r" and v.code.startswith(
            ("placement.gravity", "placement.tilted")))
        assert verdict.level is level, (angle, verdict)
        assert verdict.details["tilt_deg"] == pytest.approx(angle, abs=1.0)


def test_the_sacrum_may_slope_more_than_a_limb() -> None:
    sloped = Rotation.from_euler("y", 35.0, degrees=True).as_matrix() @ EXPECTED_ROTATION_SEGMENT_SENSOR[Site.PELVIS]
    check = StaticCheck().check(still_kit(mounting={Site.PELVIS: sloped}), (0.0, 3.0))
    assert not codes(check, Level.WARNING)
    assert not codes(check, Level.FAIL)


def test_moving_patient_gets_a_request_to_stand_still_and_nothing_else() -> None:
    kit = still_kit()
    t = kit.time_s
    sway = kit.sites[Site.SHANK_L]
    moving = SiteSignals(sway.sensor_id, sway.valid, sway.acc_m_s2 + 3.0 * np.sin(2 * np.pi * 1.0 * t)[:, None],
                         sway.gyr_rad_s + 1.5 * np.sin(2 * np.pi * t)[:, None], sway.mag_ut)
    kit = KitSignals(kit.rate_hz, t, {**kit.sites, Site.SHANK_L: moving})
    check = StaticCheck().check(kit, (0.0, 3.0))
    assert not check.is_still_
    assert [(v.level, v.code) for v in check.verdicts_] == [(Level.FAIL, "placement.still.not_still")]
    assert "stand still" in check.verdicts_[0].action


def test_too_short_interval_and_missing_sensor_and_nan_rows() -> None:
    check = StaticCheck().check(still_kit(), (0.0, 0.4))
    assert codes(check) == {("placement.still.too_short", "kit")}
    kit = still_kit()
    sites = dict(kit.sites)
    del sites[Site.THIGH_L], sites[Site.THIGH_R]
    broken = sites[Site.SHANK_R]
    nan = np.full_like(broken.acc_m_s2, np.nan)
    sites[Site.SHANK_R] = SiteSignals(broken.sensor_id, np.zeros(kit.n_samples, bool), nan, nan, None)
    check = StaticCheck().check(KitSignals(kit.rate_hz, kit.time_s, sites), (0.0, 3.0))
    fails = codes(check, Level.FAIL)
    assert ("placement.missing", "thigh_l") in fails
    assert ("placement.missing", "thigh_r") in fails
    assert ("placement.no_data", "shank_r") in fails
    assert check.is_still_  # the others were judged
    assert ("placement.gravity", "pelvis") in codes(check, Level.OK)


def test_stuck_noisy_biased_scaled_sensors() -> None:
    kit = still_kit()
    sites = dict(kit.sites)
    a = sites[Site.PELVIS]
    sites[Site.PELVIS] = SiteSignals(a.sensor_id, a.valid, np.tile(a.acc_m_s2[0], (kit.n_samples, 1)),
                                     np.zeros_like(a.gyr_rad_s), a.mag_ut)
    b = sites[Site.THIGH_L]
    rng = np.random.default_rng(3)
    sites[Site.THIGH_L] = SiteSignals(b.sensor_id, b.valid, b.acc_m_s2 + 0.3 * rng.standard_normal(b.acc_m_s2.shape),
                                      b.gyr_rad_s, b.mag_ut)
    c = sites[Site.SHANK_L]
    sites[Site.SHANK_L] = SiteSignals(c.sensor_id, c.valid, c.acc_m_s2, c.gyr_rad_s + np.radians([8.0, 0.0, 0.0]),
                                      c.mag_ut)
    d = sites[Site.SHANK_R]
    sites[Site.SHANK_R] = SiteSignals(d.sensor_id, d.valid, 0.5 * d.acc_m_s2, d.gyr_rad_s, d.mag_ut)
    check = StaticCheck().check(KitSignals(kit.rate_hz, kit.time_s, sites), (0.0, 3.0))
    problems = {(v.level, v.code, v.subject) for v in check.verdicts_ if v.level is not Level.OK}
    assert (Level.FAIL, "placement.stuck", "pelvis") in problems
    assert (Level.WARNING, "placement.noise", "thigh_l") in problems
    assert (Level.WARNING, "placement.gyro_bias", "shank_l") in problems
    assert (Level.FAIL, "placement.gravity_magnitude", "shank_r") in problems
    assert len(problems) == 4


def test_magnetic_disturbance_is_a_warning_only_with_the_magnetometer_in_use() -> None:
    kit = still_kit()
    sites = dict(kit.sites)
    a = sites[Site.SHANK_L]
    sites[Site.SHANK_L] = SiteSignals(a.sensor_id, a.valid, a.acc_m_s2, a.gyr_rad_s, a.mag_ut * 1.9)  # ≈ 92 µT
    kit = KitSignals(kit.rate_hz, kit.time_s, sites)
    quiet = StaticCheck().check(kit, (0.0, 3.0))
    note = next(v for v in quiet.verdicts_ if v.code == "placement.magnetic" and v.subject == "shank_l")
    assert note.level is Level.OK
    assert "disturbed" in note.message
    strict = StaticCheck(uses_magnetometer=True).check(kit, (0.0, 3.0))
    assert ("placement.magnetic", "shank_l") in codes(strict, Level.WARNING)
    assert len(codes(strict, Level.WARNING)) == 1


def test_virtual_patient_standing_is_ok_and_upside_down_is_found(walk_factory) -> None:
    clean = walk_factory("healthy", seed="1")
    check = StaticCheck().check(clean.kit, clean.still_s)
    assert check.is_still_
    assert all(v.level is Level.OK for v in check.verdicts_), check.verdicts_
    flipped = walk_factory("healthy", seed="1", fault="upside_down:shank_r")
    check = StaticCheck().check(flipped.kit, flipped.still_s)
    assert codes(check, Level.FAIL) == {("placement.upside_down", "shank_r")}
