"""The demo's link stage: the clip through the outbox to a loopback trainer (TLS), the job, and the results back
next to the clip; and, in a build without the patient pipeline, a clear stop after the verified upload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from capture_app.link.patients import PatientList
from stridetwin.demo_link import DEMO_TASKS, run_link_stage
from tests.capture_app.link.conftest import TEST_RUNNER
from tests.cloud_trainer.service.clipmaker import write_clip


@pytest.fixture
def session_clip(tmp_path: Path) -> tuple[Path, PatientList]:
    library = tmp_path / "demo"
    library.mkdir()
    patients = PatientList(library / "app" / "patients.sqlite3")
    person = patients.pseudonym_for("Erika Mustermann", "1956-08-12")
    clip = write_clip(library / f"20260101T000000Z-{person.pseudonym}.stclip", 600,
                      metadata={"patient": {"pseudonym": person.pseudonym}})  # fmt: skip
    return clip, patients


def test_the_clip_trains_and_its_results_land_next_to_it(session_clip, monkeypatch) -> None:
    monkeypatch.setenv("STRIDETWIN_TEST_STEP_S", "0.01")
    clip, patients = session_clip
    lines: list[str] = []
    outcome = run_link_stage(clip, clip.parent / "app", clip.parent, runner=TEST_RUNNER, patients=patients,
                             say=lines.append)  # fmt: skip
    text = "\n".join(lines)
    assert outcome.training_available
    assert outcome.clip_id == hashlib.sha256(clip.read_bytes()).hexdigest()[:32]
    assert outcome.job_state == "succeeded"
    assert outcome.results_dir == clip.with_name(f"{clip.stem}.results") / outcome.job_id
    assert outcome.n_artifacts == len(DEMO_TASKS) + 1  # one angles CSV per task and the report
    assert (outcome.results_dir / "job.json").exists()
    for marker in ("TLS, throwaway CA", "upload confirmed", "[5/5] training", "job ended succeeded",
                   "downloaded and verified (SHA-256)"):
        assert marker in text, marker


def test_without_the_pipeline_the_demo_stops_after_the_verified_upload(session_clip) -> None:
    clip, patients = session_clip
    lines: list[str] = []
    outcome = run_link_stage(clip, clip.parent / "app", clip.parent, runner="no_such_package.pipeline:run",
                             patients=patients, say=lines.append)  # fmt: skip
    assert not outcome.training_available
    assert outcome.job_id is None
    assert outcome.results_dir is None
    text = "\n".join(lines)
    assert "upload confirmed" in text
    assert "training: not available: pipeline runner 'no_such_package.pipeline:run'" in text
    assert "no results are made up" in text
    assert not list(clip.parent.glob("*.results"))
