"""Crash safety of a live session, on a real process: SIGKILL while recording, recovery on the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capture_app.core.session import sections
from capture_app.core.session.store import SessionStore
from sensor_drivers.recording.clipfile import UnfinishedClipError, read_clip

REPO_ROOT = Path(__file__).resolve().parents[4]

#: A live session replaying a virtual walk in real time; after each live update it prints the clip-clock time of the
#: latest sample it has received.
_SESSION = """
import asyncio, sys
from capture_app.core.session import (ClipReplayDriver, PatientInfo, SessionState, SessionStore, WalkProtocol,
                                      WalkTestSession, run_session)
from sensor_drivers.recording.clipfile import read_clip

session = WalkTestSession(PatientInfo("CRASH-1", height_m=1.7), WalkProtocol(6.0), SessionStore(sys.argv[2]))

def on_update(session, update):
    if session.state is SessionState.CONNECTED and update.end_s > 0.3:
        session.request(SessionState.PLACEMENT_CHECK)
    print(f"{session.clip_time_s()!r}", flush=True)

asyncio.run(run_session(session, ClipReplayDriver(read_clip(sys.argv[1]), pace=1.0), on_update=on_update))
"""


@pytest.mark.slow
def test_sigkill_during_a_live_session_is_recovered_up_to_the_last_second(healthy_clip: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "sessions"
    proc = subprocess.Popen([sys.executable, "-c", _SESSION, str(healthy_clip), str(store_dir)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    received_s = 0.0
    try:
        deadline = time.monotonic() + 60
        while received_s < 3.0 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            received_s = float(line)
        assert received_s >= 3.0, "the session did not start"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest = [ln for ln in proc.stdout.read().split("\n") if ln.strip()]
        proc.wait(timeout=10)
    if rest:
        received_s = float(rest[-1])

    # the next start: the unfinished clip is found and recovered, and the user is told what was kept
    store = SessionStore(store_dir)
    (unfinished,) = store.unfinished()
    with pytest.raises(UnfinishedClipError):
        read_clip(unfinished)
    (notice,) = store.recover_unfinished()
    assert notice.pseudonym == "CRASH-1"
    assert "Recovered" in notice.message
    assert "interrupted" in notice.message
    clip = read_clip(notice.recovered_path)
    assert clip.recovered
    assert clip.metadata["patient"]["pseudonym"] == "CRASH-1"
    origin = clip.metadata["clock_origin_host_s"]
    assert len(clip.sensors) == 5
    for stream in clip.sensors.values():
        kept_s = float(stream.host_time_s[-1]) - origin
        assert received_s - kept_s <= 1.0, f"{stream.sensor_id}: kept up to {kept_s:.2f} s of {received_s:.2f} s"
    log = clip.sections[sections.SESSION_LOG]
    assert [e["to"] for e in log] == ["connected", "placement_check"]
    assert store.recover_unfinished() == []
