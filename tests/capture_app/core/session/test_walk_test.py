"""A whole walk-test session on a replayed virtual walk: states, journaling, live checks, analysis, finished clip."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

import pytest

from capture_app.core.session import sections
from capture_app.core.session.live import LiveUpdate
from capture_app.core.session.recorder import PatientInfo, WalkProtocol
from capture_app.core.session.replay import ClipReplayDriver
from capture_app.core.session.runner import SessionThread, run_session
from capture_app.core.session.state import SessionState, TransitionRefusedError
from capture_app.core.session.store import SessionStore
from capture_app.core.session.walk_test import WalkTestSession
from capture_app.core.verdict import Level
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.recording.privacy import IdentifyingDataError
from sensor_drivers.sim.clip_export import write_virtual_clip

from .conftest import generate

S = SessionState
PATIENT = PatientInfo("P-0042", height_m=1.75, mass_kg=75.0, affected_side="none")


class ScriptedTherapist:
    """Presses the buttons a therapist would: placement check after 0.1 s, still period once the check has a
    result (confirming a failed one only if told to), walking after the still period. (The test clips stand still
    for only 2.5 s: the sessions below check placement after 1 s and ask for 1.2 s of still period.)"""

    def __init__(self, override: bool = False) -> None:
        self.override = override
        self.refusals: list[TransitionRefusedError] = []

    def __call__(self, session: WalkTestSession, update: LiveUpdate) -> None:
        facts = session.machine.facts
        if session.state is S.CONNECTED and update.end_s > 0.1:
            session.request(S.PLACEMENT_CHECK)
        elif session.state is S.PLACEMENT_CHECK and facts.placement_level is not None:
            try:
                session.request(S.STILL)
            except TransitionRefusedError as refused:
                self.refusals.append(refused)
                if self.override:
                    session.override_placement()
        elif session.state is S.STILL and facts.still_s >= facts.min_still_s:
            session.request(S.WALKING)


def run(session: WalkTestSession, clip_path: Path, therapist: ScriptedTherapist) -> str:
    return asyncio.run(run_session(session, ClipReplayDriver(read_clip(clip_path), pace=None), on_update=therapist))


def test_a_whole_session(healthy_clip: Path, tmp_path: Path) -> None:
    session = WalkTestSession(PATIENT, WalkProtocol(6.0), SessionStore(tmp_path), min_still_s=1.2,
                              live_options={"min_static_s": 1.0})
    states = []
    session.subscribe(lambda t: states.append(t.state))
    updates = []
    session.subscribe_updates(updates.append)
    how = run(session, healthy_clip, ScriptedTherapist())
    assert how == "stream ended"
    assert states == [S.CONNECTED, S.PLACEMENT_CHECK, S.STILL, S.WALKING, S.STOPPED, S.REVIEW]
    assert session.state is S.REVIEW
    assert sum(len(u.new_events) for u in updates) > 20  # provisional events while walking
    assert session.analysis_ is not None
    assert session.analysis_.level_ is Level.OK, [v.code for v in session.analysis_.verdicts_]

    clip = read_clip(session.clip_path_)  # finished: footer, SHA-256 verified
    assert clip.finished
    assert session.clip_path_.parent == tmp_path
    meta = clip.metadata
    assert meta["patient"] == {"pseudonym": "P-0042", "height_m": 1.75, "mass_kg": 75.0, "affected_side": "none"}
    assert meta["protocol"]["walkway_length_m"] == 6.0
    assert meta["schema_version"] == "1.0"
    assert meta["app_version"]
    assert meta["recording"]["stopped_by"] == "stopped"
    assert meta["clock_origin_host_s"] * 100 == pytest.approx(round(meta["clock_origin_host_s"] * 100), abs=1e-6)
    assert {s.sensor_id for s in clip.sensors.values()} == {f"sim-{site}" for site in
                                                          ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r")}
    assert set(clip.sections) == set(sections.SESSION_SECTIONS)
    log = clip.sections[sections.SESSION_LOG]
    assert [e["to"] for e in log] == ["connected", "placement_check", "still", "walking", "stopped"]
    assert all(a["time_s"] <= b["time_s"] for a, b in itertools.pairwise(log))
    assert clip.sections[sections.ANALYSIS]["schema"] == "stridetwin.analyze/1"
    assert clip.sections[sections.ANALYSIS]["intervals"]["source"] == "session_log"
    placement = clip.sections[sections.PLACEMENT]
    assert placement["level"] == "ok"
    assert placement["proposed_assignment"]["shank_l"] == "sim-shank_l"
    assert any(entry["source"] == "placement" for entry in clip.sections[sections.QUALITY_LOG]) or all(
        v["level"] == "ok" for v in placement["verdicts"])  # fmt: skip
    calibration = clip.sections[sections.CALIBRATION]
    assert calibration["schema"] == "stridetwin.calibration/1"
    assert set(calibration["inputs"]["gyr_bias_rad_s"]) == {"pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"}
    assert calibration["sites"]["thigh_l"]["method"]
    events = clip.sections[sections.EVENTS]
    assert events["strides"]
    assert {s["side"] for s in events["strides"]} == {"left", "right"}
    assert all(e["provisional"] for e in clip.sections[sections.LIVE_EVENTS])
    metrics = clip.sections[sections.METRICS]
    assert metrics["metrics"]["cadence_steps_min"] > 0
    assert "knee_flexion_l_deg" in metrics["angle_ranges"]
    angles = clip.sections[sections.JOINT_ANGLES]
    assert angles["time_s"].dtype.str == "<f8"
    assert angles["knee_flexion_l_deg"].dtype.str == "<f4"
    assert angles["time_s"].shape == angles["knee_flexion_l_deg"].shape
    # a second trial starts a new clip
    session.request(S.CONNECTED)
    assert len(session.clips_) == 2
    assert session.clip_path_ != session.clips_[0]
    session.close()
    assert read_clip(session.clip_path_).sections[sections.SESSION_LOG][0]["to"] == "connected"


def test_a_failed_placement_check_holds_the_session_until_confirmed(clip_folder: Path, tmp_path: Path) -> None:
    path = clip_folder / "upside_down.stclip"
    if not path.exists():
        write_virtual_clip(generate("healthy", seed="24", fault="upside_down:thigh_l"), path)
    session = WalkTestSession(PATIENT, WalkProtocol(6.0), SessionStore(tmp_path), min_still_s=1.2,
                              live_options={"min_static_s": 1.0})
    therapist = ScriptedTherapist(override=True)
    run(session, path, therapist)
    assert therapist.refusals
    assert "placement check found a problem" in str(therapist.refusals[0])
    assert session.state is S.REVIEW
    clip = read_clip(session.clip_path_)
    log = clip.sections[sections.QUALITY_LOG]
    upside = [e for e in log if e["code"] == "placement.upside_down"]
    assert upside
    assert upside[0]["subject"] == "thigh_l"
    assert upside[0]["level"] == "fail"
    assert any(e["code"] == "placement.overridden" and e["source"] == "therapist" for e in log)
    assert "placement.upside_down" in {v.code for v in session.analysis_.verdicts_}


def test_stop_and_finish_are_refused_before_the_walk(healthy_clip: Path, tmp_path: Path) -> None:
    session = WalkTestSession(PATIENT, WalkProtocol(6.0), SessionStore(tmp_path))
    driver = ClipReplayDriver(read_clip(healthy_clip), pace=None)
    session.connect(driver.sensors)
    with pytest.raises(TransitionRefusedError, match="'connected' to 'stopped'"):
        session.stop()
    with pytest.raises(TransitionRefusedError, match="walk has not been stopped"):
        session.finish()
    session.request(S.DISCONNECTED)  # sensors gone before the walk: the clip is finished as it is
    assert session.recorder_ is None
    assert read_clip(session.clip_path_).metadata["recording"]["stopped_by"] == "sensors disconnected"
    with pytest.raises(ValueError, match="pseudonym is required"):
        PatientInfo(" ")
    with pytest.raises(IdentifyingDataError):
        WalkTestSession(PATIENT, WalkProtocol(6.0), SessionStore(tmp_path),
                        extra_metadata={"patient": {"birth_date": "1950-01-01"}}).connect(driver.sensors)


def test_the_session_thread_runs_the_session_off_the_calling_thread(bad_clips: dict[str, Path], tmp_path: Path) -> None:
    session = WalkTestSession(PATIENT, WalkProtocol(6.0), SessionStore(tmp_path))
    runner = SessionThread(session, ClipReplayDriver(read_clip(bad_clips["standing"]), pace=1.0))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while session.last_update_ is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runner.call(lambda: threading.current_thread().name).result(5) == "walk-test-session"
        transition = runner.request(S.PLACEMENT_CHECK).result(5)
        assert transition.state is S.PLACEMENT_CHECK
        assert transition.time_s is not None
        assert transition.time_s > 0
    finally:
        runner.stop()
    assert not runner.running
    assert runner.error_ is None
    clip = read_clip(session.clip_path_)  # finished as it was when the run was stopped
    assert [e["to"] for e in clip.sections[sections.SESSION_LOG]] == ["connected", "placement_check"]
    with pytest.raises(RuntimeError, match="not running"):
        runner.call(lambda: None).result(1)
