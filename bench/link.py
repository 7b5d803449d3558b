"""Link benchmark (``stridetwin bench link``): the app's side of the clinic ↔ trainer road, through the real outbox,
sender and results library against ``stridetwin trainer serve`` (TLS, a separate process) on loopback.

(a) **Outbox throughput**: N finished clips are queued (the pre-upload check with SHA-256, the copy into the
    library, the SQLite commit: ms per clip) and the outbox is sent, after one warm-up clip that opens the channel:
    clips/s and MB/s until every SHA-256 is confirmed, the median upload call (status, stream, the trainer's check
    and commit, the local record), then the same with a smoke job submitted per clip (median submit).
(b) **One big clip** through the outbox in a fresh process: MB/s, and that process's peak RSS (chunks stream from
    disk, so memory stays flat whatever the size).
(c) **Job finished → artifacts verified on the app side**: the app watches a job as it runs; from the trainer's
    ``finished_unix_s`` (same machine, same clock) and from the result event until :meth:`ResultsLibrary.fetch` has
    downloaded, verified and stored every artifact: small artifacts (report, angles), repeated, and a big artifact
    (a video-sized file), whose watch and fetch run in a fresh app process for its peak RSS.

(d) **The same with the patient pipeline** (full mode): a virtual patient's analysed walk, a smoke job (both tasks),
    and the latency from the job's end to its 29 real artifacts (ONNX, videos, report) verified in the library.

(a)-(c) run the service tests' runner double (it reads the clip, checkpoints, and writes a report, angles and, when
asked, an artifact of a given size): they measure the road, with artifacts of chosen sizes, not training. Wall-clock
figures on a shared 2-core machine vary with its load; each says what it measured.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
TEST_RUNNER = "tests.cloud_trainer.service.runner_double:counting_runner"

#: A fresh app process: send the outbox in DATA_DIR to ADDRESS; prints wall time, bytes and peak RSS.
_SEND_CHILD = """
import json, sys, time
from bench.memory import peak_rss_mb
from capture_app.link.client import TrainerClient
from capture_app.link.outbox import Outbox
from capture_app.link.sender import OutboxSender
from capture_app.link.settings import LinkSettings
data_dir, address, ca, token = sys.argv[1:5]
settings = LinkSettings(server=address, ca_cert=__import__("pathlib").Path(ca), token=token)
t0 = time.perf_counter()
report = OutboxSender(Outbox(data_dir), lambda: TrainerClient(settings)).run()
print(json.dumps({"wall_s": time.perf_counter() - t0, "bytes_sent": report.bytes_sent, "failed": report.failed,
                  "peak_rss_mb": peak_rss_mb()}))
"""

#: A fresh app process: wait for JOB to end, fetch its results into DATA_DIR; prints latency and peak RSS.
_FETCH_CHILD = """
import json, sys, time
from bench.memory import peak_rss_mb
from capture_app.link.client import TrainerClient
from capture_app.link.results import ResultsLibrary
from capture_app.link.settings import LinkSettings
data_dir, address, ca, token, job_id = sys.argv[1:6]
client = TrainerClient(LinkSettings(server=address, ca_cert=__import__("pathlib").Path(ca), token=token))
for event in client.watch_job(job_id):
    if event.kind == "result":
        ended = time.time()
result = ResultsLibrary(__import__("pathlib").Path(data_dir)).fetch(client, job_id)
verified = time.time()
job = client.get_job(job_id)
print(json.dumps({"latency_s": verified - ended, "from_finished_s": verified - job.finished_unix_s,
                  "n_bytes": sum(a.size_bytes for a in result.artifacts), "complete": result.complete,
                  "peak_rss_mb": peak_rss_mb()}))
"""


class _Trainer:
    """``stridetwin trainer serve`` (TLS) in a subprocess, set up with ``trainer init`` in ``data_dir``."""

    def __init__(
        self, data_dir: Path, artifact_bytes: int = 0, step_s: float = 0.01, runner: str | None = TEST_RUNNER
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "STRIDETWIN_TEST_STEP_S": str(step_s),
               "STRIDETWIN_TEST_ARTIFACT_BYTES": str(artifact_bytes)}  # fmt: skip
        token_file = data_dir.with_suffix(".token")
        subprocess.run([sys.executable, "-m", "stridetwin", "trainer", "init", "--dir", str(data_dir), "--clinic",
                        "bench", "--token-file", str(token_file)], cwd=REPO_ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip
        self.token = token_file.read_text().strip()
        self.ca = data_dir / "tls" / "ca.pem"
        self.runner = "runner double (tests)" if runner else "patient pipeline"
        args = [sys.executable, "-m", "stridetwin", "trainer", "serve", "--dir", str(data_dir), "--address",
                "127.0.0.1:0", "--upload-rate-mb-s", "0", "--max-clip-mb", "4096", "--max-calls-per-s", "1000",
                "--max-pending-per-clinic", "100", "--workers", "2", *(["--runner", runner] if runner else [])]
        self.proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"trainer did not start: {line}")
        self.address = f"localhost:{match.group(1)}"

    def settings(self):
        from capture_app.link.settings import LinkSettings

        return LinkSettings(server=self.address, ca_cert=self.ca, token=self.token)

    def child(self, code: str, *args: str) -> dict:
        out = subprocess.run([sys.executable, "-c", code, *args[:1], self.address, str(self.ca), self.token, *args[1:]],
                             cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                             text=True, timeout=1800)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"app process failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def _clips(folder: Path, n: int, n_samples: int, first_seed: int = 0) -> list[Path]:
    """``n`` distinct clips (distinct seeds: the trainer deduplicates identical bytes, which skips the upload)."""
    from tests.cloud_trainer.service.clipmaker import write_clip

    folder.mkdir(parents=True, exist_ok=True)
    return [write_clip(folder / f"walk{i:03d}.stclip", n_samples, seed=first_seed + i) for i in range(n)]


def _throughput(trainer: _Trainer, tmp: Path, clips: list[Path], with_jobs: bool) -> dict:
    """Queue ``clips`` and send them (after one warm-up clip that opens the channel); rates and per-step medians
    from the sender's events."""
    from capture_app.link.client import TrainerClient
    from capture_app.link.outbox import JobRequest, Outbox
    from capture_app.link.sender import OutboxSender

    outbox = Outbox(tmp / ("app-jobs" if with_jobs else "app"))
    job = JobRequest(("slope",), "smoke") if with_jobs else None
    settings = trainer.settings()
    times: dict[str, dict[str, float]] = {}
    sender = OutboxSender(outbox, lambda: TrainerClient(settings),
                          on_event=lambda e: times.setdefault(e.entry_id, {}).setdefault(e.kind, time.perf_counter()))
    warm_up = _clips(tmp / ("warm-jobs" if with_jobs else "warm"), 1, 400, first_seed=2000 + int(with_jobs))[0]
    outbox.enqueue(warm_up, job)
    sender.run()
    times.clear()
    t0 = time.perf_counter()
    for path in clips:
        outbox.enqueue(path, job)
    enqueue_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = sender.run()
    send_s = time.perf_counter() - t0
    if report.failed or outbox.entries():
        raise RuntimeError(f"outbox did not drain: {report.failed}")
    n_bytes = sum(p.stat().st_size for p in clips)
    upload_ms = [1e3 * (t["uploaded"] - t["upload"]) for t in times.values() if "upload" in t]
    if len(upload_ms) != len(clips):
        raise RuntimeError(f"{len(clips) - len(upload_ms)} of {len(clips)} clips were already on the trainer")
    submit_ms = [1e3 * (t["submitted"] - t["uploaded"]) for t in times.values() if "submitted" in t]
    return {"enqueue_ms_per_clip": 1e3 * enqueue_s / len(clips), "send_s": send_s,
            "clips_per_s": len(clips) / send_s, "mb_s": n_bytes / 1e6 / send_s,
            "upload_call_ms_median": statistics.median(upload_ms),
            "submit_ms_median": statistics.median(submit_ms) if submit_ms else None}  # fmt: skip


def _latency(
    trainer: _Trainer, folder: Path, clips: list[Path], tasks: tuple[str, ...] = ("slope",)
) -> tuple[list[float], list[float], int]:
    """Per clip, in this process: the clip is sent with a smoke job and watched at once; seconds from the trainer's
    ``finished_unix_s`` and from the result event to every artifact verified in the library, and the artifacts' count
    (of the last job)."""
    from capture_app.link.client import TrainerClient
    from capture_app.link.outbox import JobRequest, Outbox
    from capture_app.link.results import ResultsLibrary
    from capture_app.link.sender import OutboxSender

    outbox = Outbox(folder)
    settings = trainer.settings()
    sender = OutboxSender(outbox, lambda: TrainerClient(settings))
    library = ResultsLibrary(outbox.data_dir, outbox)
    from_finished, from_event = [], []
    with TrainerClient(settings) as client:
        for path in clips:
            entry = outbox.enqueue(path, JobRequest(tasks, "smoke"))
            sender.run()
            job_id = outbox.sent(entry_id=entry.entry_id)[0].job_id
            for event in client.watch_job(job_id):
                if event.kind == "result":
                    event_s = time.time()
            result = library.fetch(client, job_id)
            verified_s = time.time()
            assert result.complete
            from_event.append(verified_s - event_s)
            from_finished.append(verified_s - client.get_job(job_id).finished_unix_s)
    return from_finished, from_event, len(result.artifacts)


def run(quick: bool = False) -> dict:
    """Figures for ``stridetwin bench link``."""
    from bench.service import write_clip_of_size
    from capture_app.link.outbox import JobRequest, Outbox

    n_clips = 4 if quick else 20
    clip_samples = 2000 if quick else 5000  # ≈ 0.4 or 1.0 MB
    big_mb = 16 if quick else 256
    artifact_mb = 4 if quick else 64
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp_name:
        tmp = Path(tmp_name)
        clips = _clips(tmp / "clips", n_clips, clip_samples)
        figures["clips"] = f"{n_clips} × {clips[0].stat().st_size / 1e6:.2f} MB"
        trainer = _Trainer(tmp / "trainer")
        figures["runner"] = trainer.runner
        try:
            plain = _throughput(trainer, tmp, clips, with_jobs=False)
            job_clips = _clips(tmp / "clips-jobs", n_clips, clip_samples, first_seed=1000)
            jobs = _throughput(trainer, tmp, job_clips, with_jobs=True)
            figures["enqueue_ms_per_clip"] = round(plain["enqueue_ms_per_clip"], 1)
            figures["outbox_clips_per_s"] = round(plain["clips_per_s"], 1)
            figures["outbox_mb_s"] = round(plain["mb_s"], 1)
            figures["upload_call_ms_median"] = round(plain["upload_call_ms_median"], 1)
            figures["outbox_clips_per_s_with_job_submit"] = round(jobs["clips_per_s"], 1)
            figures["submit_ms_median"] = round(jobs["submit_ms_median"], 1)
            lat_clips = _clips(tmp / "lat-clips", 3 if quick else 9, 400, first_seed=3000)
            from_finished, from_event, _ = _latency(trainer, tmp / "app-latency", lat_clips)
            figures["job_finished_to_artifacts_verified_s_small_median"] = round(statistics.median(from_finished), 3)
            figures["job_finished_to_artifacts_verified_s_small_max"] = round(max(from_finished), 3)
            figures["result_event_to_artifacts_verified_s_small_median"] = round(statistics.median(from_event), 3)

            big = tmp / "big.stclip"
            write_clip_of_size(big, big_mb * MIB)
            Outbox(tmp / "app-big").enqueue(big)
            sent = trainer.child(_SEND_CHILD, str(tmp / "app-big"))
            label = f"{big.stat().st_size / 1e6:.0f}mb"
            figures[f"outbox_upload_mb_s_{label}"] = round(big.stat().st_size / 1e6 / sent["wall_s"], 1)
            figures[f"outbox_sender_peak_rss_mb_{label}"] = round(sent["peak_rss_mb"], 1)
        finally:
            trainer.stop()

        # A job that runs ~2 s (budget full: 40 steps of 0.05 s), so that the fresh app process watches it end.
        trainer = _Trainer(tmp / "trainer-big", artifact_bytes=artifact_mb * MIB, step_s=0.05)
        try:
            outbox = Outbox(tmp / "app-fetch")
            entry = outbox.enqueue(clips[0], JobRequest(("slope",), "full"))
            from capture_app.link.client import TrainerClient
            from capture_app.link.sender import OutboxSender

            settings = trainer.settings()
            OutboxSender(outbox, lambda: TrainerClient(settings)).run()
            job_id = outbox.sent(entry_id=entry.entry_id)[0].job_id
            got = trainer.child(_FETCH_CHILD, str(outbox.data_dir), job_id)
            label = f"{got['n_bytes'] / 1e6:.0f}mb"
            figures[f"job_finished_to_artifacts_verified_s_{label}"] = round(got["from_finished_s"], 3)
            figures[f"result_event_to_artifacts_verified_s_{label}"] = round(got["latency_s"], 3)
            figures[f"fetch_peak_rss_mb_{label}"] = round(got["peak_rss_mb"], 1)
            figures[f"fetch_mb_s_{label}"] = round(got["n_bytes"] / 1e6 / got["latency_s"], 1)
        finally:
            trainer.stop()

        if not quick:  # (d): the patient pipeline's own artifacts
            from tests.cloud_trainer.pipeline.clips import analysed_clip

            (tmp / "walks").mkdir()
            walks = [analysed_clip(tmp / "walks", f"walk{i}", seed=str(40 + i)) for i in range(3)]
            trainer = _Trainer(tmp / "trainer-pipeline", runner=None)
            try:
                from_finished, _, n = _latency(trainer, tmp / "app-pipeline", walks, ("slope", "stairs"))
                figures["pipeline_smoke_job_finished_to_artifacts_verified_s"] = [round(x, 3) for x in from_finished]
                figures["pipeline_smoke_job_artifacts"] = n
            finally:
                trainer.stop()
    return figures


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
