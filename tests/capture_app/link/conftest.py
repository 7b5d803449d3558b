"""A real trainer on loopback for the link's tests (in this process, TLS, the service's test runner), and clips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from capture_app.link.backoff import Backoff
from capture_app.link.client import TrainerClient
from capture_app.link.outbox import Outbox
from capture_app.link.sender import OutboxSender
from cloud_trainer.service.config import Limits
from stridetwin.loopback import LoopbackTrainer
from tests.cloud_trainer.service.clipmaker import write_clip

#: The service's runner double: reads the clip, takes a few checkpointed steps, writes angles and a report.
TEST_RUNNER = "tests.cloud_trainer.service.runner_double:counting_runner"
#: Short waits so that retries happen within a test.
FAST_BACKOFF = Backoff(initial_s=0.05, multiplier=2.0, max_s=0.4, jitter=0.2)


@pytest.fixture
def make_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """``make_trainer(limits=None, name="trainer")`` → a started :class:`LoopbackTrainer`; stopped at teardown."""
    monkeypatch.setenv("STRIDETWIN_TEST_STEP_S", "0.02")
    started: list[LoopbackTrainer] = []

    def make(limits: Limits | None = None, name: str = "trainer") -> LoopbackTrainer:
        limits = limits or Limits(upload_rate_bytes_per_s=0, max_calls_per_s=0)
        trainer = LoopbackTrainer(tmp_path / name, runner=TEST_RUNNER, limits=limits, workers=2).start()
        started.append(trainer)
        return trainer

    yield make
    for trainer in started:
        trainer.stop(grace_s=0.2)


@pytest.fixture
def trainer(make_trainer) -> LoopbackTrainer:
    return make_trainer()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return tmp_path / "app"


@pytest.fixture
def outbox(app_dir: Path) -> Outbox:
    return Outbox(app_dir)


def sender_for(outbox: Outbox, trainer: LoopbackTrainer, events: list | None = None, **kwargs) -> OutboxSender:
    settings = trainer.settings()
    return OutboxSender(outbox, lambda: TrainerClient(settings), backoff=FAST_BACKOFF,
                        on_event=events.append if events is not None else None, **kwargs)  # fmt: skip


@pytest.fixture
def make_clip(tmp_path: Path):
    """``make_clip(name, n_samples=400, seed=0, **kwargs)`` → a finished clip in ``tmp_path/recordings``."""

    def make(name: str = "walk", n_samples: int = 400, seed: int = 0, **kwargs) -> Path:
        folder = tmp_path / "recordings"
        folder.mkdir(exist_ok=True)
        return write_clip(folder / f"{name}.stclip", n_samples, seed=seed, **kwargs)

    return make
