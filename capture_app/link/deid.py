"""The last check before a clip leaves the device: finished, undamaged, and free of identifying data.

:func:`check_clip_for_upload` reads the clip once, in records (memory stays flat for any size), computes its SHA-256
and refuses it (:class:`~capture_app.link.errors.ClipRefusedError`, with a message saying what to do) when

- it is not a clip, its schema major version is unknown, or it is unfinished or damaged (a record's CRC-32, the
  footer's SHA-256; docs/clip-format.md);
- any metadata, sensor record, link event or JSON section holds a key that names a person (the clip writer's own
  rule, :func:`sensor_drivers.recording.privacy.check_no_identity`: a clip from an older or foreign writer, or a file
  edited by hand, may not have been through it);
- any string in them holds the name, birth date or local patient id of someone in the local patient list (a name
  typed into a pseudonym or a note field), when a :class:`~capture_app.link.patients.PatientList` is given.

What it cannot catch: identifying data the device has never been told about (a name not in the patient list, typed
into free text). That is why pseudonyms are generated, never typed.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capture_app.link.errors import ClipRefusedError
from capture_app.link.patients import Patient, PatientList, birth_date_forms, normalise_name
from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording import format as fmt
from sensor_drivers.recording.privacy import IdentifyingDataError, check_no_identity


@dataclass(frozen=True)
class ClipFacts:
    """What the app learnt about a clip it may send."""

    path: Path
    sha256: str
    size_bytes: int
    schema_version: str
    #: ``patient.pseudonym`` of the metadata (``None`` when the clip has none).
    pseudonym: str | None
    n_sensors: int
    n_samples: int


class IdentityMatcher:
    """Finds the names, birth dates and local ids of known patients inside strings."""

    def __init__(self, patients: Iterable[Patient]) -> None:
        self._names: list[tuple[frozenset[str], str]] = []
        self._dates: list[tuple[str, str]] = []
        self._ids: dict[str, str] = {}
        for p in patients:
            tokens = frozenset(t for t in normalise_name(p.name).split() if len(t) >= 2)
            if tokens:
                self._names.append((tokens, p.pseudonym))
            self._dates.extend((form, p.pseudonym) for form in birth_date_forms(p.birth_date))
            if p.local_id and len(p.local_id) >= 3:
                self._ids[normalise_name(p.local_id)] = p.pseudonym

    def find(self, text: str) -> str | None:
        """What ``text`` gives away (``"the name of P-…"``), or ``None``."""
        words = set(normalise_name(text).split())
        for tokens, pseudonym in self._names:
            if tokens <= words:
                return f"the name of patient {pseudonym}"
        for form, pseudonym in self._dates:
            if form in text:
                return f"the birth date of patient {pseudonym}"
        joined = normalise_name(text)
        for local_id, pseudonym in self._ids.items():
            if re.search(rf"(?<![0-9a-z]){re.escape(local_id)}(?![0-9a-z])", joined):
                return f"the local patient id of patient {pseudonym}"
        return None

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`ClipRefusedError` for the first string (value or key) in ``value`` giving a patient away."""
        stack: list[tuple[str, Any]] = [(where, value)]
        while stack:
            path, item = stack.pop()
            if isinstance(item, dict):
                for key, sub in item.items():
                    stack.append((f"{path}.{key}", key))
                    stack.append((f"{path}.{key}", sub))
            elif isinstance(item, list):
                stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
            elif isinstance(item, str) and (found := self.find(item)):
                raise ClipRefusedError(
                    f"{path} holds {found} from the local patient list; identifying data never leaves this device. "
                    "Remove it from the clip (a clip carries only the patient's pseudonym), then queue it again"
                )


class _Stream:
    def __init__(self, f: Any, source: str) -> None:
        self.f = f
        self.source = source
        self.offset = 0
        #: SHA-256 of every byte read (the file's, once read to the end).
        self.file_sha = hashlib.sha256()
        #: SHA-256 of the bytes before the footer (checked against the footer's).
        self.body_sha = hashlib.sha256()

    def read(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ClipRefusedError(
                f"{self.source} is unfinished or truncated ({what} at byte {self.offset} is cut short); run "
                f"`stridetwin recover {self.source}` and send the recovered copy"
            )
        self.offset += n
        self.file_sha.update(data)
        return data


def check_clip_for_upload(path: str | Path, patients: PatientList | IdentityMatcher | None = None) -> ClipFacts:
    """Read ``path`` once and refuse it if it must not be sent (module docstring); else its facts and SHA-256."""
    path = Path(path)
    matcher = IdentityMatcher(patients.all()) if isinstance(patients, PatientList) else patients
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ClipRefusedError(f"{path} cannot be read: {exc.strerror or exc}") from None
    with f:
        s = _Stream(f, str(path))
        head = f.read(fmt.HEADER.size)
        try:
            major, minor = fmt.decode_header(head, str(path))
        except RecordingFormatError as exc:
            raise ClipRefusedError(str(exc)) from None
        s.offset = len(head)
        s.file_sha.update(head)
        s.body_sha.update(head)
        metadata: dict[str, Any] = {}
        sensors: set[int] = set()
        n_samples = 0
        while True:
            record_offset = s.offset
            rhead = s.read(fmt.RECORD_HEAD.size, "a record head")
            record_type, length = fmt.RECORD_HEAD.unpack(rhead)
            if length > fmt.MAX_PAYLOAD_BYTES:
                raise ClipRefusedError(f"{path} is damaged: the record at byte {record_offset} claims {length} bytes")
            payload = s.read(length, "a record")
            crc = s.read(fmt.CRC.size, "a record's CRC")
            if zlib.crc32(payload, zlib.crc32(rhead)) != struct.unpack("<I", crc)[0]:
                raise ClipRefusedError(
                    f"{path} is damaged: the record at byte {record_offset} fails its CRC-32; run "
                    f"`stridetwin recover {path}` and send the recovered copy"
                )
            if record_type == fmt.RecordType.FOOTER:
                _check_end(s, payload, record_offset)
                break
            s.body_sha.update(rhead)
            s.body_sha.update(payload)
            s.body_sha.update(crc)
            what = f"the record at byte {record_offset}"
            if record_type == fmt.RecordType.SAMPLES:
                sensor_index, _, n, _ = fmt.BLOCK_HEAD.unpack_from(payload, 0)
                sensors.add(sensor_index)
                n_samples += n
            elif record_type == fmt.RecordType.METADATA:
                patch = _json(payload, what, path)
                _no_identity(patch, "metadata", path, matcher, in_metadata=True)
                metadata = _merge(metadata, patch) if isinstance(patch, dict) else metadata
            elif record_type in (fmt.RecordType.SENSOR, fmt.RecordType.LINK_EVENT):
                _no_identity(_json(payload, what, path), "sensor record" if record_type == fmt.RecordType.SENSOR
                             else "link event", path, matcher, in_metadata=False)  # fmt: skip
            elif record_type == fmt.RecordType.SECTION:
                try:
                    name, _mode, value = fmt.decode_section(memoryview(payload), what)
                except RecordingFormatError as exc:
                    raise ClipRefusedError(f"{path} is damaged: {exc}") from None
                if not isinstance(value, dict) or not all(hasattr(v, "dtype") for v in value.values()) or not value:
                    _no_identity(value, f"section {name!r}", path, matcher, in_metadata=False)
        sha256 = s.file_sha.hexdigest()
    patient = metadata.get("patient") if isinstance(metadata.get("patient"), dict) else {}
    pseudonym = patient.get("pseudonym") if isinstance(patient.get("pseudonym"), str) else None
    return ClipFacts(path, sha256, s.offset, f"{major}.{minor}", pseudonym or None, len(sensors), n_samples)


def _check_end(s: _Stream, payload: bytes, footer_offset: int) -> None:
    if payload[: fmt.FOOTER_DIGEST_BYTES] != s.body_sha.digest():
        raise ClipRefusedError(
            f"{s.source} is damaged: its bytes do not match the SHA-256 in its footer (altered after it was finished)"
        )
    trailer = s.read(fmt.TRAILER.size, "the end trailer")
    if fmt.TRAILER.unpack(trailer) != (footer_offset, fmt.END_MAGIC):
        raise ClipRefusedError(f"{s.source} is damaged: the footer at byte {footer_offset} has no valid trailer")
    if s.f.read(1):
        raise ClipRefusedError(f"{s.source} is damaged: bytes follow its end trailer at byte {s.offset}")


def _json(payload: bytes, what: str, path: Path) -> Any:
    try:
        return fmt.decode_json(payload, what)
    except RecordingFormatError as exc:
        raise ClipRefusedError(f"{path} is damaged: {exc}") from None


def _no_identity(value: Any, where: str, path: Path, matcher: IdentityMatcher | None, *, in_metadata: bool) -> None:
    try:
        check_no_identity(value, where, in_metadata=in_metadata)
    except IdentifyingDataError as exc:
        raise ClipRefusedError(
            f"{path} is not sent: {exc}. Identifying data never leaves this device; the clip must be written again "
            "without it"
        ) from None
    if matcher is not None:
        try:
            matcher.check(value, where)
        except ClipRefusedError as exc:
            raise ClipRefusedError(f"{path} is not sent: {exc}") from None


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
