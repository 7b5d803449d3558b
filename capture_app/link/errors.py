"""Errors of the app's link to the trainer. Each message says what was wrong and what to do; the outbox decides from
the class alone whether to retry (:class:`TransientLinkError`) or to stop and tell the user (everything else)."""

from __future__ import annotations


class LinkError(Exception):
    """Base class of the link's errors."""


class LinkConfigError(LinkError, ValueError):
    """Connection settings missing or invalid (no CA certificate, no token, plaintext to a remote host)."""


class ClipRefusedError(LinkError, ValueError):
    """A clip the app will not send: identifying data, unfinished, damaged, or beyond the trainer's limits."""


class TransientLinkError(LinkError, ConnectionError):
    """The trainer cannot be reached or asked to retry (unavailable, deadline, busy, rate limited): retry later."""

    def __init__(self, message: str, code: str = "UNAVAILABLE") -> None:
        super().__init__(message)
        #: The gRPC status code's name, e.g. ``UNAVAILABLE``.
        self.code = code


class TrainerRefusedError(LinkError):
    """The trainer answered and refused the request for good (invalid, unauthenticated, not found, …)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class IntegrityError(LinkError):
    """Bytes that do not hash to the SHA-256 they should (a clip changed on disk, an artifact damaged in transit or
    on the trainer)."""
