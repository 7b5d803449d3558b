"""The session directory and recovery on the next start."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from capture_app.core.session.store import SessionStore, default_session_dir
from sensor_drivers.recording.clipfile import ClipWriter, read_clip
from sensor_drivers.sample import ImuSample
from sensor_drivers.sites import Site


def test_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STRIDETWIN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_session_dir() == tmp_path / "xdg" / "stridetwin" / "sessions"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_session_dir() == tmp_path / "home" / ".local" / "share" / "stridetwin" / "sessions"
    monkeypatch.setenv("STRIDETWIN_DATA_DIR", str(tmp_path / "data"))
    assert default_session_dir() == tmp_path / "data" / "sessions"


def test_new_clip_paths_never_collide(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions")
    now = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
    first = store.new_clip_path("P 0042/x", now)
    assert first.name == "20260501T100000Z-P-0042-x.stclip"
    first.touch()
    assert store.new_clip_path("P 0042/x", now).name == "20260501T100000Z-P-0042-x-2.stclip"
    assert (tmp_path / "sessions").stat().st_mode & 0o777 == 0o700


def test_recovery_of_unfinished_clips_on_the_next_start(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    path = store.new_clip_path("P-7")
    writer = ClipWriter(path, metadata={"patient": {"pseudonym": "P-7"}})
    for k in range(600):  # 3 s at 200 Hz
        writer.add(ImuSample("S", Site.PELVIS, k / 200, 100.0 + k / 200, k, (0.0, 0.0, 9.81), (0.0, 0.0, 0.0)))
    writer.flush()  # what a crash leaves: records on disk, no footer
    damaged = tmp_path / "20260101T000000Z-broken.stclip"
    damaged.write_bytes(b"not a clip at all")
    assert sorted(store.unfinished()) == sorted([path, damaged])

    notices = {n.source: n for n in store.recover_unfinished()}
    writer.close()
    good = notices[path]
    assert good.recovered_path is not None
    clip = read_clip(good.recovered_path)
    assert clip.recovered
    assert good.n_samples == {"S": 600}
    assert good.duration_s == pytest.approx(599 / 200)
    assert "P-7" in good.message
    assert "Recovered 3.0 s of data (600 samples from 1 sensors)" in good.message
    bad = notices[damaged]
    assert bad.recovered_path is None
    assert "could not be recovered" in bad.message
    assert (tmp_path / (damaged.name + ".unrecoverable")).exists()
    # nothing is offered twice
    assert store.recover_unfinished() == []
    assert good.recovered_path in store.clips()
