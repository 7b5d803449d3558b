"""The demo's road to the trainer and back: the recorded clip goes through the app's outbox to a trainer the demo
starts on loopback, a training job runs the patient pipeline, and its results come back into the local library.

The trainer is :class:`~stridetwin.loopback.LoopbackTrainer`: the real service in the demo's process, set up as
``stridetwin trainer init`` does (a throwaway CA and server certificate, one clinic token) in a temporary directory,
serving TLS on 127.0.0.1 with a free port. Why in-process and why TLS: the demo needs no free port number, no second
interpreter starting up and no stdout parsing, and it cannot leave a server behind; TLS with a fresh CA costs a few
milliseconds and makes the app speak to it exactly as to a trainer across the network (same client, same settings
object, same token check), so the demo exercises the product's path, not a shortcut.

When the patient pipeline (``cloud_trainer.pipeline.run``) cannot be loaded (the trainer extra is missing), the clip
is still uploaded and its SHA-256 confirmed, and the demo then says that training is not available and why; no result
is made up.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The demo's job: both tasks at the pipeline's smallest budget (it proves the plumbing in minutes).
DEMO_TASKS: tuple[str, ...] = ("slope", "stairs")


@dataclass
class LinkOutcome:
    """What the demo's link stage did."""

    clip_id: str
    #: ``None`` when training is not available (or not asked for).
    job_id: str | None = None
    job_state: str | None = None
    results_dir: Path | None = None
    n_artifacts: int = 0
    training_available: bool = False


def run_link_stage(
    clip_path: Path,
    app_dir: Path,
    library: Path,
    *,
    budget: str = "smoke",
    runner: str | None = None,
    patients: Any = None,
    say: Callable[[str], None] = print,
) -> LinkOutcome:
    """Queue ``clip_path`` in the outbox under ``app_dir`` (library ``library``), send it to a loopback trainer,
    and, where the pipeline exists, train, watch and fetch the results next to the clip."""
    from capture_app.link.client import TrainerClient
    from capture_app.link.outbox import JobRequest, Outbox
    from capture_app.link.results import ResultsLibrary
    from capture_app.link.sender import OutboxSender, send_until_done
    from stridetwin.loopback import LoopbackTrainer

    with tempfile.TemporaryDirectory(prefix="stridetwin-demo-trainer-") as tmp:
        started = time.monotonic()
        trainer = LoopbackTrainer(Path(tmp) / "trainer", runner=runner).start()
        try:
            settings = trainer.settings()
            say(f"      trainer on {trainer.address} (TLS, throwaway CA {trainer.ca_cert.name}, clinic token), "
                f"started in {time.monotonic() - started:.1f} s")  # fmt: skip
            job = JobRequest(DEMO_TASKS, budget) if trainer.training_available else None
            outbox = Outbox(app_dir, library=library)
            entry = outbox.enqueue(clip_path, job, patients)
            say(f"      queued in the outbox ({app_dir / Outbox.FILE_NAME}): {entry.size_bytes / 1e6:.1f} MB, "
                f"SHA-256 {entry.sha256[:16]}…, pseudonym {entry.pseudonym}")  # fmt: skip

            def on_event(event: Any) -> None:
                if event.kind in ("uploaded", "submitted", "failed"):
                    say(f"      {event.message}")
                elif event.kind == "retry":
                    say(f"      {event.error}; retrying in {event.delay_s:.1f} s")

            t0 = time.monotonic()
            sender = OutboxSender(outbox, lambda: TrainerClient(settings), on_event=on_event)
            report = send_until_done(sender, [entry.entry_id], timeout_s=120)
            if not outbox.is_done(entry.entry_id):
                left = outbox.get(entry.entry_id)
                raise RuntimeError(f"the upload did not complete: {left.last_error if left else report.ended}")
            record = outbox.sent(entry_id=entry.entry_id)[0]
            say(f"      upload confirmed in {time.monotonic() - t0:.2f} s ({report.bytes_sent / 1e6:.1f} MB sent)")
            outcome = LinkOutcome(record.clip_id, record.job_id, training_available=trainer.training_available)
            if not trainer.training_available:
                say(f"[5/5] training: not available: {trainer.runner_problem}; the demo stops after the verified "
                    "upload, no results are made up")
                return outcome
            assert record.job_id is not None
            say(f"[5/5] training ({'+'.join(DEMO_TASKS)}, budget {budget}) on the trainer, results back into the "
                "library")  # fmt: skip
            with TrainerClient(settings) as client:
                outcome.job_state = _watch(client, record.job_id, say)
                if outcome.job_state != "succeeded":
                    return outcome
                t0 = time.monotonic()
                result = ResultsLibrary(app_dir, outbox).fetch(client, record.job_id)
            outcome.results_dir = result.directory
            outcome.n_artifacts = len(result.artifacts)
            total = sum(a.size_bytes for a in result.artifacts)
            say(f"      {len(result.artifacts)} artifacts ({total / 1e6:.1f} MB) downloaded and verified (SHA-256) in "
                f"{time.monotonic() - t0:.2f} s into {result.directory}")  # fmt: skip
            for a in result.artifacts:
                say(f"        {a.kind:12s} {a.name}")
            return outcome
        finally:
            trainer.stop()


def _watch(client: Any, job_id: str, say: Callable[[str], None]) -> str:
    """Print the job's progress (on a change of stage, task or level, else at most every 5 s); returns its end
    state."""
    from stridetwin.commands._link import progress_line

    last_key: tuple = ()
    last_s = 0.0
    state = "unspecified"
    for event in client.watch_job(job_id):
        if event.kind == "job" and event.job is not None:
            say(f"      job {job_id}: {event.job.state}")
        elif event.kind == "progress" and event.progress is not None:
            p = event.progress
            key = (p.stage, p.task, p.level)
            if key != last_key or time.monotonic() - last_s >= 5.0:
                last_key, last_s = key, time.monotonic()
                say(f"        {progress_line(p)}")
        elif event.kind == "result" and event.result is not None:
            state = event.result.state
            extra = f": {event.result.error_message}" if event.result.error_message else ""
            say(f"      job ended {state}{extra}")
    return state
