"""A job run on a real Ray cluster: a local head on loopback (started with ``ray start --head``, token
authentication on), the trainer connected to it with ``RayExecutor``, progress and the result forwarded to a client
over TLS, and a cancel reaching the worker."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cloud_trainer.service.auth import ClinicRegistry
from cloud_trainer.service.pki import create_tls_files
from cloud_trainer.service.server import create_server, stop_server
from cloud_trainer.service.service import TrainerService
from protos.channel import open_channel
from protos.stridetwin.v1 import jobs_pb2
from tests.cloud_trainer.service.client import Stubs, download, upload, watch
from tests.cloud_trainer.service.conftest import TEST_RUNNER

psutil = pytest.importorskip("psutil")
if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed (pip install -e '.[cluster]')", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(monkeypatch):
    """A Ray head bound to 127.0.0.1 only, with token authentication; yields its GCS address."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    token = temp / "auth_token"
    token.write_text(os.urandom(32).hex())
    token.chmod(0o600)
    env = {
        # Ray replaces 127.0.0.1 with the machine's routable address unless clustering across hosts is off;
        # with it off every Ray process listens on loopback only.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from ray._private import ray_constants

    # The driver (this process) reads the variable when ray is first imported, possibly before this fixture.
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    port = _free_port()
    ray_cli = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", str(temp), "--disable-usage-stats"],
        env={**os.environ, "STRIDETWIN_TEST_STEP_S": "0.1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    started = threading.Event()
    lines: list[str] = []

    def drain() -> None:
        assert head.stdout is not None
        for line in head.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                started.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not started.wait(90):
            pytest.fail("the Ray head did not start:\n" + "".join(lines[-30:]))
        yield f"127.0.0.1:{port}"
    finally:
        # Stop what this test started, by process id: the head and its descendants (GCS, raylet, workers).
        try:
            family = [psutil.Process(head.pid), *psutil.Process(head.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        os.killpg(head.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=3)
        for proc in alive:
            proc.kill()
        psutil.wait_procs(alive, timeout=5)
        head.wait(5)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_job_runs_on_a_local_ray_head(ray_head, tmp_path):
    from cloud_trainer.service.ray_executor import RayExecutor
    from tests.cloud_trainer.service.clipmaker import write_clip

    data_dir = tmp_path / "trainer"
    tls = create_tls_files(data_dir / "tls")
    registry = ClinicRegistry(data_dir / "clinics.json")
    token = registry.issue_token("alpha")
    executor = RayExecutor(ray_head, TEST_RUNNER, capacity=2)
    service = TrainerService.open(data_dir, executor)
    running, port = create_server("127.0.0.1:0", service, registry, tls=tls)
    channel = open_channel(f"localhost:{port}", token, root_certificates=tls.ca_cert.read_bytes())
    try:
        stubs = Stubs.on(channel)
        clip_id = upload(stubs, write_clip(tmp_path / "walk.stclip").read_bytes()).clip.clip_id
        job = stubs.jobs.SubmitJob(
            jobs_pb2.SubmitJobRequest(clip_id=clip_id, tasks=[jobs_pb2.TASK_STAIRS], budget=jobs_pb2.BUDGET_SMOKE,
                                      idempotency_key="ray-1")
        )  # fmt: skip
        events = watch(stubs, job.job_id, timeout_s=120)
        result = events[-1].result
        assert result.state == jobs_pb2.JOB_STATE_SUCCEEDED, result.error_message
        samples = [e.progress.samples for e in events if e.HasField("progress")]
        assert samples[-2:] == [4000, 0]  # the last step, then DONE: progress came back from the worker
        info, body = download(stubs, job.job_id, "angles/stairs.csv")
        assert body.startswith(b"sensor_id,n_samples\nS0,400\n")
        assert info.sha256

        long_job = stubs.jobs.SubmitJob(
            jobs_pb2.SubmitJobRequest(clip_id=clip_id, tasks=[jobs_pb2.TASK_SLOPE], budget=jobs_pb2.BUDGET_FULL,
                                      idempotency_key="ray-2")
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while stubs.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=long_job.job_id)).progress.samples < 2000:
            assert time.monotonic() < deadline, "the long job made no progress on Ray"
            time.sleep(0.05)
        stubs.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=long_job.job_id))
        final = watch(stubs, long_job.job_id, timeout_s=60)[-1].result
        assert final.state == jobs_pb2.JOB_STATE_CANCELLED
        checkpoint = json.loads((data_dir / "work" / "alpha" / long_job.job_id / "checkpoint.json").read_text())
        assert 2 <= checkpoint["step"] < 40  # the worker checkpointed into the shared work directory, then stopped
    finally:
        channel.close()
        stop_server(running, grace_s=1.0, jobs_wait_s=10.0)
