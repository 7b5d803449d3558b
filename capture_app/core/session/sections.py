"""The clip sections a walk-test session writes, and turning results into strict JSON.

Each section's layout is documented in docs/session.md ("What the clip holds"); the names are the constants below.
JSON sections hold strict JSON (no NaN: a missing number is ``null``); ``joint_angles`` is an arrays section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

#: State changes of the session, appended as they happen (list of ``Transition.to_json()``).
SESSION_LOG = "session_log"
#: Signal-quality and placement verdict changes, appended as they happen (list of entries, see docs/session.md).
QUALITY_LOG = "quality_log"
#: Provisional gait events found live, appended as they are found (list of ``GaitEvent.to_json()``).
LIVE_EVENTS = "live_events"
#: Placement check: intervals judged, verdicts, proposed relabelling.
PLACEMENT = "placement"
#: Calibration inputs (still interval, gyroscope bias, measured up directions) and results (sensor-to-segment).
CALIBRATION = "calibration"
#: Refined gait events and strides of the offline analysis.
EVENTS = "events"
#: Spatiotemporal metrics, the reasons for missing ones, clinical context and joint-angle ranges.
METRICS = "metrics"
#: Joint angles over time (arrays: ``time_s`` on the clip clock, one float32 column per angle, degrees).
JOINT_ANGLES = "joint_angles"
#: Every verdict of the offline analysis.
VERDICTS = "verdicts"
#: Which analysis wrote the sections above: schema, app version, time, overall level.
ANALYSIS = "analysis"

#: Every section name a session writes, in the order docs/session.md lists them.
SESSION_SECTIONS: tuple[str, ...] = (
    SESSION_LOG, QUALITY_LOG, LIVE_EVENTS, PLACEMENT, CALIBRATION, EVENTS, METRICS, JOINT_ANGLES, VERDICTS, ANALYSIS,
)  # fmt: skip


def jsonable(value: Any, ndigits: int | None = 6) -> Any:
    """``value`` as strict-JSON-ready Python: numpy scalars and arrays to numbers and lists, NaN/inf to ``None``,
    tuples to lists, enums to their values, paths to strings; floats rounded to ``ndigits`` decimal places (1 µs,
    1 µrad: far below any measurement here; ``None``: unrounded)."""
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float | np.floating):
        x = float(value)
        if not math.isfinite(x):
            return None
        return round(x, ndigits) if ndigits is not None else x
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), ndigits)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k.value if isinstance(k, Enum) else k): jsonable(v, ndigits) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, ndigits) for v in value]
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return jsonable(to_json(), ndigits)
    raise TypeError(f"cannot turn {type(value).__name__} into JSON: {value!r:.100}")
