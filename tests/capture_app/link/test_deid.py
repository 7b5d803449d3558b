"""The last check before upload: identifying keys and known patients' names, birth dates and ids are refused with a
clear message; unfinished and damaged clips too; a clean clip passes with its SHA-256. And the mapping stays local:
after an upload the trainer holds no byte of the patient's name or birth date."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from capture_app.link.deid import check_clip_for_upload
from capture_app.link.errors import ClipRefusedError
from capture_app.link.patients import PatientList
from tests.capture_app.link.conftest import sender_for
from tests.capture_app.link.foreign import write_foreign_clip


@pytest.fixture
def patients(tmp_path: Path) -> PatientList:
    patients = PatientList(tmp_path / "app" / "patients.sqlite3")
    patients.add("Erika Mustermann", "1956-08-12", local_id="H-4711")
    return patients


def test_a_clean_clip_passes_with_its_sha256(make_clip, patients) -> None:
    path = make_clip("clean", n_samples=300)
    facts = check_clip_for_upload(path, patients)
    assert facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts.size_bytes == path.stat().st_size
    assert (facts.pseudonym, facts.n_sensors, facts.n_samples, facts.schema_version) == ("P-0042", 5, 1500, "1.0")


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"patient": {"pseudonym": "P-1", "name": "Erika Mustermann"}}, "metadata.patient.name"),
        ({"patient": {"pseudonym": "P-1", "Date of Birth": "1956-08-12"}}, "metadata.patient.Date of Birth"),
        ({"patient": {"pseudonym": "P-1"}, "contact": {"e-mail": "x@y.org"}}, "metadata.contact.e-mail"),
    ],
)  # fmt: skip
def test_identifying_keys_from_a_foreign_writer_are_refused(tmp_path: Path, metadata: dict, where: str) -> None:
    path = write_foreign_clip(tmp_path / "foreign.stclip", metadata)
    with pytest.raises(ClipRefusedError, match="never leaves this device") as info:
        check_clip_for_upload(path)
    assert where in str(info.value)
    assert "pseudonym" in str(info.value)


@pytest.mark.parametrize(
    ("metadata", "sections", "found"),
    [
        ({"patient": {"pseudonym": "Mustermann, Erika"}}, None, "the name of patient"),
        ({"patient": {"pseudonym": "P-1"}, "recording": {"note": "born 12.08.1956"}}, None, "the birth date"),
        ({"patient": {"pseudonym": "P-1"}}, {"session_log": [{"note": "re-strapped ERIKA MUSTERMANN's shank"}]},
         "the name of patient"),
        ({"patient": {"pseudonym": "P-1"}}, {"notes": {"ward": "ID h-4711"}}, "local patient id"),
    ],
)  # fmt: skip
def test_a_known_patient_in_any_string_is_refused(tmp_path, patients, metadata, sections, found) -> None:
    path = write_foreign_clip(tmp_path / "leaky.stclip", metadata, sections=sections)
    check_clip_for_upload(path)  # without the patient list nothing gives it away
    with pytest.raises(ClipRefusedError, match=found) as info:
        check_clip_for_upload(path, patients)
    assert "Erika" not in str(info.value)
    assert "1956" not in str(info.value)


def test_the_outbox_refuses_before_queueing(tmp_path, outbox, patients) -> None:
    path = write_foreign_clip(tmp_path / "named.stclip", {"patient": {"pseudonym": "P-1", "name": "Erika"}})
    with pytest.raises(ClipRefusedError):
        outbox.enqueue(path, patients=patients)
    assert outbox.entries() == []
    assert not outbox.library.exists() or not list(outbox.library.glob("*.stclip"))  # nothing copied either


def test_unfinished_and_damaged_clips_are_refused(make_clip, tmp_path: Path) -> None:
    data = make_clip("whole").read_bytes()
    cut = tmp_path / "cut.stclip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipRefusedError, match="stridetwin recover"):
        check_clip_for_upload(cut)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    bad = tmp_path / "flipped.stclip"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ClipRefusedError, match="damaged"):
        check_clip_for_upload(bad)
    other = tmp_path / "notes.csv"
    other.write_text("sensor_id,t\n")
    with pytest.raises(ClipRefusedError, match="not a StrideTwin clip"):
        check_clip_for_upload(other)


def test_the_mapping_never_reaches_the_trainer(trainer, outbox, patients, make_clip) -> None:
    patient = patients.find(local_id="H-4711")[0]
    path = make_clip("erika", metadata={"patient": {"pseudonym": patient.pseudonym, "height_m": 1.64}})
    entry = outbox.enqueue(path, patients=patients)
    sender_for(outbox, trainer).run()
    assert outbox.is_done(entry.entry_id)
    clips = trainer.service.clips.list("clinic")
    assert [c.pseudonym for c in clips] == [patient.pseudonym]
    held = subprocess.run(["grep", "-rIl", "-i", "-e", "Mustermann", "-e", "Erika", "-e", "1956-08-12", "-e",
                           "H-4711", str(trainer.data_dir)], capture_output=True, text=True)  # fmt: skip
    assert held.stdout == ""  # no file of the trainer (clips, jobs, audit log) holds any of it
    binary = subprocess.run(["grep", "-rl", "-a", "Mustermann", str(trainer.data_dir)], capture_output=True, text=True)
    assert binary.stdout == ""
