"""The patient pipeline end to end at the smoke budget: every artifact from a raw virtual-patient clip through
``stridetwin train``, a run SIGKILLed mid-training that resumes from its last checkpoint, cancellation, clear refusals
of bad input, and the progress display."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cloud_trainer.atlas.weights import SHIPPED_WEIGHTS, load_atlas
from cloud_trainer.hashing import file_sha256
from cloud_trainer.learn.terrain_view import reads_terrain, terrain_ray_columns
from cloud_trainer.pipeline.api import PipelineRequest, ProgressEvent, Stage
from cloud_trainer.pipeline.errors import PipelineCancelled, PipelineStateError
from cloud_trainer.pipeline.policy import load_policy
from cloud_trainer.pipeline.run import STATE_NAME, TRAINING_NAME, PipelineRun, run
from stridetwin.cli import main
from stridetwin.commands.train import ProgressDisplay, format_event

from .clips import PATIENT_FILE_STEM, analysed_clip, identity_leaks, virtual_clip

REPO = Path(__file__).resolve().parents[3]
#: The issue's limit for the smoke budget, end to end, on 2 cores.
SMOKE_LIMIT_S = 180.0


def train_command(clip: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stridetwin", "train", str(clip), "--budget", "smoke", "--out", str(out), *extra]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (status {process.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.05)


@pytest.mark.slow
def test_smoke_run_killed_mid_training_resumes_and_writes_every_artifact(tmp_path: Path) -> None:
    raw = virtual_clip(tmp_path, PATIENT_FILE_STEM)  # clinics name files after patients
    out = tmp_path / "run"
    started = time.monotonic()
    first = subprocess.Popen(
        train_command(raw, out), cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    # kill it hard once the slope task has checkpointed (adaptation done, prediction under way)
    wait_for(out / "prediction" / "slope" / "checkpoint.pt", first, SMOKE_LIMIT_S)
    first.send_signal(signal.SIGKILL)
    output = first.communicate(timeout=30)[0]
    assert "has no analysis sections" in output  # the CLI ran the capture analysis and said so
    state = json.loads((out / STATE_NAME).read_text())
    assert state["stages"]["adaptation"]["done"]
    assert not state["stages"].get("prediction/slope", {}).get("done", False)
    killed_log = (out / "prediction" / "slope" / "train_log.jsonl").read_text().splitlines()

    second = subprocess.run(
        train_command(raw, out, "--resume"), cwd=REPO, env=child_env(), capture_output=True, text=True,
        timeout=SMOKE_LIMIT_S,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert time.monotonic() - started < 2 * SMOKE_LIMIT_S
    assert "using the analysed copy" in second.stdout  # not analysed again: same input, same run identity
    assert "(resumed)" in second.stdout
    training = json.loads((out / TRAINING_NAME).read_text())
    assert training["invocations"] == 2
    assert training["stages"]["adaptation"]["invocations"] == 1  # finished stages are not run again
    rows = [json.loads(line) for line in (out / "prediction" / "slope" / "train_log.jsonl").read_text().splitlines()]
    updates = [r["update"] for r in rows]
    assert updates == list(range(1, len(updates) + 1))  # continued after the checkpoint, nothing twice
    assert len(rows) >= len(killed_log) - 1  # kept up to the last checkpoint (at most the update under way is lost)
    assert rows[-1]["samples"] >= 1024

    report = json.loads((out / "report.json").read_text())
    kinds = {}
    for artifact in report["artifacts"]:
        kinds[artifact["kind"]] = kinds.get(artifact["kind"], 0) + 1
        assert (out / artifact["path"]).is_file()
    assert kinds["onnx"] == kinds["manifest"] == 2
    assert kinds["angles_csv"] == 11  # level ground + 5 levels × 2 tasks
    if not any("No videos" in note for note in report["notes"]):
        assert kinds["video"] == 11
    assert (out / "report.html").is_file()
    assert set(report["run"]["levels_reached"]) == {"slope", "stairs"}
    stages = report["run"]["stages"]
    for name in ("reference", "adaptation", "prediction/slope", "prediction/stairs"):
        assert stages[name]["done"]
        assert stages[name]["wall_s"] > 0
    assert stages["adaptation"]["samples"] == stages["prediction/slope"]["samples"] == 1024
    assert report["run"]["peak_rss_mb"] > 0
    # each task's ONNX manifest names the motion it imitated: the stairs' own, walked at two treads per stride
    manifests = {p.stem: json.loads(p.read_text()) for p in (out / "policies").glob("*.json")}
    stairs_ref = next(m["reference"] for name, m in manifests.items() if "stairs" in name)
    slope_ref = next(m["reference"] for name, m in manifests.items() if "slope" in name)
    assert stairs_ref["stride_length_m"] == pytest.approx(0.6, rel=0.01)
    assert "hip swing" in stairs_ref["source"]
    assert "hip swing" not in slope_ref["source"]
    assert (out / "prediction" / "stairs" / "reference.npz").is_file()
    # adapted from the terrain-aware atlas, the task policies keep reading the terrain rays; from a flat one they
    # would start blind to them (learn/terrain_view.py)
    atlas_reads_terrain = reads_terrain(load_atlas().manifest)
    assert load_policy(out / "adaptation" / "policy.pt").manifest["reads_terrain"] is atlas_reads_terrain
    first_layer = load_policy(out / "prediction" / "stairs" / "policy.pt").state["policy"]["mean_net.0.weight"]
    assert bool(first_layer[:, terrain_ray_columns()].abs().max() > 0.05) is atlas_reads_terrain
    # what leaves the trainer names the clip by its content: no path, no file name (they may hold a patient's name)
    for path in [out / "report.json", out / "report.html", out / TRAINING_NAME, *(out / "policies").glob("*.json")]:
        text = path.read_text()
        assert str(tmp_path) not in text, path.name
        assert not identity_leaks(text), path.name

    # the same folder with another request is refused before anything runs
    with pytest.raises(PipelineStateError, match=r"another request .*method"):
        run(PipelineRequest(out / "input.analysed.stclip", out, method="physics-only", budget="smoke"),
            lambda e: None, threading.Event())  # fmt: skip


@pytest.mark.slow
def test_cancel_stops_at_a_checkpoint_and_the_next_run_resumes(tmp_path: Path) -> None:
    clip = analysed_clip(tmp_path, "walk")
    request = PipelineRequest(clip, tmp_path / "run", tasks=("slope",), budget="smoke")
    cancel = threading.Event()
    events: list[ProgressEvent] = []

    def on_progress(event: ProgressEvent) -> None:
        events.append(event)
        if event.stage is Stage.ADAPTATION and event.samples >= 512:
            cancel.set()

    with pytest.raises(PipelineCancelled, match="adaptation"):
        run(request, on_progress, cancel)
    assert (tmp_path / "run" / "adaptation" / "checkpoint.pt").is_file()
    assert [e.stage for e in events][:2] == [Stage.REFERENCE, Stage.REFERENCE]
    assert all(e.samples_total == 2048 for e in events)

    events.clear()
    result = run(request, events.append, threading.Event())
    assert result.resumed
    assert events[-1].stage is Stage.DONE
    stages = [e.stage for e in events]
    assert Stage.EXPORT in stages
    assert stages.index(Stage.PREDICTION) < stages.index(Stage.EXPORT)
    training = json.loads((tmp_path / "run" / TRAINING_NAME).read_text())
    assert training["stages"]["adaptation"]["samples"] == 1024
    assert [e for e in events if e.stage is Stage.ADAPTATION and e.eta_s is not None]  # an ETA once it can tell


def test_cli_refuses_bad_input_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.stclip"
    garbage.write_bytes(b"\x00" * 64)
    assert main(["train", str(garbage), "--budget", "smoke", "--out", str(tmp_path / "a")]) == 2
    assert "garbage.stclip" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "none.stclip"), "--out", str(tmp_path / "b")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", str(garbage), "--tasks", "swimming", "--out", str(tmp_path / "c")]) == 2
    assert "slope, stairs" in capsys.readouterr().err
    assert main(["train", str(garbage), "--budget", "huge", "--out", str(tmp_path / "c")]) == 2
    assert "smoke, quick, full" in capsys.readouterr().err
    assert main(["train", str(garbage), "--atlas", str(tmp_path / "none.pt"), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--atlas" in err
    assert "no such file" in err
    baseline_with_atlas = ["--atlas", str(SHIPPED_WEIGHTS), "--method", "physics-only"]
    assert main(["train", str(garbage), *baseline_with_atlas, "--out", str(tmp_path / "e")]) == 2
    assert "only the hybrid method" in capsys.readouterr().err


def test_the_hybrid_adapts_the_atlas_it_is_given_and_a_resume_must_give_the_same(tmp_path: Path) -> None:
    clip = analysed_clip(tmp_path, "walk")
    other = tmp_path / "other_atlas.pt"
    other.write_bytes(SHIPPED_WEIGHTS.read_bytes())
    out = tmp_path / "run"
    request = PipelineRequest(clip, out, tasks=("slope",), budget="smoke", atlas_path=other)
    pipeline = PipelineRun(request, lambda e: None, threading.Event())
    pipeline._open_state()
    reference, patient, gait, _ = pipeline._reference()
    _, adaptation = pipeline._adaptation(reference, patient, gait)
    assert adaptation["initialised_from"].endswith(f"(other_atlas.pt, SHA-256 {file_sha256(other)})")
    assert pipeline.state["request"]["atlas_sha256"] == file_sha256(SHIPPED_WEIGHTS)  # same bytes as the shipped
    with pytest.raises(PipelineStateError, match="atlas_sha256"):  # the shipped atlas, not named: another request
        run(PipelineRequest(clip, out, tasks=("slope",), budget="smoke"), lambda e: None, threading.Event())
    with pytest.raises(ValueError, match="only the hybrid method"):
        PipelineRequest(clip, out, method="physics-only", atlas_path=other).validate()


def test_cli_refuses_a_walk_too_short_for_a_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = virtual_clip(tmp_path, "short", walkway="2.5", still_start="1.5", still_end="1.5")
    assert main(["train", str(short), "--budget", "smoke", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "at least 3" in err
    assert "strides" in err


def test_progress_display_updates_one_line_on_a_terminal_and_prints_lines_otherwise() -> None:
    events = [
        ProgressEvent(Stage.ADAPTATION, "adaptation: 2,048 samples", None, None, 2048, 10000, 5.0, 20.0),
        ProgressEvent(Stage.ADAPTATION, "adaptation: 4,096 samples", None, None, 4096, 10000, 8.0, 12.0),
        ProgressEvent(Stage.PREDICTION, "slope level 2 (promoted)", "slope", 2, 6000, 10000, 12.0, 8.0),
    ]
    line = format_event(events[2])
    assert "[prediction slope L2]" in line
    assert "6,000/10,000 samples" in line
    assert "ETA 0:08" in line

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    display = ProgressDisplay(tty)
    for event in events:
        display(event)
    display.close()
    assert tty.getvalue().count("\n") == 1  # one line, rewritten in place
    assert tty.getvalue().count("\r") == 3

    plain = io.StringIO()
    display = ProgressDisplay(plain, interval_s=60.0)
    for event in events:
        display(event)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2  # the second adaptation event changes nothing worth a line within 60 s
    assert "\r" not in plain.getvalue()


def test_the_eta_counts_the_time_goal_on_a_machine_too_slow_for_the_samples(tmp_path: Path) -> None:
    events = []
    request = PipelineRequest(input_path=tmp_path / "clip.stclip", out_dir=tmp_path / "run",
                              tasks=("slope", "stairs"), budget="quick")  # fmt: skip
    pipeline = PipelineRun(request, events.append, threading.Event())
    b = pipeline.budget
    pipeline.state = {"stages": {"reference": {"done": True, "wall_s": 10.0},
                                 "adaptation": {"done": True, "wall_s": 250.0, "samples": b.adaptation_samples}}}
    pipeline._samples_this_run, pipeline._train_s_this_run = 100_000, 100.0  # 1000 samples/s: far too slow
    slope_s = 60.0  # the slope task began a minute ago
    pipeline._stage_started = time.monotonic() - slope_s
    pipeline._emit(Stage.PREDICTION, "slope", "slope", 1)
    by_samples_s = (pipeline.samples_total - b.adaptation_samples) / 1000.0
    finished_s = sum(record["wall_s"] for record in pipeline.state["stages"].values())
    by_time_s = b.time_limit_s - b.export_reserve_s - finished_s - slope_s
    assert by_time_s < by_samples_s
    assert events[-1].eta_s == pytest.approx(by_time_s, abs=1.0)
    smoke = PipelineRun(PipelineRequest(tmp_path / "clip.stclip", tmp_path / "smoke", budget="smoke"),
                        events.append, threading.Event())  # fmt: skip
    smoke.state, smoke._stage_started = {"stages": {}}, time.monotonic()
    smoke._samples_this_run, smoke._train_s_this_run = 1_000, 10.0
    smoke._emit(Stage.ADAPTATION, "adaptation")
    assert events[-1].eta_s == pytest.approx(smoke.samples_total / 100.0, abs=0.1)  # no goal: the samples decide


def test_a_task_that_masters_every_level_early_leaves_its_samples_to_the_next(tmp_path: Path) -> None:
    request = PipelineRequest(input_path=tmp_path / "clip.stclip", out_dir=tmp_path / "run",
                              tasks=("slope", "stairs"), budget="quick")  # fmt: skip
    pipeline = PipelineRun(request, lambda event: None, threading.Event())
    per_task = pipeline.budget.prediction_samples
    pipeline.state = {"stages": {}}
    assert pipeline._task_budget_samples(0) == per_task
    pipeline.state["stages"]["prediction/slope"] = {"done": True, "samples": per_task - 500_000}
    assert pipeline._task_budget_samples(1) == per_task + 500_000
    pipeline.state["stages"]["prediction/slope"]["samples"] = per_task + 1_024  # the last update ran over: no debt
    assert pipeline._task_budget_samples(1) == per_task


def test_the_tasks_share_what_the_finished_stages_left_of_the_time_goal(tmp_path: Path) -> None:
    request = PipelineRequest(input_path=tmp_path / "clip.stclip", out_dir=tmp_path / "run",
                              tasks=("slope", "stairs"), budget="quick")  # fmt: skip
    pipeline = PipelineRun(request, lambda event: None, threading.Event())
    b = pipeline.budget
    training_s = b.time_limit_s - b.export_reserve_s
    pipeline.state = {"stages": {"reference": {"done": True, "wall_s": 10.0},
                                 "adaptation": {"done": True, "wall_s": 250.0}}}  # fmt: skip
    assert pipeline._task_time_limit_s(0) == pytest.approx((training_s - 260.0) / 2)
    pipeline.state["stages"]["prediction/slope"] = {"done": False, "wall_s": 0.0}  # running: counted by its loop
    assert pipeline._task_time_limit_s(0) == pytest.approx((training_s - 260.0) / 2)
    pipeline.state["stages"]["prediction/slope"] = {"done": True, "wall_s": 300.0}  # stopped early: passes time on
    assert pipeline._task_time_limit_s(1) == pytest.approx(training_s - 560.0)
    pipeline.state["stages"]["adaptation"]["wall_s"] = 2 * b.time_limit_s  # a very slow machine: nothing left
    assert pipeline._task_time_limit_s(1) == 0.0
    smoke = PipelineRun(PipelineRequest(tmp_path / "clip.stclip", tmp_path / "smoke", budget="smoke"),
                        lambda event: None, threading.Event())  # fmt: skip
    smoke.state = {"stages": {}}
    assert smoke._task_time_limit_s(0) is None  # tests stay reproducible: smoke has no time goal
