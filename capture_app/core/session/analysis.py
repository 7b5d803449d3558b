"""The offline analysis of a walk test: clip → grid → gait → placement checks → orientation and joint angles → one
result with events, strides, metrics (with reasons for missing ones), joint-angle ranges and verdicts.

::

    analysis = WalkAnalysis().analyze(read_clip("walk.stclip"))
    analysis.strides_, analysis.metrics_, analysis.missing_          # from the gait analysis
    analysis.angles_deg_["knee_flexion_l_deg"]                        # on analysis.kit_.time_s (clip clock)
    analysis.angle_ranges_["knee_flexion_l_deg"]                      # {"min_deg", "max_deg", "range_deg", …}
    analysis.verdicts_, analysis.level_                               # everything the therapist should know
    analysis.to_json()                                                # schema "stridetwin.analyze/1" (docs/cli-json.md)

Bad input never raises: a missing sensor, a sensor lost mid-walk, fewer than three strides, a patient standing still,
NaNs or saturated samples each give a verdict and whatever results can still be computed. The stages are swappable
(``gait``, ``orientation``, ``placement``); a stage that fails on data nobody foresaw is reported as a
``analysis.stage_failed`` verdict and the other stages' results are kept.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from capture_app.core.gait import GaitAnalysis
from capture_app.core.session import stages
from capture_app.core.session.sections import jsonable
from capture_app.core.signals import DEFAULT_GRID_RATE_HZ, KitSignals, SiteSignals, signals_from_clip
from capture_app.core.verdict import Level, Verdict, worst
from sensor_drivers.recording.clipfile import Clip
from sensor_drivers.sites import Site

_log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
T = TypeVar("T")

#: Version of :meth:`WalkAnalysis.to_json` (docs/cli-json.md). Within major version 1 keys are only added.
ANALYZE_JSON_SCHEMA = "stridetwin.analyze/1"

#: Below these a flat top is not taken for the device's full scale: the smallest ranges of common IMUs (±2 g,
#: ±125 °/s; Bosch BMI160 datasheet).
MIN_FULL_SCALE_ACC_M_S2 = 2.0 * 9.80665
MIN_FULL_SCALE_GYR_RAD_S = float(np.radians(125.0))
#: Share of samples at full scale from which saturation is a failure (as the live quality check,
#: docs/sensor-placement.md).
SATURATION_FAIL_FRACTION = 0.01

_SITE_WORDS = {Site.PELVIS: "pelvis", Site.THIGH_L: "left thigh", Site.THIGH_R: "right thigh",
               Site.SHANK_L: "left shank", Site.SHANK_R: "right shank"}  # fmt: skip


@dataclass(frozen=True)
class ClipSummary:
    """What the analysis reports about the clip itself (no samples)."""

    path: str | None
    schema_version: str | None
    finished: bool
    recovered: bool
    pseudonym: str | None
    height_m: float | None
    mass_kg: float | None
    affected_side: str | None
    walkway_length_m: float | None
    #: Site → sensor id, for the sensors on known sites.
    sites: dict[str, str]
    #: First to last sample of any sensor, s.
    duration_s: float

    @classmethod
    def from_clip(cls, clip: Clip) -> ClipSummary:
        patient = clip.metadata.get("patient") or {}
        protocol = clip.metadata.get("protocol") or {}
        firsts = [float(s.host_time_s[0]) for s in clip.sensors.values() if s.n_samples]
        lasts = [float(s.host_time_s[-1]) for s in clip.sensors.values() if s.n_samples]
        return cls(
            path=str(clip.path),
            schema_version=".".join(str(v) for v in clip.schema_version),
            finished=clip.finished,
            recovered=clip.recovered,
            pseudonym=patient.get("pseudonym"),
            height_m=_number(patient.get("height_m")),
            mass_kg=_number(patient.get("mass_kg")),
            affected_side=patient.get("affected_side"),
            walkway_length_m=_number(protocol.get("walkway_length_m")),
            sites={str(s.site): s.sensor_id for s in clip.sensors.values() if isinstance(s.site, Site)},
            duration_s=(max(lasts) - min(firsts)) if firsts else 0.0,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "schema_version": self.schema_version, "finished": self.finished,
            "recovered": self.recovered, "duration_s": self.duration_s,
            "patient": {"pseudonym": self.pseudonym, "height_m": self.height_m, "mass_kg": self.mass_kg,
                        "affected_side": self.affected_side},
            "protocol": {"walkway_length_m": self.walkway_length_m},
            "sites": self.sites,
        }  # fmt: skip


@dataclass(frozen=True)
class Intervals:
    """The parts of the recording each stage looks at (clip clock, s, ``[start, end)``)."""

    #: Standing still before the walk (placement check and calibration), or ``None``.
    still_s: tuple[float, float] | None
    #: First to last movement of the walk, or ``None`` (no walking).
    walking_s: tuple[float, float] | None
    #: The first strides, for segment and side identification, or ``None``.
    identification_s: tuple[float, float] | None
    #: Steady strides, each ``[ic_s, next_ic_s)``, merged where they overlap (the two legs' strides do).
    steady_s: tuple[tuple[float, float], ...]
    #: ``"session_log"`` (the still period as the therapist marked it) or ``"detected"`` (from the gait events).
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"still_s": self.still_s, "walking_s": self.walking_s, "identification_s": self.identification_s,
                "steady_s": [list(i) for i in self.steady_s], "source": self.source}  # fmt: skip


class WalkAnalysis:
    """Everything the capture core computes about one recorded walk (module docstring).

    Parameters: ``rate_hz`` (analysis grid), ``gait``/``orientation``/``placement`` (stage objects; ``None``: the
    defaults :class:`GaitAnalysis`, ``OrientationPipeline`` and ``PlacementCheck``, see :mod:`.stages`),
    ``apply_relabelling`` (move sensors to the sites the placement check identified before computing gait and
    angles; by default the relabelling is only proposed), ``identification_strides`` (strides at the start of the
    walk the identification looks at), ``min_still_s`` (shortest still interval the placement check is run on).

    Results of :meth:`analyze` / :meth:`analyze_signals`: ``clip_`` (:class:`ClipSummary` or ``None``), ``kit_``
    (the grid analysed, after relabelling), ``intervals_``, ``gait_``, ``placement_``, ``orientation_`` (stage
    objects, ``None`` where a stage did not run), ``events_``, ``strides_``, ``metrics_``, ``missing_`` (metric name
    → Verdict), ``angles_deg_`` (angle name → (N,) degrees on ``kit_.time_s``), ``angle_ranges_`` (name → min, max,
    range over the steady walk), ``angles_missing_`` (angle name → Verdict), ``proposed_assignment_`` (site → sensor
    id, as identified), ``relabelled_``, ``verdicts_`` and ``level_``.
    """

    def __init__(
        self,
        rate_hz: float = DEFAULT_GRID_RATE_HZ,
        gait: GaitAnalysis | None = None,
        orientation: Any | None = None,
        placement: Any | None = None,
        apply_relabelling: bool = False,
        identification_strides: int = 5,
        min_still_s: float = 1.0,
    ) -> None:
        self.rate_hz = rate_hz
        self.gait = gait
        self.orientation = orientation
        self.placement = placement
        self.apply_relabelling = apply_relabelling
        self.identification_strides = identification_strides
        self.min_still_s = min_still_s

    # -- verbs -----------------------------------------------------------------------------------------------------
    def analyze(self, clip: Clip, *, recording_open: bool = False) -> WalkAnalysis:
        """Analyse a clip (finished, recovered, or read with ``allow_unfinished``; ``recording_open``: the session
        is analysing its own clip before finishing it, which is not a fault)."""
        self.clip_: ClipSummary | None = ClipSummary.from_clip(clip)
        early: list[Verdict] = []
        if not clip.finished and not recording_open:
            early.append(Verdict(
                Level.WARNING, "clip.unfinished",
                "This recording was not closed properly (the app stopped while recording); it was analysed up to "
                "where the data ends.",
                "Run `stridetwin recover` on the file to keep a finished copy.", "kit",
                {"stopped_reading": clip.stopped_reading},
            ))  # fmt: skip
        if clip.recovered:
            early.append(Verdict(
                Level.WARNING, "clip.recovered",
                "This recording was recovered after a crash or power loss; it ends where the recording was "
                "interrupted.", "Check that the walk is complete; record it again if not.", "kit",
            ))  # fmt: skip
        early += saturation_verdicts(clip)
        if not any(isinstance(s.site, Site) and s.n_samples for s in clip.sensors.values()):
            early.append(Verdict(
                Level.FAIL, "analysis.no_data", "This recording holds no sensor data on a known body site.",
                "Connect the sensors, check their sites, and record the walk again.", "kit",
            ))  # fmt: skip
            return self._finish_empty(early)
        kit = signals_from_clip(clip, self.rate_hz)
        walkway = self.clip_.walkway_length_m
        log = clip.sections.get("session_log")
        return self._analyze(kit, walkway, log if isinstance(log, list) else None, early)

    def analyze_signals(
        self,
        kit: KitSignals,
        walkway_length_m: float | None = None,
        session_log: Sequence[Mapping[str, Any]] | None = None,
    ) -> WalkAnalysis:
        """Analyse a grid directly (no clip: ``clip_`` is ``None``)."""
        self.clip_ = None
        return self._analyze(kit, walkway_length_m, session_log, [])

    # -- pipeline --------------------------------------------------------------------------------------------------
    def _analyze(
        self,
        kit: KitSignals,
        walkway_length_m: float | None,
        session_log: Sequence[Mapping[str, Any]] | None,
        early: list[Verdict],
    ) -> WalkAnalysis:
        verdicts = list(early)
        if walkway_length_m is not None and not (np.isfinite(walkway_length_m) and walkway_length_m > 0):
            verdicts.append(Verdict(
                Level.WARNING, "analysis.bad_walkway_length",
                f"The recorded walkway length ({walkway_length_m!r} m) is not a positive distance; it is ignored.",
                "Enter the walkway length of the test in metres.", "kit",
            ))  # fmt: skip
            walkway_length_m = None
        kit, found = sanitized(kit)
        verdicts += found
        missing = kit.missing_sites
        if missing:
            words = ", ".join(_SITE_WORDS[s] for s in missing)
            verdicts.append(Verdict(
                Level.WARNING, "analysis.sites_missing",
                f"This recording has no sensor on the {words}; results that need "
                f"{'it' if len(missing) == 1 else 'them'} are missing.",
                "Use all five sensors (pelvis, both thighs, both shanks) for a complete analysis.", "kit",
                {"missing": [s.value for s in missing]},
            ))  # fmt: skip
        self.stage_verdicts_: list[Verdict] = []
        moving = with_derived_gyroscopes(kit)  # angular velocity for every sensor that has an orientation
        gait = self._stage("gait analysis", lambda: self._new_gait().analyze(moving, walkway_length_m))
        intervals = self._intervals(moving, gait, session_log)
        placement = self._stage("placement check", lambda: self._check_placement(kit, intervals))
        self.proposed_assignment_ = dict(placement.assignment_) if placement is not None else {}
        self.relabelled_ = False
        if self.apply_relabelling and placement is not None:
            current = {site: s.sensor_id for site, s in kit.sites.items()}
            if self.proposed_assignment_ and self.proposed_assignment_ != current:
                kit = stages.relabel_kit(kit, self.proposed_assignment_)
                self.relabelled_ = True
                moved = {str(site): sid for site, sid in self.proposed_assignment_.items() if current.get(site) != sid}
                verdicts.append(Verdict(
                    Level.WARNING, "placement.relabelled",
                    "The sensors were analysed on the sites the placement check identified, not on their labels.",
                    "Label the sensors correctly before the next recording.", "kit", {"moved": moved},
                ))  # fmt: skip
                moving = with_derived_gyroscopes(kit)
                gait = self._stage("gait analysis", lambda: self._new_gait().analyze(moving, walkway_length_m))
                intervals = self._intervals(moving, gait, session_log)
        orientation = self._stage("joint angles", lambda: self._estimate_orientation(kit))

        self.kit_ = kit
        self.intervals_ = intervals
        self.gait_ = gait
        self.placement_ = placement
        self.orientation_ = orientation
        self.events_ = list(gait.events_) if gait is not None else []
        self.strides_ = list(gait.strides_) if gait is not None else []
        self.metrics_ = dict(gait.metrics_) if gait is not None else {}
        self.missing_ = dict(gait.missing_) if gait is not None else {}
        self.context_ = dict(gait.context_) if gait is not None else {}
        self.angles_deg_ = dict(orientation.angles_deg_) if orientation is not None else {}
        self.angle_ranges_, self.angles_missing_ = angle_ranges(
            kit.time_s, self.angles_deg_, intervals.steady_s, orientation.verdicts_ if orientation else [],
            self.stage_verdicts_,
        )
        if gait is not None:
            verdicts += gait.verdicts_
        if placement is not None:
            verdicts += placement.problems_
        if orientation is not None:
            verdicts += [v for v in orientation.verdicts_ if v.level is not Level.OK]
        verdicts += self.stage_verdicts_
        self.verdicts_ = _unique(verdicts)
        self.level_ = worst(self.verdicts_)
        return self

    def _new_gait(self) -> GaitAnalysis:
        return self.gait or GaitAnalysis()

    def _stage(self, words: str, run: Callable[[], T]) -> T | None:
        """Run one stage; an unforeseen error becomes a verdict (the other stages' results are kept)."""
        try:
            return run()
        except Exception as exc:  # a clinical report keeps what the other stages found
            _log.exception("%s failed", words)
            self.stage_verdicts_.append(Verdict(
                Level.FAIL, "analysis.stage_failed",
                f"The {words} could not be completed because of an internal error ({type(exc).__name__}: {exc}); "
                "the other results are not affected.",
                "Send this recording to support.", words, {"error": f"{type(exc).__name__}: {exc}"},
            ))  # fmt: skip
            return None

    def _estimate_orientation(self, kit: KitSignals) -> Any:
        return (self.orientation or stages.orientation_pipeline()).estimate(kit)

    def _check_placement(self, kit: KitSignals, intervals: Intervals) -> Any | None:
        if intervals.still_s is None and intervals.identification_s is None:
            return None
        return (self.placement or stages.placement_check()).check(kit, intervals.still_s, intervals.identification_s)

    def _intervals(
        self, kit: KitSignals, gait: GaitAnalysis | None, session_log: Sequence[Mapping[str, Any]] | None
    ) -> Intervals:
        """Still interval from the session log where there is one, else from the start of the data; either ends
        before the first movement. The identification interval covers the first strides from that movement; the
        steady strides come from the gait analysis."""
        events = sorted(e.time_s for e in gait.events_) if gait is not None else []
        strides = list(gait.strides_) if gait is not None else []
        onset = movement_onset_s(kit, before_s=events[0] if events else None)
        walking = (onset, events[-1] + 0.5) if events and onset is not None else None
        start_s = _first_valid_time(kit)
        still_end = onset - 0.3 if onset is not None else (float(kit.time_s[-1]) if kit.n_samples else None)
        source = "detected"
        still = None
        logged = still_from_session_log(session_log)
        if logged is not None:
            logged = (logged[0], min(logged[1], still_end) if still_end is not None else logged[1])
        if logged is not None and logged[1] - logged[0] >= self.min_still_s:
            still, source = logged, "session_log"
        elif start_s is not None and still_end is not None and still_end - (start_s + 0.2) >= self.min_still_s:
            still = (start_s + 0.2, still_end)
        identification = None
        if walking is not None and strides:
            stride_s = float(np.median([s.duration_s for s in strides]))
            end = min(walking[1], walking[0] + self.identification_strides * stride_s)
            if end - walking[0] >= 2.0:
                identification = (walking[0], end)
        steady = _merged([(s.ic_s, s.next_ic_s) for s in strides if s.steady])
        return Intervals(still, walking, identification, steady, source)

    def _finish_empty(self, verdicts: list[Verdict]) -> WalkAnalysis:
        self.kit_ = KitSignals(self.rate_hz, np.empty(0), {})
        self.intervals_ = Intervals(None, None, None, (), "detected")
        self.gait_ = self.placement_ = self.orientation_ = None
        self.events_, self.strides_ = [], []
        self.metrics_, self.missing_, self.context_ = {}, {}, {}
        self.angles_deg_, self.angle_ranges_, self.angles_missing_ = {}, {}, {}
        self.proposed_assignment_, self.relabelled_ = {}, False
        self.stage_verdicts_ = []
        self.verdicts_ = verdicts
        self.level_ = worst(verdicts)
        return self

    # -- output ----------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The ``stridetwin.analyze/1`` document (docs/cli-json.md)."""
        calibration = calibration_summary(self.orientation_, self.placement_)
        return jsonable({
            "schema": ANALYZE_JSON_SCHEMA,
            "clip": self.clip_.to_json() if self.clip_ is not None else None,
            "level": self.level_.value,
            "grid_rate_hz": self.rate_hz,
            "intervals": self.intervals_.to_json(),
            "events": [e.to_json() for e in self.events_],
            "strides": [s.to_json() for s in self.strides_],
            "metrics": self.metrics_,
            "missing": {name: v.to_json() for name, v in self.missing_.items()},
            "context": self.context_,
            "joint_angles": {
                "names": list(self.angles_deg_),
                "ranges": self.angle_ranges_,
                "missing": {name: v.to_json() for name, v in self.angles_missing_.items()},
            },
            "placement": {
                "level": self.placement_.level_.value if self.placement_ is not None else None,
                "proposed_assignment": {str(k): v for k, v in self.proposed_assignment_.items()},
                "relabelled": self.relabelled_,
            },
            "calibration": calibration,
            "verdicts": [v.to_json() for v in self.verdicts_],
        })

    def angle_table(self) -> tuple[list[str], FloatArray]:
        """Column names (``time_s`` and the angles) and the (N, 1 + n_angles) table of the angle CSV."""
        names = list(self.angles_deg_)
        columns = [self.kit_.time_s] + [np.asarray(self.angles_deg_[n], dtype=float) for n in names]
        return ["time_s", *names], np.column_stack(columns) if columns[0].size else np.empty((0, 1 + len(names)))

    def write_angles_csv(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> int:
        """Write the joint angles over time (docs/cli-json.md, "Angle CSV"); returns the number of rows.

        Columns: ``time_s`` (clip clock) and one per angle computed, in degrees; an empty cell is an unknown value.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists")
        header, table = self.angle_table()
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for row in table:
                writer.writerow([f"{row[0]:.4f}"] + ["" if not np.isfinite(x) else f"{x:.3f}" for x in row[1:]])
        return int(table.shape[0])


# -------------------------------------------------------------------------------------------------------- helpers
def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _first_valid_time(kit: KitSignals) -> float | None:
    any_valid = np.zeros(kit.n_samples, dtype=bool)
    for s in kit.sites.values():
        any_valid |= s.valid
    rows = np.flatnonzero(any_valid)
    return float(kit.time_s[rows[0]]) if rows.size else None


def movement_onset_s(
    kit: KitSignals,
    before_s: float | None = None,
    threshold_rad_s: float = 0.1,
    smooth_s: float = 0.2,
    min_quiet_s: float = 0.5,
    bias_window_s: float = 1.0,
) -> float | None:
    """When the patient starts moving: the end of the last quiet stretch (at least ``min_quiet_s`` long) before
    ``before_s`` (the first gait event; else the first movement of the recording). Quiet: the fastest-turning sensor
    turns slower than ``threshold_rad_s`` (6 °/s), averaged over ``smooth_s``, after removing each gyroscope's offset
    (its median over the first ``bias_window_s`` of data, while the patient stands). Quiet standing sways the legs by
    a few °/s; the weight shift before a first step is slower than the step itself but faster than that
    (docs/sensor-placement.md); short pauses while setting off do not count as standing. ``None`` without data."""
    if kit.n_samples == 0 or not kit.sites:
        return None
    rate = np.zeros(kit.n_samples)
    n_bias = max(2, round(bias_window_s * kit.rate_hz))
    for s in kit.sites.values():
        rows = np.flatnonzero(s.valid & np.all(np.isfinite(s.gyr_rad_s), axis=1))[:n_bias]
        bias = np.median(s.gyr_rad_s[rows], axis=0) if rows.size else np.zeros(3)
        norm = np.linalg.norm(s.gyr_rad_s - bias, axis=1)
        rate = np.fmax(rate, np.where(np.isfinite(norm), norm, 0.0))
    n = max(1, round(smooth_s * kit.rate_hz))
    moving = np.convolve(rate, np.ones(n) / n, mode="same") > threshold_rad_s
    if before_s is None:
        first = np.flatnonzero(moving)
        return float(kit.time_s[first[0]]) if first.size else None
    stop = int(np.searchsorted(kit.time_s, before_s))
    quiet = np.concatenate([[False], ~moving[:stop], [False]])
    starts = np.flatnonzero(quiet[1:] & ~quiet[:-1])
    ends = np.flatnonzero(~quiet[1:] & quiet[:-1])  # exclusive
    long_enough = [(a, b) for a, b in zip(starts, ends, strict=True) if b - a >= min_quiet_s * kit.rate_hz]
    if not long_enough:
        return float(kit.time_s[0])
    return float(kit.time_s[min(long_enough[-1][1], kit.n_samples - 1)])


def _merged(intervals: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _unique(verdicts: list[Verdict]) -> list[Verdict]:
    """Verdicts without repeats (the same code, subject and message reported by two stages)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for v in verdicts:
        key = (v.code, v.subject, v.message)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def still_from_session_log(session_log: Sequence[Mapping[str, Any]] | None) -> tuple[float, float] | None:
    """The last still period before walking, ``[entered still, entered walking)``, from a clip's ``session_log``."""
    if not session_log:
        return None
    still_at = None
    found = None
    for item in session_log:
        if not isinstance(item, Mapping) or not isinstance(item.get("time_s"), int | float):
            continue
        if item.get("to") == "still":
            still_at = float(item["time_s"])
        elif item.get("to") == "walking" and still_at is not None:
            found = (still_at, float(item["time_s"]))
            still_at = None
    return found


def with_derived_gyroscopes(kit: KitSignals) -> KitSignals:
    """``kit`` where a sensor recorded no angular velocity but its own orientation (the Xsens export of the OpenSense
    data): its gyroscope is derived from that orientation by the orientation package's fusion (the same derivation
    the joint angles use), so that gait events can be found from it."""
    derive = {site: s for site, s in kit.sites.items() if s.quat_wxyz is not None
              and not np.isfinite(s.gyr_rad_s[s.valid]).any() and np.isfinite(s.quat_wxyz[s.valid]).any()}  # fmt: skip
    if not derive:
        return kit
    fusion = stages.orientation_fusion(smooth=False).update(KitSignals(kit.rate_hz, kit.time_s, derive))
    sites = dict(kit.sites)
    for site, s in derive.items():
        gyr = fusion.gyr_rad_s_.get(site)
        if gyr is not None:
            sites[site] = replace(s, gyr_rad_s=np.where(s.valid[:, None], gyr, np.nan))
    return KitSignals(kit.rate_hz, kit.time_s, sites)


def sanitized(kit: KitSignals) -> tuple[KitSignals, list[Verdict]]:
    """``kit`` with rows that are marked valid but hold NaN or infinite values made invalid (NaN), and a verdict per
    site where that happened for more than one row, or where a channel the analysis needs was not recorded at all.

    A channel a sensor never delivered is not held against its rows: a device that sends its own orientation instead
    of angular velocity (the Xsens export of the OpenSense data) is used through that orientation.
    """
    sites: dict[Site, SiteSignals] = {}
    verdicts: list[Verdict] = []
    for site, s in kit.sites.items():
        words = _SITE_WORDS.get(site, str(site))
        has_acc = bool(np.isfinite(s.acc_m_s2[s.valid]).any())
        has_gyr = bool(np.isfinite(s.gyr_rad_s[s.valid]).any())
        has_quat = s.quat_wxyz is not None and bool(np.isfinite(s.quat_wxyz[s.valid]).any())
        absent = [name for name, present in (("accelerometer", has_acc), ("gyroscope", has_gyr or has_quat))
                  if not present]  # fmt: skip
        if absent and s.valid.any():
            verdicts.append(Verdict(
                Level.FAIL, "analysis.channel_missing",
                f"The {words} sensor recorded no {' and no '.join(absent)} data, which the analysis needs.",
                "Record with a sensor (or export setting) that delivers both acceleration and angular velocity.",
                str(site), {"absent": absent},
            ))  # fmt: skip
        finite = np.ones(kit.n_samples, dtype=bool)
        if has_acc:
            finite &= np.all(np.isfinite(s.acc_m_s2), axis=1)
        if has_gyr:
            finite &= np.all(np.isfinite(s.gyr_rad_s), axis=1)
        bad = s.valid & ~finite
        if not bad.any():
            sites[site] = s
            continue
        valid = s.valid & finite
        acc, gyr = s.acc_m_s2.copy(), s.gyr_rad_s.copy()
        acc[~valid], gyr[~valid] = np.nan, np.nan
        sites[site] = replace(s, valid=valid, acc_m_s2=acc, gyr_rad_s=gyr)
        n_bad = int(bad.sum())
        if n_bad > 1:
            verdicts.append(Verdict(
                Level.WARNING, "analysis.invalid_samples",
                f"The {words} sensor sent {n_bad / kit.rate_hz:.2f} s of unreadable values (not a number); that time "
                "is treated as lost.",
                "If this repeats, check or replace the sensor.", str(site), {"n_rows": n_bad},
            ))  # fmt: skip
    return KitSignals(kit.rate_hz, kit.time_s, sites), verdicts


def saturation_verdicts(clip: Clip) -> list[Verdict]:
    """A verdict per sensor whose accelerometer or gyroscope hit its measuring range: the same extreme value held
    for several samples (the full scale), or the device's own clip counters rising."""
    verdicts = []
    for stream in clip.sensors.values():
        if not stream.n_samples:
            continue
        site = stream.site
        words = _SITE_WORDS.get(site, str(site)) if isinstance(site, Site) else str(site)
        for kind, values, floor, counter in (
            ("accelerometer", stream.acc_m_s2, MIN_FULL_SCALE_ACC_M_S2, stream.acc_clip_count),
            ("gyroscope", stream.gyr_rad_s, MIN_FULL_SCALE_GYR_RAD_S, stream.gyr_clip_count),
        ):
            n_clipped = _n_at_full_scale(np.asarray(values, dtype=float), floor)
            if counter is not None:
                known = counter[counter >= 0]
                if known.size >= 2:
                    n_clipped = max(n_clipped, int(known[-1] - known[0]))
            if n_clipped < 3:
                continue
            fraction = n_clipped / stream.n_samples
            level = Level.FAIL if fraction >= SATURATION_FAIL_FRACTION else Level.WARNING
            verdicts.append(Verdict(
                level, "analysis.saturated",
                f"The {words} sensor's {kind} reached the end of its measuring range in {n_clipped} samples "
                f"({100 * fraction:.2f} % of the recording); events and angles at those moments are less accurate.",
                f"Set the sensor's {kind} range higher (e.g. ±16 g, ±2000 °/s) before the next recording.",
                str(site), {"n_samples": n_clipped, "fraction": fraction, "sensor_id": stream.sensor_id},
            ))  # fmt: skip
    return verdicts


def _n_at_full_scale(values: FloatArray, floor: float, min_run: int = 3) -> int:
    """Samples at the channel's largest magnitude, if that value is held for at least ``min_run`` consecutive samples
    on one axis: a clipped signal sits flat at its range, while a clean peak, even quantised, is flat for at most two
    samples (at 200 Hz a 200 °/s swing peak changes by ≈1 °/s per sample, the LSB is 0.06 °/s)."""
    magnitude = np.abs(values)
    if not np.isfinite(magnitude).any():
        return 0
    top = float(np.nanmax(magnitude))
    if top < floor:
        return 0
    at_top = magnitude >= top * (1.0 - 1e-6)
    held = at_top[: len(at_top) - min_run + 1].copy()
    for k in range(1, min_run):
        held &= at_top[k : len(at_top) - min_run + 1 + k]
    if not held.any():
        return 0
    return int(np.any(at_top, axis=1).sum())


def angle_ranges(
    time_s: FloatArray,
    angles_deg: Mapping[str, FloatArray],
    steady_s: Sequence[tuple[float, float]],
    orientation_verdicts: Sequence[Verdict],
    stage_verdicts: Sequence[Verdict] = (),
    min_coverage: float = 0.5,
) -> tuple[dict[str, dict[str, float]], dict[str, Verdict]]:
    """Min, max and range of each angle over the steady walk (degrees), and why any angle has none."""
    ranges: dict[str, dict[str, float]] = {}
    missing: dict[str, Verdict] = {}
    rows = np.zeros(time_s.size, dtype=bool)
    for a, b in steady_s:
        rows |= (time_s >= a) & (time_s < b)
    for name in stages.angle_names():
        values = angles_deg.get(name)
        if values is None:
            missing[name] = _why_angle_missing(name, orientation_verdicts, stage_verdicts)
            continue
        if not rows.any():
            missing[name] = Verdict(
                Level.WARNING, "angles.no_steady_walk",
                "No steady walking was found, so joint-angle ranges are not given (the angles over time are).",
                "Record a walk of the whole walkway.", name,
            )
            continue
        inside = np.asarray(values, dtype=float)[rows]
        finite = inside[np.isfinite(inside)]
        coverage = finite.size / inside.size
        if coverage < min_coverage:
            missing[name] = Verdict(
                Level.WARNING, "angles.not_enough_data",
                f"Only {100 * coverage:.0f} % of the steady walk has this angle (sensor data lost); its range is "
                "not given.", "Check the sensors' connection and battery, then record again.", name,
                {"coverage_pct": 100 * coverage},
            )  # fmt: skip
            continue
        lo, hi = float(finite.min()), float(finite.max())
        ranges[name] = {"min_deg": lo, "max_deg": hi, "range_deg": hi - lo, "coverage_pct": 100 * coverage}
    return ranges, missing


def _why_angle_missing(
    name: str, orientation_verdicts: Sequence[Verdict], stage_verdicts: Sequence[Verdict]
) -> Verdict:
    for v in orientation_verdicts:
        if name in (v.details.get("angles") or ()):
            return v
    failed = [v for v in orientation_verdicts if v.level is Level.FAIL]
    if failed:
        return failed[0]
    stage = [v for v in stage_verdicts if v.subject == "joint angles"]
    if stage:
        return stage[0]
    return Verdict(Level.WARNING, "angles.unavailable", "This angle could not be computed.",
                   "Check that all five sensors are connected and the walk starts with a still period.", name)


def calibration_summary(orientation: Any | None, placement: Any | None) -> dict[str, Any]:
    """Calibration inputs and results as JSON (the clip's ``calibration`` section, docs/session.md)."""
    out: dict[str, Any] = {"schema": "stridetwin.calibration/1", "inputs": {}, "sites": {}}
    static = getattr(placement, "static_", None) if placement is not None else None
    if static is not None:
        out["inputs"] = {
            "up_sensor": {str(site): v for site, v in static.up_sensor_.items()},
            "gyr_bias_rad_s": {str(site): v for site, v in static.gyr_bias_rad_s_.items()},
            "tilt_error_deg": {str(site): v for site, v in static.tilt_error_deg_.items()},
        }
    calibration = getattr(orientation, "calibration_", None) if orientation is not None else None
    if calibration is not None:
        out["standing_s"] = getattr(calibration, "standing_s_", None)
        out["walking_s"] = getattr(calibration, "walking_s_", None)
        out["walk_direction_rad"] = getattr(calibration, "walk_direction_rad_", None)
        for site, cal in getattr(calibration, "sites_", {}).items():
            out["sites"][str(site)] = {
                "R_segment_sensor": np.asarray(cal.R_segment_sensor, dtype=float),
                "heading_rad": cal.heading_rad,
                "method": cal.method,
                "confidence": cal.confidence,
                "figures": dict(cal.figures),
            }
        out["verdicts"] = [v.to_json() for v in getattr(calibration, "verdicts_", [])]
    return jsonable(out)


__all__ = [
    "ANALYZE_JSON_SCHEMA",
    "ClipSummary",
    "Intervals",
    "WalkAnalysis",
    "angle_ranges",
    "calibration_summary",
    "movement_onset_s",
    "sanitized",
    "saturation_verdicts",
    "still_from_session_log",
    "with_derived_gyroscopes",
]
