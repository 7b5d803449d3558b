"""The gait pipeline: offline (refined, after the walk) and live (provisional, while walking).

Offline: :class:`GaitAnalysis` runs events → strides → lengths → metrics → clinical context on a whole recording
(``KitSignals``) and explains, with a :class:`Verdict`, everything it could not compute. Live: :class:`LiveGait`
consumes ~50–100 ms blocks and emits provisional events and strides with bounded memory; the offline analysis of the
finished recording replaces them (the two agree to within a few milliseconds: tests/capture_app/core/gait).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

import numpy as np

from capture_app.core.gait.axis import EXPECTED_SWING_AXIS_SENSOR, SagittalAxis
from capture_app.core.gait.distance import WalkwayScaledLengths
from capture_app.core.gait.events import (
    SIDES,
    GaitEvent,
    LiveShankEvents,
    ShankEventDetector,
    Swing,
    SwingDetector,
    usable_rows,
)
from capture_app.core.gait.metrics import SpatiotemporalMetrics
from capture_app.core.gait.norms import clinical_context
from capture_app.core.gait.steps import ShankInclination, step_lengths_m
from capture_app.core.gait.strides import SHANK_SITES, Stride, StrideSegmentation, lost_intervals, stride_between
from capture_app.core.signals import KitSignals
from capture_app.core.verdict import Level, Verdict, worst

#: Version of the ``to_json`` layout (docs/gait-metrics.md).
GAIT_JSON_SCHEMA = "stridetwin.gait/1"


class GaitAnalysis:
    """Gait events, strides, spatiotemporal metrics and their verdicts for one walk test.

    Results: ``events_`` (list of :class:`GaitEvent`, time order, both legs), ``swings_`` (dict side → list of
    :class:`Swing`), ``strides_`` (list of :class:`Stride`, each with ``side``, ``ic_s`` on the clip clock, lengths,
    ``steady``/``excluded``), ``bouts_`` (walking bouts, s), ``metrics_`` (name → value; names in
    :data:`capture_app.core.gait.metrics.METRICS`), ``missing_`` (name → :class:`Verdict`: why it is absent),
    ``verdicts_`` (everything the therapist should know about this analysis), ``context_`` (speed category and
    healthy bands, :func:`capture_app.core.gait.norms.clinical_context`) and ``axes_`` (dict side →
    :class:`SagittalAxis`, the shank axes found).
    """

    def __init__(
        self,
        swing_detector: SwingDetector | None = None,
        segmentation: StrideSegmentation | None = None,
        lengths: WalkwayScaledLengths | None = None,
        metrics: SpatiotemporalMetrics | None = None,
        max_bridge_s: float = 0.1,
        min_strides: int = 3,
        report_loss_s: float = 0.5,
    ):
        #: Event rules (``SwingDetector()`` when ``None``).
        self.swing_detector = swing_detector
        #: Stride building and steady-state selection (``StrideSegmentation()`` when ``None``).
        self.segmentation = segmentation
        #: Stride-length model (``WalkwayScaledLengths()`` when ``None``).
        self.lengths = lengths
        #: Metric computation (``SpatiotemporalMetrics()`` when ``None``).
        self.metrics = metrics
        #: Sensor gaps up to this long are bridged for event detection; longer ones count as sensor loss, s.
        self.max_bridge_s = max_bridge_s
        #: A walk with fewer strides (both legs together) than this gives no metrics.
        self.min_strides = min_strides
        #: A shank that lost at least this much data during the walk gets a ``gait.sensor_lost`` verdict, s (shorter
        #: losses only cost the events that fell in them).
        self.report_loss_s = report_loss_s

    def analyze(self, kit: KitSignals, walkway_length_m: float | None = None) -> GaitAnalysis:
        """Analyse a whole recording; ``walkway_length_m`` from the clip's ``protocol.walkway_length_m``."""
        if walkway_length_m is not None and not (np.isfinite(walkway_length_m) and walkway_length_m > 0):
            raise ValueError(f"walkway_length_m must be a positive number of metres, got {walkway_length_m!r}")
        self.verdicts_: list[Verdict] = []
        self.swings_: dict[str, list[Swing]] = {}
        self.axes_: dict[str, SagittalAxis] = {}
        side_reasons: dict[str, Verdict | None] = {}
        for side in SIDES:
            side_reasons[side] = self._detect_side(kit, side)
        self.events_ = sorted((e for side in SIDES for s in self.swings_[side] for e in s.events()),
                              key=lambda e: e.time_s)  # fmt: skip

        segmentation = (self.segmentation or StrideSegmentation()).segment(self.swings_, kit)
        self.bouts_ = segmentation.bouts_
        strides = segmentation.strides_
        self.verdicts_ += segmentation.verdicts_

        all_swings = [s for side in SIDES for s in self.swings_[side]]
        if not all_swings and any(reason is None for reason in side_reasons.values()):
            standing = Verdict(
                Level.FAIL, "gait.standing_still", "No steps were detected: the patient stood still.",
                "Ask the patient to walk the walkway, then record again.", "kit",
            )  # fmt: skip
            self.verdicts_.append(standing)
            side_reasons = {side: reason or standing for side, reason in side_reasons.items()}
        elif all_swings and len(strides) < self.min_strides:
            short = Verdict(
                Level.FAIL, "gait.walk_too_short",
                f"The walk had only {len(strides)} strides; at least {self.min_strides} are needed for gait metrics.",
                "Ask the patient to walk the whole walkway.", "kit", {"n_strides": len(strides)},
            )  # fmt: skip
            self.verdicts_.append(short)
            side_reasons = {side: reason or short for side, reason in side_reasons.items()}

        walking_time_s, ends_seen = self._walking_time(kit)
        strides, length_reason = self._lengths(kit, strides, walkway_length_m, ends_seen, side_reasons)
        self.strides_ = strides
        metrics = (self.metrics or SpatiotemporalMetrics()).compute(
            strides, walking_time_s=walking_time_s, walkway_length_m=walkway_length_m,
            side_reasons=side_reasons, length_reason=length_reason,
        )  # fmt: skip
        self.metrics_ = metrics.metrics_
        self.missing_ = metrics.missing_
        self.context_ = clinical_context(self.metrics_)
        return self

    def _detect_side(self, kit: KitSignals, side: str) -> Verdict | None:
        site = SHANK_SITES[side]
        self.swings_[side] = []
        signals = kit.sites.get(site)
        if signals is None:
            verdict = Verdict(
                Level.FAIL, "gait.sensor_missing",
                f"There is no {side} shank sensor in this recording; {side}-leg gait events cannot be detected.",
                f"Strap a sensor to the {side} shank.", site.value,
            )  # fmt: skip
            self.verdicts_.append(verdict)
            return verdict
        usable_s = float(np.sum(usable_rows(signals.gyr_rad_s, signals.acc_m_s2, signals.valid))) / kit.rate_hz
        if usable_s < 1.0:
            verdict = Verdict(
                Level.FAIL, "gait.sensor_lost",
                f"The {side} shank sensor sent no usable data ({usable_s:.1f} s); {side}-leg gait events cannot be "
                "detected.",
                "Check that the sensor is switched on, charged and connected, then record again.", site.value,
                {"usable_s": usable_s},
            )  # fmt: skip
            self.verdicts_.append(verdict)
            return verdict
        detector = ShankEventDetector(
            self.swing_detector, SagittalAxis(prior_axis=EXPECTED_SWING_AXIS_SENSOR[site]), self.max_bridge_s
        ).detect(kit.time_s, signals.gyr_rad_s, signals.acc_m_s2, signals.valid, kit.rate_hz, side)
        self.axes_[side] = detector.axis_
        self.swings_[side] = detector.swings_
        return None

    def _walking_time(self, kit: KitSignals) -> tuple[float | None, dict[str, bool]]:
        """Walking time (first toe-off to last contact) and, per leg, whether its sensor saw the walk's two ends.

        Also collects each shank's lost intervals during the walk (``self._lost``) and reports them.
        """
        ends_seen = {side: False for side in SIDES}
        self._lost: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
        swings = sorted((s for side in SIDES for s in self.swings_[side]), key=lambda s: s.ms_s)
        if not swings:
            return None, ends_seen
        walk_start = swings[0].fc_s if swings[0].fc_s is not None else swings[0].ms_s
        walk_end = swings[-1].ic_s if swings[-1].ic_s is not None else swings[-1].ms_s
        for side in SIDES:
            signals = kit.sites.get(SHANK_SITES[side])
            own = self.swings_[side]
            if signals is None or not own:
                continue
            lost = [
                (a, b) for a, b in lost_intervals(signals.valid, kit.time_s, self.max_bridge_s + 0.5 / kit.rate_hz)
                if b > walk_start - 1.0 and a < walk_end + 1.0
            ]  # fmt: skip
            self._lost[side] = lost
            first, last = own[0], own[-1]
            head = (walk_start - 1.0, first.ic_s if first.ic_s is not None else first.ms_s)
            tail = (last.fc_s if last.fc_s is not None else last.ms_s, walk_end + 1.0)
            ends_seen[side] = not any(a < h1 and h0 < b for a, b in lost for h0, h1 in (head, tail))
            total = sum(b - a for a, b in lost)
            if total >= self.report_loss_s:
                self.verdicts_.append(Verdict(
                    Level.WARNING, "gait.sensor_lost",
                    f"The {side} shank sensor lost its signal for {total:.1f} s during the walk; strides in that "
                    "time are missing.",
                    "Check the strap, the battery and that nothing blocks the radio; repeat the walk if needed.",
                    SHANK_SITES[side].value, {"lost_s": total, "intervals_s": [list(i) for i in lost]},
                ))  # fmt: skip
        if swings[0].fc_s is None or swings[-1].ic_s is None or walk_end <= walk_start:
            return None, ends_seen  # the walk's first toe-off or last contact fell in lost data
        return walk_end - walk_start, ends_seen

    def _lengths(
        self,
        kit: KitSignals,
        strides: list[Stride],
        walkway_length_m: float | None,
        ends_seen: dict[str, bool],
        side_reasons: dict[str, Verdict | None],
    ) -> tuple[list[Stride], Verdict | None]:
        """Stride lengths scaled to the walkway (:mod:`.distance`), then step lengths (:mod:`.steps`)."""
        if walkway_length_m is None:
            return strides, None  # the metrics explain the missing walkway themselves
        usable = {side: self.swings_[side] if side_reasons[side] is None else [] for side in SIDES}
        model = (self.lengths or WalkwayScaledLengths()).estimate(usable, walkway_length_m, ends_seen, self._lost)
        self.verdicts_ += model.verdicts_
        if all(model.scale_m_[side] is None for side in SIDES):
            if not any(usable.values()):
                return strides, None  # no steps: the side reasons explain
            verdict = Verdict(
                Level.FAIL, "gait.sensor_lost",
                "Stride lengths cannot be scaled to the walkway: the shank sensors lost data at the start or end of "
                "the walk.",
                "Check both shank sensors' straps, batteries and radio, then repeat the walk.", "kit",
            )  # fmt: skip
            return strides, verdict
        stride_length = {
            (side, swing.ic_s): length
            for side in SIDES
            for swing, length in zip(usable[side], model.swing_length_m_[side], strict=True)
            if swing.ic_s is not None
        }
        strides = [replace(s, length_m=stride_length.get((s.side, s.next_ic_s))) for s in strides]
        inclination = {}
        for side in SIDES:
            signals = kit.sites.get(SHANK_SITES[side])
            axis = self.axes_.get(side)
            if signals is None or axis is None or axis.axis_ is None:
                continue
            spans = [(s.ic_s, s.next_ic_s) for s in strides if s.side == side]
            inclination[side] = ShankInclination().estimate(
                kit.time_s, signals.gyr_rad_s, signals.acc_m_s2, signals.valid, axis.axis_, spans
            ).inclination_rad_
        steps = step_lengths_m(strides, kit.time_s, inclination)
        return [replace(s, step_length_m=steps.get((s.side, s.ic_s))) for s in strides], None

    def to_json(self) -> dict[str, Any]:
        """The analysis as a JSON-ready dict (docs/gait-metrics.md, "JSON")."""
        return {
            "schema": GAIT_JSON_SCHEMA,
            "events": [e.to_json() for e in self.events_],
            "strides": [s.to_json() for s in self.strides_],
            "metrics": dict(self.metrics_),
            "missing": {name: v.to_json() for name, v in self.missing_.items()},
            "verdicts": [v.to_json() for v in self.verdicts_],
            "context": self.context_,
            "level": worst(self.verdicts_).value,
        }


class LiveGait:
    """Provisional gait events and strides while the patient walks, from consecutive blocks of grid rows.

    One :class:`LiveShankEvents` per shank; memory is bounded (ring buffers and the last ``max_kept`` items).

    Results: ``new_events_`` and ``new_strides_`` (found by the last ``update``), ``events_`` and ``strides_`` (the
    most recent ones), ``n_strides_`` (dict side → strides so far) and ``cadence_steps_min_`` (from the last
    ``n_cadence_strides`` strides, or ``None``).
    """

    def __init__(
        self,
        rate_hz: float = 100.0,
        buffer_s: float = 8.0,
        max_kept: int = 256,
        n_cadence_strides: int = 6,
        swing_detector: SwingDetector | None = None,
        max_bridge_s: float = 0.1,
    ):
        #: Grid rate of the blocks, Hz.
        self.rate_hz = rate_hz
        #: Ring-buffer length per shank, s.
        self.buffer_s = buffer_s
        #: Recent events and strides kept.
        self.max_kept = max_kept
        #: Strides the live cadence is computed over.
        self.n_cadence_strides = n_cadence_strides
        #: Event rules (``SwingDetector()`` when ``None``), the same as offline.
        self.swing_detector = swing_detector
        #: Gaps up to this long are bridged, s.
        self.max_bridge_s = max_bridge_s
        self.reset()

    def reset(self) -> LiveGait:
        """Forget all state."""
        self._detectors = {
            side: LiveShankEvents(
                side, self.rate_hz, self.buffer_s, self.max_kept, self.swing_detector,
                SagittalAxis(prior_axis=EXPECTED_SWING_AXIS_SENSOR[SHANK_SITES[side]]), self.max_bridge_s,
            )
            for side in SIDES
        }  # fmt: skip
        self._recent: dict[str, deque[Swing]] = {side: deque(maxlen=8) for side in SIDES}
        self.new_events_: list[GaitEvent] = []
        self.new_strides_: list[Stride] = []
        self.events_: deque[GaitEvent] = deque(maxlen=3 * self.max_kept)
        self.strides_: deque[Stride] = deque(maxlen=self.max_kept)
        self.n_strides_ = {side: 0 for side in SIDES}
        self.cadence_steps_min_: float | None = None
        return self

    def update(self, block: KitSignals) -> LiveGait:
        """Consume the next block of rows (all sites on one grid); see the class docstring for the results."""
        self.new_events_, self.new_strides_ = [], []
        for side in SIDES:
            signals = block.sites.get(SHANK_SITES[side])
            if signals is None:
                continue
            detector = self._detectors[side].update(block.time_s, signals.gyr_rad_s, signals.acc_m_s2, signals.valid)
            self.new_events_ += detector.new_events_
            for swing in detector.new_swings_:
                recent = self._recent[side]
                if recent:
                    stride = stride_between(recent[-1], swing, list(self._recent[_other(side)]))
                    if stride is not None:
                        self.new_strides_.append(stride)
                        self.n_strides_[side] += 1
                recent.append(swing)
        self.new_events_.sort(key=lambda e: e.time_s)
        self.events_.extend(self.new_events_)
        self.strides_.extend(self.new_strides_)
        if self.new_strides_:
            last = list(self.strides_)[-self.n_cadence_strides :]
            self.cadence_steps_min_ = 120.0 / float(np.mean([s.duration_s for s in last]))
        return self


def _other(side: str) -> str:
    return "right" if side == "left" else "left"
