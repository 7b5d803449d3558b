"""The local patient list: random pseudonyms, owner-only file, lookups that ignore case and accents."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from capture_app.link.patients import PSEUDONYM, PatientList, new_pseudonym, normalise_name


def test_pseudonyms_are_random_well_formed_and_unrelated_to_the_name(tmp_path: Path) -> None:
    drawn = {new_pseudonym() for _ in range(2000)}
    assert len(drawn) == 2000
    assert all(PSEUDONYM.match(p) for p in drawn)
    a = PatientList(tmp_path / "a.sqlite3").add("Jane Doe", "1950-03-02")
    b = PatientList(tmp_path / "b.sqlite3").add("Jane Doe", "1950-03-02")
    assert a.pseudonym != b.pseudonym  # the same person on two devices: not linkable by pseudonym
    assert "jane" not in a.pseudonym.lower()
    assert "doe" not in a.pseudonym.lower()


def test_the_list_is_owner_only_and_so_is_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "data" / "patients.sqlite3"
    patients = PatientList(path)
    patients.add("Jane Doe", dt.date(1950, 3, 2), local_id="H-0001")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # a second process writing while the journal exists: the journal gets the database's mode
    script = (
        "import sqlite3, sys, time, os, stat\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE'); db.execute(\"INSERT INTO patients VALUES ('P-X','x','2000-01-01',NULL,'t')\")\n"
        "j = sys.argv[1] + '-journal'\n"
        "print(oct(stat.S_IMODE(os.stat(j).st_mode)) if os.path.exists(j) else 'none')\n"
        "db.execute('ROLLBACK')\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0o600"


def test_a_too_open_list_is_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "patients.sqlite3"
    PatientList(path)
    path.chmod(0o644)
    PatientList(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_lookups_ignore_case_accents_and_punctuation(tmp_path: Path) -> None:
    patients = PatientList(tmp_path / "p.sqlite3")
    anna = patients.add("Anna Müller-Lüdenscheidt", "1948-11-30", local_id="H-17")
    assert normalise_name("  MULLER-ludenscheidt, anna ") == "muller ludenscheidt anna"
    assert patients.find(name="anna muller ludenscheidt") == [anna]
    assert patients.find(local_id="H-17") == [anna]
    assert patients.find(birth_date="1948-11-30") == [anna]
    assert patients.pseudonym_for("Anna Müller-Lüdenscheidt", "1948-11-30") == anna
    assert patients.get(anna.pseudonym) == anna
    other = patients.pseudonym_for("Anna Müller-Lüdenscheidt", "1950-01-01")  # same name, another person
    assert other.pseudonym != anna.pseudonym
    assert len(PatientList(tmp_path / "p.sqlite3").all()) == 2  # on disk
    assert patients.remove(other.pseudonym)
    assert patients.get(other.pseudonym) is None


@pytest.mark.parametrize(
    ("name", "birth", "message"),
    [("", "1950-01-01", "name is required"), ("Jane Doe", "02.03.1950", "YYYY-MM-DD"),
     ("Jane Doe", "2999-01-01", "between 1900-01-01 and today")],
)  # fmt: skip
def test_bad_entries_are_refused_with_a_reason(tmp_path: Path, name: str, birth: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PatientList(tmp_path / "p.sqlite3").add(name, birth)


def test_a_local_id_is_unique(tmp_path: Path) -> None:
    patients = PatientList(tmp_path / "p.sqlite3")
    patients.add("Jane Doe", "1950-03-02", local_id="H-1")
    with pytest.raises(ValueError, match="already in the patient list"):
        patients.add("John Roe", "1951-04-03", local_id="H-1")
