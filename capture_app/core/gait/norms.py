"""Clinical context for a measured walk: the speed category after stroke, and healthy adults' bands at that speed.

Speed category (Perry et al. 1995, Stroke 26:982–989): household walker below 0.4 m/s, limited community walker
0.4–0.8 m/s, community walker above 0.8 m/s.

Healthy bands at matched speed come from the walk ratio WR = step length / step frequency, which healthy adults
keep nearly constant across speeds (Sekiya & Nagasaki 1998). With speed v = step length × step frequency:

    step length = √(WR · v),   step frequency = √(v / WR) steps/s,   cadence = 60 √(v / WR) steps/min,
    stride length = 2 √(WR · v).

WR measured with satellite positioning over 100 m in 12 healthy adults (Terrier & Schutz 2003, Eur J Appl Physiol
90:554–561): 0.41 ± 0.04 m·s at preferred and fast speeds, 0.44 ± 0.05 m·s when walking slower than preferred. The
band is WR's mean ± 1.96 SD (about 95 % of healthy adults). Below about 1 m/s healthy adults raise their walk ratio
further (Murakami & Otaka 2017, J Phys Ther Sci 29:722–725: the constancy breaks at about 62 m/min): bands at those
speeds are extrapolations and are flagged ``extrapolated``. They describe healthy walking at the patient's own
speed, not a target for the patient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Perry et al. 1995 category limits, m/s.
HOUSEHOLD_BELOW_M_S = 0.4
COMMUNITY_ABOVE_M_S = 0.8

#: Terrier & Schutz 2003: walk ratio mean and SD, m·s (step length / steps per second).
WALK_RATIO_PREFERRED = (0.41, 0.04)
WALK_RATIO_SLOW = (0.44, 0.05)
#: Speeds below this use the slow-walking ratio, m/s (healthy preferred speed is about 1.2–1.4 m/s).
SLOW_BELOW_M_S = 1.1
#: Murakami & Otaka 2017: walk-ratio constancy breaks at about 62 m/min.
WALK_RATIO_VALID_ABOVE_M_S = 62.0 / 60.0
#: Band half-width in standard deviations (≈ 95 % of healthy adults).
BAND_SD = 1.96


def speed_category(speed_m_s: float) -> str:
    """Perry et al. 1995: ``"household"`` (< 0.4 m/s), ``"limited community"`` (0.4–0.8), ``"community"`` (> 0.8)."""
    if speed_m_s < HOUSEHOLD_BELOW_M_S:
        return "household"
    if speed_m_s <= COMMUNITY_ABOVE_M_S:
        return "limited community"
    return "community"


@dataclass(frozen=True)
class Band:
    """A healthy-adult range for one metric at a given speed."""

    low: float
    high: float
    #: Outside the speeds the source measured (see the module docstring).
    extrapolated: bool

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the band."""
        return self.low <= value <= self.high

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"low": self.low, "high": self.high, "extrapolated": self.extrapolated}


def healthy_bands(speed_m_s: float) -> dict[str, Band]:
    """Healthy adults' cadence, step and stride length at ``speed_m_s`` (walk-ratio model, module docstring).

    Keys are metric names of :mod:`.metrics` without side: ``cadence_steps_min``, ``step_length_m``,
    ``stride_length_m``.
    """
    if speed_m_s <= 0:
        raise ValueError(f"speed must be positive, got {speed_m_s} m/s")
    mean, sd = WALK_RATIO_SLOW if speed_m_s < SLOW_BELOW_M_S else WALK_RATIO_PREFERRED
    low_wr, high_wr = mean - BAND_SD * sd, mean + BAND_SD * sd
    extrapolated = speed_m_s < WALK_RATIO_VALID_ABOVE_M_S
    step_low, step_high = math.sqrt(low_wr * speed_m_s), math.sqrt(high_wr * speed_m_s)
    return {
        "cadence_steps_min": Band(60.0 * math.sqrt(speed_m_s / high_wr), 60.0 * math.sqrt(speed_m_s / low_wr),
                                  extrapolated),
        "step_length_m": Band(step_low, step_high, extrapolated),
        "stride_length_m": Band(2.0 * step_low, 2.0 * step_high, extrapolated),
    }  # fmt: skip


def clinical_context(metrics: dict[str, float]) -> dict[str, object]:
    """Speed category and healthy bands for the measured metrics (empty without a gait speed).

    For each banded metric the patient's value is compared: ``below``, ``within`` or ``above`` (per side where the
    metric is per side).
    """
    speed = metrics.get("gait_speed_m_s")
    if speed is None or speed <= 0:
        return {}
    bands = healthy_bands(speed)
    comparison: dict[str, str] = {}
    for name, band in bands.items():
        keys = [name] if name in metrics else [f"{name[:-2]}_{s}_m" for s in "lr"]
        for key in keys:
            if key in metrics:
                value = metrics[key]
                comparison[key] = "below" if value < band.low else "above" if value > band.high else "within"
    return {
        "speed_category": speed_category(speed),
        "healthy_bands_at_speed": {name: band.to_json() for name, band in bands.items()},
        "comparison": comparison,
        "sources": ["Perry et al. 1995", "Terrier & Schutz 2003", "Sekiya & Nagasaki 1998", "Murakami & Otaka 2017"],
    }
