"""``stridetwin upload``, ``jobs`` and ``results`` end to end against a real trainer on loopback (TLS), settings from
flags, the environment and a settings file; refusals as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stridetwin.cli import main
from tests.capture_app.link.foreign import write_foreign_clip


@pytest.fixture
def env(trainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trainer's connection in the environment, the app's data in ``tmp_path/app``; returns the data dir."""
    monkeypatch.setenv("STRIDETWIN_SERVER", trainer.address)
    monkeypatch.setenv("STRIDETWIN_CA_CERT", str(trainer.ca_cert))
    monkeypatch.setenv("STRIDETWIN_TOKEN_FILE", str(trainer.token_file))
    monkeypatch.setenv("STRIDETWIN_DATA_DIR", str(tmp_path / "app"))
    monkeypatch.setenv("STRIDETWIN_CONFIG", str(tmp_path / "no-settings.toml"))
    monkeypatch.delenv("STRIDETWIN_TOKEN", raising=False)
    return tmp_path / "app"


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_upload_watch_and_fetch(env, make_clip, capsys) -> None:
    clip = make_clip(n_samples=600)
    assert main(["upload", str(clip), "--tasks", "slope,stairs", "--budget", "smoke", "--json"]) == 0
    doc = _json(capsys)
    assert doc["schema"] == "stridetwin.upload/1"
    [row] = doc["clips"]
    assert row["state"] == "sent"
    assert row["job_id"]
    assert row["file"].startswith(str(env))
    job_id = row["job_id"]

    assert main(["jobs", "--watch", job_id]) == 0
    watched = capsys.readouterr().out
    assert f"{job_id}  ended succeeded" in watched

    assert main(["jobs", "--json"]) == 0
    jobs = _json(capsys)
    assert [j["job_id"] for j in jobs["jobs"]] == [job_id]
    assert jobs["outbox"] == []
    assert jobs["jobs"][0]["local_clip"] == row["file"]
    assert jobs["jobs"][0]["state"] == "succeeded"

    assert main(["results", "fetch", job_id, "--json"]) == 0
    fetched = _json(capsys)
    assert fetched["complete"]
    assert len(fetched["artifacts"]) == 3
    assert all(Path(a["path"]).is_file() for a in fetched["artifacts"])
    assert main(["results", "list"]) == 0
    assert f"{job_id}  complete  3 artifacts  {clip.name}" in capsys.readouterr().out

    assert main(["upload", str(clip), "--tasks", "slope,stairs", "--budget", "smoke"]) == 0  # by accident, again
    captured = capsys.readouterr()
    assert "already confirmed" in captured.err
    assert f"job {job_id}" in captured.out
    assert main(["jobs", "--json"]) == 0
    assert len(_json(capsys)["jobs"]) == 1  # no second job


def test_upload_refuses_identifying_data_and_known_patients(env, tmp_path, capsys) -> None:
    named = write_foreign_clip(tmp_path / "named.stclip", {"patient": {"pseudonym": "P-1", "first_name": "Erika"}})
    assert main(["upload", str(named)]) == 2
    assert "never leaves this device" in capsys.readouterr().err
    from capture_app.link.patients import PatientList

    PatientList(env / "patients.sqlite3").add("Erika Mustermann", "1956-08-12")
    typed = write_foreign_clip(tmp_path / "typed.stclip", {"patient": {"pseudonym": "Erika Mustermann"}})
    assert main(["upload", str(typed)]) == 2
    err = capsys.readouterr().err
    assert "the name of patient P-" in err
    assert "Mustermann" not in err.split("holds", 1)[1]


def test_queue_only_then_send_later(env, make_clip, capsys) -> None:
    clip = make_clip()
    assert main(["upload", str(clip), "--queue-only"]) == 0
    assert "still queued (upload)" in capsys.readouterr().out
    assert main(["jobs"]) == 0
    assert "(outbox) " in capsys.readouterr().out
    assert main(["upload"]) == 0  # no file: send what is queued
    assert "confirmed as clip" in capsys.readouterr().out


def test_settings_errors_are_one_line(env, make_clip, monkeypatch, capsys) -> None:
    monkeypatch.delenv("STRIDETWIN_CA_CERT")
    assert main(["jobs"]) == 2
    assert "no CA certificate for TLS" in capsys.readouterr().err
    assert main(["jobs", "--insecure-loopback", "--server", "10.1.2.3:50051"]) == 2
    assert "only allowed to 127.0.0.1" in capsys.readouterr().err


def test_a_settings_file_is_read(env, trainer, tmp_path, monkeypatch, capsys) -> None:
    for name in ("STRIDETWIN_SERVER", "STRIDETWIN_CA_CERT", "STRIDETWIN_TOKEN_FILE"):
        monkeypatch.delenv(name)
    config = tmp_path / "link.toml"
    config.write_text(f'server = "{trainer.address}"\nca_cert = "{trainer.ca_cert}"\n'
                      f'token_file = "{trainer.token_file}"\n')  # fmt: skip
    assert main(["jobs", "--config", str(config)]) == 0
    assert "no jobs on the trainer" in capsys.readouterr().out


def test_a_wrong_token_is_refused_and_the_clip_stays_queued(env, make_clip, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.token"
    bad.write_text("stt_" + "A" * 43)
    assert main(["upload", str(make_clip()), "--token-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED" in err
    assert "stay queued" in err


def test_progress_line_counts_samples_in_training_and_steps_in_the_export() -> None:
    from capture_app.link.client import JobProgress
    from stridetwin.commands._link import progress_line

    training = JobProgress("prediction", "promoted", "slope", 3, 1_234_000, 3_000_000, 60.0, 125.0)
    assert progress_line(training) == "prediction, slope level 3, 1234.0k/3000.0k samples, ETA 2:05, promoted"
    export = JobProgress("export", "rendering videos", None, None, 7, 29, 3.0, 9.0)
    assert progress_line(export) == "export, step 7/29, ETA 0:09, rendering videos"
