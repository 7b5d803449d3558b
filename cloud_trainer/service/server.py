"""Building and running the trainer's gRPC server.

:func:`create_server` binds an address (port 0 picks a free port) with TLS, or in plaintext only on a loopback
address and only when asked for (``insecure_loopback=True``), registers the ``stridetwin.v1`` services, the standard
health service and the authentication interceptor, starts it and returns ``(server, port)``.
:func:`stop_server` stops it gracefully: health goes NOT_SERVING, new calls are refused, calls in flight get
``grace_s`` to finish, then running jobs are stopped (they resume from their checkpoints at the next start).
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cloud_trainer.service.auth import ClinicRegistry
from cloud_trainer.service.grpc_api import SERVICE_NAMES, AuthInterceptor, add_servicers
from cloud_trainer.service.pki import TlsFiles
from cloud_trainer.service.service import TrainerService

#: Room above the largest chunk for the rest of a message.
_MESSAGE_OVERHEAD_BYTES = 64 * 1024


class InsecureAddressError(ValueError):
    """Plaintext asked for on an address that is not loopback, or neither TLS nor plaintext configured."""


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r}: expected HOST:PORT (e.g. 127.0.0.1:50051, [::1]:50051)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class TrainerServer:
    """A running server with what :func:`stop_server` needs."""

    server: grpc.Server
    port: int
    service: TrainerService
    health: health.HealthServicer


def create_server(
    address: str,
    service: TrainerService,
    registry: ClinicRegistry,
    *,
    tls: TlsFiles | None = None,
    insecure_loopback: bool = False,
    max_rpc_threads: int = 32,
) -> tuple[TrainerServer, int]:
    """Start serving ``service`` on ``address``; returns the running server and the bound port."""
    host, _ = split_address(address)
    if tls is None:
        if not insecure_loopback:
            raise InsecureAddressError("TLS files are required (stridetwin trainer init creates them), or plaintext "
                                       "on a loopback address with insecure_loopback")  # fmt: skip
        if not is_loopback(host):
            raise InsecureAddressError(
                f"plaintext is only served on loopback (127.0.0.1, ::1, localhost), not on {host!r}; use TLS"
            )
    max_message = service.limits.max_chunk_bytes + _MESSAGE_OVERHEAD_BYTES
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_rpc_threads, thread_name_prefix="rpc"),
        interceptors=[AuthInterceptor(registry, service.limits.max_calls_per_s)],
        options=[
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message),
            ("grpc.so_reuseport", 0),
        ],
        # Calls beyond the thread pool are refused (RESOURCE_EXHAUSTED) rather than queued without bound.
        maximum_concurrent_rpcs=max_rpc_threads,
    )
    add_servicers(server, service)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = grpc.ssl_server_credentials([(tls.server_key.read_bytes(), tls.server_cert.read_bytes())])
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot bind {address} (in use, or not an address of this machine)")
    service.start()
    server.start()
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return TrainerServer(server, port, service, health_servicer), port


def stop_server(running: TrainerServer, grace_s: float = 5.0, jobs_wait_s: float = 10.0) -> None:
    """Graceful stop: NOT_SERVING, refuse new calls, let calls in flight finish for ``grace_s``, stop the jobs."""
    running.health.enter_graceful_shutdown()
    stopped = running.server.stop(grace_s)
    running.service.stop(jobs_wait_s)
    stopped.wait()
