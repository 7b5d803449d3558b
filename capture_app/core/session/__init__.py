"""The walk-test session: state machine, crash-safe recording, live pipeline and offline analysis (docs/session.md).

- :mod:`.state`: :class:`SessionStateMachine` (pure, observable), :class:`SessionState`, refusals with reasons.
- :mod:`.store`: :class:`SessionStore`, the session directory and recovery of clips a crash left unfinished.
- :mod:`.recorder`: :class:`SessionRecorder`, the crash-safe clip of one trial with the session's sections.
- :mod:`.live`: :class:`LivePipeline`, stream items → grid → live components → ring buffers.
- :mod:`.analysis`: :class:`WalkAnalysis`, the offline analysis (schema ``stridetwin.analyze/1``).
- :mod:`.walk_test`: :class:`WalkTestSession`, all of the above as the model the UI drives.
- :mod:`.runner`: :func:`run_session` / :class:`SessionThread`, a session against a driver off the GUI thread.
- :mod:`.replay`: :class:`ClipReplayDriver`, a recorded clip as a live stream.
- :mod:`.c3d`: :func:`export_c3d`.
"""

from capture_app.core.session.analysis import ANALYZE_JSON_SCHEMA, WalkAnalysis
from capture_app.core.session.live import LivePipeline, LiveUpdate
from capture_app.core.session.recorder import PatientInfo, SessionRecorder, WalkProtocol
from capture_app.core.session.replay import ClipReplayDriver, clip_items
from capture_app.core.session.ring import PlotBuffers, RingBuffer
from capture_app.core.session.runner import SessionThread, run_session
from capture_app.core.session.state import (
    SessionError,
    SessionFacts,
    SessionState,
    SessionStateMachine,
    Transition,
    TransitionRefusedError,
)
from capture_app.core.session.store import RecoveryNotice, SessionStore, default_session_dir
from capture_app.core.session.walk_test import WalkTestSession

__all__ = [
    "ANALYZE_JSON_SCHEMA",
    "ClipReplayDriver",
    "LivePipeline",
    "LiveUpdate",
    "PatientInfo",
    "PlotBuffers",
    "RecoveryNotice",
    "RingBuffer",
    "SessionError",
    "SessionFacts",
    "SessionRecorder",
    "SessionState",
    "SessionStateMachine",
    "SessionStore",
    "SessionThread",
    "Transition",
    "TransitionRefusedError",
    "WalkAnalysis",
    "WalkProtocol",
    "WalkTestSession",
    "clip_items",
    "default_session_dir",
    "run_session",
]
