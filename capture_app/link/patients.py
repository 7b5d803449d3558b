"""The local patient list: who a pseudonym is. It never leaves the device.

A clip, an upload and everything the trainer keeps carry only the pseudonym. The list relating pseudonyms to names,
birth dates and the clinic's own patient ids lives in one SQLite file in the app's data directory, created with mode
0600 (owner only; SQLite gives its journal the same mode) in a 0700 directory. This is pseudonymisation in the sense
of GDPR Art. 4(5): the additional information that re-identifies a patient is kept separately, here, on the device.

Pseudonyms are random (:func:`new_pseudonym`), not derived from the name. A value derived from the person (a hash of
name and birth date, even with a salt kept on the device) could be recomputed by anyone who guesses the inputs, and
the inputs are few: a few hundred thousand names times some 36 500 birth dates is about 10^10 hashes, minutes of
computing. It would also give the same patient the same pseudonym in every clinic (linking records across them) and a
new one after a change of name. A random pseudonym carries no information at all; only this list connects it to
the person.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from capture_app.link.paths import ensure_private_dir

#: Crockford's base-32 alphabet: no I, L, O (read as 1 and 0) and no U (so no accidental words).
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Random characters in a pseudonym: 10 × 5 bits = 50 bits (a collision among a million patients: p ≈ 4e-4,
#: and a collision is detected and redrawn).
PSEUDONYM_CHARS = 10
PSEUDONYM = re.compile(rf"^P-[{_ALPHABET}]{{{PSEUDONYM_CHARS}}}$")
_SCHEMA_VERSION = 1


def new_pseudonym() -> str:
    """A fresh random pseudonym, e.g. ``P-7K3M9Q2XRT`` (``secrets``: a cryptographic random source)."""
    return "P-" + "".join(secrets.choice(_ALPHABET) for _ in range(PSEUDONYM_CHARS))


def normalise_name(text: str) -> str:
    """Case, accents, punctuation and spacing removed: ``"Müller-Lüdenscheidt, Anna"`` →
    ``"muller ludenscheidt anna"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.findall(r"[^\W_]+", plain))


def birth_date_forms(date: dt.date) -> tuple[str, ...]:
    """How a birth date is commonly written: ISO, German, US and day-first slashes, compact."""
    d, m, y = date.day, date.month, date.year
    return (
        date.isoformat(), f"{d:02d}.{m:02d}.{y}", f"{d}.{m}.{y}", f"{m:02d}/{d:02d}/{y}", f"{d:02d}/{m:02d}/{y}",
        f"{y}{m:02d}{d:02d}",
    )  # fmt: skip


@dataclass(frozen=True)
class Patient:
    """One entry of the local list."""

    pseudonym: str
    name: str
    birth_date: dt.date
    #: The clinic's own patient id (e.g. the hospital number), if given.
    local_id: str | None
    created_utc: str


def _parse_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        date = dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"birth date {value!r}: expected YYYY-MM-DD (e.g. 1956-03-14)") from None
    if not dt.date(1900, 1, 1) <= date <= dt.date.today():
        raise ValueError(f"birth date {date.isoformat()} is not between 1900-01-01 and today")
    return date


class PatientList:
    """The patient list in ``path`` (an SQLite file, created 0600). Thread-safe; several processes may share it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # created owner-only before SQLite opens it
        os.close(fd)
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS patients ("
                " pseudonym TEXT PRIMARY KEY, name TEXT NOT NULL, birth_date TEXT NOT NULL,"
                " local_id TEXT UNIQUE, created_utc TEXT NOT NULL)"
            )
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous = FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    @staticmethod
    def _row(row: tuple) -> Patient:
        return Patient(row[0], row[1], dt.date.fromisoformat(row[2]), row[3], row[4])

    def add(self, name: str, birth_date: dt.date | str, local_id: str | None = None) -> Patient:
        """Register a patient under a new random pseudonym. ValueError for an empty name, a bad date, or a
        ``local_id`` already in the list."""
        name = " ".join(name.split())
        if not normalise_name(name):
            raise ValueError("a patient's name is required (it stays in the local list only)")
        date = _parse_date(birth_date)
        local_id = local_id.strip() if local_id and local_id.strip() else None
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._db() as db:
            if local_id is not None and db.execute("SELECT 1 FROM patients WHERE local_id = ?", (local_id,)).fetchone():
                raise ValueError(f"local id {local_id!r} is already in the patient list")
            while True:
                pseudonym = new_pseudonym()
                try:
                    db.execute("INSERT INTO patients VALUES (?, ?, ?, ?, ?)",
                               (pseudonym, name, date.isoformat(), local_id, created))  # fmt: skip
                    break
                except sqlite3.IntegrityError:  # pseudonym taken (p ≈ n / 2^50): draw again
                    continue
        return Patient(pseudonym, name, date, local_id, created)

    def pseudonym_for(self, name: str, birth_date: dt.date | str, local_id: str | None = None) -> Patient:
        """The patient with this local id, or this name and birth date; registered if new."""
        for patient in self.find(name=name, birth_date=birth_date, local_id=local_id):
            return patient
        return self.add(name, birth_date, local_id)

    def find(
        self, *, name: str | None = None, birth_date: dt.date | str | None = None, local_id: str | None = None
    ) -> list[Patient]:
        """Patients matching ``local_id`` if given (at most one), else ``name`` (case, accents and punctuation
        ignored) and/or ``birth_date``."""
        with self._db() as db:
            if local_id:
                rows = db.execute("SELECT * FROM patients WHERE local_id = ?", (local_id.strip(),)).fetchall()
                return [self._row(r) for r in rows]
            rows = db.execute("SELECT * FROM patients ORDER BY created_utc").fetchall()
        wanted_name = normalise_name(name) if name else None
        wanted_date = _parse_date(birth_date).isoformat() if birth_date else None
        return [
            self._row(r)
            for r in rows
            if (wanted_name is None or normalise_name(r[1]) == wanted_name)
            and (wanted_date is None or r[2] == wanted_date)
        ]

    def get(self, pseudonym: str) -> Patient | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM patients WHERE pseudonym = ?", (pseudonym,)).fetchone()
        return self._row(row) if row else None

    def all(self) -> list[Patient]:
        with self._db() as db:
            return [self._row(r) for r in db.execute("SELECT * FROM patients ORDER BY created_utc").fetchall()]

    def remove(self, pseudonym: str) -> bool:
        """Forget a patient (their clips keep the pseudonym, which then points at no one)."""
        with self._db() as db:
            return db.execute("DELETE FROM patients WHERE pseudonym = ?", (pseudonym,)).rowcount > 0
