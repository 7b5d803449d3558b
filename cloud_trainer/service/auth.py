"""Clinics and their bearer tokens.

A token is 256 random bits (``secrets.token_urlsafe(32)``, prefixed ``stt_``), shown once when issued. The server keeps
only its SHA-256. A fast hash is the right one here: slow password hashes (scrypt, Argon2) exist to make guessing
low-entropy passwords expensive, and nobody guesses 2^256 values, while a slow hash would cost every RPC tens of
milliseconds. Lookup is by hash in a dict, then confirmed with a constant-time comparison.

The registry is a JSON file (``clinics.json``); it is re-read when it changes, so tokens issued with
``stridetwin trainer token`` work without restarting the server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cloud_trainer.service.clips import check_clinic
from cloud_trainer.service.fsutil import read_json, write_json_atomic

TOKEN_PREFIX = "stt_"


def new_token() -> str:
    """A fresh bearer token: ``stt_`` and 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What is known about an issued token (never the token itself): its clinic, its id (the first 8 hex digits of
    its SHA-256) and when it was issued."""

    clinic: str
    token_id: str
    created_utc: str


class ClinicRegistry:
    """Clinics and the hashes of their tokens, stored in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._by_hash: dict[str, str] = {}
        self._doc: dict = {"clinics": {}}
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        if mtime == self._mtime_ns:
            return
        doc = read_json(self.path) if mtime else {"clinics": {}}
        self._doc = doc
        self._by_hash = {t["sha256"]: name for name, c in doc["clinics"].items() for t in c["tokens"]}
        self._mtime_ns = mtime

    def clinics(self) -> list[str]:
        with self._lock:
            self._reload()
            return sorted(self._doc["clinics"])

    def issue_token(self, clinic: str) -> str:
        """A new token for ``clinic`` (created if new); returns the token, which is not stored anywhere."""
        check_clinic(clinic)
        token = new_token()
        digest = hash_token(token)
        with self._lock:
            self._mtime_ns = -1
            self._reload()
            entry = self._doc["clinics"].setdefault(clinic, {"created_utc": _now(), "tokens": []})
            entry["tokens"].append({"sha256": digest, "id": digest[:8], "created_utc": _now()})
            write_json_atomic(self.path, self._doc)
            self.path.chmod(0o600)
            self._mtime_ns = -1
            self._reload()
        return token

    def tokens(self) -> list[TokenInfo]:
        """Every valid token, by clinic and issue time."""
        with self._lock:
            self._reload()
            return [TokenInfo(name, t["id"], t["created_utc"])
                    for name, clinic in sorted(self._doc["clinics"].items()) for t in clinic["tokens"]]  # fmt: skip

    def revoke(self, token_id: str) -> TokenInfo:
        """Remove the token whose id is ``token_id``; a running server refuses it from its next call on.

        Raises:
            KeyError: no token has that id, or several do (the message lists what to do).
        """
        with self._lock:
            self._mtime_ns = -1
            self._reload()
            matches = [(name, t) for name, c in self._doc["clinics"].items() for t in c["tokens"]
                       if t["id"] == token_id]  # fmt: skip
            if not matches:
                raise KeyError(f"no token with id {token_id!r}; `stridetwin trainer tokens` lists them")
            if len(matches) > 1:
                raise KeyError(f"{len(matches)} tokens have id {token_id!r}; issue new tokens for their clinics and "
                               "revoke the old ones by editing clinics.json")  # fmt: skip
            name, token = matches[0]
            self._doc["clinics"][name]["tokens"].remove(token)
            write_json_atomic(self.path, self._doc)
            self.path.chmod(0o600)
            self._mtime_ns = -1
            self._reload()
        return TokenInfo(name, token["id"], token["created_utc"])

    def authenticate(self, token: str) -> str | None:
        """The clinic whose token this is, or ``None``."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        digest = hash_token(token)
        with self._lock:
            self._reload()
            clinic = self._by_hash.get(digest)
            if clinic is None:
                return None
            stored = next(t["sha256"] for t in self._doc["clinics"][clinic]["tokens"] if t["sha256"] == digest)
        return clinic if hmac.compare_digest(stored, digest) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
