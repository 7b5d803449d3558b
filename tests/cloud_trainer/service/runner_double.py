"""A test double at the pipeline boundary: a :data:`~cloud_trainer.pipeline.api.PipelineRunner` that does real, trivial
work, for the service's executor tests until the patient pipeline (issue 5) lands.

It reads the clip (counting samples per sensor), then takes ``steps`` steps of ``STRIDETWIN_TEST_STEP_S`` seconds,
reporting progress and checkpointing the step count to ``out_dir/checkpoint.json`` after each, so a run started again
on the same ``out_dir`` resumes; it appends one line per start to ``out_dir/starts.txt``. At the end it writes
``report.json``, one ``angles/<task>.csv`` per task and, when ``STRIDETWIN_TEST_ARTIFACT_BYTES`` is set, a
``video/<task>.bin`` of that many pseudo-random bytes (written in 1 MiB blocks), and returns them as artifacts.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from cloud_trainer.pipeline.api import Artifact, PipelineRequest, PipelineResult, ProgressCallback, ProgressEvent, Stage
from sensor_drivers.recording.clipfile import read_clip

STEPS = {"smoke": 4, "quick": 12, "full": 40}


def counting_runner(request: PipelineRequest, on_progress: ProgressCallback, cancel: threading.Event) -> PipelineResult:
    step_s = float(os.environ.get("STRIDETWIN_TEST_STEP_S", "0.05"))
    out = Path(request.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "starts.txt", "a") as f:
        f.write(f"{time.time()}\n")
    clip = read_clip(request.input_path)
    counts = {sid: s.n_samples for sid, s in clip.sensors.items()}
    checkpoint = out / "checkpoint.json"
    step = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
    resumed = step > 0
    n_steps = STEPS[request.budget]
    started = time.monotonic()
    on_progress(ProgressEvent(Stage.REFERENCE, f"clip with {sum(counts.values())} samples", elapsed_s=0.0))
    while step < n_steps:
        if cancel.is_set():
            raise RuntimeError(f"cancelled at step {step}")
        time.sleep(step_s)
        step += 1
        tmp = checkpoint.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step}))
        os.replace(tmp, checkpoint)
        task = request.tasks[(step - 1) % len(request.tasks)]
        elapsed = time.monotonic() - started
        on_progress(
            ProgressEvent(
                Stage.PREDICTION, f"step {step} of {n_steps}", task=task, level=1 + (step - 1) % 5,
                samples=1000 * step, samples_total=1000 * n_steps, elapsed_s=elapsed,
                eta_s=elapsed / max(1, step) * (n_steps - step),
            )
        )  # fmt: skip
    artifacts = []
    for task in request.tasks:
        path = Path("angles") / f"{task}.csv"
        (out / path).parent.mkdir(exist_ok=True)
        (out / path).write_text("sensor_id,n_samples\n" + "".join(f"{k},{v}\n" for k, v in counts.items()))
        artifacts.append(Artifact("angles_csv", path, task=task, level=5))
        n_big = int(os.environ.get("STRIDETWIN_TEST_ARTIFACT_BYTES", "0"))
        if n_big:
            big = Path("video") / f"{task}.bin"
            (out / big).parent.mkdir(exist_ok=True)
            digest = hashlib.sha256()
            with open(out / big, "wb") as f:
                block = hashlib.sha256(task.encode()).digest() * (1024 * 1024 // 32)
                for start in range(0, n_big, len(block)):
                    data = block[: n_big - start]
                    f.write(data)
                    digest.update(data)
            artifacts.append(Artifact("video", big, task=task, level=5, sha256=digest.hexdigest(), size_bytes=n_big))
    report = {"steps": n_steps, "samples_per_sensor": counts, "tasks": list(request.tasks)}
    (out / "report.json").write_text(json.dumps(report))
    artifacts.append(Artifact("report_json", Path("report.json")))
    on_progress(ProgressEvent(Stage.DONE, "done", elapsed_s=time.monotonic() - started, eta_s=0.0))
    return PipelineResult(out, report, artifacts, resumed=resumed)
