"""Opening a channel to a trainer, for both sides of the contract: TLS with a bearer token, or plaintext on loopback.

The token travels as ``authorization: Bearer <token>`` metadata on every call. Over TLS it is attached with gRPC's
access-token call credentials (which refuse to send it over an insecure channel); on loopback plaintext a client
interceptor attaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

#: A little more than the 1 MiB chunks of uploads and downloads.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._metadata]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base: grpc.ClientCallDetails, metadata: Sequence[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def open_channel(
    address: str,
    token: str | None,
    *,
    root_certificates: bytes | None = None,
    insecure_loopback: bool = False,
    server_hostname: str | None = None,
) -> grpc.Channel:
    """A channel to the trainer at ``address`` (``HOST:PORT``).

    With ``root_certificates`` (the trainer's ``ca.pem``), TLS verified against that CA; ``server_hostname`` overrides
    the name checked against the certificate. With ``insecure_loopback``, plaintext (the server only allows it on
    loopback). ``token`` ``None`` sends no token (only the health service answers then).
    """
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if server_hostname:
        options.append(("grpc.ssl_target_name_override", server_hostname))
    if root_certificates is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        if token is not None:
            credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
        return grpc.secure_channel(address, credentials, options=options)
    if not insecure_loopback:
        raise ValueError("pass root_certificates (the trainer's ca.pem) for TLS, or insecure_loopback=True")
    channel = grpc.insecure_channel(address, options=options)
    return grpc.intercept_channel(channel, _BearerToken(token)) if token is not None else channel
