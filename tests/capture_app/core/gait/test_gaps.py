"""Short losses of sensor data: a burst bridged across a contact keeps the stride, with the event marked estimated and
the stride left out of the timing metrics that need it (with the reason); a longer gap still splits, inventing nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from capture_app.core.gait.analysis import GaitAnalysis, LiveGait
from capture_app.core.gait.events import LiveShankEvents, ShankEventDetector
from capture_app.core.gait.metrics import METRICS, TIMING_FAMILY
from capture_app.core.gait.strides import SHORT_DATA_LOSS, TIMING_EVENTS, StrideSegmentation
from capture_app.core.signals import KitSignals, SiteSignals
from sensor_drivers.sites import Site

from .conftest import blocks
from .synthetic import SyntheticShank, synthetic_shank

#: 15 swings: 14 strides, of which 10 steady (2 acceleration and 2 deceleration strides are left out).
N_SWINGS = 15
LOST_CONTACT = 7


def _lose(s: SyntheticShank, rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``valid``, gyroscope and accelerometer with ``rows`` lost (not valid, NaN), as the grid leaves them."""
    valid, gyr, acc = s.valid.copy(), s.gyr_rad_s.copy(), s.acc_m_s2.copy()
    valid[rows] = False
    gyr[rows], acc[rows] = np.nan, np.nan
    return valid, gyr, acc


def _rows_at(s: SyntheticShank, t: float, before: int, after: int) -> slice:
    row = int(np.searchsorted(s.time_s, t))
    return slice(row - before, row + after)


def _kit(s: SyntheticShank, valid: np.ndarray, gyr: np.ndarray, acc: np.ndarray) -> KitSignals:
    return KitSignals(100.0, s.time_s, {Site.SHANK_L: SiteSignals("shank-l", valid, acc, gyr)})


@pytest.fixture(scope="module")
def walk() -> SyntheticShank:
    return synthetic_shank(n_swings=N_SWINGS)


def test_a_loss_burst_on_a_contact_keeps_the_stride_and_marks_the_event(walk: SyntheticShank) -> None:
    s = walk
    true_ic = s.ic_s[LOST_CONTACT]
    valid, gyr, acc = _lose(s, _rows_at(s, true_ic, 1, 2))  # 30 ms lost exactly on the contact
    valid_stance, gyr, acc = _lose(SyntheticShank(s.time_s, gyr, acc, valid, s.ic_s, s.fc_s, s.axis),
                                   _rows_at(s, s.ic_s[10] + 0.3, 0, 3))  # 30 ms lost mid-stance  # fmt: skip
    detector = ShankEventDetector().detect(s.time_s, gyr, acc, valid_stance, 100.0, "left")
    ic = [e for e in detector.events_ if e.kind == "ic"]
    assert len(ic) == s.ic_s.size  # no contact is lost
    estimated = [e for e in detector.events_ if e.estimated]
    assert [(e.kind, e.estimated_across_gap_s) for e in estimated] == [("ic", pytest.approx(0.03))]
    assert abs(estimated[0].time_s - true_ic) <= 0.03 + 0.005  # off by at most the gap (and half a sample)
    measured = np.array([e.time_s for e in ic if not e.estimated])
    assert np.max(np.abs(measured - np.delete(s.ic_s, LOST_CONTACT))) < 0.006
    assert detector.events_[-1].to_json()["estimated_across_gap_s"] is None
    assert [e.to_json()["estimated_across_gap_s"] for e in estimated] == [pytest.approx(0.03)]

    strides = StrideSegmentation().segment({"left": detector.swings_, "right": []}).strides_
    assert len(strides) == s.ic_s.size - 1  # every stride kept, the two meeting at the lost contact included
    marked = {round(st.ic_s, 2): st for st in strides if st.estimated}
    before, after = sorted(marked)
    assert marked[before].estimated == ("next_ic",)
    assert marked[after].estimated == ("ic",)
    assert marked[before].next_ic_s == marked[after].ic_s == estimated[0].time_s
    assert {st.timing_excluded for st in marked.values()} == {SHORT_DATA_LOSS}
    assert all("stride_time" in st.timing_excluded_from for st in marked.values())
    assert marked[after].to_json()["timing_excluded"] == SHORT_DATA_LOSS
    assert all(st.timing_excluded == "" and st.to_json()["estimated"] == [] for st in strides if not st.estimated)


def test_the_stride_counts_but_stays_out_of_stride_time_metrics_with_the_reason(walk: SyntheticShank) -> None:
    s = walk
    complete = GaitAnalysis().analyze(_kit(s, s.valid, s.gyr_rad_s, s.acc_m_s2), None)
    lossy = GaitAnalysis().analyze(_kit(s, *_lose(s, _rows_at(s, s.ic_s[LOST_CONTACT], 1, 2))), None)
    m, full = lossy.metrics_, complete.metrics_
    # the strides count: the same numbers of strides and of steady strides, and the same cadence
    for name in ("n_strides_l", "n_steady_strides_l"):
        assert m[name] == full[name]
    assert full["n_steady_strides_l"] == 10
    assert m["cadence_steps_min"] == pytest.approx(full["cadence_steps_min"], rel=1e-3)
    steady = [st for st in lossy.strides_ if st.steady]
    left_out = [st for st in steady if st.timing_excluded]
    assert len(left_out) == 2
    assert all(st.excluded == "" for st in left_out)  # steady, only their timing is left out
    # … but not for the stride time: 8 measured strides are too few for its variability, and the reason says why
    assert "stride_time_cv_pct_l" in full
    assert "stride_time_cv_pct_l" not in m
    reason = lossy.missing_["stride_time_cv_pct_l"]
    assert reason.code == "gait.short_data_loss"
    assert "short loss of sensor data" in reason.message
    assert reason.details == {"n_steady_strides": 10, "n_estimated": 2}
    durations = [st.duration_s for st in steady if not st.timing_excluded]
    assert m["stride_time_l_s"] == pytest.approx(np.mean(durations))
    # the contact found late after the gap would shorten one stance: the mean is over the measured stances only
    stances = [st.stance_s for st in steady if "stance_swing" not in st.timing_excluded_from]
    assert m["stance_time_l_s"] == pytest.approx(np.mean(stances))
    assert m["stance_time_l_s"] == pytest.approx(full["stance_time_l_s"], abs=1e-4)
    assert m["stance_time_l_s"] - np.mean([st.stance_s for st in steady]) > 1e-3
    assert set(m) | set(lossy.missing_) == set(METRICS)
    doc = lossy.to_json()
    assert [e["kind"] for e in doc["events"] if e["estimated_across_gap_s"] is not None] == ["ic"]
    assert sum(st["timing_excluded"] == SHORT_DATA_LOSS for st in doc["strides"]) == 2


def test_live_marks_the_same_events_and_strides(walk: SyntheticShank) -> None:
    s = walk
    valid, gyr, acc = _lose(s, _rows_at(s, s.ic_s[LOST_CONTACT], 1, 2))
    offline = ShankEventDetector().detect(s.time_s, gyr, acc, valid, 100.0, "left")
    live = LiveShankEvents("left", 100.0)
    events = []
    for start in range(0, s.time_s.size, 10):
        rows = slice(start, start + 10)
        events += live.update(s.time_s[rows], gyr[rows], acc[rows], valid[rows]).new_events_
    assert all(e.provisional for e in events)
    assert [(e.kind, round(e.time_s, 3), e.estimated_across_gap_s) for e in events] == [
        (e.kind, round(e.time_s, 3), e.estimated_across_gap_s) for e in offline.events_
    ]
    gait = LiveGait(100.0)
    strides = [st for block in blocks(_kit(s, valid, gyr, acc), 10) for st in gait.update(block).new_strides_]
    assert len(strides) == N_SWINGS - 1
    assert [st.estimated for st in strides if st.estimated] == [("next_ic",), ("ic",)]


def test_a_gap_longer_than_the_bridge_still_splits_and_invents_no_event(walk: SyntheticShank) -> None:
    s = walk
    true_ic = s.ic_s[LOST_CONTACT]
    rows = _rows_at(s, true_ic, 5, 6)  # 0.11 s: just longer than max_bridge_s = 0.1
    valid, gyr, acc = _lose(s, rows)
    detector = ShankEventDetector(max_bridge_s=0.1).detect(s.time_s, gyr, acc, valid, 100.0, "left")
    lo, hi = s.time_s[rows.start], s.time_s[rows.stop - 1]
    assert not any(lo - 0.01 <= e.time_s <= hi + 0.01 for e in detector.events_)
    assert not any(e.estimated for e in detector.events_)
    assert sum(e.kind == "ic" for e in detector.events_) == s.ic_s.size - 1  # the contact in the gap is not placed
    strides = StrideSegmentation().segment({"left": detector.swings_, "right": []}).strides_
    assert not any(st.ic_s < lo and st.next_ic_s > hi for st in strides)  # no stride across the gap
    assert len(strides) == s.ic_s.size - 3
    # the same gap, bridged by a longer max_bridge_s, keeps every contact (as an estimate)
    bridged = ShankEventDetector(max_bridge_s=0.12).detect(s.time_s, gyr, acc, valid, 100.0, "left")
    assert sum(e.kind == "ic" for e in bridged.events_) == s.ic_s.size
    assert [e.estimated_across_gap_s for e in bridged.events_ if e.estimated and e.kind == "ic"] == [
        pytest.approx(0.11)
    ]


def test_every_timing_metric_names_a_known_family() -> None:
    assert set(TIMING_FAMILY) <= set(METRICS)
    assert set(TIMING_FAMILY.values()) == set(TIMING_EVENTS)
    assert not any("length" in name or "speed" in name or "cadence" in name for name in TIMING_FAMILY)
