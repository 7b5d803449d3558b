"""The results library against a real trainer: artifacts downloaded in chunks, verified, stored next to the clip;
an interrupted download resumes; a damaged partial or stored file is fetched again; an artifact damaged on the
trainer is never shown as complete."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
from pathlib import Path

import pytest

from capture_app.link.client import TrainerClient
from capture_app.link.errors import IntegrityError, TrainerRefusedError
from capture_app.link.outbox import JobRequest, Outbox
from capture_app.link.results import ResultsLibrary
from tests.capture_app.link.conftest import FAST_BACKOFF, sender_for

BIG_BYTES = 3 * 1024 * 1024 + 123


@pytest.fixture
def big_artifacts(monkeypatch: pytest.MonkeyPatch) -> int:
    """The runner double also writes a video of this many bytes per task."""
    monkeypatch.setenv("STRIDETWIN_TEST_ARTIFACT_BYTES", str(BIG_BYTES))
    return BIG_BYTES


def _finished_job(trainer, outbox: Outbox, clip: Path, tasks=("slope",), budget="smoke") -> str:
    entry = outbox.enqueue(clip, JobRequest(tasks, budget))
    sender_for(outbox, trainer).run()
    job_id = outbox.sent(entry_id=entry.entry_id)[0].job_id
    with TrainerClient(trainer.settings()) as client:
        events = list(client.watch_job(job_id, timeout_s=30))
    assert events[-1].kind == "result"
    assert events[-1].result.state == "succeeded"
    return job_id


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_fetch_verifies_and_stores_next_to_the_clip(trainer, outbox, make_clip, big_artifacts) -> None:
    job_id = _finished_job(trainer, outbox, make_clip(), tasks=("slope", "stairs"))
    library = ResultsLibrary(outbox.data_dir, outbox, FAST_BACKOFF)
    seen = []
    with TrainerClient(trainer.settings()) as client:
        result = library.fetch(client, job_id, on_progress=seen.append, progress_interval_bytes=1024 * 1024)
    clip = outbox.sent(job_id=job_id)[0].clip_path
    assert result.complete
    assert result.directory == clip.with_name(f"{clip.stem}.results") / job_id
    assert result.clip_path == clip
    names = sorted(a.name for a in result.artifacts)
    assert names == ["angles/slope.csv", "angles/stairs.csv", "report.json", "video/slope.bin", "video/stairs.bin"]
    server = {a.name: a for a in trainer.service.list_artifacts("clinic", job_id)}
    for a in result.artifacts:
        data = result.path_of(a.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == a.sha256 == server[a.name].sha256
        assert len(data) == a.size_bytes
    assert result.report["tasks"] == ["slope", "stairs"]
    doc = json.loads((result.directory / "job.json").read_text())
    assert doc["schema"] == "stridetwin.results/1"
    assert doc["clip_id"] == result.clip_id
    assert not (result.directory / "partial").exists()
    assert not (result.directory / "fetch.json").exists()
    assert sum(p.kind == "verified" for p in seen) == 5
    assert max(p.bytes_done for p in seen if p.kind == "download") == BIG_BYTES
    assert stat.S_IMODE(result.directory.stat().st_mode) == 0o700
    assert library.get(job_id, verify=True).damaged == ()
    assert [r.job_id for r in ResultsLibrary(outbox.data_dir).list()] == [job_id]  # after a restart of the app


def _interrupt_after(n_bytes: int):
    def on_progress(p) -> None:
        if p.kind == "download" and p.bytes_done >= n_bytes and p.name.startswith("video/"):
            raise KeyboardInterrupt("app closed during the download")

    return on_progress


def test_an_interrupted_download_resumes_and_is_never_shown_complete_before(trainer, outbox, make_clip,
                                                                             big_artifacts) -> None:  # fmt: skip
    job_id = _finished_job(trainer, outbox, make_clip())
    library = ResultsLibrary(outbox.data_dir, outbox, FAST_BACKOFF)
    with TrainerClient(trainer.settings()) as client:
        with pytest.raises(KeyboardInterrupt):
            library.fetch(client, job_id, on_progress=_interrupt_after(1024 * 1024), progress_interval_bytes=256 * 1024)
        partial = library.get(job_id)
        assert partial is not None
        assert not partial.complete
        assert ResultsLibrary(outbox.data_dir).list()[0].complete is False
        part = partial.directory / "partial" / "video" / "slope.bin.part"
        kept = part.stat().st_size
        assert kept >= 1024 * 1024
        seen = []
        result = library.fetch(client, job_id, on_progress=seen.append)
    assert result.complete
    resumed = [p for p in seen if p.name == "video/slope.bin" and p.kind == "download"]
    assert resumed[0].resumed_from_bytes == kept
    data = result.path_of("video/slope.bin").read_bytes()
    assert len(data) == BIG_BYTES
    assert hashlib.sha256(data).hexdigest() == next(a.sha256 for a in result.artifacts if a.name == "video/slope.bin")


def test_a_damaged_partial_download_is_detected_and_fetched_again(trainer, outbox, make_clip, big_artifacts) -> None:
    job_id = _finished_job(trainer, outbox, make_clip())
    library = ResultsLibrary(outbox.data_dir, outbox, FAST_BACKOFF)
    with TrainerClient(trainer.settings()) as client:
        with pytest.raises(KeyboardInterrupt):
            library.fetch(client, job_id, on_progress=_interrupt_after(1024 * 1024), progress_interval_bytes=256 * 1024)
        part = library.get(job_id).directory / "partial" / "video" / "slope.bin.part"
        _flip(part, 1000)  # the disk damaged what was kept
        seen = []
        result = library.fetch(client, job_id, on_progress=seen.append)
    assert [p.kind for p in seen if p.name == "video/slope.bin"].count("corrupt") == 1
    assert result.complete
    assert library.get(job_id, verify=True).damaged == ()


def test_a_damaged_stored_artifact_is_reported_and_fetched_again(trainer, outbox, make_clip) -> None:
    job_id = _finished_job(trainer, outbox, make_clip(), tasks=("slope", "stairs"))
    library = ResultsLibrary(outbox.data_dir, outbox, FAST_BACKOFF)
    with TrainerClient(trainer.settings()) as client:
        result = library.fetch(client, job_id)
        _flip(result.path_of("angles/stairs.csv"), 3)
        checked = library.get(job_id, verify=True)
        assert checked.damaged == ("angles/stairs.csv",)
        assert not checked.complete
        seen = []
        library.fetch(client, job_id, on_progress=seen.append)
    fetched = {p.name for p in seen if p.kind == "download"}
    assert fetched == {"angles/stairs.csv"}  # only the damaged one came again
    assert library.get(job_id, verify=True).complete


def test_an_artifact_damaged_on_the_trainer_is_never_marked_complete(trainer, outbox, make_clip) -> None:
    job_id = _finished_job(trainer, outbox, make_clip())
    stored = trainer.data_dir / "artifacts" / "clinic" / job_id / "files" / "report.json"
    _flip(stored, 2)
    library = ResultsLibrary(outbox.data_dir, outbox, FAST_BACKOFF)
    seen = []
    with TrainerClient(trainer.settings()) as client, pytest.raises(IntegrityError, match="after two downloads"):
        library.fetch(client, job_id, on_progress=seen.append)
    assert [p.kind for p in seen if p.name == "report.json"].count("corrupt") == 2
    result = library.get(job_id)
    assert result is not None
    assert not result.complete
    assert not (result.directory / "job.json").exists()
    assert not result.path_of("report.json").exists()


def test_a_job_that_has_not_succeeded_has_nothing_to_fetch(trainer, outbox, make_clip) -> None:
    entry = outbox.enqueue(make_clip(), JobRequest(("slope",), "full"))
    sender_for(outbox, trainer).run()
    job_id = outbox.sent(entry_id=entry.entry_id)[0].job_id
    with TrainerClient(trainer.settings()) as client, pytest.raises(TrainerRefusedError, match="jobs --watch"):
        ResultsLibrary(outbox.data_dir, outbox).fetch(client, job_id)


def test_results_of_a_job_from_another_device_go_to_the_data_dir(trainer, outbox, make_clip, tmp_path) -> None:
    job_id = _finished_job(trainer, outbox, make_clip())
    elsewhere = tmp_path / "other-device"
    with TrainerClient(trainer.settings()) as client:
        result = ResultsLibrary(elsewhere).fetch(client, job_id)
    assert result.directory == elsewhere / "results" / job_id
    assert result.clip_path is None
    assert result.complete


def test_a_trainer_restart_mid_download_resumes_it(trainer, outbox, make_clip, monkeypatch) -> None:
    n_bytes = 16 * 1024 * 1024  # more than the stream's flow-control windows hold, so the trainer is still sending
    monkeypatch.setenv("STRIDETWIN_TEST_ARTIFACT_BYTES", str(n_bytes))
    job_id = _finished_job(trainer, outbox, make_clip())
    library = ResultsLibrary(outbox.data_dir, outbox, FAST_BACKOFF)
    seen = []
    restarts: list[threading.Thread] = []

    def stop_once(p) -> None:
        seen.append(p)
        if p.name == "video/slope.bin" and p.kind == "download" and p.bytes_done >= 1024 * 1024 and not restarts:
            trainer.stop(grace_s=0.05)  # the trainer goes down mid-stream and comes back 0.3 s later
            restarts.append(threading.Timer(0.3, trainer.start))
            restarts[0].start()

    with TrainerClient(trainer.settings()) as client:
        result = library.fetch(client, job_id, on_progress=stop_once, progress_interval_bytes=256 * 1024)
    restarts[0].join()
    assert result.complete
    video = [p for p in seen if p.name == "video/slope.bin"]
    assert any(p.kind == "retry" for p in video)
    resumed = [p.resumed_from_bytes for p in video if p.kind == "download"]
    assert max(resumed) >= 1024 * 1024  # picked up where the broken stream left it
    assert library.get(job_id, verify=True).complete
