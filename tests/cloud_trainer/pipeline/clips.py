"""Virtual-patient clips for the pipeline tests: a hemiparetic walk analysed by the capture core (as the bedside app
leaves it) and the same walk raw (no analysis sections). Test modules make the
fixtures they need from these helpers."""

from __future__ import annotations

import re
from pathlib import Path

from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.sim import VirtualPatient, from_source_options
from sensor_drivers.sim.clip_export import write_virtual_clip
from stridetwin.commands.train import write_analysed_copy

#: A 9 m walk at 0.5 m/s: about 8 strides of 1.9 s between 2 s of standing at each end (≈ 22 s of data).
WALK = {"walkway": "9", "still_start": "2", "still_end": "2", "speed": "0.5", "side": "left", "seed": "5"}
#: A clip file named as clinics name them, after the patient: neither part may leave the trainer.
PATIENT_FILE_STEM = "jane_doe_1950-03-14"
#: The first name, or the birth year not inside a longer number (a float's digits may hold "1950" by chance).
_IDENTITY = re.compile(r"jane|(?<!\d)1950(?!\d)", re.IGNORECASE)


def identity_leaks(text: str) -> list[str]:
    """The parts of :data:`PATIENT_FILE_STEM` that ``text`` holds."""
    return _IDENTITY.findall(text)


def virtual_clip(folder: Path, name: str, **options: str) -> Path:
    """A raw virtual hemiparetic clip (no analysis sections)."""
    path = folder / f"{name}.raw.stclip"
    write_virtual_clip(VirtualPatient(from_source_options("hemiparetic", {**WALK, **options})).generate(), path)
    return path


def analysed_clip(folder: Path, name: str, **options: str) -> Path:
    """A virtual hemiparetic clip with the capture analysis' sections, as the bedside app writes it."""
    raw = virtual_clip(folder, name, **options)
    path = folder / f"{name}.stclip"
    write_analysed_copy(read_clip(raw), path)
    return path
