"""Spatiotemporal gait metrics of the steady-state section, per side, with symmetry and variability.

Every metric is a mean over the steady strides (:mod:`.strides`) unless said otherwise. Names carry their units
(``_s``, ``_m``, ``_m_s``, ``_pct``, ``_steps_min``; ``_ratio`` is dimensionless; counts start with ``n_``);
``_l``/``_r`` is the side. The full list with definitions is :data:`METRICS` and docs/gait-metrics.md (a test keeps
them equal). A metric that cannot be computed is absent from ``metrics_`` and present in ``missing_`` with a
:class:`Verdict` saying why.

Symmetry index (Robinson et al. 1987): ``SI = 2 |L − R| / (L + R) · 100`` (0 = symmetric). Symmetry ratio (Patterson
et al. 2010): larger / smaller of the two sides' means (1 = symmetric; swing time ratio > 1.06 is asymmetric per
Patterson et al. 2008); it needs no knowledge of the paretic side. Variability: coefficient of variation
``CV = SD / mean · 100`` over the steady strides of one side, only with at least ``min_cv_strides`` (10) of them
(fewer give unstable estimates; e.g. Lord et al. 2011 and König et al. 2014 recommend more).

Strides with an event estimated across a short gap in the data (``Stride.estimated``) count for the stride numbers,
the cadence and the gait speed, which are sums and means over many strides (an estimated contact shortens one stride
and lengthens the next by the same amount), but are left out of each timing metric that uses the estimated event
(``Stride.timing_excluded_from``; :data:`~capture_app.core.gait.strides.TIMING_EVENTS`): stride time, step time,
stance/swing, double support, their CVs and so their symmetry. A timing metric left with too few strides by this is
missing with the verdict ``gait.short_data_loss``.
"""

from __future__ import annotations

import re

import numpy as np

from capture_app.core.gait.events import SIDES
from capture_app.core.gait.strides import Stride
from capture_app.core.verdict import Level, Verdict

_S = {"l": "left", "r": "right"}


def _per_side(template: str, doc: str) -> dict[str, str]:
    return {template.format(s=s): doc.format(side=side) for s, side in _S.items()}


#: Every metric this module can produce: name → definition (units in the name).
METRICS: dict[str, str] = {
    "gait_speed_m_s": "steady-state speed: Σ steady stride lengths / Σ steady stride times (both legs)",
    "mean_speed_m_s": "walkway length / walking time (first toe-off to last initial contact)",
    "walking_time_s": "first toe-off to last initial contact of the walk",
    "cadence_steps_min": "steps per minute in steady walking: 120 / mean steady stride time (both legs)",
    "double_support_pct": "initial + terminal double support as % of the stride (both legs' steady strides)",
    **_per_side("stride_time_{s}_s", "{side} stride time, initial contact to the next"),
    **_per_side("step_time_{s}_s", "{side} step time: other foot's initial contact to this foot's"),
    **_per_side("stance_time_{s}_s", "{side} stance time: initial to final contact"),
    **_per_side("swing_time_{s}_s", "{side} swing time: final contact to the next initial contact"),
    **_per_side("stance_pct_{s}", "{side} stance as % of the stride"),
    **_per_side("swing_pct_{s}", "{side} swing as % of the stride"),
    **_per_side("stride_length_{s}_m", "{side} stride length: the foot's forward travel over a stride"),
    **_per_side("step_length_{s}_m", "{side} step length: how far the foot lands ahead of the other foot"),
    **_per_side("stride_time_cv_pct_{s}", "{side} stride time coefficient of variation (≥ 10 steady strides)"),
    **_per_side("swing_time_cv_pct_{s}", "{side} swing time coefficient of variation (≥ 10 steady strides)"),
    **_per_side("stride_length_cv_pct_{s}", "{side} stride length coefficient of variation (≥ 10 steady strides)"),
    "step_time_symmetry_index_pct": "symmetry index 2|L−R|/(L+R)·100 of mean step times",
    "step_length_symmetry_index_pct": "symmetry index of mean step lengths",
    "swing_time_symmetry_index_pct": "symmetry index of mean swing times",
    "stance_time_symmetry_index_pct": "symmetry index of mean stance times",
    "swing_time_ratio": "symmetry ratio: larger / smaller mean swing time",
    "step_length_ratio": "symmetry ratio: larger / smaller mean step length",
    **_per_side("n_strides_{s}", "{side} strides detected in the whole recording"),
    **_per_side("n_steady_strides_{s}", "{side} steady strides the metrics are computed from"),
}  # fmt: skip


def symmetry_index_pct(left: float, right: float) -> float:
    """Robinson et al. 1987: 2|L − R| / (L + R) · 100."""
    return float(200.0 * abs(left - right) / (left + right))


def symmetry_ratio(left: float, right: float) -> float:
    """Patterson et al. 2010: larger / smaller."""
    return float(max(left, right) / min(left, right))


#: The timing family (:data:`capture_app.core.gait.strides.TIMING_EVENTS`) each timing metric is computed from.
TIMING_FAMILY: dict[str, str] = {
    **{f"stride_time_{s}_s": "stride_time" for s in _S}, **{f"stride_time_cv_pct_{s}": "stride_time" for s in _S},
    **{f"step_time_{s}_s": "step_time" for s in _S}, "step_time_symmetry_index_pct": "step_time",
    **{f"{name}_{s}{unit}": "stance_swing" for s in _S for name, unit in (
        ("stance_time", "_s"), ("swing_time", "_s"), ("stance_pct", ""), ("swing_pct", ""), ("swing_time_cv_pct", ""))},
    "swing_time_symmetry_index_pct": "stance_swing", "stance_time_symmetry_index_pct": "stance_swing",
    "swing_time_ratio": "stance_swing", "double_support_pct": "double_support",
}  # fmt: skip


def measured(strides: list[Stride], family: str) -> list[Stride]:
    """The strides whose events for the timing ``family`` were all measured (none estimated across a gap)."""
    return [s for s in strides if family not in s.timing_excluded_from]


def _cv_pct(values: list[float]) -> float:
    array = np.asarray(values, dtype=float)
    return float(100.0 * array.std(ddof=1) / array.mean())


class SpatiotemporalMetrics:
    """Metrics from strides (module docstring).

    Results: ``metrics_`` (name → value), ``missing_`` (name → :class:`Verdict` explaining why it is absent) — the two
    together hold every name of :data:`METRICS`.
    """

    def __init__(self, min_steady_strides: int = 2, min_cv_strides: int = 10):
        #: Fewer steady strides on a side than this give no means for it.
        self.min_steady_strides = min_steady_strides
        #: Fewer steady strides on a side than this give no coefficient of variation.
        self.min_cv_strides = min_cv_strides

    def compute(
        self,
        strides: list[Stride],
        *,
        walking_time_s: float | None,
        walkway_length_m: float | None,
        side_reasons: dict[str, Verdict | None],
        length_reason: Verdict | None = None,
    ) -> SpatiotemporalMetrics:
        """Compute what can be computed.

        ``side_reasons[side]``: why a side has no metrics at all (sensor missing, no steps), else ``None``.
        ``length_reason``: why lengths are unknown (no walkway length, sensor lost), else ``None``.
        """
        self.metrics_: dict[str, float] = {}
        self.missing_: dict[str, Verdict] = {}
        if walkway_length_m is None and length_reason is None:
            length_reason = _no_walkway()  # lengths are scaled to the walkway: without it there are none
        steady = {side: [s for s in strides if s.side == side and s.steady] for side in SIDES}
        for side in SIDES:
            self.metrics_[f"n_strides_{side[0]}"] = float(sum(s.side == side for s in strides))
            self.metrics_[f"n_steady_strides_{side[0]}"] = float(len(steady[side]))
        reasons = {side: side_reasons.get(side) or self._too_few(side, strides, steady[side]) for side in SIDES}
        means: dict[str, dict[str, float]] = {side: {} for side in SIDES}
        for side in SIDES:
            if reasons[side] is None:
                means[side] = self._side_means(side, steady[side], length_reason)

        # walk-level metrics
        if walking_time_s is not None:
            self.metrics_["walking_time_s"] = walking_time_s
            if walkway_length_m is not None:
                self.metrics_["mean_speed_m_s"] = walkway_length_m / walking_time_s
        pooled = [s for side in SIDES if reasons[side] is None for s in steady[side]]
        if pooled:
            self.metrics_["cadence_steps_min"] = 120.0 / float(np.mean([s.duration_s for s in pooled]))
            with_length = [s for s in pooled if s.length_m is not None]
            if length_reason is None and len(with_length) >= self.min_steady_strides:
                self.metrics_["gait_speed_m_s"] = float(
                    np.sum([s.length_m for s in with_length]) / np.sum([s.duration_s for s in with_length])
                )
            ds = [s.double_support_s / s.duration_s for s in measured(pooled, "double_support")
                  if s.double_support_s is not None]  # fmt: skip
            if len(ds) >= self.min_steady_strides:
                self.metrics_["double_support_pct"] = 100.0 * float(np.mean(ds))

        # per side and symmetry
        for side in SIDES:
            for key, value in means[side].items():
                self.metrics_[key.format(s=side[0])] = value
        for name, key in (("step_time", "step_time_{s}_s"), ("step_length", "step_length_{s}_m"),
                          ("swing_time", "swing_time_{s}_s"), ("stance_time", "stance_time_{s}_s")):
            left, right = means["left"].get(key), means["right"].get(key)
            if left is not None and right is not None and left + right > 0:
                self.metrics_[f"{name}_symmetry_index_pct"] = symmetry_index_pct(left, right)
                if f"{name}_ratio" in METRICS and min(left, right) > 0:
                    self.metrics_[f"{name}_ratio"] = symmetry_ratio(left, right)  # fmt: skip

        self._explain(reasons, steady, walking_time_s, walkway_length_m, length_reason)
        return self

    def _too_few(self, side: str, strides: list[Stride], steady: list[Stride]) -> Verdict | None:
        if len(steady) >= self.min_steady_strides:
            return None
        side_strides = [s for s in strides if s.side == side]
        n_turn = sum(s.excluded == "turn" for s in side_strides)
        if n_turn and len(steady) + n_turn >= self.min_steady_strides:
            return Verdict(
                Level.FAIL, "gait.turn_detected",
                f"Too few straight strides of the {side} leg: the walker turned during most of the walk.",
                "Walk the 20 m in a straight line.", side,
                {"n_steady_strides": len(steady), "n_turn_strides": n_turn},
            )  # fmt: skip
        return Verdict(
            Level.FAIL, "gait.too_few_strides",
            f"Only {len(steady)} steady strides of the {side} leg (at least {self.min_steady_strides} are needed after "
            "leaving out the first and last strides).",
            "Repeat the walk over the full walkway.", side,
            {"n_steady_strides": len(steady), "n_strides": len(side_strides)},
        )  # fmt: skip

    def _side_means(self, side: str, steady: list[Stride], length_reason: Verdict | None) -> dict[str, float]:
        out: dict[str, float] = {}
        durations = [s.duration_s for s in measured(steady, "stride_time")]
        if len(durations) >= self.min_steady_strides:
            out["stride_time_{s}_s"] = float(np.mean(durations))
        if len(durations) >= self.min_cv_strides:
            out["stride_time_cv_pct_{s}"] = _cv_pct(durations)
        step_times = [s.step_time_s for s in measured(steady, "step_time") if s.step_time_s is not None]
        if len(step_times) >= self.min_steady_strides:
            out["step_time_{s}_s"] = float(np.mean(step_times))
        with_fc = [s for s in measured(steady, "stance_swing") if s.fc_s is not None]
        if len(with_fc) >= self.min_steady_strides:
            stance = [s.stance_s for s in with_fc]
            swing = [s.swing_s for s in with_fc]
            out["stance_time_{s}_s"] = float(np.mean(stance))
            out["swing_time_{s}_s"] = float(np.mean(swing))
            out["stance_pct_{s}"] = 100.0 * float(np.mean([s.stance_s / s.duration_s for s in with_fc]))
            out["swing_pct_{s}"] = 100.0 - out["stance_pct_{s}"]
            if len(with_fc) >= self.min_cv_strides:
                out["swing_time_cv_pct_{s}"] = _cv_pct(swing)  # type: ignore[arg-type]
        if length_reason is None:
            lengths = [s.length_m for s in steady if s.length_m is not None]
            if len(lengths) >= self.min_steady_strides:
                out["stride_length_{s}_m"] = float(np.mean(lengths))
                if len(lengths) >= self.min_cv_strides:
                    out["stride_length_cv_pct_{s}"] = _cv_pct(lengths)
            steps = [s.step_length_m for s in steady if s.step_length_m is not None]
            if len(steps) >= self.min_steady_strides:
                out["step_length_{s}_m"] = float(np.mean(steps))
        return out

    def _explain(
        self,
        reasons: dict[str, Verdict | None],
        steady: dict[str, list[Stride]],
        walking_time_s: float | None,
        walkway_length_m: float | None,
        length_reason: Verdict | None,
    ) -> None:
        """A verdict for every metric of :data:`METRICS` that was not computed."""
        no_walk = reasons["left"] if reasons["left"] is not None else reasons["right"]
        both = reasons["left"] or reasons["right"]
        for name in METRICS:
            if name not in self.metrics_:
                match = re.search(r"_([lr])(?:_|$)", name)
                side = _S[match.group(1)] if match else None
                self.missing_[name] = self._reason(
                    name, side, reasons, steady, walking_time_s, walkway_length_m, length_reason, no_walk, both
                )

    def _reason(
        self,
        name: str,
        side: str | None,
        reasons: dict[str, Verdict | None],
        steady: dict[str, list[Stride]],
        walking_time_s: float | None,
        walkway_length_m: float | None,
        length_reason: Verdict | None,
        no_walk: Verdict | None,
        both: Verdict | None,
    ) -> Verdict:
        distance = "length" in name or "speed" in name
        if name == "walking_time_s" or (name == "mean_speed_m_s" and walking_time_s is None):
            return _as_subject(no_walk or _no_walk(), name)
        if distance and walkway_length_m is None:
            return _as_subject(_no_walkway(), name)
        if side is not None and reasons[side] is not None:
            return _as_subject(reasons[side], name)  # type: ignore[arg-type]
        if side is None and both is not None and name != "mean_speed_m_s":
            return _as_subject(both, name)
        if distance and length_reason is not None:
            return _as_subject(length_reason, name)
        n_estimated = self._n_estimated(name, side, steady)
        if "_cv_pct_" in name and len(steady[side or "left"]) >= self.min_cv_strides and n_estimated:
            return self._short_data_loss(name, side, steady, n_estimated)
        if "_cv_pct_" in name:
            n = len(steady[side or "left"])
            return Verdict(
                Level.WARNING, "gait.too_few_strides_for_cv",
                f"Variability needs at least {self.min_cv_strides} steady strides of the {side} leg; "
                f"this walk has {n}.",
                "A longer walkway (or walking it twice) gives enough strides for variability.", name,
                {"n_steady_strides": n, "min_strides": self.min_cv_strides},
            )  # fmt: skip
        if n_estimated:
            return self._short_data_loss(name, side, steady, n_estimated)
        return Verdict(
            Level.WARNING, "gait.events_incomplete",
            "Some gait events (toe-off or the other leg's contacts) could not be placed in enough steady strides.",
            "Check that both shank sensors stayed connected and firmly strapped.", name,
        )  # fmt: skip

    @staticmethod
    def _n_estimated(name: str, side: str | None, steady: dict[str, list[Stride]]) -> int:
        """Steady strides (of ``side``, or of both legs) left out of ``name``'s timing family by an estimated event."""
        family = TIMING_FAMILY.get(name)
        if family is None:
            return 0
        return sum(family in s.timing_excluded_from for leg in ([side] if side else SIDES) for s in steady[leg])

    def _short_data_loss(self, name: str, side: str | None, steady: dict[str, list[Stride]], n: int) -> Verdict:
        legs = f"the {side} leg" if side else "both legs"
        n_steady = sum(len(steady[leg]) for leg in ([side] if side else SIDES))
        return Verdict(
            Level.WARNING, "gait.short_data_loss",
            f"Too few steady strides of {legs} have this timing measured: a short loss of sensor data around a step "
            f"hid the exact moment of a foot contact or toe-off in {n} of {n_steady}, so their timing is only "
            "estimated and left out.",
            "Keep the receiver near the patient's path and check the sensors' batteries; repeat the walk if this "
            "metric is needed.", name,
            {"n_steady_strides": n_steady, "n_estimated": n},
        )  # fmt: skip


def _as_subject(verdict: Verdict, name: str) -> Verdict:
    return Verdict(verdict.level, verdict.code, verdict.message, verdict.action, name, dict(verdict.details))


def _no_walkway() -> Verdict:
    return Verdict(
        Level.FAIL, "gait.no_walkway_length",
        "The walkway length was not recorded, so speed and lengths cannot be computed.",
        "Enter the walkway length in the test protocol.",
    )  # fmt: skip


def _no_walk() -> Verdict:
    return Verdict(
        Level.FAIL, "gait.standing_still", "No walking was detected: the patient did not take any steps.",
        "Start the recording, then ask the patient to walk the walkway.",
    )  # fmt: skip
