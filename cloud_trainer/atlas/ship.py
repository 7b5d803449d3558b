"""Shipping atlas weights from a run directory into the project: the weights, a compact training log, the evaluation,
and ``TRAINING.md`` (command, data, samples and wall-clock time, convergence, evaluation beside the reference atlas).
An atlas trained on the terrain mix is also walked on its courses (``courses.json``, a table in ``TRAINING.md``).

``stridetwin atlas ship --run DIR`` calls :func:`ship_atlas`; rerun it whenever a continuing run has improved.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

from cloud_trainer.atlas.evaluate import REFERENCE_ATLAS, evaluate_atlas
from cloud_trainer.atlas.references import atlas_references
from cloud_trainer.atlas.terrain import Course, evaluate_courses
from cloud_trainer.atlas.train import WEIGHTS_NAME
from cloud_trainer.atlas.weights import SHIPPED_WEIGHTS, load_atlas
from cloud_trainer.hashing import file_sha256
from cloud_trainer.learn.terrain_view import reads_terrain
from cloud_trainer.learn.train import LOG_NAME, read_log, summarize_log
from cloud_trainer.twin.model import build_twin
from cloud_trainer.twin.terrain import RUN_IN_M, RUN_IN_START_X_M

SUMMARY_NAME = "train_log_summary.csv"
EVAL_NAME = "eval.json"
COURSES_NAME = "courses.json"
NOTES_NAME = "TRAINING.md"
#: Free-text notes of a run (how it was launched, interruptions), copied into TRAINING.md when present.
RUN_NOTES_NAME = "NOTES.md"
#: Samples per row of the compact training log.
SUMMARY_EVERY_SAMPLES = 1_000_000
#: Columns of the compact log (all reward terms are kept in the CSV; these go in TRAINING.md).
TABLE_COLUMNS = (
    ("samples", "samples", "{:,.0f}"),
    ("wall_s", "wall h", None),
    ("samples_per_s", "samples/s", "{:,.0f}"),
    ("episode_return", "return", "{:.1f}"),
    ("episode_length_steps", "length (steps)", "{:.0f}"),
    ("imitation/joint_angles", "r joint angles", "{:.3f}"),
    ("goal/speed", "r speed", "{:.3f}"),
    ("goal/stride_length", "r stride", "{:.3f}"),
    ("termination/fall", "falls/step", "{:.4f}"),
)
#: The reference system (Dai et al. 2025, Results): its atlas took 230 M steps, ≈ 4 days 8 h on an RTX 3090, and
#: converged at about 180 M steps.
REFERENCE_TRAINING = {"samples": 230e6, "converged_samples": 180e6, "wall_h": 4 * 24 + 8}


def convergence(summary: list[dict], key: str = "episode_return", final_windows: int = 3) -> dict | None:
    """The first compact-log row from which ``key`` stays ≥ 90 % of its final level (mean of the last
    ``final_windows`` rows) and which itself reaches 95 % of it; None if the log is too short to say."""
    values = [row.get(key) for row in summary]
    if len(values) < final_windows + 2 or any(v is None for v in values[-final_windows:]):
        return None
    final = sum(values[-final_windows:]) / final_windows
    for i, row in enumerate(summary):
        if values[i] is not None and values[i] >= 0.95 * final and all(
            v is not None and v >= 0.9 * final for v in values[i:]
        ):
            return {"samples": row["samples"], "wall_s": row["wall_s"], "final_level": final, "key": key}
    return None


def ship_atlas(
    run_dir: Path, dest_dir: Path | None = None, *, eval_repeats: int = 4, course_repeats: int = 16
) -> dict:
    """Copy ``run_dir/atlas.pt`` into ``dest_dir`` (default: the shipped weights' folder) with the compact log, the
    evaluation (and, for a terrain-aware atlas, ``course_repeats`` walks of each course) and ``TRAINING.md``; returns
    the flat-ground evaluation document."""
    run_dir = Path(run_dir)
    dest_dir = Path(dest_dir) if dest_dir is not None else SHIPPED_WEIGHTS.parent
    dest_dir.mkdir(parents=True, exist_ok=True)
    atlas = load_atlas(run_dir / WEIGHTS_NAME)  # refuses a damaged file before anything is replaced
    weights = dest_dir / WEIGHTS_NAME
    tmp = weights.with_name(f".{WEIGHTS_NAME}.tmp")
    shutil.copyfile(run_dir / WEIGHTS_NAME, tmp)
    os.replace(tmp, weights)
    atlas = load_atlas(weights)

    rows = [r for r in read_log(run_dir / LOG_NAME) if r["update"] <= atlas.manifest["training"]["updates"]]
    summary = summarize_log(rows, SUMMARY_EVERY_SAMPLES)
    with open(dest_dir / SUMMARY_NAME, "w", newline="") as f:
        keys = list(dict.fromkeys(k for row in summary for k in row))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for row in summary:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in keys})

    references = atlas_references(build_twin().model)
    doc = evaluate_atlas(atlas, references, n_repeats=eval_repeats)
    if dest_dir.resolve() == SHIPPED_WEIGHTS.parent:
        doc["weights"] = f"cloud_trainer/atlas/weights/{WEIGHTS_NAME}"  # not this machine's absolute path
    (dest_dir / EVAL_NAME).write_text(json.dumps(doc, indent=2) + "\n")
    courses = None
    (dest_dir / COURSES_NAME).unlink(missing_ok=True)  # a flat atlas shipped over a terrain-aware one has none
    if reads_terrain(atlas.manifest):
        courses = evaluate_courses(atlas, references, n_per_course=course_repeats)
        (dest_dir / COURSES_NAME).write_text(json.dumps(courses, indent=2) + "\n")
    run_notes = run_dir / RUN_NOTES_NAME
    extra = run_notes.read_text() if run_notes.exists() else ""
    (dest_dir / NOTES_NAME).write_text(_notes(atlas, summary, doc, weights, extra, courses))
    return doc


def _notes(atlas, summary: list[dict], doc: dict, weights: Path, extra: str, courses: dict | None) -> str:
    m, t = atlas.manifest, atlas.manifest["training"]
    conv = convergence(summary)
    s, ref = doc["summary"], REFERENCE_ATLAS
    peak_mb = max((row["peak_rss_mb"] for row in summary), default=0.0)
    lines = [
        "# The shipped Healthy Motion Atlas",
        "",
        "Written by `stridetwin atlas ship` (`cloud_trainer/atlas/ship.py`) from the training run; see "
        "`docs/atlas.md` for the task, the weights format and the evaluation.",
        "",
        f"- weights: `{weights.name}` (SHA-256 `{file_sha256(weights)}`, {weights.stat().st_size / 1e6:.1f} MB): "
        f"policy {'×'.join(map(str, atlas.ppo_args.policy_hidden))}, value "
        f"{'×'.join(map(str, atlas.ppo_args.value_hidden))}, observation normaliser",
        f"- command: `{m.get('command') or 'stridetwin atlas train'}`",
        f"- data: {len(m['references'])} typical clips of the healthy motion library "
        f"(`{m['data'].get('library', '?')}`, SHA-256 `{m['data'].get('library_sha256', '?')}`; sources and "
        "licenses in `cloud_trainer/motion/data/ATTRIBUTION.md`)",
        f"- body: {m['anthropometry']['height_m']} m, {m['anthropometry']['mass_kg']} kg, {m['anthropometry']['sex']}",
        *_terrain_lines(m),
        f"- training: {t['samples']:,} samples in {t['updates']:,} updates, {t['wall_s'] / 3600:.2f} h of wall-clock "
        f"time ({t['invocations']} invocation(s)), {t['episodes']:,} episodes, on the 2-core development machine "
        f"shared with other jobs (no GPU); peak memory {peak_mb:.0f} MiB",
    ]
    if conv is not None:
        lines.append(
            f"- convergence (episode return first within 5 % of its final level {conv['final_level']:.1f} and never "
            f"again below 90 %): {conv['samples']:,} samples, {conv['wall_s'] / 3600:.2f} h"
        )
    lines += [
        f"- the reference system: {REFERENCE_TRAINING['samples'] / 1e6:.0f} M steps, "
        f"{REFERENCE_TRAINING['wall_h'] / 24:.1f} days on an RTX 3090, converged at about "
        f"{REFERENCE_TRAINING['converged_samples'] / 1e6:.0f} M steps (Dai et al. 2025, Results)",
        "",
        *([extra.rstrip(), ""] if extra.strip() else []),
        "## Evaluation",
        "",
        f"`stridetwin atlas eval --json` ({doc['n_goals']} goals × {doc['n_repeats']} episodes of "
        f"{doc['episode_duration_s']:g} s, deterministic policy, flat ground; full document in `eval.json`):",
        "",
        "| metric | this atlas | reference atlas |",
        "|---|---|---|",
        f"| mean single-axis joint-angle error, deg | {s['joint_angle_error_deg']} | {ref['joint_angle_error_deg']} |",
        f"| — hips and knees only, deg | {s['joint_angle_error_hips_knees_deg']} | |",
        f"| centre-of-mass error, cm | {s['com_error_cm']} | {ref['com_error_cm']} |",
        f"| limb-end error, cm | {s['limb_end_error_cm']} | {ref['limb_end_error_cm']} |",
        f"| speed error, m/s | {s['speed_error_m_s']} | |",
        f"| stride-length error, m | {s['stride_length_error_m']} | |",
        f"| fall rate | {s['fall_rate']} | |",
        f"| mean episode length, s | {s['episode_length_s']} | |",
        "",
        "| goal m/s | goal m | achieved m/s | achieved m | joint deg | CoM cm | ends cm | falls |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in doc["goals"]:
        cells = [g["speed_m_s"], g["stride_length_m"], g["speed_achieved_m_s"], g["stride_length_achieved_m"],
                 g["joint_angle_error_deg"], g["com_error_cm"], g["limb_end_error_cm"], g["fall_rate"]]  # fmt: skip
        lines.append("| " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    lines += _course_lines(courses)
    lines += [
        "",
        "## Training log (compact)",
        "",
        f"Means over windows of {SUMMARY_EVERY_SAMPLES:,} samples from `train_log.jsonl` (all columns, every reward "
        f"term included, in `{SUMMARY_NAME}`); `r …` are reward terms in [0, 1].",
        "",
        "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    step = max(1, len(summary) // 25)
    shown = summary[::step] + ([summary[-1]] if summary and (len(summary) - 1) % step else [])
    for row in shown:
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            value = row.get(key)
            if value is None:
                cells.append("-")
            elif key == "wall_s":
                cells.append(f"{value / 3600:.2f}")
            else:
                cells.append(fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Refreshing these weights",
        "",
        "Continue the run (`stridetwin atlas train --out RUN --resume --budget-samples N`), then "
        "`stridetwin atlas ship --run RUN` rewrites this folder: weights, `train_log_summary.csv`, `eval.json` and "
        "this file.",
    ]
    return "\n".join(lines) + "\n"


def _terrain_lines(manifest: dict) -> list[str]:
    """The courses of a terrain-aware atlas's training and the weights it started from."""
    lines = []
    if manifest.get("terrain_mix"):
        courses = [Course(**c) for c in manifest["terrain_mix"]]
        mix = ", ".join(f"{course.name} {100 * course.share:g} %" for course in courses)
        lines.append(f"- courses (share of the simulations): {mix}")
    if manifest.get("initialised_from"):
        init = manifest["initialised_from"]
        lines.append(f"- started from: `{init['file']}` (SHA-256 `{init['sha256']}`)")
    return lines


def _course_lines(courses: dict | None) -> list[str]:
    """The course walks of a terrain-aware atlas as a table; none for a flat atlas."""
    if courses is None:
        return []
    lines = [
        "",
        f"`stridetwin atlas eval --courses --repeats {courses['n_per_course']}` ({courses['n_per_course']} walks of "
        f"{courses['duration_s']:g} s per course, deterministic policy, starting {RUN_IN_M - RUN_IN_START_X_M[1]:g}-"
        f"{RUN_IN_M - RUN_IN_START_X_M[0]:g} m before the ramp or the stairs; full document in `{COURSES_NAME}`):",
        "",
        "| course | walks that fell | walks that reached the top | mean distance walked, m |",
        "|---|---|---|---|",
    ]
    for c in courses["courses"]:
        top = "-" if c["reached_top"] is None else f"{c['reached_top']:.0%}"
        lines.append(f"| {c['course']} | {c['fell']:.0%} | {top} | {c['distance_m']:.1f} |")
    return lines
