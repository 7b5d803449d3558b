"""Reading a clip named on the command line, with the errors a user sees."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sensor_drivers.recording.clipfile import Clip


def read_clip_or_exit(path: str | Path, *, allow_unfinished: bool = True) -> Clip:
    """The clip at ``path``; a missing file or a damaged one is a :class:`~stridetwin.cli.CliError` naming it."""
    from sensor_drivers.errors import RecordingFormatError
    from sensor_drivers.recording.clipfile import read_clip
    from stridetwin.cli import CliError

    try:
        return read_clip(path, allow_unfinished=allow_unfinished)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except RecordingFormatError as exc:
        raise CliError(str(exc)) from None
