"""Where the app keeps what the link needs, in one place.

The app's data directory is ``$STRIDETWIN_DATA_DIR`` if set, else ``$XDG_DATA_HOME/stridetwin`` (default
``~/.local/share/stridetwin``, the XDG base-directory specification); the session store keeps its clips in its
``sessions/`` folder. The link adds, beside it (docs/link.md, "On disk")::

    outbox.sqlite3          the outbox: clips waiting to be uploaded, jobs waiting to be submitted, what was sent
    patients.sqlite3        the local patient list (names, birth dates → pseudonyms); mode 0600, never sent
    results/<job_id>/       results of jobs whose clip is not in the local library

The connection settings file is ``$STRIDETWIN_CONFIG`` if set, else ``$XDG_CONFIG_HOME/stridetwin/link.toml``
(default ``~/.config/stridetwin/link.toml``).
"""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """``$STRIDETWIN_DATA_DIR``, else ``$XDG_DATA_HOME/stridetwin``, else ``~/.local/share/stridetwin``."""
    if override := os.environ.get("STRIDETWIN_DATA_DIR"):
        return Path(override).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "stridetwin"


def library_dir(data_dir: Path) -> Path:
    """The local library of clips (the session store's directory)."""
    return Path(data_dir) / "sessions"


def default_config_path() -> Path:
    """``$STRIDETWIN_CONFIG``, else ``$XDG_CONFIG_HOME/stridetwin/link.toml``, else
    ``~/.config/stridetwin/link.toml``."""
    if override := os.environ.get("STRIDETWIN_CONFIG"):
        return Path(override).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home).expanduser() / "stridetwin" / "link.toml"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` owner-only (0700: it holds patient data) if missing; returns it."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
