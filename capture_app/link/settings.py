"""Connection settings of the link: which trainer, which CA to trust, which clinic token to present.

Each setting is taken from the first of these that has it (docs/link.md, "Connection settings"):

1. a command-line flag (``--server``, ``--ca-cert``, ``--token-file``, ``--server-name``, ``--insecure-loopback``);
2. an environment variable (``STRIDETWIN_SERVER``, ``STRIDETWIN_CA_CERT``, ``STRIDETWIN_TOKEN``,
   ``STRIDETWIN_TOKEN_FILE``, ``STRIDETWIN_SERVER_NAME``);
3. the settings file (:func:`~capture_app.link.paths.default_config_path`, TOML: ``server``, ``ca_cert``,
   ``token_file``, ``token``, ``server_name``; relative paths are relative to the file);
4. the default: server ``127.0.0.1:50051``; no CA and no token (both must then come from somewhere).

TLS is the default and needs the trainer's CA certificate. Plaintext is used only when asked for on the command line
(``--insecure-loopback``, never from the environment or the file, so it cannot be switched on behind the user's back)
and only to a loopback address. Within one source a token beats a token file.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from capture_app.link.errors import LinkConfigError
from capture_app.link.paths import default_config_path

DEFAULT_SERVER = "127.0.0.1:50051"
ENV_VARS: dict[str, str] = {
    "server": "STRIDETWIN_SERVER",
    "ca_cert": "STRIDETWIN_CA_CERT",
    "token": "STRIDETWIN_TOKEN",
    "token_file": "STRIDETWIN_TOKEN_FILE",
    "server_name": "STRIDETWIN_SERVER_NAME",
}
_FILE_KEYS = frozenset(ENV_VARS)


def split_host(address: str) -> str:
    """The host of ``HOST:PORT`` or ``[v6]:PORT``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise LinkConfigError(
            f"server {address!r}: expected HOST:PORT (e.g. trainer.example.org:50051, 127.0.0.1:50051)"
        )
    return host.strip("[]")


def is_loopback(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class LinkSettings:
    """Everything needed to open a channel to a trainer."""

    server: str = DEFAULT_SERVER
    #: The trainer's CA certificate (``ca.pem`` from ``stridetwin trainer init``); ``None`` only with plaintext.
    ca_cert: Path | None = None
    token: str = ""
    #: Plaintext instead of TLS; only to a loopback address.
    insecure_loopback: bool = False
    #: The name checked against the server's certificate when it differs from the host in ``server``.
    server_name: str | None = None
    #: Where each setting came from (``flag``, ``env``, ``file``, ``default``), for messages.
    sources: tuple[tuple[str, str], ...] = ()

    def validate(self) -> LinkSettings:
        """Raise :class:`LinkConfigError` naming what is missing or not allowed; returns self."""
        host = split_host(self.server)
        if self.insecure_loopback:
            if not is_loopback(host):
                raise LinkConfigError(
                    f"--insecure-loopback (plaintext) is only allowed to 127.0.0.1, ::1 or localhost, not to {host!r}; "
                    "use TLS with the trainer's CA certificate (--ca-cert)"
                )
        elif self.ca_cert is None:
            raise LinkConfigError(
                "no CA certificate for TLS: pass --ca-cert PATH (the trainer's ca.pem from `stridetwin trainer init`), "
                "set STRIDETWIN_CA_CERT, or ca_cert in the settings file "
                f"({default_config_path()}); plaintext only with --insecure-loopback to a loopback trainer"
            )
        elif not self.ca_cert.is_file():
            raise LinkConfigError(f"CA certificate {self.ca_cert} does not exist or is not a file")
        if not self.token:
            raise LinkConfigError(
                "no clinic token: pass --token-file PATH, set STRIDETWIN_TOKEN or STRIDETWIN_TOKEN_FILE, or token_file "
                f"in the settings file ({default_config_path()}); `stridetwin trainer token` issues one"
            )
        return self

    def open_channel(self):  # -> grpc.Channel (grpc imported lazily: the capture app starts without it)
        """A channel to the trainer: TLS verified against ``ca_cert`` with the token, or plaintext on loopback."""
        from protos.channel import open_channel

        self.validate()
        roots = None if self.insecure_loopback else self.ca_cert.read_bytes()  # type: ignore[union-attr]
        return open_channel(
            self.server,
            self.token,
            root_certificates=roots,
            insecure_loopback=self.insecure_loopback,
            server_hostname=self.server_name,
        )


def _read_token_file(path: Path, where: str) -> str:
    try:
        token = path.expanduser().read_text().strip()
    except OSError as exc:
        raise LinkConfigError(f"token file {path} ({where}) cannot be read: {exc.strerror or exc}") from None
    if not token:
        raise LinkConfigError(f"token file {path} ({where}) is empty")
    return token


def _read_file(path: Path) -> dict[str, object]:
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LinkConfigError(f"settings file {path}: {exc}") from None
    unknown = sorted(set(doc) - _FILE_KEYS)
    if unknown:
        raise LinkConfigError(f"settings file {path}: unknown key(s) {unknown}; accepted: {sorted(_FILE_KEYS)}")
    if "token" in doc and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LinkConfigError(
            f"settings file {path} holds a token but others may read it; chmod 600 {path} (or use token_file)"
        )
    base = path.parent
    for key in ("ca_cert", "token_file"):
        if key in doc:
            p = Path(str(doc[key])).expanduser()
            doc[key] = p if p.is_absolute() else base / p
    return doc


def resolve_settings(
    *,
    server: str | None = None,
    ca_cert: str | os.PathLike[str] | None = None,
    token_file: str | os.PathLike[str] | None = None,
    server_name: str | None = None,
    insecure_loopback: bool = False,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LinkSettings:
    """Settings from flags (the arguments), then the environment, then the settings file, then defaults (module
    docstring). Not validated: call :meth:`LinkSettings.validate` (``open_channel`` does)."""
    env = os.environ if environ is None else environ
    file_doc = _read_file(config_path or default_config_path())
    flags = {"server": server, "ca_cert": ca_cert, "token_file": token_file, "server_name": server_name}
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    for key in ("server", "ca_cert", "server_name"):
        for source, value in (("flag", flags[key]), ("env", env.get(ENV_VARS[key])), ("file", file_doc.get(key))):
            if value:
                values[key], sources[key] = value, source
                break
    token = ""
    for source, direct, from_file in (
        ("flag", None, flags["token_file"]),
        ("env", env.get(ENV_VARS["token"]), env.get(ENV_VARS["token_file"])),
        ("file", file_doc.get("token"), file_doc.get("token_file")),
    ):
        if direct:
            token, sources["token"] = str(direct).strip(), source
            break
        if from_file:
            token, sources["token"] = _read_token_file(Path(str(from_file)), source), source
            break
    return LinkSettings(
        server=str(values.get("server") or DEFAULT_SERVER),
        ca_cert=Path(str(values["ca_cert"])).expanduser() if values.get("ca_cert") else None,
        token=token,
        insecure_loopback=insecure_loopback,
        server_name=str(values["server_name"]) if values.get("server_name") else None,
        sources=tuple(sorted(sources.items())),
    )
