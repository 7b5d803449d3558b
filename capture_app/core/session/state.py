"""The walk-test session's state machine: pure, Qt-free, observable.

::

    disconnected → connected → placement_check → still → walking → stopped → review
                       ▲             │   ▲          │                  │         │
                       └─────────────┘   └──────────┘                  └─────────┴──▶ connected (next trial)

- **connected**: every expected sensor streams; the recording starts here (docs/session.md).
- **placement_check**: the patient stands still while each sensor's mounting is checked (gravity direction, noise).
- **still**: the still period before walking, for gyroscope bias and the standing pose (calibration).
- **walking**: the walk; live gait events are provisional.
- **stopped**: the walk is over; the recording is complete, the offline analysis runs.
- **review**: the analysis of the walk is there to review.

Going back is allowed where it makes sense at the bedside (re-strap a sensor: placement_check or still → connected,
still → placement_check; a new trial after stopped or review; sensors lost before the walk → disconnected). A request
that is not allowed raises :class:`TransitionRefusedError` naming the current state, the requested one and what must
happen first. Forward steps also have conditions (:class:`SessionFacts`): all sensors connected, a placement check
without a failure (or a therapist's override), a long enough still period, a finished analysis.

Listeners (``subscribe``) are called synchronously, in the thread that made the transition, with a
:class:`Transition`; a Qt UI forwards them to its thread with a queued signal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from capture_app.core.verdict import Level, Verdict


class SessionState(StrEnum):
    """The states of a walk test; the value is what the clip's ``session_log`` stores."""

    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    PLACEMENT_CHECK = "placement_check"
    STILL = "still"
    WALKING = "walking"
    STOPPED = "stopped"
    REVIEW = "review"

    @property
    def words(self) -> str:
        """How a therapist reads the state."""
        return _WORDS[self]


_WORDS = {
    SessionState.DISCONNECTED: "sensors not connected",
    SessionState.CONNECTED: "sensors connected",
    SessionState.PLACEMENT_CHECK: "placement check",
    SessionState.STILL: "still period (calibration)",
    SessionState.WALKING: "walking",
    SessionState.STOPPED: "stopped",
    SessionState.REVIEW: "review",
}

#: Allowed transitions. The first target of each state is the forward step of the test.
TRANSITIONS: dict[SessionState, tuple[SessionState, ...]] = {
    SessionState.DISCONNECTED: (SessionState.CONNECTED,),
    SessionState.CONNECTED: (SessionState.PLACEMENT_CHECK, SessionState.DISCONNECTED),
    SessionState.PLACEMENT_CHECK: (SessionState.STILL, SessionState.CONNECTED, SessionState.DISCONNECTED),
    SessionState.STILL: (SessionState.WALKING, SessionState.PLACEMENT_CHECK, SessionState.CONNECTED,
                         SessionState.DISCONNECTED),
    SessionState.WALKING: (SessionState.STOPPED,),
    SessionState.STOPPED: (SessionState.REVIEW, SessionState.CONNECTED),
    SessionState.REVIEW: (SessionState.CONNECTED, SessionState.DISCONNECTED),
}  # fmt: skip

#: The forward path of one trial.
FORWARD: tuple[SessionState, ...] = tuple(SessionState)


@dataclass
class SessionFacts:
    """What the forward steps depend on; the session keeps these up to date."""

    #: Sensors the kit expects, and how many of them are streaming now.
    n_expected: int = 5
    n_connected: int = 0
    #: Worst level of the placement check so far (``None``: not run yet).
    placement_level: Level | None = None
    #: The therapist confirmed going on despite a failed placement check.
    placement_overridden: bool = False
    #: Seconds spent in the still period so far, and how many are needed.
    still_s: float = 0.0
    min_still_s: float = 2.0
    #: The offline analysis of the walk is finished.
    analysis_done: bool = False


@dataclass(frozen=True)
class Transition:
    """One state change, as listeners and the clip's ``session_log`` see it."""

    previous: SessionState
    state: SessionState
    #: Clip clock, s (``None`` where the session has no clock yet).
    time_s: float | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """A ``session_log`` item (docs/session.md)."""
        return {"time_s": self.time_s, "from": self.previous.value, "to": self.state.value, "note": self.note}


class SessionError(Exception):
    """Base class of the session's errors."""


class TransitionRefusedError(SessionError):
    """A state change that is not allowed now: names the current state, the requested one and what must happen first.

    ``verdict`` carries the same as a :class:`Verdict` (code ``session.transition_refused``) for the UI.
    """

    def __init__(self, current: SessionState, requested: SessionState, reason: str, must_first: str) -> None:
        self.current = current
        self.requested = requested
        self.reason = reason
        self.must_first = must_first
        super().__init__(
            f"cannot go from '{current.value}' to '{requested.value}': {reason}; first: {must_first}"
        )

    @property
    def verdict(self) -> Verdict:
        return Verdict(
            Level.WARNING, "session.transition_refused",
            f"Cannot go from {self.current.words} to {self.requested.words}: {self.reason}.",
            self.must_first[:1].upper() + self.must_first[1:] + ".", "session",
            {"current": self.current.value, "requested": self.requested.value},
        )  # fmt: skip


Listener = Callable[[Transition], None]


class SessionStateMachine:
    """The walk test's state, its allowed changes and their conditions (module docstring).

    ``request(state, time_s=None, note="")`` changes the state or raises :class:`TransitionRefusedError`;
    ``refusal(state)`` says why a change would be refused (``None``: allowed) without changing anything.
    ``subscribe(listener)`` returns a function that unsubscribes it. ``history_`` holds the last ``max_history``
    transitions.
    """

    def __init__(self, facts: SessionFacts | None = None, max_history: int = 256) -> None:
        self.facts = facts or SessionFacts()
        self.state_ = SessionState.DISCONNECTED
        self.history_: deque[Transition] = deque(maxlen=max_history)
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(transition)`` after every state change; returns the unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def allowed(self) -> tuple[SessionState, ...]:
        """The states reachable from here now (edges whose conditions hold)."""
        return tuple(s for s in TRANSITIONS[self.state_] if self.refusal(s) is None)

    def refusal(self, requested: SessionState) -> TransitionRefusedError | None:
        """Why going to ``requested`` now would be refused, or ``None`` if it is allowed."""
        current = self.state_
        if requested == current:
            return TransitionRefusedError(current, requested, "the session is already there", "nothing")
        if requested not in TRANSITIONS[current]:
            return TransitionRefusedError(current, requested, *self._off_path(current, requested))
        condition = self._condition(current, requested)
        if condition is not None:
            return TransitionRefusedError(current, requested, *condition)
        return None

    def request(self, requested: SessionState | str, time_s: float | None = None, note: str = "") -> Transition:
        """Go to ``requested`` (a state or its value) or raise :class:`TransitionRefusedError`; listeners are told."""
        requested = _parse_state(requested)
        refused = self.refusal(requested)
        if refused is not None:
            raise refused
        transition = Transition(self.state_, requested, time_s, note)
        self.state_ = requested
        if requested in (SessionState.CONNECTED, SessionState.DISCONNECTED):
            # A new trial (or a re-strap) starts the checks afresh.
            self.facts.placement_level = None
            self.facts.placement_overridden = False
            self.facts.still_s = 0.0
            self.facts.analysis_done = False
        elif requested is SessionState.STILL:
            self.facts.still_s = 0.0
        self.history_.append(transition)
        for listener in list(self._listeners):
            listener(transition)
        return transition

    # -- reasons -------------------------------------------------------------------------------------------------
    def _condition(self, current: SessionState, requested: SessionState) -> tuple[str, str] | None:
        """(reason, what must happen first) where an allowed edge's condition does not hold."""
        f = self.facts
        if requested is SessionState.CONNECTED and current is SessionState.DISCONNECTED and (
                f.n_connected < f.n_expected):
            return (f"only {f.n_connected} of {f.n_expected} sensors are streaming",
                    "switch on and connect every sensor of the kit")  # fmt: skip
        if requested is SessionState.PLACEMENT_CHECK and f.n_connected < f.n_expected:
            return (f"only {f.n_connected} of {f.n_expected} sensors are streaming",
                    "reconnect the missing sensors")  # fmt: skip
        if requested is SessionState.STILL:
            if f.placement_level is None:
                return ("the placement check has no result yet",
                        "let the patient stand still until every sensor has been checked")  # fmt: skip
            if f.placement_level is Level.FAIL and not f.placement_overridden:
                return ("the placement check found a problem", "fix the sensors it names and check again, "
                        "or confirm that you want to go on anyway")  # fmt: skip
        if requested is SessionState.WALKING and f.still_s < f.min_still_s:
            return (f"the still period lasted {f.still_s:.1f} s of the {f.min_still_s:g} s needed",
                    f"let the patient stand still for {f.min_still_s - f.still_s:.1f} s more")  # fmt: skip
        if requested is SessionState.REVIEW and not f.analysis_done:
            return ("the analysis of the walk is not finished", "wait for the analysis")
        return None

    @staticmethod
    def _off_path(current: SessionState, requested: SessionState) -> tuple[str, str]:
        """(reason, what must happen first) for a state that is not one step away."""
        path = _shortest_path(current, requested)
        if path is None:  # unreachable by the rules (never happens with TRANSITIONS; kept for edits)
            return "no sequence of steps leads there", "start a new session"
        steps = " → ".join(s.value for s in path)
        between = [s.words for s in path[1:-1]]
        if current is SessionState.WALKING:
            return "the walk is still being recorded", f"stop the walk ({steps})"
        return (f"the {', then the '.join(between)} must come first", f"go through {steps}")


def _parse_state(state: SessionState | str) -> SessionState:
    if isinstance(state, SessionState):
        return state
    try:
        return SessionState(str(state).strip().lower())
    except ValueError:
        accepted = ", ".join(s.value for s in SessionState)
        raise ValueError(f"unknown session state {state!r}; accepted: {accepted}") from None


def _shortest_path(start: SessionState, goal: SessionState) -> list[SessionState] | None:
    """Breadth-first path over :data:`TRANSITIONS`, preferring forward steps (listed first)."""
    previous: dict[SessionState, SessionState | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state == goal:
            path = [state]
            while (before := previous[path[-1]]) is not None:
                path.append(before)
            return path[::-1]
        for nxt in TRANSITIONS[state]:
            if nxt not in previous:
                previous[nxt] = state
                queue.append(nxt)
    return None


__all__ = [
    "FORWARD",
    "TRANSITIONS",
    "SessionError",
    "SessionFacts",
    "SessionState",
    "SessionStateMachine",
    "Transition",
    "TransitionRefusedError",
]
