"""Limits and settings of the trainer service, in one dataclass with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one clinic may send and run. Every limit is reported to clients by ``GetServerInfo``."""

    #: Largest clip accepted, bytes. A 20-minute 5 × 200 Hz walk is 72 MB; the default leaves room for hours.
    max_clip_bytes: int = 2 * 1024 * MIB
    #: Largest chunk in an upload or a download message, bytes (gRPC's default message limit is 4 MiB).
    max_chunk_bytes: int = 1 * MIB
    #: Upload bandwidth per clinic, bytes/s (0: unlimited). Excess is slowed down (back-pressure), not refused.
    upload_rate_bytes_per_s: int = 64 * MIB
    #: Upload streams of one clinic at once; more are RESOURCE_EXHAUSTED.
    max_uploads_per_clinic: int = 4
    #: Jobs of one clinic running at once; more wait in the queue.
    max_running_jobs_per_clinic: int = 1
    #: Jobs of one clinic queued or running; more are RESOURCE_EXHAUSTED.
    max_pending_jobs_per_clinic: int = 20
    #: RPCs per second per clinic, with bursts up to twice this; more are RESOURCE_EXHAUSTED.
    max_calls_per_s: int = 50
    #: Samples over all sensors in one clip (10 hours of a 5 × 200 Hz kit).
    max_clip_samples: int = 36_000_000
    #: Fewest samples a sensor needs (0.5 s at 200 Hz): fewer cannot hold one stride.
    min_samples_per_sensor: int = 100
    #: Largest fraction of a sensor's samples whose accelerometer reading may be missing (NaN).
    max_missing_acc_fraction: float = 0.5


@dataclass(frozen=True)
class ServiceConfig:
    """How the service runs, beyond its limits."""

    limits: Limits = Limits()
    #: Upload bytes written between two fsyncs of the partial file: what a power loss can cost the client to resend.
    upload_sync_bytes: int = 8 * MIB
    #: A job that crashed the trainer this many times is failed instead of started again.
    max_attempts: int = 3
    #: Progress events kept per job for watchers that join late.
    progress_backlog: int = 256
    #: At most one progress update per job per this many seconds goes to the job store (watchers get all).
    progress_store_interval_s: float = 1.0
    #: Seconds a running job gets to stop after a cancel before the executor stops waiting for it.
    cancel_grace_s: float = 30.0
