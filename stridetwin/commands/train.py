"""``stridetwin train CLIP_OR_MOTION --tasks slope,stairs --budget smoke|quick|full [--method hybrid|physics-only]
--out DIR [--resume] [--atlas WEIGHTS]``: the patient pipeline (reference → atlas-to-patient adaptation → slope and
stair prediction → ONNX policies, videos, report) on this machine, with a progress display.

A clip without analysis sections (a raw recording, a virtual patient's clip) is analysed first (the capture core's
offline analysis, as ``stridetwin analyze``), and an analysed copy is written into DIR (``input.analysed.stclip``;
the original is not touched). Ctrl-C stops at the next checkpoint; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from cloud_trainer.hashing import file_sha256

#: The analysed copy of a clip without analysis sections, in the output directory, and its provenance record.
ANALYSED_NAME = "input.analysed.stclip"
ANALYSED_RECORD = "input.analysis.json"
#: Sections the pipeline reads from a clip.
NEEDED_SECTIONS = ("joint_angles", "events", "metrics")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="build the patient's twin and predict slope and stair walking (the patient pipeline)",
        description="From one walk (an analysed .stclip, a raw clip, or a motion file: BVH, OpenSim .mot, DeepMimic "
        "JSON) to a patient-specific twin: reference motion, atlas-to-patient adaptation, task prediction over five "
        "levels per task, ONNX policies, videos and a report in --out (docs/pipeline.md).",
    )
    parser.add_argument("input", metavar="CLIP_OR_MOTION", type=Path, help="clip (.stclip) or motion file")
    parser.add_argument("--tasks", default="slope,stairs", help="comma-separated tasks (default slope,stairs)")
    parser.add_argument("--budget", default="quick", help="smoke, quick or full (default quick; docs/pipeline.md)")
    parser.add_argument("--method", default="hybrid", help="hybrid (default) or physics-only (the baseline)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atlas", type=Path, metavar="WEIGHTS",
                        help="atlas weights to adapt (default: the shipped atlas; hybrid method only), e.g. a run's "
                             "atlas.pt from `stridetwin atlas train`")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result (report and artifacts) as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cloud_trainer.errors import TrainerError
    from cloud_trainer.pipeline.api import BUDGETS, METHODS, TASKS, PipelineRequest
    from cloud_trainer.pipeline.errors import PipelineCancelled
    from cloud_trainer.pipeline.run import STATE_NAME
    from cloud_trainer.pipeline.run import run as run_pipeline
    from stridetwin.cli import CliError

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise CliError(f"--tasks {args.tasks!r}: each must be one of {', '.join(TASKS)}")
    if args.budget not in BUDGETS:
        raise CliError(f"--budget {args.budget!r}: accepted {', '.join(BUDGETS)}")
    if args.method not in METHODS:
        raise CliError(f"--method {args.method!r}: accepted {', '.join(METHODS)}")
    if not args.input.is_file():
        raise CliError(f"{args.input}: no such file")
    if args.atlas is not None and args.method != "hybrid":
        raise CliError(f"--atlas {args.atlas}: only the hybrid method starts from an atlas")
    if args.atlas is not None and not args.atlas.is_file():
        raise CliError(f"--atlas {args.atlas}: no such file")
    out: Path = args.out
    if (out / STATE_NAME).exists() and not args.resume:
        raise CliError(f"{out} already holds a run; pass --resume to continue it or choose another directory")
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    log = sys.stderr if args.json else sys.stdout
    input_path = prepare_input(args.input, out, log)

    request = PipelineRequest(input_path, out, tasks, args.budget, args.method, args.seed, atlas_path=args.atlas)
    cancel = threading.Event()
    display = ProgressDisplay(log)

    def on_sigint(signum, frame) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        display.note("stopping at the next checkpoint (Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    started = time.monotonic()
    try:
        result = run_pipeline(request, display, cancel)
    except PipelineCancelled:
        display.close()
        atlas = f" --atlas {args.atlas}" if args.atlas is not None else ""
        print(f"stopped; continue with: stridetwin train {args.input} --out {out} --resume "
              f"--tasks {','.join(tasks)} --budget {args.budget} --method {args.method}{atlas}", file=log)  # fmt: skip
        return 130
    except (TrainerError, ValueError) as exc:
        display.close()
        raise CliError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    display.close()
    if args.json:
        json.dump(result_json(result), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(summary_text(result, time.monotonic() - started))
    return 0


def prepare_input(path: Path, out: Path, log: TextIO) -> Path:
    """The file the pipeline reads: ``path`` itself, or for a clip without analysis sections an analysed copy in
    ``out`` (made once; reused on resumption while the source is unchanged)."""
    from sensor_drivers.errors import RecordingFormatError
    from sensor_drivers.recording.clipfile import read_clip
    from stridetwin.cli import CliError

    if path.suffix.lower() != ".stclip":
        return path
    try:
        clip = read_clip(path)
    except RecordingFormatError as exc:
        raise CliError(str(exc)) from None
    if all(name in clip.sections for name in NEEDED_SECTIONS):
        return path
    copy, record = out / ANALYSED_NAME, out / ANALYSED_RECORD
    source_sha = file_sha256(path)
    if copy.exists() and record.exists():
        try:
            if json.loads(record.read_text()).get("source_sha256") == source_sha:
                print(f"using the analysed copy {copy} made earlier", file=log)
                return copy
        except (OSError, json.JSONDecodeError):
            pass
    print(f"{path} has no analysis sections ({', '.join(n for n in NEEDED_SECTIONS if n not in clip.sections)}); "
          "running the capture analysis first …", file=log, flush=True)  # fmt: skip
    analysis = write_analysed_copy(clip, copy)
    record.write_text(json.dumps({"source": str(path.resolve()), "source_sha256": source_sha,
                                  "level": analysis.level_.value, "copy": copy.name}, indent=1))  # fmt: skip
    metrics = analysis.metrics_
    speed = metrics.get("gait_speed_m_s")
    print(f"analysis: {analysis.level_.value}; {len(analysis.strides_)} strides"
          + (f", gait speed {speed:.2f} m/s" if speed else "") + f"; analysed copy: {copy}", file=log)  # fmt: skip
    return copy


def write_analysed_copy(clip: Any, path: Path):
    """Analyse ``clip`` (``WalkAnalysis``) and write it with the analysis sections to ``path`` (every sample, link
    event, section and the metadata kept). Returns the analysis."""
    import numpy as np

    from capture_app.core.session.analysis import WalkAnalysis
    from capture_app.core.session.recorder import write_analysis_sections
    from capture_app.core.session.sections import jsonable
    from sensor_drivers.recording.clipfile import ClipWriter

    analysis = WalkAnalysis().analyze(clip)
    tmp = path.with_name(f".{path.name}.tmp")
    fields = ("host_time_s", "device_time_s", "seq", "acc_m_s2", "gyr_rad_s", "mag_ut", "quat_wxyz", "free_acc_m_s2",
              "battery_pct", "rssi_dbm", "acc_clip_count", "gyr_clip_count")  # fmt: skip
    metadata = {k: v for k, v in clip.metadata.items() if k != "schema_version"}
    with ClipWriter(tmp, metadata=metadata, overwrite=True) as writer:
        for stream in clip.sensors.values():
            writer.add_sensor(stream.info)
            columns = {f: getattr(stream, f) for f in fields if getattr(stream, f) is not None}
            writer.write_arrays(stream.sensor_id, columns)
        for event in clip.link_events:
            writer.add_link_event(event)
        for name, value in clip.sections.items():
            writer.write_section(name, value)

        def write(name: str, value: Any) -> None:
            if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
                writer.write_section(name, dict(value))
            else:
                writer.write_section(name, jsonable(value))

        write_analysis_sections(write, analysis)
    shutil.move(tmp, path)
    return analysis


class ProgressDisplay:
    """Draws :class:`~cloud_trainer.pipeline.api.ProgressEvent` s: on a terminal one line updated in place (stage,
    task, level, samples, ETA); otherwise plain lines, one per change of stage, task or level and at most one every
    ``interval_s`` otherwise. Callable: it is the pipeline's ``on_progress``."""

    def __init__(self, stream: TextIO, interval_s: float = 10.0) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval_s = interval_s
        self._last_key: tuple | None = None
        self._last_time = 0.0
        self._width = 0
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        line = format_event(event)
        with self._lock:
            if self.tty:
                pad = max(0, self._width - len(line))
                self.stream.write("\r" + line + " " * pad)
                self.stream.flush()
                self._width = len(line)
                return
            key = (event.stage, event.task, event.level)
            now = time.monotonic()
            if key != self._last_key or now - self._last_time >= self.interval_s or "(" in event.message:
                self.stream.write(line + "\n")
                self.stream.flush()
                self._last_key, self._last_time = key, now

    def note(self, text: str) -> None:
        with self._lock:
            self.stream.write(("\n" if self.tty and self._width else "") + text + "\n")
            self._width = 0
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self.tty and self._width:
                self.stream.write("\n")
                self._width = 0
            self.stream.flush()


def format_event(event) -> str:
    """One line: ``[stage task L3] 123,456/2,000,000 samples  ETA 12:34  message``."""
    where = " ".join(x for x in (event.stage.value, event.task or "", f"L{event.level}" if event.level else "") if x)
    parts = [f"[{where}]"]
    if event.samples_total:
        # training stages count environment samples; the export counts its steps (levels evaluated, files written)
        unit = "steps" if event.stage.value == "export" else "samples"
        parts.append(f"{event.samples:,}/{event.samples_total:,} {unit}")
    if event.eta_s is not None:
        parts.append(f"ETA {_clock(event.eta_s)}")
    parts.append(f"elapsed {_clock(event.elapsed_s)}")
    if event.message:
        parts.append(event.message)
    return "  ".join(parts)


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def result_json(result) -> dict:
    artifacts = [
        {"kind": a.kind, "path": str(a.path), "task": a.task, "level": a.level, "sha256": a.sha256,
         "size_bytes": a.size_bytes}
        for a in result.artifacts
    ]  # fmt: skip
    return {
        "schema": "stridetwin.train/1",
        "out_dir": str(result.out_dir),
        "resumed": result.resumed,
        "report": result.report,
        "artifacts": artifacts,
    }


def summary_text(result, wall_s: float) -> str:
    """What a finished run gives, in a few lines."""
    from cloud_trainer.pipeline.run import TRAINING_NAME

    lines = [f"done in {_clock(wall_s)}" + (" (resumed)" if result.resumed else "") + f": {result.out_dir}"]
    try:
        training = json.loads((Path(result.out_dir) / TRAINING_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        training = {}
    for task, level in (training.get("levels_reached") or {}).items():
        lines.append(f"  {task}: {level} of 5 levels mastered")
    summary = ((training.get("adaptation") or {}).get("summary")) or {}
    if summary:
        lines.append(
            f"  adapted walk: joint-angle error {summary.get('joint_angle_error_deg')}°, speed "
            f"{summary.get('speed_achieved_m_s')} m/s, falls {summary.get('fall_rate')}"
        )
    kinds: dict[str, int] = {}
    for a in result.artifacts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    lines.append("  artifacts: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    for name in ("report.html", "report.json"):
        if (Path(result.out_dir) / name).exists():
            lines.append(f"  report: {Path(result.out_dir) / name}")
            break
    return "\n".join(lines)


