"""A real trainer on loopback inside this process, for ``stridetwin demo``, the link's tests and its benchmark.

It is what a clinic runs, set up the way ``stridetwin trainer init`` does it, only in a throwaway directory: a private
CA and a server certificate for ``localhost``/``127.0.0.1`` (:func:`cloud_trainer.service.pki.create_tls_files`),
one clinic with one token (:class:`cloud_trainer.service.auth.ClinicRegistry`), the file and SQLite stores, a local
executor, and the gRPC server with TLS on ``127.0.0.1`` and a free port. The app side talks to it exactly as to a
remote trainer: TLS, token, the same client. :meth:`LoopbackTrainer.restart` stops it and starts it again on the
same port and data (what a trainer restart looks like to the app).

Jobs run the patient pipeline (``cloud_trainer.pipeline.run``) unless another runner is named. In an installation
without the pipeline's libraries, :attr:`LoopbackTrainer.training_available` is false and a job submitted anyway fails
at once with a message saying so (no results are made up).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from capture_app.link.settings import LinkSettings

TRAINING_UNAVAILABLE = (
    "training is not available in this installation: the patient pipeline (cloud_trainer.pipeline.run) cannot be "
    "loaded; install the trainer extra: pip install -e '.[trainer]'"
)


class _NoTraining:
    """The executor of a trainer without a pipeline: every job fails at once, saying why."""

    name = "none"
    capacity = 1

    def start(self, job_id: str, request: object, on_progress: Callable, on_done: Callable) -> None:
        from cloud_trainer.service.executor import JobOutcome

        on_done(JobOutcome(error=TRAINING_UNAVAILABLE))

    def stop_job(self, job_id: str) -> None:
        pass

    def shutdown(self, wait_s: float) -> None:
        pass


class LoopbackTrainer:
    """A trainer service in this process on ``127.0.0.1`` with TLS (module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        runner: str | None = None,
        limits: object | None = None,
        workers: int = 1,
        clinic: str = "clinic",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.runner_spec = runner
        self.limits = limits
        self.workers = workers
        self.clinic = clinic
        self.port = 0
        self.token = ""
        self._running = None
        self.training_available = False
        self.runner_problem = ""

    # ------------------------------------------------------------------------------------------------ set-up
    def _init(self) -> None:
        from cloud_trainer.service.auth import ClinicRegistry
        from cloud_trainer.service.pki import TlsFiles, create_tls_files

        tls = TlsFiles.in_dir(self.data_dir / "tls")
        token_file = self.data_dir / "clinic.token"
        if not tls.exist():
            create_tls_files(tls.ca_cert.parent)
            self.token = ClinicRegistry(self.data_dir / "clinics.json").issue_token(self.clinic)
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.token + "\n")
        else:
            self.token = token_file.read_text().strip()

    def _executor(self):
        from cloud_trainer.service.executor import LocalExecutor
        from cloud_trainer.service.runners import DEFAULT_RUNNER, RunnerNotFoundError, load_runner

        try:
            runner = load_runner(self.runner_spec or DEFAULT_RUNNER)
        except RunnerNotFoundError as exc:
            self.training_available = False
            self.runner_problem = f"{TRAINING_UNAVAILABLE} ({exc})" if self.runner_spec is None else str(exc)
            return _NoTraining()
        self.training_available = True
        return LocalExecutor(runner, workers=self.workers)

    # ------------------------------------------------------------------------------------------------ life cycle
    def start(self) -> LoopbackTrainer:
        """Start serving (set up on first start); the same port after a restart."""
        from cloud_trainer.service.auth import ClinicRegistry
        from cloud_trainer.service.config import ServiceConfig
        from cloud_trainer.service.pki import TlsFiles
        from cloud_trainer.service.server import create_server
        from cloud_trainer.service.service import TrainerService

        if self._running is not None:
            return self
        self._init()
        config = ServiceConfig(limits=self.limits) if self.limits is not None else None
        service = TrainerService.open(self.data_dir, self._executor(), config)
        self._running, self.port = create_server(
            f"127.0.0.1:{self.port}", service, ClinicRegistry(self.data_dir / "clinics.json"),
            tls=TlsFiles.in_dir(self.data_dir / "tls"),
        )  # fmt: skip
        return self

    def stop(self, grace_s: float = 1.0, jobs_wait_s: float = 10.0) -> None:
        """Stop gracefully (calls in flight get ``grace_s``; running jobs resume at the next start)."""
        from cloud_trainer.service.server import stop_server

        if self._running is not None:
            running, self._running = self._running, None
            stop_server(running, grace_s=grace_s, jobs_wait_s=jobs_wait_s)

    def restart(self, grace_s: float = 1.0) -> LoopbackTrainer:
        self.stop(grace_s)
        return self.start()

    @property
    def running(self) -> bool:
        return self._running is not None

    @property
    def service(self):
        """The running :class:`~cloud_trainer.service.service.TrainerService` (for tests and benchmarks)."""
        return None if self._running is None else self._running.service

    def __enter__(self) -> LoopbackTrainer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------ for clients
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "clinic.token"

    def settings(self) -> LinkSettings:
        """How the app reaches this trainer: TLS against the throwaway CA, with the clinic's token."""
        return LinkSettings(server=self.address, ca_cert=self.ca_cert, token=self.token)
