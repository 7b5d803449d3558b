"""The session state machine: the valid path, every invalid transition refused with a reason, the conditions of the
forward steps, and listeners."""

from __future__ import annotations

import itertools

import pytest

from capture_app.core.session.state import (
    TRANSITIONS,
    SessionFacts,
    SessionState,
    SessionStateMachine,
    Transition,
    TransitionRefusedError,
)
from capture_app.core.verdict import Level

S = SessionState


def ready_machine() -> SessionStateMachine:
    """A machine whose conditions all hold (every sensor connected, placement ok, still period done, analysed)."""
    return SessionStateMachine(SessionFacts(n_expected=5, n_connected=5))


def walk_to(machine: SessionStateMachine, target: SessionState) -> None:
    """Drive a machine along the forward path to ``target``, satisfying each condition on the way."""
    path = (S.DISCONNECTED, S.CONNECTED, S.PLACEMENT_CHECK, S.STILL, S.WALKING, S.STOPPED, S.REVIEW)
    for state in path[path.index(machine.state_) + 1 :]:
        if machine.state_ is target:
            return
        if state is S.STILL:
            machine.facts.placement_level = Level.OK
        if state is S.WALKING:
            machine.facts.still_s = machine.facts.min_still_s
        if state is S.REVIEW:
            machine.facts.analysis_done = True
        machine.request(state, time_s=1.0)
    assert machine.state_ is target


def test_the_forward_path_and_its_log() -> None:
    machine = ready_machine()
    seen: list[Transition] = []
    machine.subscribe(seen.append)
    walk_to(machine, S.REVIEW)
    assert [t.state for t in seen] == [S.CONNECTED, S.PLACEMENT_CHECK, S.STILL, S.WALKING, S.STOPPED, S.REVIEW]
    assert next(t.previous for t in seen) is S.DISCONNECTED
    assert list(machine.history_) == seen
    assert seen[0].to_json() == {"time_s": 1.0, "from": "disconnected", "to": "connected", "note": ""}
    # a new trial goes back to connected and starts the checks afresh
    machine.request(S.CONNECTED)
    assert machine.facts.placement_level is None
    assert machine.facts.still_s == 0.0
    assert not machine.facts.analysis_done


@pytest.mark.parametrize(("current", "requested"), [
    (a, b) for a, b in itertools.product(SessionState, SessionState) if b not in TRANSITIONS[a]
])  # fmt: skip
def test_every_invalid_transition_is_refused_with_a_reason(current: SessionState, requested: SessionState) -> None:
    machine = ready_machine()
    walk_to(machine, current)
    seen: list[Transition] = []
    machine.subscribe(seen.append)
    with pytest.raises(TransitionRefusedError) as refused:
        machine.request(requested)
    error = refused.value
    assert (error.current, error.requested) == (current, requested)
    assert f"'{current.value}'" in str(error)
    assert f"'{requested.value}'" in str(error)
    assert error.reason
    assert error.must_first
    if requested is not current:
        # what must happen first is a path of allowed steps ending in the requested state
        assert requested.value in error.must_first or current is S.WALKING
    assert error.verdict.code == "session.transition_refused"
    assert machine.state_ is current
    assert not seen


def test_refusals_name_what_must_happen_first() -> None:
    machine = ready_machine()
    walk_to(machine, S.CONNECTED)
    with pytest.raises(TransitionRefusedError, match="placement check, then the still period"):
        machine.request(S.WALKING)
    walk_to(machine, S.WALKING)
    with pytest.raises(TransitionRefusedError, match=r"walk is still being recorded.*stop the walk"):
        machine.request(S.CONNECTED)


def test_forward_steps_wait_for_their_conditions() -> None:
    machine = SessionStateMachine(SessionFacts(n_expected=5, n_connected=4, min_still_s=2.0))
    with pytest.raises(TransitionRefusedError, match="only 4 of 5 sensors"):
        machine.request(S.CONNECTED)
    machine.facts.n_connected = 5
    machine.request(S.CONNECTED)
    machine.request(S.PLACEMENT_CHECK)
    with pytest.raises(TransitionRefusedError, match="no result yet"):
        machine.request(S.STILL)
    machine.facts.placement_level = Level.FAIL
    with pytest.raises(TransitionRefusedError, match="found a problem") as refused:
        machine.request(S.STILL)
    assert "confirm" in refused.value.must_first
    assert machine.allowed() == (S.CONNECTED, S.DISCONNECTED)
    machine.facts.placement_overridden = True
    machine.request(S.STILL)
    machine.facts.still_s = 1.2
    with pytest.raises(TransitionRefusedError, match=r"lasted 1\.2 s of the 2 s needed"):
        machine.request(S.WALKING)
    machine.facts.still_s = 2.0
    machine.request(S.WALKING)
    machine.request(S.STOPPED)
    with pytest.raises(TransitionRefusedError, match="analysis"):
        machine.request(S.REVIEW)
    machine.facts.analysis_done = True
    machine.request("review")


def test_going_back_before_the_walk_and_unsubscribing() -> None:
    machine = ready_machine()
    walk_to(machine, S.STILL)
    seen: list[Transition] = []
    unsubscribe = machine.subscribe(seen.append)
    machine.request(S.PLACEMENT_CHECK, note="re-strap the left shank")
    assert machine.facts.placement_level is Level.OK  # kept until a new check runs
    unsubscribe()
    machine.request(S.CONNECTED)
    assert [t.state for t in seen] == [S.PLACEMENT_CHECK]
    with pytest.raises(ValueError, match="unknown session state 'running'; accepted: disconnected"):
        machine.request("running")
