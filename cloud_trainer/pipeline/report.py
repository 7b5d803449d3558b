"""The patient report: ``report.json`` (schema ``stridetwin.report/1``) and a self-contained HTML page for therapists.

```python
report = build_report(patient=patient, level_ground=flat_doc, tasks={"slope": [doc, …], "stairs": [...]},
                      onnx={"slope": manifest, …}, artifacts=[…], run={…})
write_report_json(report, out_dir / "report.json")
write_report_html(report, out_dir / "report.html")
```

The report states what the model predicts at each level (reached, falls, trunk sway, posture similarity, compensation
indicators, push robustness), highlights where a value crosses a threshold (every threshold with its rule and
source, :data:`THRESHOLDS`), charts the activation proxies over the gait cycle, and says plainly that it is decision
support, not a prescription (Dai et al. 2025, "Clinician Use of Simulated Rehabilitation Videos": the system "does
not generate explicit prescriptions or safe/unsafe labels"). Highlights therefore name what changed and by how much,
never "safe" or "unsafe". Schema: docs/patient-outputs.md, "report.json".
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cloud_trainer.atomic_files import write_text_atomic

REPORT_SCHEMA = "stridetwin.report/1"
TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.html"

DECISION_SUPPORT = (
    "Decision support, not a prescription. These predictions come from a physics simulation of this patient built "
    "from one level-ground walk; they have not been checked against the patient's own walking on ramps or stairs. "
    "Task selection, difficulty and progression remain the treating clinician's decision, taking into account what "
    "the model does not know: fatigue, pain, comorbidities, motivation, cognition and the safety of the setting."
)

MCGINLEY_2009 = (
    "McGinley JL, Baker R, Wolfe R, Morris ME. The reliability of three-dimensional kinematic gait measurements: a "
    "systematic review. Gait Posture 2009;29:360-369 (errors of 2-5° are reasonable; above 5° they should raise "
    "concern): a change smaller than 5° is within what repeated gait analyses of one person differ by. A StrideTwin "
    "default, not a validated clinical cut-off."
)


@dataclass(frozen=True)
class Threshold:
    """When a value is highlighted, and why that value."""

    key: str
    label: str
    rule: str
    value: float
    source: str


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(
        "falls", "Falls", "at least one predicted episode ends in a fall", 1,
        "The prediction itself: the simulation's fall (a body part other than a foot touches the ground, or the "
        "pelvis drops below 60 % of its standing height; docs/environments.md).",
    ),
    Threshold(
        "not_reached", "Top not reached", "a predicted walk neither falls nor reaches the top within its time limit",
        1, "The prediction itself (top: the pelvis 0.5 m onto the landing; time limit: twice what the patient's speed "
        "needs, plus 2 s).",
    ),
    Threshold(
        "trunk_sway", "Trunk lateral sway", "peak-to-peak sway at least 5° above the patient's level-ground "
        "prediction", 5.0,
        MCGINLEY_2009 + " For scale, Dai et al. 2025 show 56.1° of lateral trunk sway on 15 cm stairs as their "
        "example of a level beyond a patient's current safety boundary.",
    ),
    Threshold(
        "knee_range", "Paretic knee flexion range", "at least 5° smaller than on level ground", 5.0, MCGINLEY_2009,
    ),
    Threshold(
        "circumduction", "Circumduction (hip abduction in swing)", "at least 5° more than on level ground", 5.0,
        MCGINLEY_2009,
    ),
    Threshold(
        "pelvic_hike", "Pelvic hike (obliquity in paretic swing)", "at least 5° more than on level ground", 5.0,
        MCGINLEY_2009,
    ),
    Threshold(
        "asymmetry", "Swing-time asymmetry", "swing time ratio (longer / shorter side) above 1.06", 1.06,
        "Patterson KK et al. Gait asymmetry in community-ambulating stroke survivors. Arch Phys Med Rehabil "
        "2008;89:304-310 (above the healthy range; also docs/gait-metrics.md).",
    ),
)  # fmt: skip


def build_report(
    *,
    patient: Mapping,
    level_ground: Mapping | None,
    tasks: Mapping[str, Sequence[Mapping]],
    onnx: Mapping[str, Mapping] | None = None,
    onnx_paths: Mapping[str, str] | None = None,
    training: Mapping[str, Mapping] | None = None,
    artifacts: Sequence[Mapping] = (),
    run: Mapping | None = None,
    notes: Sequence[str] = (),
    thresholds: Sequence[Threshold] = THRESHOLDS,
) -> dict:
    """The report document.

    Args:
        patient: ``pseudonym``, ``height_m``, ``mass_kg``, ``sex``, ``affected_side`` and the observed level-ground
            ``speed_m_s`` and ``stride_length_m``.
        level_ground: the level document of the patient's policy on flat ground (``walk``), the baseline the
            highlights compare with; None: each task's level 1 (also flat) is the baseline.
        tasks: task → its level documents (:attr:`LevelEvaluation.document`), each may carry ``artifacts``
            (``angles_csv``, ``video`` paths relative to the report).
        onnx: task → the ONNX manifest (file, checksum, parity figures are copied into the report).
        onnx_paths: task → the ONNX file's path relative to the report (default: the manifest's file name).
        training: task → what the pipeline reports of its training (curriculum levels mastered, samples, time).
        artifacts: every file of the run (kind, path, task, level, sha256, size_bytes).
        run: the pipeline's own record (budget, method, seed, input, stage times).
        notes: anything the reader should know about this run (e.g. videos that could not be rendered).
        thresholds: the highlight rules.
    """
    rules = {t.key: t for t in thresholds}
    task_docs = {}
    for task, levels in tasks.items():
        baseline = level_ground or next((lv for lv in levels if lv.get("level") == 1), None)
        level_docs = [dict(lv) | {"highlights": highlights(lv, baseline, rules)} for lv in levels]
        manifest = (onnx or {}).get(task)
        task_docs[task] = {
            "levels": level_docs,
            "summary": task_summary(level_docs),
            "onnx": _onnx_summary(manifest, (onnx_paths or {}).get(task)) if manifest else None,
            "training": dict((training or {}).get(task, {})),
        }
    ground = None
    if level_ground is not None:  # absolute thresholds only: it is the baseline of the others
        ground = dict(level_ground) | {"highlights": highlights(level_ground, None, rules)}
    return {
        "schema": REPORT_SCHEMA,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "decision_support": DECISION_SUPPORT,
        "patient": dict(patient),
        "level_ground": ground,
        "tasks": task_docs,
        "thresholds": [asdict(t) for t in thresholds],
        "artifacts": [dict(a) for a in artifacts],
        "run": dict(run or {}),
        "notes": list(notes),
    }


def highlights(level: Mapping, baseline: Mapping | None, rules: Mapping[str, Threshold]) -> list[dict]:
    """Which thresholds a level crosses, each with the values compared and a sentence for the reader."""
    out = []

    def add(key: str, value, reference, text: str) -> None:
        if key in rules:
            out.append({"key": key, "label": rules[key].label, "value": value, "baseline": reference, "text": text})

    falls, n = level["falls"]["n"], level["n_episodes"]
    if "falls" in rules and falls >= rules["falls"].value:
        add("falls", falls, None, f"{falls} of {n} predicted walks fell ({level['falls']['summary']})")
    stopped = n - level["reached"]["n"] - falls  # walks that neither fell nor reached the top in the time limit
    if "not_reached" in rules and stopped >= rules["not_reached"].value:
        add("not_reached", level["reached"]["n"], n, f"{stopped} of {n} predicted walks did not reach the top in time")
    ratio = level["compensation"]["swing_time_ratio"]
    # judged as shown (two decimals): a ratio printed 1.06 is not above 1.06
    if "asymmetry" in rules and ratio is not None and round(ratio, 2) > rules["asymmetry"].value:
        before = baseline["compensation"]["swing_time_ratio"] if baseline else None
        text = f"swing time ratio {ratio:.2f}" + (f" (level ground {before:.2f})" if before is not None else "")
        add("asymmetry", ratio, before, text)
    if baseline is None:
        return out
    sway, sway0 = level["trunk_sway"]["peak_to_peak_deg"], baseline["trunk_sway"]["peak_to_peak_deg"]
    if "trunk_sway" in rules and _above(sway, sway0, rules["trunk_sway"].value):
        add("trunk_sway", sway, sway0, f"trunk sway {sway:.1f}° vs {sway0:.1f}° on level ground (+{sway - sway0:.1f}°)")
    comp, comp0 = level["compensation"], baseline["compensation"]
    sides = [comp["paretic_side"]] if comp["paretic_side"] else ["left", "right"]
    for side in sides:
        now, before = comp["sides"][side], comp0["sides"][side]
        word = f"{side} " if len(sides) > 1 or not comp["paretic_side"] else "paretic "
        a, b = now["knee_flexion_range_deg"], before["knee_flexion_range_deg"]
        if "knee_range" in rules and _above(b, a, rules["knee_range"].value):
            add("knee_range", a, b, f"{word}knee flexion range {a:.0f}° vs {b:.0f}° on level ground (−{b - a:.0f}°)")
        a, b = now["swing_hip_abduction_deg"], before["swing_hip_abduction_deg"]
        if "circumduction" in rules and _above(a, b, rules["circumduction"].value):
            add("circumduction", a, b, f"{word}hip abduction in swing {a:.0f}° vs {b:.0f}° (+{a - b:.0f}°)")
        a, b = now["pelvic_hike_deg"], before["pelvic_hike_deg"]
        if "pelvic_hike" in rules and _above(a, b, rules["pelvic_hike"].value):
            add("pelvic_hike", a, b, f"pelvic hike in {word}swing {a:.1f}° vs {b:.1f}° (+{a - b:.1f}°)")
    return out


def task_summary(levels: Sequence[Mapping]) -> dict:
    """Per task: the highest level every predicted walk reached the top of, the first level with a fall, and the
    first level with any highlight."""
    all_reached = [lv["level"] for lv in levels if lv["reached"]["rate"] == 1.0]
    highest = 0
    for lv in sorted(levels, key=lambda d: d["level"]):
        if lv["level"] in all_reached and lv["level"] == highest + 1:
            highest = lv["level"]
    falls = [lv["level"] for lv in levels if lv["falls"]["n"] > 0]
    flagged = [lv["level"] for lv in levels if lv.get("highlights")]
    return {
        "highest_level_all_reached": highest or None,
        "first_level_with_falls": min(falls) if falls else None,
        "first_level_with_highlights": min(flagged) if flagged else None,
    }


def write_report_json(report: Mapping, path: Path) -> None:
    """``report.json``, written atomically."""
    write_text_atomic(Path(path), json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_report_html(report: Mapping, path: Path) -> None:
    """The therapist's page: self-contained (inline CSS and SVG charts), links to the videos and files beside it."""
    from cloud_trainer.pipeline.report_html import render_body

    template = string.Template(TEMPLATE.read_text(encoding="utf-8"))
    patient = report["patient"]
    page = template.substitute(
        title=html.escape(f"StrideTwin prediction — {patient.get('pseudonym') or 'patient'}"),
        body=render_body(report),
    )
    write_text_atomic(Path(path), page)


def _above(value: float | None, reference: float | None, margin: float) -> bool:
    return value is not None and reference is not None and value - reference >= margin


def _onnx_summary(manifest: Mapping, path: str | None) -> dict:
    verification = manifest.get("verification", {})
    path = path or manifest.get("onnx_file", "")
    return {
        "file": path,
        "manifest": Path(path).with_suffix(".json").as_posix(),
        "sha256": manifest.get("sha256"),
        "level": manifest.get("level"),
        "max_abs_diff": max(verification.get("max_abs_diff_random", 0.0), verification.get("max_abs_diff_real", 0.0)),
        "verified": verification.get("passed"),
    }
