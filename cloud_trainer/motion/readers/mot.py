"""OpenSim motion files (``.mot``, ``.sto`` version 1): a header ending in ``endheader``, then a tab- or
space-separated table whose first column is ``time``.

Header keys used: ``inDegrees`` (yes/no; required unless ``in_degrees`` is given), ``nRows`` and ``nColumns``
(compared with the table where present; the table wins). Coordinates are mapped by
:mod:`cloud_trainer.motion.readers.opensim_coordinates`;
columns it does not know (``mtp_angle_*``, arms, forces) are listed in ``meta['ignored_columns']``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cloud_trainer.motion.errors import MotionFileError
from cloud_trainer.motion.readers.opensim_coordinates import (
    KNOWN_COORDINATES,
    KneeConvention,
    from_opensim_coordinates,
)
from cloud_trainer.motion.readers.uniform import to_uniform_trajectory
from cloud_trainer.motion.trajectory import JointTrajectory

#: Coordinates that are lengths (metres); all others are angles.
_TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")


def parse_mot(path: str | Path, in_degrees: bool | None = None) -> tuple[dict[str, np.ndarray], bool, dict[str, str]]:
    """The raw table of an OpenSim .mot/.sto file: ``(columns by name, in_degrees, header key/values)``.

    Raises :class:`MotionFileError` naming the file and the problem (no ``endheader``, no ``time`` column, a row of
    the wrong width or with text, a non-integer ``nRows``/``nColumns``, unknown ``inDegrees``). ``nRows`` or
    ``nColumns`` that disagree with the table are recorded as ``<key>_in_table`` in the header dict.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionFileError(f"{path}: cannot read as a text .mot file ({exc})") from exc
    end = next((i for i, line in enumerate(lines) if line.strip().lower() == "endheader"), None)
    if end is None:
        raise MotionFileError(f"{path}: no 'endheader' line; an OpenSim .mot file has a header ending in 'endheader'")
    header: dict[str, str] = {}
    for line in lines[:end]:
        if "=" in line:
            key, _, value = line.partition("=")
            header[key.strip()] = value.strip()
    body = [line for line in lines[end + 1 :] if line.strip()]
    if not body:
        raise MotionFileError(f"{path}: no column labels after 'endheader'")
    labels = body[0].split()
    if not labels or labels[0].lower() != "time":
        raise MotionFileError(f"{path}: the first column must be 'time', got {labels[:1]}")
    if len(set(labels)) != len(labels):
        raise MotionFileError(f"{path}: repeated column labels")
    rows = []
    for k, line in enumerate(body[1:]):
        fields = line.split()
        if len(fields) != len(labels):
            raise MotionFileError(
                f"{path}: data row {k + 1} has {len(fields)} values; the header names {len(labels)} columns"
            )
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise MotionFileError(
                f"{path}: data row {k + 1} holds a value that is not a number: {line.strip()[:80]!r}"
            ) from None
    if not rows:
        raise MotionFileError(f"{path}: no data rows")
    table = np.array(rows)
    # The labelled table is authoritative: OpenSim's own example files miscount (crouch1.mot declares 120 rows and
    # holds 119), so a mismatch is noted in the header dict rather than refused.
    for key, actual in (("nRows", len(rows)), ("nColumns", len(labels))):
        if key in header:
            try:
                declared = int(header[key])
            except ValueError:
                raise MotionFileError(f"{path}: header {key}={header[key]!r} is not an integer") from None
            if declared != actual:
                header[f"{key}_in_table"] = str(actual)
    if in_degrees is None:
        flag = header.get("inDegrees")
        if flag is None:
            raise MotionFileError(f"{path}: header has no 'inDegrees=yes|no'; pass in_degrees to read it anyway")
        if flag.lower() not in ("yes", "no"):
            raise MotionFileError(f"{path}: inDegrees={flag!r}; accepted: yes, no")
        in_degrees = flag.lower() == "yes"
    return {label: table[:, i] for i, label in enumerate(labels)}, in_degrees, header


def read_mot(
    path: str | Path,
    *,
    in_degrees: bool | None = None,
    knee_convention: KneeConvention = "auto",
) -> JointTrajectory:
    """An OpenSim .mot file of joint coordinates as a :class:`JointTrajectory` on a uniform grid.

    Root translation is marked unmeasured per axis where ``pelvis_t*`` columns are missing (e.g. treadmill-like
    cycles, which :func:`cloud_trainer.motion.root.root_from_speed` can complete).
    """
    path = Path(path)
    columns, degrees, header = parse_mot(path, in_degrees)
    known = [c for c in columns if c in KNOWN_COORDINATES]
    if not known:
        raise MotionFileError(
            f"{path}: no joint coordinates found; expected OpenSim names such as hip_flexion_r, knee_angle_r, "
            f"pelvis_tilt (got {', '.join(list(columns)[1:8])}…)"
        )
    scale = np.pi / 180.0 if degrees else 1.0
    coords = {c: columns[c] * (1.0 if c in _TRANSLATIONS else scale) for c in known}
    angles, root_pos, quat, measured, root_measured, notes = from_opensim_coordinates(
        coords, knee_convention=knee_convention, source=str(path)
    )
    return to_uniform_trajectory(
        columns["time"],
        angles,
        root_pos,
        quat,
        joints_measured=measured,
        root_pos_measured=root_measured,
        source=str(path),
        meta={
            "format": "opensim_mot",
            **notes,
            "ignored_columns": [c for c in columns if c != "time" and c not in KNOWN_COORDINATES],
            "header": header,
        },
    )
