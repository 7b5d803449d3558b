"""The bedside app's link to the trainer (Qt-free): durable outbox, de-identification, results library
(docs/link.md).

- :mod:`.patients`: :class:`PatientList`, the local list relating random pseudonyms to names and birth dates
  (never sent), :func:`new_pseudonym`.
- :mod:`.deid`: :func:`check_clip_for_upload`, the last check before a clip leaves the device (finished, undamaged,
  no identifying keys, no known patient's name, birth date or id), with the clip's SHA-256 (:class:`ClipFacts`).
- :mod:`.outbox`: :class:`Outbox`, the queue on disk (SQLite) of clips to upload and jobs to submit
  (:class:`OutboxEntry`, :class:`JobRequest`), and what was sent (:class:`SentRecord`).
- :mod:`.sender`: :class:`OutboxSender`, which works the queue off: resumable uploads, retries with
  :class:`~.backoff.Backoff`, confirmed SHA-256, idempotent submits (:class:`OutboxEvent`, :class:`SendReport`).
- :mod:`.results`: :class:`ResultsLibrary`, verified artifacts of finished jobs next to their clips
  (:class:`JobResults`, :class:`FetchProgress`).
- :mod:`.client`: :class:`TrainerClient`, the ``stridetwin.v1`` contract in the app's own dataclasses.
- :mod:`.settings`: :class:`LinkSettings`, :func:`resolve_settings` (flags, environment, settings file).
- :mod:`.errors`, :mod:`.paths`, :mod:`.backoff`.
"""

from capture_app.link.backoff import Backoff
from capture_app.link.client import (
    ArtifactInfo,
    JobEvent,
    JobOutcome,
    JobProgress,
    RemoteClip,
    RemoteJob,
    ServerFacts,
    TrainerClient,
)
from capture_app.link.deid import ClipFacts, IdentityMatcher, check_clip_for_upload
from capture_app.link.errors import (
    ClipRefusedError,
    IntegrityError,
    LinkConfigError,
    LinkError,
    TrainerRefusedError,
    TransientLinkError,
)
from capture_app.link.outbox import JobRequest, Outbox, OutboxEntry, SentRecord
from capture_app.link.paths import default_config_path, default_data_dir, library_dir
from capture_app.link.patients import Patient, PatientList, new_pseudonym
from capture_app.link.results import FetchProgress, JobResults, ResultsLibrary
from capture_app.link.sender import OutboxEvent, OutboxSender, SendReport, send_until_done
from capture_app.link.settings import LinkSettings, resolve_settings

__all__ = [
    "ArtifactInfo",
    "Backoff",
    "ClipFacts",
    "ClipRefusedError",
    "FetchProgress",
    "IdentityMatcher",
    "IntegrityError",
    "JobEvent",
    "JobOutcome",
    "JobProgress",
    "JobRequest",
    "JobResults",
    "LinkConfigError",
    "LinkError",
    "LinkSettings",
    "Outbox",
    "OutboxEntry",
    "OutboxEvent",
    "OutboxSender",
    "Patient",
    "PatientList",
    "RemoteClip",
    "RemoteJob",
    "ResultsLibrary",
    "SendReport",
    "SentRecord",
    "ServerFacts",
    "TrainerClient",
    "TrainerRefusedError",
    "TransientLinkError",
    "check_clip_for_upload",
    "default_config_path",
    "default_data_dir",
    "library_dir",
    "new_pseudonym",
    "resolve_settings",
    "send_until_done",
]
