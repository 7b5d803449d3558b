"""Crash-safe recording of a walk-test session: every sample and link event journaled as it arrives, the session's
log and the quality log appended as they happen, the analysis written before the clip is finished.

A :class:`SessionRecorder` is a :class:`~sensor_drivers.recording.clipfile.ClipWriter` (samples reach the disk
within 0.25 s, ``fsync`` at most every 0.5 s) plus what a session adds: the patient and test metadata, the
``session_log`` and ``quality_log`` sections (appended), the live events, and at the end the offline analysis'
sections (docs/session.md, "What the clip holds"). Not thread-safe: call it from the session's worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from capture_app.core.session import sections
from capture_app.core.session.analysis import ANALYZE_JSON_SCHEMA, WalkAnalysis, calibration_summary
from capture_app.core.session.sections import jsonable
from capture_app.core.session.state import Transition
from capture_app.core.verdict import Verdict
from sensor_drivers.drivers.base import SensorInfo
from sensor_drivers.recording.clipfile import ClipWriter, deep_merge
from sensor_drivers.sample import StreamItem

AFFECTED_SIDES = ("left", "right", "both", "none")


@dataclass(frozen=True)
class PatientInfo:
    """What a clip may hold about the patient: a pseudonym and anthropometrics, never a name or birth date."""

    pseudonym: str
    height_m: float | None = None
    mass_kg: float | None = None
    #: ``left``, ``right``, ``both``, ``none`` or ``None`` (not known).
    affected_side: str | None = None

    def __post_init__(self) -> None:
        if not self.pseudonym or not self.pseudonym.strip():
            raise ValueError("a patient pseudonym is required (e.g. P-0042); never a name")
        if self.height_m is not None and not 0.5 <= self.height_m <= 2.5:
            raise ValueError(f"height_m must be between 0.5 and 2.5 m, got {self.height_m!r}")
        if self.mass_kg is not None and not 10.0 <= self.mass_kg <= 400.0:
            raise ValueError(f"mass_kg must be between 10 and 400 kg, got {self.mass_kg!r}")
        if self.affected_side is not None and self.affected_side not in AFFECTED_SIDES:
            raise ValueError(f"affected_side must be one of {', '.join(AFFECTED_SIDES)}, got {self.affected_side!r}")


@dataclass(frozen=True)
class WalkProtocol:
    """The walk test as performed."""

    walkway_length_m: float = 20.0
    test: str = "walkway"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.walkway_length_m) and 1.0 <= self.walkway_length_m <= 200.0):
            raise ValueError(f"walkway_length_m must be between 1 and 200 m, got {self.walkway_length_m!r}")


class SessionRecorder:
    """One trial of a session, recorded into one clip (module docstring).

    ``clock_origin_host_s`` is the host time of the clip clock's zero (docs/clip-format.md, "Clip clock");
    ``extra_metadata`` (e.g. the driver's ``clip_metadata()``) is stored too, under the session's own keys.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        patient: PatientInfo,
        protocol: WalkProtocol,
        sensors: Iterable[SensorInfo | Mapping[str, Any]],
        clock_origin_host_s: float,
        extra_metadata: Mapping[str, Any] | None = None,
        writer_options: Mapping[str, Any] | None = None,
    ) -> None:
        metadata = {
            "clock_origin_host_s": clock_origin_host_s,
            "patient": asdict(patient),
            "protocol": asdict(protocol),
        }
        # The session's patient, protocol and clock win over what a driver suggests (a simulation's own patient).
        metadata = deep_merge(dict(extra_metadata or {}), metadata)
        self.path = Path(path)
        self.clock_origin_host_s = clock_origin_host_s
        self.writer = ClipWriter(self.path, metadata=metadata, sensors=sensors, **dict(writer_options or {}))
        #: Last level logged per (code, subject): the quality log records changes only.
        self._quality_state: dict[tuple[str, str], str] = {}

    # -- as it happens -----------------------------------------------------------------------------------------------
    def add(self, item: StreamItem) -> None:
        """One driver item (sample or link event)."""
        self.writer.add(item)

    def poll(self) -> None:
        """Let old blocks reach the disk and fsync when due (call every 50-100 ms)."""
        self.writer.poll()

    def log_transition(self, transition: Transition) -> None:
        """Append a state change to ``session_log`` (written at once)."""
        self.writer.write_section(sections.SESSION_LOG, [jsonable(transition.to_json())], append=True)

    def log_verdicts(self, verdicts: Iterable[Verdict], time_s: float, source: str) -> int:
        """Append to ``quality_log`` the verdicts whose level changed since last logged (a first ``ok`` is not
        logged); returns how many entries were written."""
        entries = []
        for v in verdicts:
            key = (v.code, v.subject)
            before = self._quality_state.get(key)
            if before == v.level.value or (before is None and v.level.value == "ok"):
                continue
            self._quality_state[key] = v.level.value
            entries.append({"time_s": time_s, "source": source, **v.to_json()})
        if entries:
            self.writer.write_section(sections.QUALITY_LOG, jsonable(entries), append=True)
        return len(entries)

    def log_live_events(self, events: Iterable[Any]) -> None:
        """Append provisional gait events (objects with ``to_json``) to ``live_events``."""
        items = [jsonable(e.to_json()) for e in events]
        if items:
            self.writer.write_section(sections.LIVE_EVENTS, items, append=True)

    def write_section(self, name: str, value: Any) -> None:
        """Any other section (JSON made strict here; a dict of numpy arrays is written as an arrays section)."""
        if isinstance(value, Mapping) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            self.writer.write_section(name, dict(value))
        else:
            self.writer.write_section(name, jsonable(value))

    def update_sensor(self, info: SensorInfo | Mapping[str, Any]) -> None:
        """Device fields learnt after connecting (firmware, model)."""
        self.writer.add_sensor(info)

    def flush(self) -> None:
        """Everything pending to disk now (before the analysis reads the clip)."""
        self.writer.flush()

    # -- at the end ------------------------------------------------------------------------------------------------
    def write_analysis(self, analysis: WalkAnalysis) -> None:
        """The offline analysis' sections: placement, calibration, events, metrics, joint angles, verdicts."""
        write_analysis_sections(self.write_section, analysis)

    def close(self, stopped_by: str = "stopped") -> None:
        """Finish the clip (footer with SHA-256 and index). Safe to call twice."""
        if self.writer.closed:
            return
        self.writer.update_metadata({"recording": {"stopped_by": stopped_by}})
        self.writer.close()

    @property
    def closed(self) -> bool:
        return self.writer.closed


def write_analysis_sections(write: Any, analysis: WalkAnalysis) -> None:
    """Write an analysis' sections through ``write(name, value)`` (docs/session.md, "What the clip holds")."""
    placement = analysis.placement_
    write(sections.PLACEMENT, {
        "source": "offline",
        "still_interval_s": analysis.intervals_.still_s,
        "walking_interval_s": analysis.intervals_.identification_s,
        "level": placement.level_.value if placement is not None else None,
        "verdicts": [v.to_json() for v in placement.verdicts_] if placement is not None else [],
        "proposed_assignment": {str(k): v for k, v in analysis.proposed_assignment_.items()},
        "relabelled": analysis.relabelled_,
    })  # fmt: skip
    write(sections.CALIBRATION, {
        "source": "offline", "still_interval_s": analysis.intervals_.still_s,
        **calibration_summary(analysis.orientation_, placement),
    })  # fmt: skip
    write(sections.EVENTS, {
        "source": "offline",
        "events": [e.to_json() for e in analysis.events_],
        "strides": [s.to_json() for s in analysis.strides_],
    })  # fmt: skip
    write(sections.METRICS, {
        "metrics": analysis.metrics_,
        "missing": {k: v.to_json() for k, v in analysis.missing_.items()},
        "context": analysis.context_,
        "angle_ranges": analysis.angle_ranges_,
        "angle_ranges_missing": {k: v.to_json() for k, v in analysis.angles_missing_.items()},
    })  # fmt: skip
    if analysis.angles_deg_ and analysis.kit_.n_samples:
        columns = {"time_s": np.asarray(analysis.kit_.time_s, dtype="<f8")}
        columns.update({name: np.asarray(v, dtype="<f4") for name, v in analysis.angles_deg_.items()})
        write(sections.JOINT_ANGLES, columns)
    write(sections.VERDICTS, [v.to_json() for v in analysis.verdicts_])
    write(sections.ANALYSIS, {
        "schema": ANALYZE_JSON_SCHEMA,
        "app_version": _app_version(),
        "analyzed_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "level": analysis.level_.value,
        "grid_rate_hz": analysis.rate_hz,
        "intervals": analysis.intervals_.to_json(),
    })  # fmt: skip


def _app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stridetwin")
    except PackageNotFoundError:
        return "0.0.0+source"
