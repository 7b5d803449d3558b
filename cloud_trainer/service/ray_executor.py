"""Running jobs on a Ray cluster: ``stridetwin trainer serve --executor ray --ray-address HOST:PORT``.

Each job is one Ray task (:func:`_run_job`) that imports the runner by name on the worker, runs it, and returns the
result as plain data. Progress and cancellation travel through one small actor per trainer (:class:`_JobChannel`):
workers push progress events to it, the trainer drains them twice a second; a cancel sets a flag in it that a thread
in the worker turns into the pipeline's cancel event. A task that ignores the cancel for ``cancel_grace_s`` is
cancelled by Ray.

The job's ``out_dir`` and the clip are paths: every node must see the trainer's data directory at the same path (one
machine, or a shared filesystem such as NFS), because the pipeline's checkpoints must outlive any one worker. The
trainer's Python packages must be importable on the workers (``deploy/`` installs them); ``code_root`` is put on the
workers' PYTHONPATH for a cluster on this machine. Tasks are owned by the trainer's driver: if the trainer dies, Ray
stops them, and the restarted trainer submits the jobs again (they resume from their checkpoints).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cloud_trainer.pipeline.api import Artifact, PipelineRequest, PipelineResult, ProgressEvent, Stage
from cloud_trainer.service.executor import DoneSink, JobOutcome, ProgressSink

_log = logging.getLogger(__name__)

#: How often the trainer drains progress events and checks for finished tasks, seconds.
POLL_INTERVAL_S = 0.5


def _request_to_json(request: PipelineRequest) -> dict[str, Any]:
    doc = asdict(request)
    doc["input_path"] = str(request.input_path)
    doc["out_dir"] = str(request.out_dir)
    doc["tasks"] = list(request.tasks)
    return doc


def _request_from_json(doc: dict[str, Any]) -> PipelineRequest:
    return PipelineRequest(**{**doc, "input_path": Path(doc["input_path"]), "out_dir": Path(doc["out_dir"]),
                              "tasks": tuple(doc["tasks"])})  # fmt: skip


def _result_to_json(result: PipelineResult) -> dict[str, Any]:
    return {
        "out_dir": str(result.out_dir),
        "report": result.report,
        "artifacts": [{**asdict(a), "path": str(a.path)} for a in result.artifacts],
        "resumed": result.resumed,
    }


def _result_from_json(doc: dict[str, Any]) -> PipelineResult:
    return PipelineResult(
        out_dir=Path(doc["out_dir"]),
        report=doc["report"],
        artifacts=[Artifact(**{**a, "path": Path(a["path"])}) for a in doc["artifacts"]],
        resumed=doc["resumed"],
    )


class _JobChannel:
    """A Ray actor: progress events from workers to the trainer, cancel flags from the trainer to workers."""

    def __init__(self) -> None:
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._cancelled: set[str] = set()

    def push(self, job_id: str, event: dict[str, Any]) -> None:
        self._events.setdefault(job_id, []).append(event)

    def drain(self) -> dict[str, list[dict[str, Any]]]:
        events, self._events = self._events, {}
        return events

    def cancel(self, job_id: str) -> None:
        self._cancelled.add(job_id)

    def forget(self, job_id: str) -> None:
        self._cancelled.discard(job_id)
        self._events.pop(job_id, None)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled


def _run_job(runner_spec: str, request_doc: dict[str, Any], job_id: str, channel: Any) -> dict[str, Any]:
    """The Ray task: run one job on a worker and return its result as plain data."""
    import ray

    from cloud_trainer.service.runners import load_runner

    runner = load_runner(runner_spec)
    cancel = threading.Event()
    finished = threading.Event()

    def watch_cancel() -> None:
        while not finished.wait(POLL_INTERVAL_S):
            if ray.get(channel.is_cancelled.remote(job_id)):
                cancel.set()
                return

    pushed: list[Any] = []

    def on_progress(event: ProgressEvent) -> None:
        pushed.append(channel.push.remote(job_id, event.to_json()))
        if len(pushed) > 64:  # keep the worker from running far ahead of the channel
            ray.get(pushed)
            pushed.clear()

    threading.Thread(target=watch_cancel, daemon=True).start()
    try:
        result = runner(_request_from_json(request_doc), on_progress, cancel)
    finally:
        finished.set()
        ray.get(pushed)  # every event is in the channel before the trainer sees the task end
    return {"result": _result_to_json(result), "cancelled": cancel.is_set()}


class RayExecutor:
    """Runs jobs as Ray tasks on the cluster at ``address`` (``HOST:PORT`` of the head's GCS, or ``auto``)."""

    name = "ray"

    def __init__(
        self,
        address: str,
        runner_spec: str,
        capacity: int = 2,
        *,
        num_cpus_per_job: float = 1.0,
        cancel_grace_s: float = 30.0,
        code_root: Path | None = None,
    ) -> None:
        import ray

        self.runner_spec = runner_spec
        self.capacity = capacity
        self.cancel_grace_s = cancel_grace_s
        root = code_root or Path(__file__).resolve().parents[2]
        python_path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        if not ray.is_initialized():
            ray.init(
                address=address,
                runtime_env={"env_vars": {"PYTHONPATH": python_path}},
                log_to_driver=False,
                configure_logging=False,
            )
        self._ray = ray
        self._channel = ray.remote(num_cpus=0)(_JobChannel).remote()
        self._task = ray.remote(num_cpus=num_cpus_per_job, max_retries=0)(_run_job)
        self._jobs: dict[str, tuple[Any, ProgressSink, DoneSink]] = {}
        self._cancel_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="ray-executor", daemon=True)
        self._monitor.start()

    def start(self, job_id: str, request: PipelineRequest, on_progress: ProgressSink, on_done: DoneSink) -> None:
        ref = self._task.options(name=f"stridetwin-job-{job_id}").remote(
            self.runner_spec, _request_to_json(request), job_id, self._channel
        )
        with self._lock:
            self._jobs[job_id] = (ref, on_progress, on_done)

    def stop_job(self, job_id: str) -> None:
        with self._lock:
            if job_id not in self._jobs:
                return
            self._cancel_at.setdefault(job_id, time.monotonic())
        self._channel.cancel.remote(job_id)

    def _watch(self) -> None:
        ray = self._ray
        while not self._stopping.is_set():
            with self._lock:
                jobs = dict(self._jobs)
            if not jobs:
                self._stopping.wait(POLL_INTERVAL_S)
                continue
            self._forward_progress(jobs)
            refs = {ref: job_id for job_id, (ref, _, _) in jobs.items()}
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_INTERVAL_S)
            if ready:
                self._forward_progress(jobs)  # what the finished tasks pushed last comes before their outcome
            for ref in ready:
                self._finish(refs[ref], ref)
            self._force_overdue()

    def _forward_progress(self, jobs: dict[str, tuple[Any, ProgressSink, DoneSink]]) -> None:
        try:
            events = self._ray.get(self._channel.drain.remote())
        except Exception:  # the channel actor died with its node: jobs still finish, progress is lost
            _log.warning("ray executor: progress channel unavailable", exc_info=True)
            return
        for job_id, docs in events.items():
            if job_id in jobs:
                for doc in docs:
                    jobs[job_id][1](ProgressEvent(**{**doc, "stage": Stage(doc["stage"])}))

    def _finish(self, job_id: str, ref: Any) -> None:
        ray = self._ray
        with self._lock:
            _, _, on_done = self._jobs.pop(job_id)
            cancelled = self._cancel_at.pop(job_id, None) is not None
        try:
            doc = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            outcome = JobOutcome(stopped=True)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            outcome = JobOutcome(stopped=True) if cancelled else JobOutcome(error=f"{type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as exc:  # worker or node lost
            outcome = JobOutcome(stopped=True) if cancelled else JobOutcome(error=f"ray: {exc}")
        else:
            stopped = cancelled or doc["cancelled"]
            outcome = JobOutcome(stopped=True) if stopped else JobOutcome(result=_result_from_json(doc["result"]))
        self._channel.forget.remote(job_id)
        on_done(outcome)

    def _force_overdue(self) -> None:
        now = time.monotonic()
        with self._lock:
            overdue = [self._jobs[j][0] for j, t in self._cancel_at.items() if now - t > self.cancel_grace_s]
        for ref in overdue:
            self._ray.cancel(ref, force=True)

    def shutdown(self, wait_s: float) -> None:
        with self._lock:
            job_ids = list(self._jobs)
        for job_id in job_ids:
            self.stop_job(job_id)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._jobs:
                    break
            time.sleep(0.1)
        self._stopping.set()
        self._monitor.join(timeout=5)
        self._ray.shutdown()
