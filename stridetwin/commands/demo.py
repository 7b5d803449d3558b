"""``stridetwin demo``: the whole product, headless, on embedded defaults — no hardware, no configuration.

For now: a virtual hemiparetic patient walks the 20 m test; its five sensors are served over pseudo-terminals speaking
the StrideTwin serial protocol and read by the real serial drivers. A live walk-test session (the model the bedside UI
drives) records the walk into a crash-safe clip with the ground truth beside it, while a scripted therapist presses
the buttons (placement check, still period, walking) and the live pipeline finds provisional gait events; when the
walk ends the session analyses the clip offline (events, strides, metrics, joint angles, verdicts), which is printed
with the inspection and checked against the simulation's truth. Clips a crash left in the output folder are recovered
first. The patient is registered in the local patient list (name and birth date stay on the device; the clip carries
a random pseudonym). The clip then goes through the durable outbox to a trainer the demo starts on loopback (TLS), and
where the patient pipeline is installed a training job runs and its results come back into the library next to the
clip (``stridetwin.demo_link``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

DEFAULT_SOURCE = "sim:hemiparetic?transport=serial&protocol=stridetwin"

#: Metrics the summary shows, in this order (all others: `stridetwin analyze`).
SUMMARY_METRICS = (
    "gait_speed_m_s", "cadence_steps_min", "stride_time_l_s", "stride_time_r_s", "stance_pct_l", "stance_pct_r",
    "step_length_l_m", "step_length_r_m", "double_support_pct", "step_time_symmetry_index_pct", "swing_time_ratio",
)  # fmt: skip
SUMMARY_ANGLES = ("hip_flexion_l_deg", "hip_flexion_r_deg", "knee_flexion_l_deg", "knee_flexion_r_deg")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end run on a virtual patient (no hardware, no configuration)",
        description="Simulate a hemiparetic patient's 20 m walk test over a virtual serial link, run a live walk-test "
        "session on it (recording, placement check, live gait events), analyse the recording, check the "
        "analysis against the simulation's truth, upload it through the outbox to a trainer started on loopback, "
        "train (where the patient pipeline is installed) and fetch the results. The walk runs in real time (about "
        "a minute).",
    )
    parser.add_argument("--out", default="out/demo", metavar="DIR", help="where to write the clip (default out/demo)")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"sensor source (default {DEFAULT_SOURCE})")
    parser.add_argument("--budget", default="smoke", choices=("smoke", "quick", "full"),
                        help="training budget of the demo's job (default smoke: proves the plumbing in minutes)")
    parser.set_defaults(func=run)

#: The virtual patient as the clinic knows them; in the local patient list only, never in a clip or an upload.
VIRTUAL_PATIENT_NAME = "Erika Mustermann"
VIRTUAL_PATIENT_BIRTH_DATE = "1956-08-12"


class ScriptedTherapist:
    """The buttons a therapist presses, pressed by the demo: the placement check once the kit streams, the still
    period once the check has a result (confirming it if it failed, and saying so), walking after the still period.
    Prints every state change and placement problem as it happens."""

    def __init__(self) -> None:
        self.n_events = 0

    def on_update(self, session: Any, update: Any) -> None:
        from capture_app.core.session.state import SessionState as S

        self.n_events += len(update.new_events)
        facts = session.machine.facts
        if update.placement_verdicts is not None:
            for v in update.placement_verdicts:
                if v.level.value != "ok":
                    print(f"      {update.end_s:6.2f} s  placement {v.level.value}: {v.message}", flush=True)
        if session.state is S.CONNECTED and update.end_s > 0.5:
            session.request(S.PLACEMENT_CHECK, "demo: check the placement")
        elif session.state is S.PLACEMENT_CHECK and facts.placement_level is not None:
            if facts.placement_level.value == "fail":
                session.override_placement("The demo goes on despite the placement check.")
            session.request(S.STILL, "demo: stand still")
        elif session.state is S.STILL and facts.still_s >= facts.min_still_s:
            session.request(S.WALKING, "demo: walk")

    @staticmethod
    def on_transition(transition: Any) -> None:
        when = "" if transition.time_s is None else f"{transition.time_s:6.2f} s  "
        print(f"      {when}{transition.previous.words} → {transition.state.words}", flush=True)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from capture_app.core.session.recorder import PatientInfo, WalkProtocol
    from capture_app.core.session.runner import run_session
    from capture_app.core.session.store import SessionStore
    from capture_app.core.session.walk_test import WalkTestSession
    from capture_app.link.errors import LinkError
    from capture_app.link.patients import PatientList
    from sensor_drivers.errors import SensorDriverError
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.recording.stats import inspect_clip
    from stridetwin.cli import CliError
    from stridetwin.commands.inspect import format_text
    from stridetwin.commands.record import save_truth
    from stridetwin.demo_link import run_link_stage

    store = SessionStore(Path(args.out))
    store.ensure()
    for notice in store.recover_unfinished():
        print(f"note: {notice.message}")
    try:
        from sensor_drivers.drivers.registry import build_driver

        driver = build_driver(args.source)
    except (SensorDriverError, ValueError) as exc:
        raise CliError(str(exc)) from None
    meta = driver.clip_metadata()
    patient = meta.get("patient") or {}
    walkway_m = (meta.get("protocol") or {}).get("walkway_length_m") or 20.0
    app_dir = store.directory / "app"
    patients = PatientList(app_dir / "patients.sqlite3")
    person = patients.pseudonym_for(VIRTUAL_PATIENT_NAME, VIRTUAL_PATIENT_BIRTH_DATE)
    print(f"patient list (this device only, {patients.path}): {person.name}, born {person.birth_date} → "
          f"pseudonym {person.pseudonym}; clips and uploads carry only the pseudonym")  # fmt: skip
    session = WalkTestSession(
        PatientInfo(person.pseudonym, patient.get("height_m"), patient.get("mass_kg"), patient.get("affected_side")),
        WalkProtocol(walkway_m), store, extra_metadata={"recording": {"source": args.source}},
    )  # fmt: skip
    therapist = ScriptedTherapist()
    session.subscribe(therapist.on_transition)

    print(f"[1/5] live walk-test session on {args.source}, recording into {store.directory} (real time; Ctrl-C "
          "stops and keeps the clip)", flush=True)  # fmt: skip
    started = time.monotonic()
    try:
        asyncio.run(run_session(session, driver, on_update=therapist.on_update))
    except SensorDriverError as exc:
        raise CliError(str(exc)) from None
    clip_path = session.clip_path_
    if clip_path is None:
        raise CliError("the session recorded nothing")
    print(f"      {therapist.n_events} provisional gait events live; {time.monotonic() - started:.1f} s; clip "
          f"{clip_path}")  # fmt: skip
    truth_note = save_truth(driver, clip_path)
    if truth_note:
        print(f"      {truth_note.strip()}")

    print("[2/5] inspection", flush=True)
    clip = read_clip(clip_path, allow_unfinished=True)
    print(format_text(inspect_clip(clip).to_json()))

    print("", flush=True)
    print(f"[3/5] offline analysis, written into the clip (full report: stridetwin analyze {clip_path})", flush=True)
    analysis = session.analysis_
    if analysis is None:  # the walk did not end normally: analyse what was recorded
        from capture_app.core.session.analysis import WalkAnalysis

        analysis = WalkAnalysis().analyze(clip)
    print(format_summary(analysis.to_json()))
    truth = _truth(clip_path)
    if truth is not None:
        print("")
        from sensor_drivers.recording.clipfile import read_clip
        from sensor_drivers.sim.clip_export import truth_to_clip_offset_s

        offset_s = truth_to_clip_offset_s(read_clip(clip_path).metadata)
        print(format_truth_check(analysis.to_json(), truth, offset_s))

    print("", flush=True)
    print("[4/5] the clip through the outbox to a trainer on loopback (de-identification check, resumable upload, "
          "SHA-256 confirmed)", flush=True)  # fmt: skip
    try:
        run_link_stage(clip_path, app_dir, store.directory, budget=args.budget, patients=patients,
                       say=lambda line: print(line, flush=True))  # fmt: skip
    except (LinkError, RuntimeError) as exc:
        raise CliError(f"link stage: {exc}") from None
    return 0


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_summary(doc: dict[str, Any]) -> str:
    """The analysis in a few lines: level and problems, key metrics, hip and knee ranges."""
    lines = [f"      overall: {doc['level'].upper()}"]
    for v in doc["verdicts"]:
        if v["level"] != "ok":
            lines.append(f"      {v['level'].upper():7s} {v['subject']}: {v['message']}")
    strides = doc["strides"]
    lines.append(f"      strides: {len(strides)} ({sum(1 for s in strides if s['steady'])} steady), "
                 f"speed category: {(doc.get('context') or {}).get('speed_category') or '-'}")  # fmt: skip
    for name in SUMMARY_METRICS:
        if name in doc["metrics"]:
            lines.append(f"      {name:32s} {doc['metrics'][name]:9.3f}")
        elif name in doc["missing"]:
            lines.append(f"      {name:32s}         - ({doc['missing'][name]['message']})")
    ranges = doc["joint_angles"]["ranges"]
    for name in SUMMARY_ANGLES:
        if name in ranges:
            r = ranges[name]
            lines.append(f"      {name:32s} {r['min_deg']:6.1f} to {r['max_deg']:5.1f} (range {r['range_deg']:.1f})")
    return "\n".join(lines)


def _truth(clip_path: Path) -> Any | None:
    """The ground truth saved beside a simulated clip (``None`` for real sensors)."""
    from sensor_drivers.sim.clip_export import truth_path_for
    from sensor_drivers.sim.truth import GroundTruth

    path = truth_path_for(clip_path)
    return GroundTruth.load(path) if path.exists() else None


def format_truth_check(doc: dict[str, Any], truth: Any, truth_to_clip_s: float = 0.0) -> str:
    """The analysis against the virtual patient's ground truth (speed, strides, cadence, contact timing): a check of
    the software on simulated data, not a clinical figure. ``truth_to_clip_s`` maps truth times onto the clip clock."""
    speed = doc["metrics"].get("gait_speed_m_s")
    cadence = doc["metrics"].get("cadence_steps_min")
    strides = doc["strides"]
    true_steady = sum(1 for s in truth.strides if s.steady)

    def error(found: float | None, true: float) -> str:
        return "-" if found is None or not true else f"{100 * (found / true - 1):+.1f} %"

    lines = [
        "      check against the simulation's truth (virtual patient, not a clinical result):",
        f"      {'':22s} {'analysis':>9s} {'truth':>9s} {'error':>9s}",
        f"      {'gait speed, m/s':22s} {_num(speed, '9.3f')} {truth.steady_speed_m_s:9.3f} "
        f"{error(speed, truth.steady_speed_m_s):>9s}",
        f"      {'cadence, steps/min':22s} {_num(cadence, '9.1f')} {truth.cadence_steps_per_min:9.1f} "
        f"{error(cadence, truth.cadence_steps_per_min):>9s}",
        f"      {'strides (all)':22s} {len(strides):9d} {len(truth.strides):9d} "
        f"{len(strides) - len(truth.strides):+9d}",
        f"      {'strides (steady)':22s} {sum(1 for s in strides if s['steady']):9d} {true_steady:9d}",
    ]
    errors_ms = _contact_errors_ms(strides, truth, truth_to_clip_s)
    if errors_ms:
        lines.append(
            f"      {'initial contacts':22s} {len(errors_ms):9d} matched to the truth within 0.3 s, "
            f"mean |error| {sum(abs(e) for e in errors_ms) / len(errors_ms):.0f} ms"
        )
    return "\n".join(lines)


def _contact_errors_ms(strides: list[dict[str, Any]], truth: Any, truth_to_clip_s: float) -> list[float]:
    """Signed error of each detected initial contact against the nearest true one of the same side (clip clock)."""
    true_ics = {side: [s.ic_s + truth_to_clip_s for s in truth.strides if s.side == side] for side in ("left", "right")}
    out = []
    for stride in strides:
        candidates = true_ics.get(stride["side"], [])
        if stride.get("ic_s") is None or not candidates:
            continue
        nearest = min(candidates, key=lambda t: abs(t - stride["ic_s"]))
        if abs(nearest - stride["ic_s"]) <= 0.3:
            out.append(1000.0 * (stride["ic_s"] - nearest))
    return out
