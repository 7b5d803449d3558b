"""Patient pipeline benchmark (issue 5): wall-clock and samples per stage, levels reached per task and peak memory of
``stridetwin train`` for a healthy and a hemiparetic virtual patient, the hybrid against the physics-only baseline,
and the GAIL ablation.

Full mode runs the ``quick`` budget (goal: ≤ 30 minutes and ≤ 4 GB per patient on 2 cores); ``--quick`` runs the
``smoke`` budget (figures not meaningful; proves the benchmark). Each run is its own child process
(``stridetwin train``), so its peak RSS (VmHWM) and CPU time are its own. The machine's load average before and
after each run is reported: the development machine is shared, and a run beside others is slower.

Runs (the clips: the virtual patient of ``sensor_drivers.sim`` over the 20 m walkway, analysed by the capture core):

- ``healthy`` and ``hemiparetic`` (left side, 0.5 m/s): the hybrid method, both tasks;
- ``hemiparetic physics-only``: the baseline on the same clip and budget;
- GAIL ablation (full mode only): the slope task from the hemiparetic hybrid run's adapted policy, with and without
  the discriminator, same budget (``fork_run`` reuses the finished reference and adaptation stages).

Set ``STRIDETWIN_BENCH_DIR`` to keep the run folders (default: a temporary folder, removed afterwards).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PATIENTS = {
    "healthy": ("healthy", {"seed": "11"}),
    "hemiparetic": ("hemiparetic", {"side": "left", "speed": "0.5", "seed": "12"}),
}
#: The fidelity thresholds the hybrid-versus-baseline comparison times (first update whose rolling mean, over
#: ``ROLLING_UPDATES`` updates, reaches it): adaptation episodes lasting half the 500-step cap, the joint-angle
#: imitation term at 0.8.
ADAPTATION_LENGTH_STEPS = 250
IMITATION_THRESHOLD = 0.8
ROLLING_UPDATES = 10

#: Child process for the GAIL ablation: the pipeline on DIR with or without the discriminator.
_ABLATION_CHILD = """
import json, sys, threading
from pathlib import Path
from cloud_trainer.pipeline.api import PipelineRequest
from cloud_trainer.pipeline.run import PipelineRun
clip, out, budget, gail = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
request = PipelineRequest(Path(clip), out, ("slope",), budget, "hybrid")
PipelineRun(request, lambda e: None, threading.Event(), gail=gail).execute()
"""


def make_clip(folder: Path, patient: str) -> Path:
    """The patient's 20 m walk as an analysed clip."""
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.sim import VirtualPatient, from_source_options
    from sensor_drivers.sim.clip_export import write_virtual_clip
    from stridetwin.commands.train import write_analysed_copy

    profile, options = PATIENTS[patient]
    raw = folder / f"{patient}.raw.stclip"
    write_virtual_clip(VirtualPatient(from_source_options(profile, options)).generate(), raw)
    path = folder / f"{patient}.stclip"
    write_analysed_copy(read_clip(raw), path)
    return path


def train(clip: Path, out: Path, budget: str, method: str = "hybrid", tasks: str = "slope,stairs") -> dict:
    """``stridetwin train`` in a child process; its figures, wall-clock, CPU time and the load around it."""
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    command = [sys.executable, "-m", "stridetwin", "train", str(clip), "--budget", budget, "--method", method,
               "--tasks", tasks, "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"stridetwin train failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = run_figures(out)
    figures.update(
        wall_s=round(wall, 1),
        cpu_s=round((cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime), 1),
        load_average_before=round(load_before, 2),
        load_average_after=round(os.getloadavg()[0], 2),
    )
    return figures


def run_figures(out: Path) -> dict:
    """Per-stage wall-clock and samples, levels, memory, adaptation quality and the timings the comparison needs,
    from a finished run folder."""
    training = json.loads((out / "training.json").read_text())
    stages = training["stages"]
    figures = {
        "stage_wall_s": {name: rec.get("wall_s") for name, rec in stages.items()},
        "stage_samples": {name: rec.get("samples") for name, rec in stages.items() if rec.get("samples")},
        "levels_reached": training["levels_reached"],
        "peak_rss_mb": training["peak_rss_mb"],
        "adaptation": (training.get("adaptation") or {}).get("summary"),
        "adaptation_time_to_walk": time_to(
            out / "adaptation" / "train_log.jsonl", "episode_length_steps", ADAPTATION_LENGTH_STEPS
        ),
        "adaptation_time_to_imitation": time_to(
            out / "adaptation" / "train_log.jsonl", "imitation/joint_angles", IMITATION_THRESHOLD
        ),
        "levels": {},
    }
    for task, info in (training.get("prediction") or {}).items():
        levels = info["curriculum"]["levels"]
        figures["levels"][task] = {
            str(lv["level"]): {"samples": lv["samples_mastered"], "training_wall_s": _round(lv["wall_mastered_s"])}
            for lv in levels
            if lv["samples_mastered"] is not None
        }
    return figures


def time_to(log: Path, key: str, threshold: float) -> dict | None:
    """Samples and training wall-clock until the rolling mean of ``key`` first reaches ``threshold`` (None: never)."""
    if not log.exists():
        return None
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    window: list[float] = []
    for row in rows:
        value = row.get(key)
        if value is None:
            continue
        window = [*window[-(ROLLING_UPDATES - 1) :], float(value)]
        if len(window) == ROLLING_UPDATES and sum(window) / len(window) >= threshold:
            return {"samples": row["samples"], "training_wall_s": row["wall_s"]}
    return None


def fork_run(source: Path, target: Path, tasks: tuple[str, ...]) -> None:
    """A new run folder that starts where ``source`` finished its reference and adaptation (same input, budget,
    method and seed), for tasks ``tasks``: the prediction stage then runs on the very same adapted policy."""
    target.mkdir(parents=True)
    for name in ("reference", "adaptation"):
        shutil.copytree(source / name, target / name)
    for name in ("patient_pairs.npz", "bc_proxy.pt"):
        if (source / "prediction" / name).exists():
            (target / "prediction").mkdir(exist_ok=True)
            shutil.copy2(source / "prediction" / name, target / "prediction" / name)
    state = json.loads((source / "run.json").read_text())
    state["request"]["tasks"] = list(tasks)
    kept = ("reference", "adaptation", "behavioural_prior")
    state["stages"] = {k: v for k, v in state["stages"].items() if k in kept}
    (target / "run.json").write_text(json.dumps(state, indent=1))


def ablation(clip: Path, source: Path, folder: Path, budget: str) -> dict:
    """Slope prediction with and without GAIL from the same adapted policy and budget."""
    out = {}
    for gail in (True, False):
        target = folder / f"slope_gail_{'on' if gail else 'off'}"
        fork_run(source, target, ("slope",))
        state = json.loads((target / "run.json").read_text())
        state["request"]["gail"] = gail
        (target / "run.json").write_text(json.dumps(state, indent=1))
        t0 = time.perf_counter()
        load_before = os.getloadavg()[0]
        subprocess.run([sys.executable, "-c", _ABLATION_CHILD, str(clip), str(target), budget, "1" if gail else "0"],
                       cwd=REPO_ROOT, env=_env(), check=True, capture_output=True, text=True)  # fmt: skip
        figures = run_figures(target)
        report = json.loads((target / "report.json").read_text())
        slope = report["tasks"]["slope"]["levels"]
        out["gail_on" if gail else "gail_off"] = {
            "levels_reached": figures["levels_reached"]["slope"],
            "levels": figures["levels"]["slope"],
            "prediction_wall_s": figures["stage_wall_s"].get("prediction/slope"),
            "wall_s": round(time.perf_counter() - t0, 1),
            "load_average_before": round(load_before, 2),
            "posture_similarity_pct": {
                str(lv["level"]): (lv.get("posture_similarity") or {}).get("similarity_pct") for lv in slope
            },
            "reached": {str(lv["level"]): (lv.get("reached") or {}).get("n") for lv in slope},
        }
    return out


def run(quick: bool) -> dict:
    """The benchmark's figures (see the module docstring)."""
    budget = "smoke" if quick else "quick"
    keep = os.environ.get("STRIDETWIN_BENCH_DIR")
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        results: dict = {"budget": budget, "cores": os.cpu_count()}
        clips = {name: make_clip(folder, name) for name in PATIENTS}
        for name, clip in clips.items():
            results[f"{name} hybrid"] = train(clip, folder / f"{name}_hybrid", budget)
        results["hemiparetic physics-only"] = train(
            clips["hemiparetic"], folder / "hemiparetic_physics_only", budget, "physics-only"
        )
        results["hybrid vs physics-only (hemiparetic)"] = compare(
            results["hemiparetic hybrid"], results["hemiparetic physics-only"]
        )
        if not quick:
            results["gail ablation (hemiparetic slope)"] = ablation(
                clips["hemiparetic"], folder / "hemiparetic_hybrid", folder / "ablation", budget
            )
        return results
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def compare(hybrid: dict, baseline: dict) -> dict:
    """Samples and wall-clock to each milestone, the hybrid's as a percentage of the baseline's (the paper: the hybrid
    needs 25.56 % of the physics-only training time on the 1:12 slope)."""
    out = {}
    for key in ("adaptation_time_to_walk", "adaptation_time_to_imitation"):
        out[key] = {"hybrid": hybrid.get(key), "physics_only": baseline.get(key)}
    for task, levels in hybrid["levels"].items():
        for level, figures in levels.items():
            other = baseline["levels"].get(task, {}).get(level)
            out[f"{task} level {level}"] = {
                "hybrid_samples": figures["samples"],
                "physics_only_samples": other["samples"] if other else None,
            }
    out["levels_reached"] = {"hybrid": hybrid["levels_reached"], "physics_only": baseline["levels_reached"]}
    out["adaptation"] = {"hybrid": hybrid["adaptation"], "physics_only": baseline["adaptation"]}
    total = sum(v for k, v in hybrid["stage_wall_s"].items() if k != "export" and v)
    total_base = sum(v for k, v in baseline["stage_wall_s"].items() if k != "export" and v)
    out["training_wall_s"] = {"hybrid": round(total, 1), "physics_only": round(total_base, 1)}
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
