"""The outbox on disk: entries survive reopening, clips are copied into the library and verified, the same clip with
the same job is one entry, failed entries come back with retry, and a sent entry remembers its job."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest

from capture_app.link.outbox import JobRequest, Outbox


def test_entries_survive_reopening_and_keep_their_idempotency_key(app_dir: Path, make_clip) -> None:
    first = Outbox(app_dir)
    a = first.enqueue(make_clip("a"), JobRequest(("slope",), "smoke"))
    b = first.enqueue(make_clip("b", seed=1))
    again = Outbox(app_dir)  # the app restarted
    entries = again.entries()
    assert [e.entry_id for e in entries] == [a.entry_id, b.entry_id]
    assert entries[0].idempotency_key == a.idempotency_key
    assert entries[0].job == JobRequest(("slope",), "smoke")
    assert entries[1].job is None
    assert all(e.state == "upload" for e in entries)
    assert stat.S_IMODE(app_dir.stat().st_mode) == 0o700
    mode = sqlite3.connect(app_dir / Outbox.FILE_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_clip_from_elsewhere_is_copied_into_the_library_and_verified(app_dir: Path, make_clip) -> None:
    outbox = Outbox(app_dir)
    source = make_clip("walk")
    entry = outbox.enqueue(source)
    assert entry.clip_path.parent == outbox.library.resolve()
    assert entry.clip_path.read_bytes() == source.read_bytes()
    assert entry.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    source.unlink()  # the user deletes the original: the queued copy is unaffected
    assert outbox.entries()[0].clip_path.is_file()
    in_library = outbox.enqueue(entry.clip_path, JobRequest())
    assert in_library.clip_path == entry.clip_path  # already in the library: not copied again


def test_a_name_clash_in_the_library_gets_a_new_name(app_dir: Path, make_clip, tmp_path: Path) -> None:
    outbox = Outbox(app_dir)
    first = outbox.enqueue(make_clip("walk", seed=1))
    other = tmp_path / "elsewhere"
    other.mkdir()
    second_src = make_clip("walk2", seed=2).rename(other / "walk.stclip")
    second = outbox.enqueue(second_src)
    assert first.clip_path != second.clip_path
    assert second.clip_path.name == "walk-2.stclip"


def test_the_same_clip_and_job_is_one_entry_a_different_job_another(app_dir: Path, make_clip) -> None:
    outbox = Outbox(app_dir)
    path = make_clip()
    a = outbox.enqueue(path, JobRequest(("slope",)))
    assert outbox.enqueue(path, JobRequest(("slope",))).entry_id == a.entry_id
    b = outbox.enqueue(path, JobRequest(("stairs",)))
    assert b.entry_id != a.entry_id
    assert len(outbox.entries()) == 2


def test_failed_entries_wait_for_retry_and_queueing_again_retries(app_dir: Path, make_clip) -> None:
    outbox = Outbox(app_dir)
    path = make_clip()
    entry = outbox.enqueue(path)
    outbox.mark_failed(entry.entry_id, "refused: test")
    assert outbox.next_due(1e12) == (None, None)  # nothing to send
    assert outbox.entries(("failed",))[0].last_error == "refused: test"
    again = outbox.enqueue(path)
    assert again.entry_id == entry.entry_id
    assert again.state == "upload"
    outbox.mark_failed(entry.entry_id, "refused again")
    assert outbox.retry() == 1
    assert outbox.entries()[0].state == "upload"


def test_a_sent_entry_leaves_the_queue_and_remembers_its_job(app_dir: Path, make_clip) -> None:
    outbox = Outbox(app_dir)
    entry = outbox.enqueue(make_clip(), JobRequest(("slope", "stairs"), "smoke"))
    after = outbox.mark_uploaded(entry.entry_id, "c" * 32)
    assert after.state == "submit"
    assert after.clip_id == "c" * 32
    record = outbox.mark_submitted(entry.entry_id, "job1")
    assert outbox.entries() == []
    assert Outbox(app_dir).sent(job_id="job1") == [record]
    assert outbox.sent_matching(entry.sha256, JobRequest(("slope", "stairs"), "smoke")) == record
    assert outbox.sent_matching(entry.sha256, None) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"tasks": ()}, "tasks"), ({"tasks": ("ramp",)}, "tasks"), ({"tasks": ("slope", "slope")}, "each once"),
     ({"budget": "huge"}, "budget"), ({"method": "magic"}, "method"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_job_requests_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobRequest(**kwargs)
