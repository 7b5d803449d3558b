"""Recording: the StrideTwin clip file (``.stclip``), streaming crash-safe writing, recovery, inspection, import.

The format is documented byte by byte in ``docs/clip-format.md``.
"""

from sensor_drivers.recording.clipfile import (
    Clip,
    ClipWriter,
    RecoveryReport,
    SensorStream,
    UnfinishedClipError,
    find_unfinished,
    read_clip,
    recover,
)
from sensor_drivers.recording.privacy import IdentifyingDataError

__all__ = [
    "Clip",
    "ClipWriter",
    "IdentifyingDataError",
    "RecoveryReport",
    "SensorStream",
    "UnfinishedClipError",
    "find_unfinished",
    "read_clip",
    "recover",
]
