"""Errors of the trainer service's domain. Each says what was wrong and what is accepted; the gRPC layer maps each
class to one status code (:data:`cloud_trainer.service.grpc_api.STATUS_OF`), so the domain never imports gRPC."""

from __future__ import annotations

from cloud_trainer.errors import TrainerError


class ServiceError(TrainerError):
    """Base class of errors a caller of the service can cause or act on."""


class NotFoundError(ServiceError, LookupError):
    """No such clip, job, upload or artifact *for this clinic*: another clinic's is reported exactly alike."""


class InvalidRequestError(ServiceError, ValueError):
    """A request field out of its range or format (a malformed SHA-256, an unknown task, a chunk too large)."""


class InvalidClipError(ServiceError, ValueError):
    """An uploaded clip that is not a valid, finished clip the trainer can use (damaged, unfinished, NaN times,
    identifying metadata, too few samples)."""


class UnsupportedSchemaError(ServiceError, ValueError):
    """A clip written in a schema major version this trainer does not read (older or newer)."""


class TooLargeError(ServiceError):
    """A clip larger than the server accepts, or more samples than it processes."""


class RateLimitedError(ServiceError):
    """Too many calls, uploads or pending jobs for one clinic right now; retry later."""


class ChecksumMismatchError(ServiceError):
    """The bytes received do not hash to the SHA-256 the client declared; the partial upload was discarded."""


class OffsetError(ServiceError):
    """An upload resumed past what the server holds; the message says where to resume."""


class PreconditionError(ServiceError):
    """The request is valid but not in the current state (cancel a finished job, an upload stream that ended early)."""


class ConflictError(ServiceError):
    """An idempotency key reused for a different request."""


class BusyError(ServiceError):
    """The same upload is already being streamed by another call; retry when it has ended."""
