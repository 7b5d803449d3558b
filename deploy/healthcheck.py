"""Liveness probe of a trainer: the standard gRPC health service (``grpc.health.v1.Health/Check``) says SERVING.

Used by the container's HEALTHCHECK and usable from a load balancer's probe script or a monitoring check:

    python deploy/healthcheck.py [--address localhost:50051] [--ca-cert DIR/tls/ca.pem | --insecure-loopback]

Exit status 0 when SERVING, 1 when not serving (draining, stopping) or unreachable, 2 for bad arguments. The health
service answers without a clinic token; TLS is verified against the trainer's CA (default
``$STRIDETWIN_TRAINER_DIR/tls/ca.pem``), so the probe also catches a broken certificate.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--address", default="localhost:50051", help="HOST:PORT of the trainer")
    parser.add_argument("--ca-cert", type=Path, default=None, help="the trainer's CA (default: its data directory's)")
    parser.add_argument("--insecure-loopback", action="store_true", help="plaintext (a loopback trainer only)")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds (default 4)")
    args = parser.parse_args(argv)

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from protos.channel import open_channel

    roots = None
    if not args.insecure_loopback:
        ca = args.ca_cert or Path(os.environ.get("STRIDETWIN_TRAINER_DIR", "/data")) / "tls" / "ca.pem"
        try:
            roots = ca.read_bytes()
        except OSError as exc:
            print(f"healthcheck: cannot read the CA certificate {ca}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    try:
        channel = open_channel(args.address, None, root_certificates=roots, insecure_loopback=args.insecure_loopback)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                              timeout=args.timeout)  # fmt: skip
        except grpc.RpcError as exc:
            print(f"healthcheck: {args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"healthcheck: {args.address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    raise SystemExit(main())
