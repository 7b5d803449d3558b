"""``stridetwin trainer init|serve|token|tokens|revoke|audit``: set up and run the trainer service.

- ``init``: create the trainer's data directory with a certificate authority, the server's TLS certificate and the
  first clinic's token (printed once; only its hash is kept).
- ``serve``: run the gRPC service (TLS by default; plaintext only with ``--insecure-loopback`` on a loopback address).
- ``token``: issue another token for a clinic (a new clinic is created); the running server sees it at once.
- ``tokens``, ``revoke TOKEN_ID``: list the valid tokens by id (never the tokens), revoke one; at once, too.
- ``audit``: verify the audit log's hash chain.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_ADDRESS = "127.0.0.1:50051"


def default_dir() -> Path:
    """``$STRIDETWIN_TRAINER_DIR``, else ``$XDG_DATA_HOME/stridetwin/trainer`` (``~/.local/share/…``)."""
    if env := os.environ.get("STRIDETWIN_TRAINER_DIR"):
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "stridetwin" / "trainer"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trainer", help="set up and run the trainer service (gRPC)")
    sub = parser.add_subparsers(dest="trainer_command", metavar="ACTION", required=True)

    init = sub.add_parser("init", help="create the data directory, TLS certificates and the first clinic token")
    init.add_argument("--dir", type=Path, default=None, help="data directory (default $STRIDETWIN_TRAINER_DIR or "
                      "~/.local/share/stridetwin/trainer)")  # fmt: skip
    init.add_argument("--clinic", default="clinic", help="name of the first clinic (a-z, 0-9, '-', '_')")
    init.add_argument("--hostname", action="append", default=[], metavar="NAME",
                      help="a name or address clients use to reach the trainer (repeatable); localhost, 127.0.0.1 "
                      "and ::1 are always included")  # fmt: skip
    init.add_argument("--token-file", type=Path, default=None,
                      help="also write the token to this file (mode 0600), e.g. for the local demo")  # fmt: skip
    init.set_defaults(func=run_init)

    serve = sub.add_parser("serve", help="run the trainer service")
    serve.add_argument("--dir", type=Path, default=None, help="data directory (as for init)")
    serve.add_argument("--address", default=DEFAULT_ADDRESS,
                       help=f"HOST:PORT to listen on (default {DEFAULT_ADDRESS}; 0.0.0.0:50051 serves the network; "
                       "port 0 picks a free port)")  # fmt: skip
    serve.add_argument("--insecure-loopback", action="store_true",
                       help="plaintext instead of TLS; refused unless the address is loopback")  # fmt: skip
    serve.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="where jobs run: a worker pool in this process (default) or a Ray cluster")  # fmt: skip
    serve.add_argument("--ray-address", default=None, metavar="HOST:PORT", help="the Ray head (with --executor ray)")
    serve.add_argument("--workers", type=int, default=1, help="jobs running at once in all (default 1)")
    serve.add_argument("--max-running-per-clinic", type=int, default=1, help="jobs of one clinic running at once")
    serve.add_argument("--max-pending-per-clinic", type=int, default=20, help="jobs of one clinic queued or running")
    serve.add_argument("--max-clip-mb", type=float, default=2048.0, help="largest clip accepted, MiB (default 2048)")
    serve.add_argument("--upload-rate-mb-s", type=float, default=64.0,
                       help="upload bandwidth per clinic, MiB/s (0: unlimited; default 64)")  # fmt: skip
    serve.add_argument("--max-calls-per-s", type=int, default=50, help="RPCs per second per clinic (default 50)")
    serve.add_argument(
        "--runner",
        default=None,
        metavar="MODULE:FUNCTION",
        help="the pipeline jobs run (default: the patient pipeline, cloud_trainer.pipeline.run)",
    )
    serve.set_defaults(func=run_serve)

    token = sub.add_parser("token", help="issue a new token for a clinic (creating the clinic if new)")
    token.add_argument("--dir", type=Path, default=None, help="data directory")
    token.add_argument("--clinic", required=True, help="clinic name")
    token.set_defaults(func=run_token)

    tokens = sub.add_parser("tokens", help="list the valid tokens (clinic, token id, issued); never the tokens")
    tokens.add_argument("--dir", type=Path, default=None, help="data directory")
    tokens.set_defaults(func=run_tokens)

    revoke = sub.add_parser("revoke", help="revoke a token by its id (a running server refuses it at once)")
    revoke.add_argument("token_id", metavar="TOKEN_ID", help="the id `stridetwin trainer tokens` shows")
    revoke.add_argument("--dir", type=Path, default=None, help="data directory")
    revoke.set_defaults(func=run_revoke)

    audit = sub.add_parser("audit", help="verify the audit log's hash chain")
    audit.add_argument("--dir", type=Path, default=None, help="data directory")
    audit.set_defaults(func=run_audit)


def run_init(args: argparse.Namespace) -> int:
    from cloud_trainer.service.auth import ClinicRegistry
    from cloud_trainer.service.pki import create_tls_files
    from stridetwin.cli import CliError

    data_dir = args.dir or default_dir()
    try:
        from cloud_trainer.service.clips import check_clinic

        check_clinic(args.clinic)
        # It will hold clips and keys: owner-only from the start, whatever the umask.
        for directory in (data_dir, data_dir / "tls"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        files = create_tls_files(data_dir / "tls", args.hostname)
    except ImportError as exc:
        raise CliError(f"{exc.name} is missing; install the trainer extra: pip install -e '.[trainer]'") from None
    except (FileExistsError, ValueError) as exc:
        raise CliError(str(exc)) from None
    token = ClinicRegistry(data_dir / "clinics.json").issue_token(args.clinic)
    if args.token_file:
        fd = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    print(f"trainer data directory: {data_dir}")
    print(f"CA certificate (give it to the clinics' apps): {files.ca_cert}")
    print(f"server certificate and key: {files.server_cert}, {files.server_key}")
    print(f"token of clinic {args.clinic!r} (shown once; only its hash is stored):")
    print(token)
    return 0


def _registry(args: argparse.Namespace):
    """The clinic registry of ``--dir`` (or the default data directory), which must exist."""
    from cloud_trainer.service.auth import ClinicRegistry
    from stridetwin.cli import CliError

    data_dir = args.dir or default_dir()
    if not (data_dir / "clinics.json").exists():
        raise CliError(f"{data_dir} is not a trainer data directory; run `stridetwin trainer init --dir {data_dir}`")
    return ClinicRegistry(data_dir / "clinics.json")


def run_token(args: argparse.Namespace) -> int:
    from stridetwin.cli import CliError

    registry = _registry(args)
    try:
        token = registry.issue_token(args.clinic)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(token)
    return 0


def run_tokens(args: argparse.Namespace) -> int:
    infos = _registry(args).tokens()
    print(f"{'clinic':24s} {'token id':8s}  issued (UTC)")
    for info in infos:
        print(f"{info.clinic:24s} {info.token_id:8s}  {info.created_utc}")
    if not infos:
        print("(no valid tokens: `stridetwin trainer token --clinic NAME` issues one)")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from stridetwin.cli import CliError

    try:
        info = _registry(args).revoke(args.token_id)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    print(f"revoked token {info.token_id} of clinic {info.clinic!r} (issued {info.created_utc}); the trainer refuses "
          "it from its next call on")  # fmt: skip
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from cloud_trainer.service.audit import verify_audit_log

    data_dir = args.dir or default_dir()
    report = verify_audit_log(data_dir / "audit.log")
    if report.ok:
        print(f"audit log verified: {report.n_entries} entries, head {report.head_sha256[:16]}…")
        return 0
    print(f"audit log TAMPERED or damaged: {report.problem} (entries 1-{report.n_entries} verify)")
    return 1


def run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cloud_trainer.service.auth import ClinicRegistry
    from cloud_trainer.service.config import MIB, Limits, ServiceConfig
    from cloud_trainer.service.executor import LocalExecutor
    from cloud_trainer.service.pki import TlsFiles
    from cloud_trainer.service.runners import (
        DEFAULT_RUNNER,
        RunnerNotFoundError,
        check_runner,
        missing_pipeline_dependencies,
    )
    from cloud_trainer.service.server import InsecureAddressError, create_server, stop_server
    from cloud_trainer.service.service import TrainerService
    from stridetwin.cli import CliError

    data_dir = args.dir or default_dir()
    registry_path = data_dir / "clinics.json"
    if not registry_path.exists():
        raise CliError(f"{data_dir} has no clinics; run `stridetwin trainer init --dir {data_dir}` first")
    tls = None
    if not args.insecure_loopback:
        tls = TlsFiles.in_dir(data_dir / "tls")
        if not tls.exist():
            raise CliError(f"no TLS certificate in {data_dir / 'tls'}; run `stridetwin trainer init` (or serve "
                           "plaintext on loopback with --insecure-loopback)")  # fmt: skip
    runner_spec = args.runner or DEFAULT_RUNNER
    try:
        check_runner(runner_spec)
    except RunnerNotFoundError as exc:
        raise CliError(str(exc)) from None
    missing = missing_pipeline_dependencies() if runner_spec == DEFAULT_RUNNER else []
    if missing:
        raise CliError(f"the patient pipeline needs {', '.join(missing)}, which this installation lacks; install the "
                       "trainer extra: pip install -e '.[trainer]'")  # fmt: skip
    for name in ("workers", "max_running_per_clinic", "max_pending_per_clinic"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be ≥ 1")
    limits = Limits(
        max_clip_bytes=int(args.max_clip_mb * MIB),
        upload_rate_bytes_per_s=int(args.upload_rate_mb_s * MIB),
        max_running_jobs_per_clinic=args.max_running_per_clinic,
        max_pending_jobs_per_clinic=args.max_pending_per_clinic,
        max_calls_per_s=args.max_calls_per_s,
    )
    if args.executor == "ray":
        if not args.ray_address:
            raise CliError("--executor ray needs --ray-address HOST:PORT (the Ray head)")
        try:
            from cloud_trainer.service.ray_executor import RayExecutor

            executor = RayExecutor(args.ray_address, runner_spec, capacity=args.workers)
        except ImportError:
            raise CliError("ray is not installed; install the cluster extra: pip install -e '.[cluster]'") from None
        except ConnectionError as exc:
            raise CliError(f"cannot reach the Ray cluster at {args.ray_address}: {exc}") from None
    else:
        executor = LocalExecutor(runner_spec, workers=args.workers)
    service = TrainerService.open(data_dir, executor, ServiceConfig(limits=limits))
    try:
        running, port = create_server(
            args.address, service, ClinicRegistry(registry_path), tls=tls, insecure_loopback=args.insecure_loopback
        )
    except (InsecureAddressError, ValueError, OSError) as exc:
        executor.shutdown(0)
        raise CliError(str(exc)) from None
    host = args.address.rpartition(":")[0]
    mode = "plaintext, loopback only" if tls is None else "TLS"
    print(f"stridetwin trainer: listening on {host}:{port} ({mode}), executor {executor.name} "
          f"({executor.capacity} at once), data {data_dir}", flush=True)  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("stridetwin trainer: stopping (jobs in progress resume at the next start)", flush=True)
    stop_server(running)
    return 0
