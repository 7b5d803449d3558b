"""The live pipeline on a replayed virtual walk: provisional events agree with the offline analysis, rows fall on the
clip's grid, plot buffers hold the last seconds, and memory does not grow with the length of the session."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capture_app.core.session.analysis import WalkAnalysis
from capture_app.core.session.live import LivePipeline
from capture_app.core.session.replay import clip_items, sensor_infos
from capture_app.core.session.ring import PlotBuffers, RingBuffer
from capture_app.core.session.state import SessionState, Transition
from capture_app.core.signals import signals_from_clip
from sensor_drivers.recording.clipfile import Clip, read_clip
from sensor_drivers.sample import ImuSample


def run_live(clip: Clip, repeats: int = 1, tick_s: float = 0.05, **options: Any) -> LivePipeline:
    """Feed the clip's items through a pipeline, stepping every ``tick_s`` of the data's clock."""
    pipeline = LivePipeline(sensor_infos(clip), clock_origin_host_s=0.0, **options)
    last = None
    for item in clip_items(clip, repeats=repeats):
        pipeline.feed(item)
        if type(item) is ImuSample:
            if last is None:
                last = item.host_time_s
            elif item.host_time_s - last >= tick_s:
                last = item.host_time_s
                pipeline.step()
    pipeline.finish()
    return pipeline


def test_ring_buffer_keeps_the_last_rows() -> None:
    ring = RingBuffer(5, 2)
    ring.append(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(ring.view(), [[0, 1], [2, 3], [4, 5]])
    ring.append(np.arange(6.0, 14.0).reshape(4, 2))
    np.testing.assert_array_equal(ring.view()[:, 0], [4, 6, 8, 10, 12])
    ring.append(np.arange(20.0, 40.0).reshape(10, 2))
    np.testing.assert_array_equal(ring.view(2)[:, 0], [36, 38])
    assert ring.n_written == 17
    assert ring.nbytes == 5 * 2 * 8
    plots = PlotBuffers({"a": 1, "b": 3}, window_s=0.05, rate_hz=100.0)
    plots.append(np.array([0.0, 0.01]), {"a": np.array([1.0, 2.0])})
    snap = plots.snapshot()
    np.testing.assert_array_equal(snap["a"][:, 0], [1.0, 2.0])
    assert np.isnan(snap["b"]).all()
    assert snap["b"].shape == (2, 3)


@pytest.fixture(scope="module")
def healthy(healthy_clip: Path) -> Clip:
    return read_clip(healthy_clip)


def test_live_events_agree_with_the_offline_analysis(healthy: Clip) -> None:
    events = []
    pipeline = LivePipeline(sensor_infos(healthy), clock_origin_host_s=0.0, orientation=False)
    last = None
    for item in clip_items(healthy):
        pipeline.feed(item)
        if type(item) is ImuSample and (last is None or item.host_time_s - last >= 0.05):
            last = item.host_time_s
            update = pipeline.step()
            if update is not None:
                events += update.new_events
    update = pipeline.finish()
    if update is not None:
        events += update.new_events
    offline = WalkAnalysis().analyze(healthy)
    live_ic = np.array([e.time_s for e in events if e.kind == "ic"])
    offline_ic = np.array([e.time_s for e in offline.events_ if e.kind == "ic"])
    assert all(e.provisional for e in events)
    assert abs(live_ic.size - offline_ic.size) <= 1
    matched = [np.min(np.abs(live_ic - t)) for t in offline_ic]
    assert np.median(matched) <= 0.011  # the same samples: at most one grid row apart
    # rows are the offline grid's rows (the clip clock's origin lies on the grid)
    grid = signals_from_clip(healthy)
    plotted = pipeline.plots_.snapshot()["time_s"]
    np.testing.assert_allclose(np.diff(plotted), 0.01, atol=1e-9)
    assert np.isin(np.round(plotted * 100), np.round(grid.time_s * 100)).all()
    assert plotted.size == 1000  # the last 10 s
    gyr = pipeline.plots_.snapshot(["shank_l.gyr_rad_s"])["shank_l.gyr_rad_s"]
    assert gyr.shape == (1000, 3)
    assert np.isfinite(gyr).mean() > 0.9


def test_placement_checks_follow_the_session_state(healthy: Clip) -> None:
    pipeline = LivePipeline(sensor_infos(healthy), clock_origin_host_s=0.0, identify_after_s=4.0)
    transitions = {0.3: SessionState.PLACEMENT_CHECK, 2.0: SessionState.STILL, 2.4: SessionState.WALKING}
    previous = SessionState.CONNECTED
    placement_updates = []
    last = None
    for item in clip_items(healthy):
        pipeline.feed(item)
        if type(item) is not ImuSample or (last is not None and item.host_time_s - last < 0.05):
            continue
        last = item.host_time_s
        update = pipeline.step()
        if update is None:
            continue
        for at_s, state in list(transitions.items()):
            if update.end_s >= at_s:
                pipeline.on_transition(Transition(previous, state, update.end_s))
                previous = state
                del transitions[at_s]
        if update.placement_verdicts is not None:
            placement_updates.append((previous, update.end_s, update.placement_verdicts))
    states = [state for state, _, _ in placement_updates]
    assert SessionState.PLACEMENT_CHECK in states  # the standing check ran while standing
    assert states.count(SessionState.WALKING) == 1  # identification once, from the first strides
    static = next(v for state, _, v in placement_updates if state is SessionState.PLACEMENT_CHECK)
    assert {v.subject for v in static} >= {"pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"}
    assert pipeline.placement_level_ is not None
    problems = [v.code for v in pipeline.placement_verdicts_ if v.level.value != "ok"]
    assert pipeline.placement_level_.value == "ok", problems
    assert pipeline.proposed_assignment_
    assert pipeline.calibrated_  # the live calibration ran after the first strides


def _state_size(obj: Any, seen: set[int] | None = None, depth: int = 0) -> int:
    """Elements held in containers and arrays reachable from ``obj``'s attributes (capture-core objects only)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 8:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.size)
    if isinstance(obj, dict):
        return len(obj) + sum(_state_size(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple | deque | set):
        return len(obj) + sum(_state_size(v, seen, depth + 1) for v in obj)
    module = type(obj).__module__
    if module.startswith(("capture_app", "sensor_drivers")) and hasattr(obj, "__dict__"):
        return sum(_state_size(v, seen, depth + 1) for v in vars(obj).values())
    return 0


def test_memory_does_not_grow_with_the_session(healthy: Clip) -> None:
    one = run_live(healthy, repeats=1)
    two = run_live(healthy, repeats=2)
    assert two.n_rows_ > 1.9 * one.n_rows_
    assert two.buffer_nbytes == one.buffer_nbytes
    assert two.assembler.timers["sim-shank_l"].n_samples_ > 1.9 * one.assembler.timers["sim-shank_l"].n_samples_
    size_one, size_two = _state_size(one), _state_size(two)
    assert size_two < 1.1 * size_one, (size_one, size_two)
