"""The trainer killed (SIGKILL) during a job and started again: the accepted clip is still there and the job
completes, resumed from its checkpoint. Real processes (``stridetwin trainer serve``), real TLS."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protos.channel import open_channel
from protos.stridetwin.v1 import clips_pb2, jobs_pb2
from stridetwin.cli import main
from tests.cloud_trainer.service.client import Stubs, upload, watch
from tests.cloud_trainer.service.clipmaker import write_clip
from tests.cloud_trainer.service.conftest import TEST_RUNNER

REPO_ROOT = Path(__file__).resolve().parents[3]


def serve(data_dir: Path, runner: str | None = TEST_RUNNER) -> tuple[subprocess.Popen, int]:
    """``stridetwin trainer serve`` on a free loopback port (TLS) with ``runner`` (None: the patient pipeline)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "STRIDETWIN_TEST_STEP_S": "0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stridetwin", "trainer", "serve", "--dir", str(data_dir), "--address", "127.0.0.1:0",
         *(["--runner", runner] if runner else [])],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(TLS\)", line)
    if match is None:
        proc.kill()
        raise AssertionError(f"trainer did not start: {line}{proc.stdout.read()}")
    return proc, int(match.group(1))


@pytest.mark.slow
def test_trainer_killed_during_a_job_resumes_it_after_restart(tmp_path):
    data_dir = tmp_path / "trainer"
    token_file = tmp_path / "alpha.token"
    assert main(["trainer", "init", "--dir", str(data_dir), "--clinic", "alpha", "--token-file", str(token_file)]) == 0
    token = token_file.read_text().strip()
    ca = (data_dir / "tls" / "ca.pem").read_bytes()
    clip = write_clip(tmp_path / "walk.stclip").read_bytes()

    proc, port = serve(data_dir)
    try:
        channel = open_channel(f"localhost:{port}", token, root_certificates=ca)
        stubs = Stubs.on(channel)
        clip_id = upload(stubs, clip).clip.clip_id
        request = jobs_pb2.SubmitJobRequest(
            clip_id=clip_id, tasks=[jobs_pb2.TASK_SLOPE], budget=jobs_pb2.BUDGET_FULL, idempotency_key="j"
        )
        job = stubs.jobs.SubmitJob(request)
        deadline = time.monotonic() + 30
        while stubs.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id)).progress.samples < 5000:
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.05)
        channel.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    checkpoint = data_dir / "work" / "alpha" / job.job_id / "checkpoint.json"
    assert checkpoint.exists()

    proc, port = serve(data_dir)
    try:
        channel = open_channel(f"localhost:{port}", token, root_certificates=ca)
        stubs = Stubs.on(channel)
        assert stubs.clips.GetClip(clips_pb2.GetClipRequest(clip_id=clip_id)).size_bytes == len(clip)
        events = watch(stubs, job.job_id)
        result = events[-1].result
        assert result.state == jobs_pb2.JOB_STATE_SUCCEEDED
        assert result.resumed
        final = stubs.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id))
        assert final.n_attempts == 2
        first_progress = next(e.progress for e in events if e.HasField("progress") and e.progress.samples)
        assert first_progress.samples > 5000  # picked up after the checkpoint, not from step 1
        channel.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopping" in out
    assert len((data_dir / "work" / "alpha" / job.job_id / "starts.txt").read_text().splitlines()) == 2
    assert main(["trainer", "audit", "--dir", str(data_dir)]) == 0
