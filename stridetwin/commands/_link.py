"""What ``stridetwin upload``, ``jobs`` and ``results`` share: the connection flags, the app's data directory, and
turning link errors into one-line CLI errors. Not a command itself (``stridetwin.cli`` does not register it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """``--server``, ``--ca-cert``, ``--token-file``, ``--server-name``, ``--insecure-loopback``, ``--config``,
    ``--data-dir``."""
    group = parser.add_argument_group(
        "trainer connection",
        "Each setting: flag, else environment (STRIDETWIN_SERVER, STRIDETWIN_CA_CERT, STRIDETWIN_TOKEN, "
        "STRIDETWIN_TOKEN_FILE, STRIDETWIN_SERVER_NAME), else the settings file, else the default (docs/link.md).",
    )
    group.add_argument("--server", metavar="HOST:PORT", default=None, help="the trainer (default 127.0.0.1:50051)")
    group.add_argument("--ca-cert", metavar="PATH", default=None,
                       help="the trainer's CA certificate (ca.pem from `stridetwin trainer init`); TLS is the default")
    group.add_argument("--token-file", metavar="PATH", default=None, help="file holding the clinic's token")
    group.add_argument("--server-name", metavar="NAME", default=None,
                       help="name to check the server's certificate against, if not the host of --server")
    group.add_argument("--insecure-loopback", action="store_true",
                       help="plaintext instead of TLS; only to 127.0.0.1, ::1 or localhost")
    group.add_argument("--config", metavar="PATH", type=Path, default=None,
                       help="settings file (default $STRIDETWIN_CONFIG or ~/.config/stridetwin/link.toml)")
    group.add_argument("--data-dir", metavar="DIR", type=Path, default=None,
                       help="the app's data directory: outbox, patient list, library, results (default "
                       "$STRIDETWIN_DATA_DIR or ~/.local/share/stridetwin)")  # fmt: skip


def data_dir_of(args: argparse.Namespace) -> Path:
    from capture_app.link.paths import default_data_dir

    return args.data_dir or default_data_dir()


def settings_of(args: argparse.Namespace) -> Any:
    """Validated :class:`~capture_app.link.settings.LinkSettings`, or a :class:`~stridetwin.cli.CliError`."""
    from capture_app.link.errors import LinkConfigError
    from capture_app.link.settings import resolve_settings
    from stridetwin.cli import CliError

    try:
        return resolve_settings(
            server=args.server, ca_cert=args.ca_cert, token_file=args.token_file, server_name=args.server_name,
            insecure_loopback=args.insecure_loopback, config_path=args.config,
        ).validate()  # fmt: skip
    except LinkConfigError as exc:
        raise CliError(str(exc)) from None


def client_factory(args: argparse.Namespace) -> Any:
    """A function opening a :class:`~capture_app.link.client.TrainerClient` with the command's settings."""
    from capture_app.link.client import TrainerClient

    settings = settings_of(args)
    return lambda: TrainerClient(settings)


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def duration(seconds: float | None) -> str:
    """``1:02:03``, ``2:03`` or ``-``."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(progress: Any) -> str:
    """A job's progress in one line: stage, task and level, samples, ETA, message."""
    if progress is None:
        return "-"
    parts = [progress.stage]
    if progress.task:
        parts.append(progress.task + (f" level {progress.level}" if progress.level else ""))
    if progress.samples_total and progress.stage == "export":
        # the export counts its steps (levels evaluated, files written), not environment samples
        parts.append(f"step {progress.samples}/{progress.samples_total}")
    elif progress.samples_total:
        parts.append(f"{progress.samples / 1e3:.1f}k/{progress.samples_total / 1e3:.1f}k samples")
    elif progress.samples:
        parts.append(f"{progress.samples / 1e3:.1f}k samples")
    if progress.eta_s is not None:
        parts.append(f"ETA {duration(progress.eta_s)}")
    if progress.message:
        parts.append(progress.message)
    return ", ".join(parts)
