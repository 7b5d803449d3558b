"""Executors run pipeline jobs: :class:`LocalExecutor`, a worker pool inside the trainer (the default), and
``RayExecutor`` (:mod:`cloud_trainer.service.ray_executor`), a Ray cluster. The service's scheduler decides *which*
job runs when (per-clinic limits, order); an executor only runs what it is given, reports progress and the outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from cloud_trainer.pipeline.api import PipelineRequest, PipelineResult, PipelineRunner, ProgressEvent

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    """How a run ended: a result, an error message, or stopped (cancelled or the trainer stopping)."""

    result: PipelineResult | None = None
    error: str = ""
    stopped: bool = False


ProgressSink = Callable[[ProgressEvent], None]
DoneSink = Callable[[JobOutcome], None]


class Executor(Protocol):
    """Runs jobs it is handed; never more than :attr:`capacity` at once."""

    #: ``local`` or ``ray``.
    name: str
    #: Jobs it runs at once.
    capacity: int

    def start(self, job_id: str, request: PipelineRequest, on_progress: ProgressSink, on_done: DoneSink) -> None:
        """Run the job; ``on_progress`` and then ``on_done`` (exactly once) are called from the executor's threads."""

    def stop_job(self, job_id: str) -> None:
        """Ask a running job to stop (the pipeline checks its cancel event between steps); ``on_done`` follows."""

    def shutdown(self, wait_s: float) -> None:
        """Stop every running job and wait up to ``wait_s`` for them to return."""


class LocalExecutor:
    """Runs jobs on ``workers`` threads of this process, calling ``runner`` directly. A runner given by its import
    path (:func:`~cloud_trainer.service.runners.load_runner`) is imported when the first job starts, so an idle trainer
    does not hold the pipeline's libraries."""

    name = "local"

    def __init__(self, runner: PipelineRunner | str, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1, got {workers}")
        self._runner = runner
        self.capacity = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @property
    def runner(self) -> PipelineRunner:
        if isinstance(self._runner, str):
            from cloud_trainer.service.runners import load_runner

            self._runner = load_runner(self._runner)
        return self._runner

    def start(self, job_id: str, request: PipelineRequest, on_progress: ProgressSink, on_done: DoneSink) -> None:
        cancel = threading.Event()
        with self._lock:
            self._cancel[job_id] = cancel
        self._pool.submit(self._run, job_id, request, cancel, on_progress, on_done)

    def _run(
        self, job_id: str, request: PipelineRequest, cancel: threading.Event, on_progress: ProgressSink,
        on_done: DoneSink,
    ) -> None:  # fmt: skip
        try:
            result = self.runner(request, on_progress, cancel)
        except Exception as exc:  # the pipeline's failure is the job's outcome, not the trainer's crash
            outcome = JobOutcome(stopped=True) if cancel.is_set() else JobOutcome(error=_describe(exc))
            if not cancel.is_set():
                _log.warning("job %s failed", job_id, exc_info=True)
        else:
            outcome = JobOutcome(stopped=True) if cancel.is_set() else JobOutcome(result=result)
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
        on_done(outcome)

    def stop_job(self, job_id: str) -> None:
        with self._lock:
            event = self._cancel.get(job_id)
        if event is not None:
            event.set()

    def shutdown(self, wait_s: float) -> None:
        with self._lock:
            events = list(self._cancel.values())
        for event in events:
            event.set()
        done = threading.Event()
        threading.Thread(target=lambda: (self._pool.shutdown(wait=True), done.set()), daemon=True).start()
        if not done.wait(wait_s):
            _log.warning("%d job(s) did not stop within %.0f s; they resume at the next start", len(events), wait_s)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
