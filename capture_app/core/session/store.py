"""Where walk-test sessions are recorded, and recovering the ones a crash or power loss left unfinished.

The session directory is ``$STRIDETWIN_DATA_DIR/sessions`` if that variable is set, else
``$XDG_DATA_HOME/stridetwin/sessions`` (default ``~/.local/share/stridetwin/sessions``, the XDG base-directory
specification), unless the caller names one. :meth:`SessionStore.recover_unfinished` is what the app runs on start:
every clip there without a valid end (``find_unfinished``) is recovered into a finished copy beside it
(``NAME.recovered.stclip``, everything up to the last complete record, i.e. up to the last 0.25 s before the crash:
docs/clip-format.md, "Crash safety"), and the user is told what was kept.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording import format as fmt
from sensor_drivers.recording.clipfile import find_unfinished, read_clip, recover

_log = logging.getLogger(__name__)

#: Suffix given to a file that could not be recovered at all, so that it is not offered again on every start.
UNRECOVERABLE_SUFFIX = ".unrecoverable"


def default_session_dir() -> Path:
    """``$STRIDETWIN_DATA_DIR/sessions``, else ``$XDG_DATA_HOME/stridetwin/sessions``, else
    ``~/.local/share/stridetwin/sessions``."""
    if override := os.environ.get("STRIDETWIN_DATA_DIR"):
        return Path(override).expanduser() / "sessions"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "stridetwin" / "sessions"


@dataclass(frozen=True)
class RecoveryNotice:
    """What recovery did with one unfinished clip, in words for the user and in numbers."""

    source: Path
    #: The finished copy (``None`` where nothing could be recovered).
    recovered_path: Path | None
    #: Seconds of data kept (first to last sample of any sensor), and per sensor the samples kept.
    duration_s: float
    n_samples: dict[str, int]
    n_bytes_dropped: int
    pseudonym: str | None
    message: str


class SessionStore:
    """A directory of session clips (created on first use)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_session_dir()

    def ensure(self) -> Path:
        """Create the directory (owner-only: it holds patient data) and return it."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.directory

    def new_clip_path(self, pseudonym: str | None = None, now: datetime | None = None) -> Path:
        """A fresh clip path: ``<UTC time>-<pseudonym>.stclip`` (never an existing file)."""
        self.ensure()
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        tag = re.sub(r"[^A-Za-z0-9_-]+", "-", pseudonym or "anonymous").strip("-") or "anonymous"
        path = self.directory / f"{stamp}-{tag}{fmt.FILE_EXTENSION}"
        n = 1
        while path.exists():
            n += 1
            path = self.directory / f"{stamp}-{tag}-{n}{fmt.FILE_EXTENSION}"
        return path

    def clips(self) -> list[Path]:
        """Finished and recovered clips in the directory, oldest first (unfinished ones are recovered first)."""
        if not self.directory.is_dir():
            return []
        unfinished = set(find_unfinished(self.directory))
        return [p for p in sorted(self.directory.glob(f"*{fmt.FILE_EXTENSION}")) if p not in unfinished]

    def unfinished(self) -> list[Path]:
        """Clips a crash left without their end (cheap: reads each file's last 16 bytes)."""
        return find_unfinished(self.directory) if self.directory.is_dir() else []

    def recover_unfinished(self) -> list[RecoveryNotice]:
        """Recover every unfinished clip; one notice per clip (the app shows ``message``). Never raises for a
        damaged file: a clip that cannot be read at all is renamed ``*.unrecoverable`` and reported."""
        return [self._recover(path) for path in self.unfinished()]

    def _recover(self, path: Path) -> RecoveryNotice:
        try:
            report = recover(path)
        except (RecordingFormatError, OSError, ValueError) as exc:
            target = path.with_name(path.name + UNRECOVERABLE_SUFFIX)
            try:
                path.rename(target)
            except OSError:
                target = path
            _log.warning("%s: could not be recovered (%s)", path, exc)
            return RecoveryNotice(
                path, None, 0.0, {}, path.stat().st_size if path.exists() else 0, None,
                f"A recording interrupted by a crash ({path.name}) could not be recovered: {exc}. The file was kept "
                f"as {target.name} for support.",
            )  # fmt: skip
        out = report.out_path or path
        clip = read_clip(out)
        firsts = [float(s.host_time_s[0]) for s in clip.sensors.values() if s.n_samples]
        lasts = [float(s.host_time_s[-1]) for s in clip.sensors.values() if s.n_samples]
        duration_s = max(lasts) - min(firsts) if firsts else 0.0
        pseudonym = (clip.metadata.get("patient") or {}).get("pseudonym")
        started = clip.metadata.get("created_utc") or "an unknown time"
        n_total = sum(report.n_samples.values())
        message = (
            f"The recording of {pseudonym or 'an unnamed patient'} started {started} was interrupted (crash or power "
            f"loss). Recovered {duration_s:.1f} s of data ({n_total} samples from {len(report.n_samples)} sensors) "
            f"up to the interruption into {out.name}."
        )
        if report.n_bytes_dropped:
            message += f" {report.n_bytes_dropped} damaged bytes were left out."
        return RecoveryNotice(path, out, duration_s, dict(report.n_samples), report.n_bytes_dropped, pseudonym,
                              message)  # fmt: skip
