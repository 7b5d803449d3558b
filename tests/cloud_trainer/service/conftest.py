"""A real trainer on loopback for the service tests: TLS with a freshly generated CA, two clinics, the test runner."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from cloud_trainer.service.auth import ClinicRegistry
from cloud_trainer.service.config import Limits, ServiceConfig
from cloud_trainer.service.executor import LocalExecutor
from cloud_trainer.service.pki import TlsFiles, create_tls_files
from cloud_trainer.service.runners import load_runner
from cloud_trainer.service.server import TrainerServer, create_server, stop_server
from cloud_trainer.service.service import TrainerService
from protos.channel import open_channel
from tests.cloud_trainer.service.client import Stubs, upload
from tests.cloud_trainer.service.clipmaker import write_clip

TEST_RUNNER = "tests.cloud_trainer.service.runner_double:counting_runner"


@dataclass
class Trainer:
    data_dir: Path
    port: int
    tls: TlsFiles
    tokens: dict[str, str]
    service: TrainerService
    running: TrainerServer
    _channels: list[grpc.Channel] = field(default_factory=list)

    def channel(self, token: str | None) -> grpc.Channel:
        ch = open_channel(f"localhost:{self.port}", token, root_certificates=self.tls.ca_cert.read_bytes())
        self._channels.append(ch)
        return ch

    def stubs(self, clinic: str = "alpha", token: str | None = None) -> Stubs:
        return Stubs.on(self.channel(token if token is not None else self.tokens[clinic]))

    def close(self) -> None:
        for ch in self._channels:
            ch.close()
        stop_server(self.running, grace_s=1.0, jobs_wait_s=5.0)


@pytest.fixture
def make_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """``make_trainer(limits=..., workers=..., data_dir=...)`` → a started :class:`Trainer`; stopped at teardown."""
    monkeypatch.setenv("STRIDETWIN_TEST_STEP_S", "0.05")
    started: list[Trainer] = []

    def make(limits: Limits | None = None, workers: int = 2, data_dir: Path | None = None) -> Trainer:
        data_dir = data_dir or tmp_path / "trainer"
        tls = TlsFiles.in_dir(data_dir / "tls")
        registry = ClinicRegistry(data_dir / "clinics.json")
        tokens = {}
        if not tls.exist():
            create_tls_files(data_dir / "tls")
            tokens = {name: registry.issue_token(name) for name in ("alpha", "beta")}
        else:
            tokens = dict(started[-1].tokens) if started else {}
        config = ServiceConfig(limits=limits or Limits(upload_rate_bytes_per_s=0, max_calls_per_s=0))
        service = TrainerService.open(data_dir, LocalExecutor(load_runner(TEST_RUNNER), workers), config)
        running, port = create_server("127.0.0.1:0", service, registry, tls=tls)
        trainer = Trainer(data_dir, port, tls, tokens, service, running)
        started.append(trainer)
        return trainer

    yield make
    for trainer in started:
        trainer.close()


@pytest.fixture
def trainer(make_trainer) -> Trainer:
    return make_trainer()


@pytest.fixture
def clip_bytes(tmp_path: Path) -> bytes:
    return write_clip(tmp_path / "walk.stclip").read_bytes()


@pytest.fixture
def uploaded(trainer: Trainer, clip_bytes: bytes):
    """Alpha's clip, uploaded: the UploadClipResponse."""
    response = upload(trainer.stubs("alpha"), clip_bytes)
    assert response.clip.sha256 == hashlib.sha256(clip_bytes).hexdigest()
    return response
