"""The whole road with the real patient pipeline (smoke budget), no test double: a virtual patient's analysed clip
leaves through the app's outbox, the trainer (``stridetwin trainer serve``, TLS) is SIGKILLed while the job trains,
started again, resumes the job from its checkpoint, and the app downloads and verifies every artifact."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from capture_app.link.client import TrainerClient
from capture_app.link.outbox import JobRequest, Outbox
from capture_app.link.results import ResultsLibrary
from capture_app.link.sender import OutboxSender
from capture_app.link.settings import LinkSettings
from stridetwin.cli import main
from tests.cloud_trainer.pipeline.clips import analysed_clip
from tests.cloud_trainer.service.test_restart import serve


def _settings(port: int, data_dir: Path, token: str) -> LinkSettings:
    return LinkSettings(server=f"localhost:{port}", ca_cert=data_dir / "tls" / "ca.pem", token=token)


@pytest.mark.slow
def test_a_clip_trains_through_a_killed_and_restarted_trainer_and_every_artifact_arrives_verified(tmp_path):
    data_dir = tmp_path / "trainer"
    token_file = tmp_path / "alpha.token"
    assert main(["trainer", "init", "--dir", str(data_dir), "--clinic", "alpha", "--token-file", str(token_file)]) == 0
    token = token_file.read_text().strip()
    clip = analysed_clip(tmp_path, "walk")
    outbox = Outbox(tmp_path / "app", library=tmp_path)
    entry = outbox.enqueue(clip, JobRequest(("slope", "stairs"), "smoke"))

    proc, port = serve(data_dir, runner=None)
    try:
        settings = _settings(port, data_dir, token)
        report = OutboxSender(outbox, lambda: TrainerClient(settings)).run()
        assert not report.failed
        assert outbox.is_done(entry.entry_id)
        job_id = outbox.sent(entry_id=entry.entry_id)[0].job_id
        with TrainerClient(settings) as client:
            deadline = time.monotonic() + 120
            while True:  # kill it once the job has trained: mid-run, with checkpoints on disk
                job = client.get_job(job_id)
                assert not job.ended, f"the job ended ({job.state}: {job.error_message}) before it could be killed"
                if job.progress is not None and job.progress.samples > 0:
                    break
                assert time.monotonic() < deadline, "the job made no progress"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()

    proc, port = serve(data_dir, runner=None)
    try:
        settings = _settings(port, data_dir, token)
        with TrainerClient(settings) as client:
            events = list(client.watch_job(job_id, timeout_s=300))
            result = events[-1].result
            assert result is not None
            assert result.state == "succeeded", result.error_message
            job = client.get_job(job_id)
            assert job.n_attempts == 2
            fetched = ResultsLibrary(tmp_path / "app", outbox).fetch(client, job_id)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out

    assert fetched.complete
    kinds = {a.kind for a in fetched.artifacts}
    assert {"onnx", "manifest", "video", "angles_csv", "report_json", "report_html", "log"} <= kinds
    names = {a.name for a in fetched.artifacts}
    assert {"policies/policy_slope.onnx", "policies/policy_stairs.onnx", "videos/video_stairs_5.mp4"} <= names
    for artifact in fetched.artifacts:  # on disk, as verified
        assert fetched.path_of(artifact.name).stat().st_size == artifact.size_bytes
    document = json.loads(fetched.path_of("report.json").read_text())
    assert set(document["tasks"]) == {"slope", "stairs"}
    training = json.loads(fetched.path_of("training.json").read_text())
    assert training["invocations"] == 2  # the second attempt resumed the first's run folder
    assert main(["trainer", "audit", "--dir", str(data_dir)]) == 0
