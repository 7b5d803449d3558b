"""Shank events on a synthetic gyroscope with known event times: placement, gaps, NaNs, the axis, live = offline."""

from __future__ import annotations

import numpy as np
import pytest

from capture_app.core.gait.axis import EXPECTED_SWING_AXIS_SENSOR, FixedAxis, SagittalAxis
from capture_app.core.gait.events import LiveShankEvents, ShankEventDetector, SwingDetector
from capture_app.core.gait.strides import StrideSegmentation
from sensor_drivers.sim import VirtualPatient
from sensor_drivers.sites import Site

from .synthetic import SyntheticShank, synthetic_shank


def _times(events, kind: str) -> np.ndarray:
    return np.array([e.time_s for e in events if e.kind == kind])


def _detect(s: SyntheticShank, valid: np.ndarray | None = None, rate_hz: float = 100.0) -> ShankEventDetector:
    return ShankEventDetector().detect(
        s.time_s, s.gyr_rad_s, s.acc_m_s2, s.valid if valid is None else valid, rate_hz, "left"
    )


@pytest.mark.parametrize(("stride_s", "peak"), [(1.1, 5.5), (2.4, 2.0)], ids=["brisk", "slow-small-swings"])
def test_events_are_placed_at_known_times(stride_s: float, peak: float) -> None:
    s = synthetic_shank(stride_s=stride_s, swing_peak_rad_s=peak)
    detector = _detect(s)
    ic, fc = _times(detector.events_, "ic"), _times(detector.events_, "fc")
    assert ic.size == s.ic_s.size
    assert fc.size == s.fc_s.size
    assert np.max(np.abs(ic - s.ic_s)) < 0.006  # impact onset, half a sample
    assert np.max(np.abs(fc - s.fc_s)) < 0.015
    ms = _times(detector.events_, "ms")
    assert np.all((ms > s.fc_s) & (ms < s.ic_s))
    assert all(e.method == "impact" for e in detector.events_ if e.kind == "ic")
    assert not any(e.provisional for e in detector.events_)


def test_without_accelerometer_the_gyro_minimum_places_contact() -> None:
    s = synthetic_shank()
    detector = ShankEventDetector().detect(s.time_s, s.gyr_rad_s, None, s.valid, 100.0, "right")
    ic = _times(detector.events_, "ic")
    assert ic.size == s.ic_s.size
    # the deceleration minimum lags contact (module docstring): later, but within 50 ms
    assert np.all((ic - s.ic_s > 0.0) & (ic - s.ic_s < 0.05))
    assert {e.method for e in detector.events_ if e.kind == "ic"} == {"gyro"}


def test_a_gap_never_produces_events_and_no_stride_spans_it() -> None:
    s = synthetic_shank(n_swings=10)
    valid = s.valid.copy()
    gap = (s.time_s > s.ic_s[4] - 0.15) & (s.time_s < s.ic_s[4] + 0.25)
    valid[gap] = False
    gyr, acc = s.gyr_rad_s.copy(), s.acc_m_s2.copy()
    gyr[gap], acc[gap] = np.nan, np.nan
    detector = ShankEventDetector().detect(s.time_s, gyr, acc, valid, 100.0, "left")
    times = np.array([e.time_s for e in detector.events_])
    lo, hi = s.time_s[gap][0], s.time_s[gap][-1]
    assert not np.any((times >= lo - 0.01) & (times <= hi + 0.01))
    ic = _times(detector.events_, "ic")
    assert ic.size == s.ic_s.size - 1  # only the contact inside the gap is missing
    strides = StrideSegmentation().segment({"left": detector.swings_, "right": []}).strides_
    assert not any(st.ic_s < lo and st.next_ic_s > hi for st in strides)
    assert len(strides) == len(ic) - 2  # the two strides touching the lost contact are gone


def test_nans_in_rows_marked_valid_are_treated_as_gaps() -> None:
    s = synthetic_shank()
    gyr = s.gyr_rad_s.copy()
    gyr[(s.time_s > s.ic_s[2] - 0.1) & (s.time_s < s.ic_s[2] + 0.1), 1] = np.nan
    detector = ShankEventDetector().detect(s.time_s, gyr, s.acc_m_s2, s.valid, 100.0, "left")
    ic = _times(detector.events_, "ic")
    assert ic.size == s.ic_s.size - 1
    assert np.all(np.isfinite(ic))
    assert np.isnan(detector.omega_sag_rad_s_).sum() == np.isnan(gyr[:, 1]).sum()


def test_standing_still_gives_no_axis_and_no_events() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(1000) / 100.0
    gyr = rng.normal(0.0, 0.01, (t.size, 3))
    acc = np.tile([9.81, 0.0, 0.0], (t.size, 1))
    detector = ShankEventDetector().detect(t, gyr, acc, np.ones(t.size, bool), 100.0, "left")
    assert detector.axis_.axis_ is None
    assert detector.events_ == []
    assert detector.swings_ == []


@pytest.mark.parametrize("flip", [1.0, -1.0])
def test_axis_is_found_and_signed_from_the_walking(flip: float) -> None:
    axis = flip * np.array([0.2, 0.6, -0.77])
    s = synthetic_shank(axis=tuple(axis))
    fitted = SagittalAxis().fit(s.gyr_rad_s)
    assert fitted.axis_ @ (axis / np.linalg.norm(axis)) > 0.995
    assert fitted.skew_ > 0
    assert not fitted.sign_from_prior_
    # a prior pointing the other way does not overrule a clear skew, but its angle is reported
    prior = SagittalAxis(prior_axis=tuple(-axis)).fit(s.gyr_rad_s)
    assert prior.axis_ @ axis > 0
    assert prior.angle_to_prior_deg_ > 170


def test_prior_decides_the_sign_only_without_skew() -> None:
    rng = np.random.default_rng(2)
    gyr = np.outer(np.sin(np.linspace(0, 60, 3000)) * 3.0, [0.0, 1.0, 0.0]) + rng.normal(0, 0.01, (3000, 3))
    fitted = SagittalAxis(prior_axis=(0.0, -1.0, 0.0)).fit(gyr)
    assert fitted.sign_from_prior_
    assert fitted.axis_[1] < -0.99


@pytest.mark.parametrize("site", [Site.SHANK_L, Site.SHANK_R])
def test_expected_axis_matches_the_documented_default_mounting(site: Site) -> None:
    mounting = VirtualPatient().mountings[site]  # the virtual patient's default placement, no faults
    # a forward swing is a negative rotation about the segment's left (y) axis, seen in the sensor frame
    expected = -(mounting.rotation_segment_sensor.T @ np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(EXPECTED_SWING_AXIS_SENSOR[site], expected, atol=1e-9)


def test_fixed_axis_reports_how_much_rotation_it_explains() -> None:
    s = synthetic_shank()
    assert FixedAxis(tuple(s.axis)).fit(s.gyr_rad_s).explained_ > 0.9
    assert FixedAxis((1.0, 0.0, 0.0)).fit(s.gyr_rad_s).explained_ < 0.1


@pytest.mark.parametrize("block_rows", [5, 10, 23])
def test_live_events_equal_offline_and_arrive_within_the_lookahead(block_rows: int) -> None:
    s = synthetic_shank(n_swings=12)
    valid = s.valid.copy()
    valid[int(np.searchsorted(s.time_s, s.ic_s[6] + 0.3)) + np.arange(2)] = False
    offline = _detect(s, valid)
    live = LiveShankEvents("left", 100.0)
    emitted = []
    for start in range(0, s.time_s.size, block_rows):
        rows = slice(start, start + block_rows)
        live.update(s.time_s[rows], s.gyr_rad_s[rows], s.acc_m_s2[rows], valid[rows])
        for event in live.new_events_:
            emitted.append((event, s.time_s[rows][-1]))
    events = [e for e, _ in emitted]
    assert all(e.provisional for e in events)
    for kind in ("ic", "fc", "ms"):
        np.testing.assert_allclose(_times(events, kind), _times(offline.events_, kind), atol=0.002)
    lookahead = SwingDetector().lookahead_s() + block_rows / 100.0
    for event, emitted_at in emitted:
        if event.kind == "ic":
            assert emitted_at - event.time_s <= lookahead + 0.1


def test_live_memory_is_bounded() -> None:
    s = synthetic_shank(n_swings=40, stride_s=1.0)
    live = LiveShankEvents("left", 100.0, buffer_s=6.0, max_kept=5)
    for start in range(0, s.time_s.size, 10):
        rows = slice(start, start + 10)
        live.update(s.time_s[rows], s.gyr_rad_s[rows], s.acc_m_s2[rows], s.valid[rows])
    assert live.n_swings_ == 40
    assert len(live.swings_) == 5
    assert len(live.events_) <= 15
    assert live._time.size == 600
    assert live._gyr.shape == (600, 3)
