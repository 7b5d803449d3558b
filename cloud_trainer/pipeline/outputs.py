"""The EXPORT stage of the patient pipeline: evaluate every task level, write the angle CSVs, the ONNX policies, the
videos and the report, and list them as artifacts.

```python
result = export_outputs(
    out_dir,
    patient=PatientInfo("P-0042", Anthropometry(1.68, 64.0, "female"), "left", speed_m_s=0.71, stride_length_m=0.80),
    references=[patient_reference],
    level_ground_policy=adapted_ppo,                  # the patient's policy on flat ground (stage 2)
    tasks=[TaskOutput("slope", slope_ppo, training={...}), TaskOutput("stairs", stairs_ppo)],
    options=ExportOptions.for_budget("quick"),
    run={"budget": "quick", "method": "hybrid", "seed": 0},
    on_progress=callback,                              # ProgressEvent(stage=EXPORT, task, level, ...)
)
result.report, result.artifacts                        # the report document, api.Artifact list
```

Files (relative to ``out_dir``, docs/patient-outputs.md "Files"): ``report.json``, ``report.html``,
``policies/policy_<task>.onnx`` + ``.json`` (manifest), ``angles/angles_<task>_<level>.csv`` and
``angles/angles_level_ground.csv``, ``videos/video_<task>_<level>.mp4`` and ``videos/video_level_ground.mp4``.
A part that fails (videos without any OpenGL backend, an ONNX export that fails verification) is named in the
report's ``notes`` and the rest is still written: nothing already computed is lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.errors import TrainerError
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.pipeline.api import Artifact, ProgressEvent, Stage
from cloud_trainer.pipeline.evaluate import EvalProtocol, LevelEvaluation, evaluate_level
from cloud_trainer.pipeline.onnx_export import OnnxExportError, export_onnx
from cloud_trainer.pipeline.push import PushProtocol
from cloud_trainer.pipeline.report import build_report, write_report_html, write_report_json
from cloud_trainer.pipeline.rollout import EvalSetting, PolicyLike
from cloud_trainer.pipeline.video import VideoError, VideoJob, VideoOptions, render_videos
from cloud_trainer.twin.anthropometry import Anthropometry

LEVELS = (1, 2, 3, 4, 5)


class ExportCancelled(TrainerError):  # noqa: N818 (a cancellation, not an error of the input)
    """The export was asked to stop (its cancel event was set) between two levels."""


@dataclass(frozen=True)
class PatientInfo:
    """Who the report is about (a pseudonym, never a name) and the level-ground gait measured at the bedside."""

    pseudonym: str | None
    anthropometry: Anthropometry
    #: "left", "right", or None (none or both).
    affected_side: str | None
    speed_m_s: float
    stride_length_m: float


@dataclass(frozen=True)
class TaskOutput:
    """One task's trained policies, as the prediction stage leaves them."""

    task: str
    #: The task's final policy: exported as ONNX, and evaluated at every level without its own policy below.
    policy: PolicyLike
    levels: tuple[int, ...] = LEVELS
    #: Level → the policy to evaluate there (e.g. the one that mastered it in the curriculum); default ``policy``.
    level_policies: Mapping[int, PolicyLike] = field(default_factory=dict)
    #: Level → the task configuration trained with (terrain cue switched off etc.); default the task's own.
    configs: Mapping[int, LocomotionConfig] = field(default_factory=dict)
    #: (speed m/s, stride m) to walk at; None: the patient's, clipped into the task's goal ranges.
    goal: tuple[float, float] | None = None
    #: The curriculum level the final policy was trained up to (named in the ONNX manifest); default the highest.
    trained_level: int | None = None
    #: What the report shows about training (levels mastered, samples, minutes, ...), JSON-ready.
    training: Mapping = field(default_factory=dict)
    #: The motions the task imitated (e.g. the stairs' stride-adapted reference); empty: ``export_outputs``'s.
    references: Sequence[ReferenceMotion] = ()


@dataclass(frozen=True)
class ExportOptions:
    """How much evaluation, which push test and which videos; :meth:`for_budget` gives the pipeline's presets."""

    n_episodes: int = 4
    #: Time limit per evaluation episode, s; None: from the course and the goal speed.
    duration_s: float | None = None
    push: PushProtocol | None = field(default_factory=PushProtocol)
    #: None: no videos.
    videos: VideoOptions | None = field(default_factory=VideoOptions)
    n_onnx_random: int = 512
    n_threads: int = 2

    @classmethod
    def for_budget(cls, budget: str) -> ExportOptions:
        """``smoke`` (every artifact, tiny: results not meaningful), ``quick``, ``full``.

        Raises:
            ValueError: another budget name.
        """
        if budget == "smoke":
            return cls(
                n_episodes=2, duration_s=3.0, push=None, n_onnx_random=64,
                videos=VideoOptions(width=160, height=120, fps=10.0, max_duration_s=1.5),
            )  # fmt: skip
        if budget == "quick":
            return cls(
                n_episodes=4, push=PushProtocol(n_per_round=5, n_rounds=2),
                videos=VideoOptions(width=320, height=240, fps=30.0, max_duration_s=10.0),
            )  # fmt: skip
        if budget == "full":
            return cls(n_episodes=8, push=PushProtocol(), videos=VideoOptions(max_duration_s=30.0))
        raise ValueError(f"budget {budget!r}: accepted smoke, quick, full")


@dataclass
class ExportResult:
    report: dict
    artifacts: list[Artifact]
    #: Wall-clock seconds per part: evaluation, onnx, videos, report.
    timing_s: dict[str, float]
    evaluations: dict[str, LevelEvaluation]


def export_outputs(
    out_dir: Path,
    *,
    patient: PatientInfo,
    references: Sequence[ReferenceMotion],
    level_ground_policy: PolicyLike | None,
    tasks: Sequence[TaskOutput],
    options: ExportOptions | None = None,
    run: Mapping | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    cancel: threading.Event | None = None,
) -> ExportResult:
    """Evaluate, export, render and report (see the module docstring).

    Raises:
        ExportCancelled: ``cancel`` was set (checked between levels).
    """
    options = options or ExportOptions()
    out_dir = Path(out_dir)
    for sub in ("policies", "angles", "videos"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timing = {"evaluation": 0.0, "onnx": 0.0, "videos": 0.0, "report": 0.0}
    notes: list[str] = []
    references = tuple(references)
    protocol = EvalProtocol(options.n_episodes, options.duration_s, options.push, options.n_threads)
    # progress counts work items: levels evaluated, policies exported, videos rendered, the report
    n_levels = sum(len(t.levels) for t in tasks) + (level_ground_policy is not None)
    n_items = n_levels + len(tasks) + (n_levels if options.videos is not None else 0) + 1
    done = 0

    def progress(message: str, task: str | None = None, level: int | None = None) -> None:
        if cancel is not None and cancel.is_set():
            raise ExportCancelled("export cancelled")
        if on_progress is not None:
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (n_items - done) if done else None
            on_progress(ProgressEvent(Stage.EXPORT, message, task, level, done, n_items, elapsed, eta))

    evaluations: dict[str, LevelEvaluation] = {}
    keys: dict[str, tuple[str | None, int | None]] = {}
    t0 = time.perf_counter()
    if level_ground_policy is not None:
        progress("evaluating level ground")
        setting = EvalSetting(
            "walk", None, references, patient.anthropometry, patient.affected_side,
            goal=(patient.speed_m_s, patient.stride_length_m),
        )  # fmt: skip
        evaluations["level_ground"] = evaluate_level(level_ground_policy, setting, protocol)
        keys["level_ground"] = (None, None)
        done += 1
    for task in tasks:
        for level in task.levels:
            progress(f"evaluating {task.task} level {level}", task.task, level)
            setting = _task_setting(task, level, references, patient)
            name = f"{task.task}_{level}"
            evaluations[name] = evaluate_level(task.level_policies.get(level, task.policy), setting, protocol)
            keys[name] = (task.task, level)
            done += 1
    timing["evaluation"] = time.perf_counter() - t0

    artifacts: list[Artifact] = []
    level_files: dict[str, dict[str, str]] = {name: {} for name in evaluations}
    for name, evaluation in evaluations.items():
        path = out_dir / "angles" / f"angles_{name}.csv"
        evaluation.write_angles_csv(path)
        level_files[name]["angles_csv"] = path.relative_to(out_dir).as_posix()
        artifacts.append(_artifact(out_dir, path, "angles_csv", *keys[name]))

    t0 = time.perf_counter()
    manifests = {}
    for task in tasks:
        progress(f"exporting the {task.task} policy to ONNX", task.task)
        level = task.trained_level or max(task.levels)
        evaluation = evaluations.get(f"{task.task}_{level}")
        setting = evaluation.setting if evaluation else _task_setting(task, level, references, patient)
        real_obs = None
        if evaluation is not None and evaluation.record.obs is not None:
            real_obs = evaluation.record.obs[evaluation.record.alive]
        path = out_dir / "policies" / f"policy_{task.task}.onnx"
        try:
            export = export_onnx(
                task.policy, path, setting, real_obs=real_obs, n_random=options.n_onnx_random,
                provenance={"training": dict(task.training), "run": dict(run or {})},
            )  # fmt: skip
        except (OnnxExportError, TypeError) as exc:
            notes.append(f"The {task.task} policy was not exported to ONNX: {exc}")
            continue
        finally:
            done += 1
        manifests[task.task] = export.manifest
        artifacts.append(_artifact(out_dir, export.onnx_path, "onnx", task.task, level))
        artifacts.append(_artifact(out_dir, export.manifest_path, "manifest", task.task, level))
    timing["onnx"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    video_results = []
    if options.videos is not None:
        progress("rendering videos")
        jobs = [_video_job(out_dir, name, evaluation, patient) for name, evaluation in evaluations.items()]

        def on_video(result) -> None:
            nonlocal done
            done += 1
            progress(f"rendered {result.path.name}")

        try:
            video_results = render_videos(jobs, options.videos, on_video)
        except VideoError as exc:
            notes.append(f"No videos: {exc}")
        for name, result in zip(evaluations, video_results, strict=False):
            level_files[name]["video"] = result.path.relative_to(out_dir.resolve()).as_posix()
            artifacts.append(_artifact(out_dir, out_dir / level_files[name]["video"], "video", *keys[name]))
    timing["videos"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("writing the report")
    documents = {
        name: evaluation.document | {"artifacts": level_files[name]} for name, evaluation in evaluations.items()
    }
    figures = {
        "timing_s": {k: round(v, 2) for k, v in timing.items()},
        "videos": [
            {"path": r.path.name, "duration_s": r.duration_s, "render_s": r.render_s, "encode_s": r.encode_s,
             "render_s_per_video_s": round(r.render_s_per_video_s, 3), "backend": r.backend, "codec": r.codec}
            for r in video_results
        ],
    }  # fmt: skip
    report = build_report(
        patient={
            "pseudonym": patient.pseudonym, **dataclasses.asdict(patient.anthropometry),
            "affected_side": patient.affected_side, "speed_m_s": patient.speed_m_s,
            "stride_length_m": patient.stride_length_m,
        },
        level_ground=documents.get("level_ground"),
        tasks={t.task: [documents[f"{t.task}_{lv}"] for lv in t.levels] for t in tasks},
        onnx=manifests,
        onnx_paths={task: f"policies/policy_{task}.onnx" for task in manifests},
        training={t.task: dict(t.training) for t in tasks},
        artifacts=[_artifact_json(a) for a in artifacts],
        run=dict(run or {}) | {"export": figures},
        notes=notes,
    )  # fmt: skip
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    write_report_json(report, json_path)
    write_report_html(report, html_path)
    timing["report"] = time.perf_counter() - t0
    artifacts.append(_artifact(out_dir, json_path, "report_json"))
    artifacts.append(_artifact(out_dir, html_path, "report_html"))
    return ExportResult(report, artifacts, timing, evaluations)


def video_caption(document: Mapping) -> tuple[str, tuple[str, ...]]:
    """Title and key-number lines burnt into a level's video."""
    label = "Level ground" if document["level"] is None else f"{document['task'].capitalize()} {document['level']}"
    title = f"{label}: {document['course']['text']}"
    n = document["n_episodes"]
    sway = document["trunk_sway"]["peak_to_peak_deg"]
    sim = (document.get("posture_similarity") or {}).get("similarity_pct")
    lines = [f"reached {document['reached']['n']}/{n} - falls {document['falls']['n']}/{n}"]
    lines.append(
        "trunk sway " + ("-" if sway is None else f"{sway:.1f} deg")
        + " - posture " + ("-" if sim is None else f"{sim:.0f} %")
    )  # fmt: skip
    push = document.get("push_robustness")
    if push:
        fwd, lat = push.get("forward_n"), push.get("lateral_n")
        if fwd is None and lat is None:
            lines.append("push test: fell before the push point")
        else:
            lines.append(f"push survived {_n(fwd)} N fwd / {_n(lat)} N side")
    return title, tuple(lines)


def _task_setting(
    task: TaskOutput, level: int, references: Sequence[ReferenceMotion], patient: PatientInfo
) -> EvalSetting:
    """Where ``task``'s policy is evaluated at ``level``: its own reference motions (else the patient's), its goal
    and the configuration that level was trained with (if it is known)."""
    return EvalSetting(
        task.task, level, task.references or references, patient.anthropometry, patient.affected_side, task.goal,
        task.configs.get(level),
    )  # fmt: skip


def _video_job(out_dir: Path, name: str, evaluation: LevelEvaluation, patient: PatientInfo) -> VideoJob:
    record = evaluation.record
    i = evaluation.representative_episode
    rows = record.episode(i)
    title, lines = video_caption(evaluation.document)
    return VideoJob(
        path=out_dir / "videos" / f"video_{name}.mp4",
        terrain=evaluation.setting.terrain,
        qpos=record.qpos[rows, i],
        ghost_qpos=record.ghost_qpos[rows, i],
        anthropometry=patient.anthropometry,
        title=title,
        lines=lines,
        side_view_from=patient.affected_side or "right",
        dt_s=record.dt_s,
    )


def _n(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def _artifact(out_dir: Path, path: Path, kind: str, task: str | None = None, level: int | None = None) -> Artifact:
    data = Path(path).read_bytes()
    rel = Path(path).resolve().relative_to(Path(out_dir).resolve())
    return Artifact(kind, rel, task, level, hashlib.sha256(data).hexdigest(), len(data))


def _artifact_json(a: Artifact) -> dict:
    return {
        "kind": a.kind, "path": a.path.as_posix(), "task": a.task, "level": a.level, "sha256": a.sha256,
        "size_bytes": a.size_bytes,
    }  # fmt: skip
