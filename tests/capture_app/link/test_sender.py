"""The outbox against a real trainer on loopback (TLS, in this process or another): uploads and submits exactly once
through an app killed mid-upload, a network outage and a trainer restart; refusals fail the entry with the trainer's
message; a bad token stops the run and keeps the queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from capture_app.link.client import TrainerClient
from capture_app.link.errors import TrainerRefusedError
from capture_app.link.outbox import JobRequest, Outbox
from capture_app.link.settings import LinkSettings
from cloud_trainer.service.clips import FileClipStore
from cloud_trainer.service.config import Limits
from tests.capture_app.link.conftest import sender_for

REPO_ROOT = Path(__file__).resolve().parents[3]
#: Slow enough that an upload of ~1 MB is still running a few hundred ms after it started.
THROTTLED = Limits(upload_rate_bytes_per_s=512 * 1024, max_chunk_bytes=32 * 1024, max_calls_per_s=0)


def _accepted_uploads(trainer) -> Counter:
    """clip_id → how many times the trainer's audit log records it as accepted (new, not deduplicated)."""
    counts: Counter = Counter()
    for line in (trainer.data_dir / "audit.log").read_text().splitlines():
        entry = json.loads(line)
        if entry["action"] == "clip.upload" and entry.get("outcome") == "accepted":
            counts[entry["clip_id"]] += 1
    return counts


def _part_bytes(trainer, sha256: str) -> int:
    part = trainer.data_dir / "uploads" / "clinic" / f"{sha256}.part"
    return part.stat().st_size if part.exists() else 0


def _acknowledged(trainer, sha256: str) -> int:
    """Bytes of an upload the (stopped or running) trainer's clip store acknowledges."""
    progress = FileClipStore(trainer.data_dir).upload_progress("clinic", sha256)
    return 0 if progress is None else progress.received_bytes


def _wait_for(condition, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_a_clip_is_uploaded_confirmed_and_its_job_submitted(trainer, outbox, make_clip) -> None:
    events: list = []
    entry = outbox.enqueue(make_clip(n_samples=2000), JobRequest(("slope", "stairs"), "smoke"))
    report = sender_for(outbox, trainer, events).run()
    assert (report.n_uploaded, report.n_submitted, report.n_failed, report.ended) == (1, 1, 0, "done")
    assert report.bytes_sent == entry.size_bytes
    assert [e.kind for e in events if e.kind != "progress"] == ["upload", "uploaded", "submitted", "done"]
    record = outbox.sent(entry_id=entry.entry_id)[0]
    clip = trainer.service.clips.get("clinic", record.clip_id)
    assert clip is not None
    assert clip.sha256 == entry.sha256
    job = trainer.service.get_job("clinic", record.job_id)
    assert job.spec.tasks == ("slope", "stairs")
    assert job.spec.budget == "smoke"
    assert outbox.entries() == []
    assert entry.clip_path.is_file()  # the clip stays in the local library


def test_a_clip_the_trainer_holds_is_confirmed_without_sending_it_again(trainer, app_dir, make_clip, tmp_path):
    path = make_clip()
    first = Outbox(app_dir)
    first.enqueue(path)
    sender_for(first, trainer).run()
    other_device = Outbox(tmp_path / "other-app")  # another device of the clinic queues the same clip
    entry = other_device.enqueue(path)
    events: list = []
    report = sender_for(other_device, trainer, events).run()
    assert report.bytes_sent == 0
    assert [e.deduplicated for e in events if e.kind == "uploaded"] == [True]
    assert other_device.sent(entry_id=entry.entry_id)[0].n_upload_calls == 0
    assert sum(_accepted_uploads(trainer).values()) == 1


def test_a_network_outage_is_retried_until_the_trainer_is_back(trainer, outbox, make_clip) -> None:
    entry = outbox.enqueue(make_clip(), JobRequest(("slope",), "smoke"))
    trainer.stop()
    events: list = []
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(report=sender_for(outbox, trainer, events).run()))
    thread.start()
    _wait_for(lambda: sum(e.kind == "retry" for e in events) >= 3, what="three retries")
    assert outbox.get(entry.entry_id).state == "upload"  # still queued, not failed
    trainer.start()  # the same port and data
    thread.join(20)
    assert not thread.is_alive()
    retries = [e for e in events if e.kind == "retry"]
    assert all("UNAVAILABLE" in e.error for e in retries)
    delays = [e.delay_s for e in retries[:3]]
    assert delays[1] > delays[0] * 1.2
    assert delays[2] > delays[1] * 1.2
    assert result["report"].n_submitted == 1
    assert outbox.is_done(entry.entry_id)


def test_a_trainer_restart_mid_upload_resumes_from_the_acknowledged_offset(make_trainer, outbox, make_clip) -> None:
    trainer = make_trainer(THROTTLED)
    entry = outbox.enqueue(make_clip(n_samples=5000), JobRequest(("slope",), "smoke"))  # ~1 MB
    events: list = []
    thread = threading.Thread(target=lambda: sender_for(outbox, trainer, events).run())
    thread.start()
    _wait_for(lambda: _part_bytes(trainer, entry.sha256) > 600_000, what="the upload to pass 600 kB")
    trainer.stop(grace_s=0.1)
    _wait_for(lambda: _acknowledged(trainer, entry.sha256) > 0, what="the broken stream's bytes to be acknowledged")
    held = _acknowledged(trainer, entry.sha256)
    trainer.start()
    thread.join(30)
    assert not thread.is_alive()
    record = outbox.sent(entry_id=entry.entry_id)[0]
    assert held > 500_000  # what arrived before the restart was kept
    starts = [e.offset_bytes for e in events if e.kind == "upload"]
    assert starts == [0, held]  # the second call started where the trainer said it stood
    assert record.max_resume_offset_bytes == held
    assert record.n_upload_calls == 2
    assert _accepted_uploads(trainer) == {record.clip_id: 1}
    assert trainer.service.get_job("clinic", record.job_id).spec.clip_id == record.clip_id


def _upload_process(app_dir: Path, trainer) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for name in ("STRIDETWIN_SERVER", "STRIDETWIN_CA_CERT", "STRIDETWIN_TOKEN", "STRIDETWIN_TOKEN_FILE"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "stridetwin", "upload", "--data-dir", str(app_dir), "--server", trainer.address,
         "--ca-cert", str(trainer.ca_cert), "--token-file", str(trainer.token_file),
         "--config", str(app_dir / "no-settings.toml")],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_the_app_killed_mid_upload_with_a_full_outbox_loses_nothing(make_trainer, app_dir, make_clip) -> None:
    trainer = make_trainer(THROTTLED)
    outbox = Outbox(app_dir)
    entries = [outbox.enqueue(make_clip(f"walk{i}", n_samples=n, seed=i), JobRequest(("slope",), "smoke"))
               for i, n in enumerate((5000, 1500, 1500))]  # ~1 MB, then two of ~300 kB  # fmt: skip
    proc = _upload_process(app_dir, trainer)
    try:
        _wait_for(lambda: _part_bytes(trainer, entries[0].sha256) > 600_000, what="the first upload to pass 600 kB")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert [e.entry_id for e in Outbox(app_dir).entries()] == [e.entry_id for e in entries]  # all still queued
    proc = _upload_process(app_dir, trainer)  # the app starts again
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    outbox = Outbox(app_dir)
    assert outbox.entries() == []
    records = {r.entry_id: r for r in outbox.sent()}
    assert set(records) == {e.entry_id for e in entries}
    for entry in entries:
        record = records[entry.entry_id]
        assert record.clip_id == entry.sha256[:32]
        clip = trainer.service.clips.get("clinic", record.clip_id)
        assert clip is not None
        assert clip.sha256 == entry.sha256
        assert clip.size_bytes == entry.size_bytes
    assert records[entries[0].entry_id].max_resume_offset_bytes > 0  # the killed upload resumed, not restarted
    assert _accepted_uploads(trainer) == {e.sha256[:32]: 1 for e in entries}  # each clip exactly once
    jobs = trainer.service.list_jobs("clinic", set(), "", 100, 0)
    assert sorted(j.job_id for j in jobs) == sorted(r.job_id for r in records.values())  # one job per entry


def test_a_lost_submit_answer_does_not_submit_twice(trainer, outbox, make_clip, monkeypatch) -> None:
    entry = outbox.enqueue(make_clip(), JobRequest(("stairs",), "smoke"))
    real = Outbox.mark_submitted
    crashed = []

    def crash_once(self, entry_id, job_id):  # the app dies after the trainer accepted the job, before recording it
        if not crashed:
            crashed.append(job_id)
            raise KeyboardInterrupt("app killed")
        return real(self, entry_id, job_id)

    monkeypatch.setattr(Outbox, "mark_submitted", crash_once)
    with pytest.raises(KeyboardInterrupt):
        sender_for(outbox, trainer).run()
    assert outbox.get(entry.entry_id).state == "submit"
    sender_for(Outbox(outbox.data_dir), trainer).run()
    record = outbox.sent(entry_id=entry.entry_id)[0]
    assert record.job_id == crashed[0]  # the retried submit got the job created the first time
    assert len(trainer.service.list_jobs("clinic", set(), "", 100, 0)) == 1


def test_a_clip_the_trainer_refuses_fails_with_its_message(trainer, outbox, make_clip) -> None:
    entry = outbox.enqueue(make_clip("short", n_samples=50))  # fewer samples than a stride needs
    report = sender_for(outbox, trainer).run()
    assert report.n_failed == 1
    failed = outbox.get(entry.entry_id)
    assert failed.state == "failed"
    assert "INVALID_ARGUMENT" in failed.last_error
    assert "at least 100 are needed" in failed.last_error


def test_a_clip_changed_on_disk_after_queueing_fails_before_a_byte_leaves(trainer, outbox, make_clip) -> None:
    entry = outbox.enqueue(make_clip())
    with open(entry.clip_path, "r+b") as f:  # same size, other bytes: not what was checked for identifying data
        f.seek(100)
        f.write(b"\x00\x01\x02")
    sender_for(outbox, trainer).run()
    failed = outbox.get(entry.entry_id)
    assert failed.state == "failed"
    assert "changed on disk" in failed.last_error
    assert failed.n_upload_calls == 0
    assert _part_bytes(trainer, entry.sha256) == 0


def test_a_clip_touched_but_unchanged_is_checked_again_and_sent(trainer, outbox, make_clip) -> None:
    entry = outbox.enqueue(make_clip())
    os.utime(entry.clip_path, ns=(entry.clip_mtime_ns + 10**9, entry.clip_mtime_ns + 10**9))
    report = sender_for(outbox, trainer).run()
    assert report.n_uploaded == 1
    assert outbox.is_done(entry.entry_id)


def test_a_bad_token_stops_the_run_and_keeps_the_queue(trainer, outbox, make_clip) -> None:
    entry = outbox.enqueue(make_clip())
    bad = LinkSettings(server=trainer.address, ca_cert=trainer.ca_cert, token="stt_" + "x" * 43)
    from capture_app.link.sender import OutboxSender

    with pytest.raises(TrainerRefusedError) as info:
        OutboxSender(outbox, lambda: TrainerClient(bad)).run()
    assert info.value.code == "UNAUTHENTICATED"
    assert outbox.get(entry.entry_id).state == "upload"
