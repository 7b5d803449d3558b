"""The walk-test session: the state machine, the crash-safe recording and the live pipeline together, and the
offline analysis when the walk is over. This is the model the bedside UI drives (Qt-free).

::

    session = WalkTestSession(PatientInfo("P-0042", height_m=1.72, affected_side="left"), WalkProtocol(20.0))
    session.connect(driver.sensors)           # recording starts: a new clip in the session directory
    for item in stream:                       # in the worker thread (see runner.py)
        session.feed(item)
        session.tick()                        # every 50-100 ms: live update, journaling, quality log
    session.request(SessionState.PLACEMENT_CHECK) … session.request(SessionState.STILL) … WALKING
    session.stop()                            # walking → stopped
    analysis = session.finish()               # offline analysis → sections → finished clip → review

One clip per trial: it starts at :meth:`connect` (or when a new trial goes back to ``connected``) and is finished by
:meth:`finish`, or as it is by :meth:`close` (app closing) or a disconnect before the walk. State changes, placement
and quality verdicts and provisional events are journaled into it as they happen (docs/session.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from capture_app.core.session.analysis import WalkAnalysis
from capture_app.core.session.live import LivePipeline, LiveUpdate
from capture_app.core.session.recorder import PatientInfo, SessionRecorder, WalkProtocol
from capture_app.core.session.state import (
    SessionFacts,
    SessionState,
    SessionStateMachine,
    Transition,
    TransitionRefusedError,
)
from capture_app.core.session.store import SessionStore
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.drivers.base import SensorInfo
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.sample import ImuSample, LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import KIT_SITES, Site

UpdateListener = Callable[[LiveUpdate], None]


class WalkTestSession:
    """One patient's walk tests (module docstring).

    Parameters: ``patient``, ``protocol``, ``store`` (where clips go; default the user's session directory),
    ``expected_sites`` (the kit), ``rate_hz`` (grid), ``min_still_s`` (still period before walking),
    ``live_options`` (keyword arguments of :class:`LivePipeline`), ``analysis`` (a factory of the offline
    :class:`WalkAnalysis`), ``writer_options`` (of the ``ClipWriter``), ``extra_metadata`` (merged into the clip's
    metadata, e.g. the driver's ``clip_metadata()``).

    Results: ``state`` (the machine's), ``clip_path_`` (the current trial's clip), ``clips_`` (every trial's),
    ``pipeline_`` (the current :class:`LivePipeline`), ``analysis_`` (the last finished trial's
    :class:`WalkAnalysis`), ``last_update_``.
    """

    def __init__(
        self,
        patient: PatientInfo,
        protocol: WalkProtocol | None = None,
        store: SessionStore | None = None,
        expected_sites: Sequence[Site] = KIT_SITES,
        rate_hz: float = 100.0,
        min_still_s: float = 2.0,
        live_options: Mapping[str, Any] | None = None,
        analysis: Callable[[], WalkAnalysis] | None = None,
        writer_options: Mapping[str, Any] | None = None,
        extra_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.patient = patient
        self.protocol = protocol or WalkProtocol()
        self.store = store or SessionStore()
        self.expected_sites = tuple(expected_sites)
        self.rate_hz = rate_hz
        self.live_options = dict(live_options or {})
        self.analysis = analysis or (lambda: WalkAnalysis(rate_hz=rate_hz))
        self.writer_options = dict(writer_options or {})
        self.extra_metadata = dict(extra_metadata or {})
        self.machine = SessionStateMachine(SessionFacts(n_expected=len(self.expected_sites), min_still_s=min_still_s))
        self.machine.subscribe(self._on_transition)
        self.sensors: list[SensorInfo] = []
        self.recorder_: SessionRecorder | None = None
        self.pipeline_: LivePipeline | None = None
        self.analysis_: WalkAnalysis | None = None
        self.clip_path_: Path | None = None
        self.clips_: list[Path] = []
        self.last_update_: LiveUpdate | None = None
        self._connected: dict[str, bool] = {}
        self._latest_host_s: float | None = None
        self._origin_s = 0.0
        self._update_listeners: list[UpdateListener] = []

    # -- observing ---------------------------------------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self.machine.state_

    def subscribe(self, listener: Callable[[Transition], None]) -> Callable[[], None]:
        """State changes (see :meth:`SessionStateMachine.subscribe`)."""
        return self.machine.subscribe(listener)

    def subscribe_updates(self, listener: UpdateListener) -> Callable[[], None]:
        """Live updates (one per :meth:`tick` that produced grid rows); returns the unsubscribe function."""
        self._update_listeners.append(listener)
        return lambda: self._update_listeners.remove(listener) if listener in self._update_listeners else None

    def clip_time_s(self) -> float:
        """Now on the current clip's clock: the latest sample's host time (the data's own clock, so that replays
        and live runs agree), else the host clock."""
        now = self._latest_host_s if self._latest_host_s is not None else time.monotonic()
        return now - self._origin_s

    # -- the kit -----------------------------------------------------------------------------------------------------
    def connect(
        self, sensors: Iterable[SensorInfo], now_host_s: float | None = None
    ) -> Transition | TransitionRefusedError:
        """The kit streams: start a trial (a new clip; recording starts now) and go to ``connected`` if every
        expected site has a sensor. Returns the transition, or the refusal (e.g. 4 of 5 sensors) without raising:
        the session then waits in ``disconnected`` while recording, until :meth:`request` succeeds."""
        self.sensors = list(sensors)
        self._connected = {s.sensor_id: True for s in self.sensors}
        self._update_connected()
        now = now_host_s if now_host_s is not None else time.monotonic()
        self._start_trial(now)
        refused = self.machine.refusal(SessionState.CONNECTED)
        if refused is not None:
            return refused
        return self.machine.request(SessionState.CONNECTED, now - self._origin_s, "sensors streaming")

    def _update_connected(self) -> None:
        sites = {s.site for s in self.sensors if self._connected.get(s.sensor_id)}
        self.machine.facts.n_connected = sum(1 for site in self.expected_sites if site in sites)

    def _start_trial(self, now_host_s: float) -> None:
        # The clip clock's origin on the grid, so that live rows fall on the offline grid's clip times.
        self._origin_s = math.floor(now_host_s * self.rate_hz) / self.rate_hz
        self._latest_host_s = None
        self.clip_path_ = self.store.new_clip_path(self.patient.pseudonym)
        self.recorder_ = SessionRecorder(
            self.clip_path_, self.patient, self.protocol, self.sensors, self._origin_s,
            extra_metadata=self.extra_metadata, writer_options=self.writer_options,
        )  # fmt: skip
        self.clips_.append(self.clip_path_)
        self.pipeline_ = LivePipeline(self.sensors, self._origin_s, self.rate_hz, **self.live_options)
        self.analysis_ = None

    # -- streaming ---------------------------------------------------------------------------------------------------
    def feed(self, item: StreamItem) -> None:
        """One driver item: journaled, and queued for the live pipeline."""
        if self.recorder_ is not None:
            self.recorder_.add(item)
        if self.pipeline_ is not None:
            self.pipeline_.feed(item)
        if type(item) is ImuSample:
            if self._latest_host_s is None or item.host_time_s > self._latest_host_s:
                self._latest_host_s = item.host_time_s
        elif isinstance(item, LinkEvent):
            self._connected[item.sensor_id] = item.state is LinkState.CONNECTED or (
                item.state is LinkState.GAP and self._connected.get(item.sensor_id, False)
            )
            self._update_connected()

    def tick(self, now_host_s: float | None = None) -> LiveUpdate | None:
        """Run the live pipeline on the rows that are final, journal what it found, poll the recording."""
        update = self.pipeline_.step(now_host_s) if self.pipeline_ is not None else None
        recorder = self.recorder_
        if update is not None:
            facts = self.machine.facts
            facts.still_s = update.still_s
            if update.placement_verdicts is not None:
                facts.placement_level = self.pipeline_.placement_level_  # type: ignore[union-attr]
            if recorder is not None:
                if update.placement_verdicts is not None:
                    recorder.log_verdicts(update.placement_verdicts, update.end_s, "placement")
                if update.quality_verdicts is not None:
                    recorder.log_verdicts(update.quality_verdicts, update.end_s, "quality")
                recorder.log_live_events(update.new_events)
            self.last_update_ = update
            for listener in list(self._update_listeners):
                listener(update)
        if recorder is not None:
            recorder.poll()
        return update

    # -- the test ----------------------------------------------------------------------------------------------------
    def request(self, state: SessionState | str, note: str = "") -> Transition:
        """Change state now (clip clock) or raise :class:`TransitionRefusedError`."""
        return self.machine.request(state, self.clip_time_s(), note)

    def override_placement(self, note: str = "The therapist confirmed the sensor placement.") -> None:
        """The therapist goes on despite a failed placement check (journaled in the quality log)."""
        self.machine.facts.placement_overridden = True
        if self.recorder_ is not None:
            verdict = Verdict(Level.WARNING, "placement.overridden", note, "", "kit")
            self.recorder_.log_verdicts([verdict], self.clip_time_s(), "therapist")

    def stop(self, note: str = "") -> Transition:
        """End the walk (``walking`` → ``stopped``); everything received is on disk when this returns."""
        return self.request(SessionState.STOPPED, note)

    def finish(self) -> WalkAnalysis:
        """After :meth:`stop`: analyse the recorded walk, write the results into the clip, finish the clip (checksum)
        and go to ``review``. The live form's provisional results are replaced by the analysis' refined ones."""
        if self.state is not SessionState.STOPPED:
            raise TransitionRefusedError(self.state, SessionState.REVIEW, "the walk has not been stopped",
                                         "stop the walk")  # fmt: skip
        recorder = self.recorder_
        assert recorder is not None
        assert self.pipeline_ is not None
        self.pipeline_.finish()
        recorder.flush()
        clip = read_clip(recorder.path, allow_unfinished=True)
        analysis = self.analysis().analyze(clip, recording_open=True)
        recorder.write_analysis(analysis)
        recorder.close("stopped")
        self.recorder_ = None
        self.analysis_ = analysis
        self.machine.facts.analysis_done = True
        self.request(SessionState.REVIEW, f"analysis level {analysis.level_.value}")
        return analysis

    def close(self, reason: str = "closed") -> None:
        """Finish the current clip as it is (app closing, cancelled): no analysis; the clip stays valid."""
        if self.recorder_ is not None:
            self.recorder_.close(reason)
            self.recorder_ = None

    def _on_transition(self, transition: Transition) -> None:
        new_trial = transition.state is SessionState.CONNECTED and (
            self.recorder_ is None or transition.previous in (SessionState.STOPPED, SessionState.REVIEW))  # fmt: skip
        if new_trial:
            self.close("stopped without analysis")
            self._start_trial(self._latest_host_s if self._latest_host_s is not None else time.monotonic())
            transition = Transition(transition.previous, transition.state, 0.0, transition.note)
        if self.recorder_ is not None:
            self.recorder_.log_transition(transition)
        if self.pipeline_ is not None:
            self.pipeline_.on_transition(transition)
        if transition.state is SessionState.STOPPED and self.recorder_ is not None:
            self.recorder_.flush()
        elif transition.state is SessionState.DISCONNECTED and transition.previous is not SessionState.DISCONNECTED:
            self.close("sensors disconnected")
