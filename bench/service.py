"""Trainer service benchmark: upload throughput on loopback (TLS and plaintext), latency from a job's end to its
artifacts verified on the client, peak memory of server and client while a 1 GB clip and a 1 GB artifact move, and an
idle trainer's memory.

Goal (issue 6): chunks stream through both ends, so a 1 GB clip or artifact moves with flat memory; an idle trainer
stays under 300 MB. Everything runs as separate processes (``stridetwin trainer serve`` and small client processes),
so each process's peak RSS is its own (VmHWM of /proc/PID/status: ``ru_maxrss`` would report a larger parent's
high-water mark, because Linux carries it across fork and exec). Jobs run the service tests' runner double, which
reads the clip, checkpoints, and writes a report and an artifact of the requested size: this benchmark measures the
transport of a 1 GB artifact, which the patient pipeline does not make (its own artifacts: ``stridetwin bench
link``). Upload figures run until the server confirmed the clip, i.e. include its verification pass.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
TEST_RUNNER = "tests.cloud_trainer.service.runner_double:counting_runner"

#: Client process: upload FILE in 1 MiB chunks read from disk; prints wall time and peak RSS.
_UPLOAD_CHILD = """
import hashlib, json, sys, time
from protos.channel import open_channel
from protos.stridetwin.v1 import clips_pb2, clips_pb2_grpc
address, token, ca, path = sys.argv[1:5]
digest = hashlib.sha256()
with open(path, "rb") as f:
    while block := f.read(1 << 20):
        digest.update(block)
size = __import__("os").path.getsize(path)
def requests():
    yield clips_pb2.UploadClipRequest(header=clips_pb2.UploadHeader(sha256=digest.hexdigest(), size_bytes=size))
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            yield clips_pb2.UploadClipRequest(chunk=block)
channel = open_channel(address, token, root_certificates=open(ca, "rb").read() if ca != "-" else None,
                       insecure_loopback=ca == "-")
t0 = time.perf_counter()
response = clips_pb2_grpc.ClipServiceStub(channel).UploadClip(requests())
wall = time.perf_counter() - t0
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"wall_s": wall, "clip_id": response.clip.clip_id, "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""

#: Client process: watch JOB; when it ends, download every artifact to DIR in chunks, verifying each SHA-256.
_RESULTS_CHILD = """
import hashlib, json, os, sys, time
from protos.channel import open_channel
from protos.stridetwin.v1 import artifacts_pb2, artifacts_pb2_grpc, jobs_pb2, jobs_pb2_grpc
address, token, ca, job_id, out = sys.argv[1:6]
channel = open_channel(address, token, root_certificates=open(ca, "rb").read() if ca != "-" else None,
                       insecure_loopback=ca == "-")
jobs, arts = jobs_pb2_grpc.JobServiceStub(channel), artifacts_pb2_grpc.ArtifactServiceStub(channel)
for event in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
    if event.HasField("result"):
        ended = time.time()
        result = event.result
assert result.state == jobs_pb2.JOB_STATE_SUCCEEDED, result.error_message
n_bytes = 0
for art in result.artifacts:
    digest = hashlib.sha256()
    with open(os.path.join(out, art.name.replace("/", "_")), "wb") as f:
        for chunk in arts.DownloadArtifact(artifacts_pb2.DownloadArtifactRequest(job_id=job_id, name=art.name)):
            digest.update(chunk.data)
            f.write(chunk.data)
            n_bytes += len(chunk.data)
    assert digest.hexdigest() == art.sha256, art.name
verified = time.time()
job = jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))
print(json.dumps({"latency_s": verified - ended, "server_finished_to_verified_s": verified - job.finished_unix_s,
                  "n_bytes": n_bytes, "n_artifacts": len(result.artifacts),
                  "peak_rss_mb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
                                 / 1024}))
"""


def write_clip_of_size(path: Path, size_bytes: int) -> int:
    """A valid 5-sensor clip of about ``size_bytes`` (40 bytes per sample: both clocks' worth of time, seq, acc,
    gyr), written in blocks so this process stays small; returns the number of samples."""
    from sensor_drivers.recording.clipfile import ClipWriter
    from sensor_drivers.sites import KIT_SITES

    per_sensor = max(200, size_bytes // (40 * 5))
    step = 1 << 20
    k = np.arange(step)
    acc = np.tile(np.float32([0.1, 0.2, 9.81]), (step, 1)) + (k % 7)[:, None].astype(np.float32) * 0.01
    gyr = np.tile(np.float32([0.01, -0.02, 0.03]), (step, 1))
    with ClipWriter(path, metadata={"patient": {"pseudonym": "BENCH"}}) as writer:
        for i, site in enumerate(KIT_SITES):
            writer.add_sensor({"sensor_id": f"S{i}", "site": site.value, "nominal_rate_hz": 200.0})
        for start in range(0, per_sensor, step):
            n = min(step, per_sensor - start)
            for i in range(len(KIT_SITES)):
                writer.write_arrays(f"S{i}", {
                    "host_time_s": 100.0 + (start + np.arange(n)) / 200.0, "seq": start + np.arange(n),
                    "acc_m_s2": acc[:n], "gyr_rad_s": gyr[:n],
                })  # fmt: skip
    return per_sensor * 5


class _Server:
    """``stridetwin trainer serve`` in a subprocess."""

    def __init__(self, data_dir: Path, tls: bool, artifact_bytes: int) -> None:
        runner = ["--runner", TEST_RUNNER]  # sized artifacts (module docstring)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "STRIDETWIN_TEST_STEP_S": "0.01",
               "STRIDETWIN_TEST_ARTIFACT_BYTES": str(artifact_bytes)}  # fmt: skip
        args = [sys.executable, "-m", "stridetwin", "trainer", "serve", "--dir", str(data_dir), "--address",
                "127.0.0.1:0", "--upload-rate-mb-s", "0", "--max-clip-mb", "4096", "--max-calls-per-s", "1000",
                *runner, *([] if tls else ["--insecure-loopback"])]  # fmt: skip
        self.proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"trainer did not start: {line}")
        self.address = f"{'localhost' if tls else '127.0.0.1'}:{match.group(1)}"
        self.runner = "runner double (tests): sized artifacts"

    def rss_mb(self, field: str = "VmRSS") -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO_ROOT, env={**os.environ,
                         "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=900)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _submit(address: str, token: str, ca: str, clip_id: str) -> str:
    from protos.channel import open_channel
    from protos.stridetwin.v1 import jobs_pb2, jobs_pb2_grpc

    channel = open_channel(address, token, root_certificates=Path(ca).read_bytes() if ca != "-" else None,
                           insecure_loopback=ca == "-")  # fmt: skip
    job = jobs_pb2_grpc.JobServiceStub(channel).SubmitJob(
        jobs_pb2.SubmitJobRequest(clip_id=clip_id, tasks=[jobs_pb2.TASK_SLOPE], budget=jobs_pb2.BUDGET_SMOKE,
                                  idempotency_key=f"bench-{time.time()}")
    )  # fmt: skip
    channel.close()
    return job.job_id


def run(quick: bool = False) -> dict:
    """Figures for ``stridetwin bench service``: a 1 GiB clip and artifact (64 MiB with ``quick``)."""
    return measure((64 if quick else 1024) * MIB)


def measure(size: int) -> dict:
    """Upload a clip of ``size`` bytes to a plaintext and a TLS trainer, run a job producing an 8 MiB (plaintext) and a
    ``size`` (TLS) artifact, download and verify them; every figure from separate processes."""
    from stridetwin.cli import main

    label = f"{size // MIB}mb"
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        tmp_path = Path(tmp)
        big_clip = tmp_path / "big.stclip"
        small_clip = tmp_path / "small.stclip"
        t0 = time.perf_counter()
        n_samples = write_clip_of_size(big_clip, size)
        write_clip_of_size(small_clip, 200 * 5 * 40)
        figures["clip_mb"] = round(big_clip.stat().st_size / 1e6, 1)
        figures["clip_samples"] = n_samples
        figures["clip_write_s"] = round(time.perf_counter() - t0, 1)
        for tls in (False, True):
            mode = "tls" if tls else "plaintext"
            data_dir = tmp_path / mode
            token_file = tmp_path / f"{mode}.token"
            with open(os.devnull, "w") as devnull:
                old = sys.stdout
                sys.stdout = devnull
                try:
                    main(["trainer", "init", "--dir", str(data_dir), "--clinic", "bench", "--token-file",
                          str(token_file)])  # fmt: skip
                finally:
                    sys.stdout = old
            token = token_file.read_text().strip()
            ca = str(data_dir / "tls" / "ca.pem") if tls else "-"
            server = _Server(data_dir, tls, artifact_bytes=size if tls else 8 * MIB)
            figures["runner"] = server.runner
            try:
                time.sleep(1.0)
                figures[f"idle_trainer_rss_mb_{mode}"] = round(server.rss_mb(), 1)
                up = _child(_UPLOAD_CHILD, server.address, token, ca, str(big_clip))
                figures[f"upload_mb_s_{mode}"] = round(big_clip.stat().st_size / 1e6 / up["wall_s"], 1)
                figures[f"upload_wall_s_{mode}_{label}"] = round(up["wall_s"], 2)
                figures[f"upload_client_peak_rss_mb_{mode}_{label}"] = round(up["peak_rss_mb"], 1)
                figures[f"server_peak_rss_mb_after_upload_{mode}_{label}"] = round(server.rss_mb("VmHWM"), 1)
                small = _child(_UPLOAD_CHILD, server.address, token, ca, str(small_clip))
                job_id = _submit(server.address, token, ca, small["clip_id"])
                (tmp_path / f"dl-{mode}").mkdir()
                got = _child(_RESULTS_CHILD, server.address, token, ca, job_id, str(tmp_path / f"dl-{mode}"))
                art = f"{got['n_bytes'] / 1e6:.0f}mb"
                figures[f"job_end_to_artifacts_verified_s_{mode}_{art}"] = round(got["latency_s"], 3)
                figures[f"server_finished_to_verified_s_{mode}_{art}"] = round(got["server_finished_to_verified_s"], 3)
                figures[f"download_client_peak_rss_mb_{mode}_{art}"] = round(got["peak_rss_mb"], 1)
                figures[f"server_peak_rss_mb_end_{mode}"] = round(server.rss_mb("VmHWM"), 1)
            finally:
                server.stop()
    return figures
