"""Stride lengths: each swing's shank rotation through a pendulum model, scaled to the known walkway.

Model. During a swing the foot travels forward about as far as a pendulum of the leg's length sweeping the shank's
swing rotation Δθ (∫ω from toe-off to heel strike): ``d = 2 L sin(Δθ/2)`` (the chord of a single-segment pendulum;
the shank-only form of the double-pendulum stride model of Aminian et al. 2002 and Salarian et al. 2004, which add
the thigh's rotation). The model gives each swing's length up to a factor (leg length, knee flexion, the thigh's own
rotation), so that factor is not taken from the body but measured: the walker starts and ends the test standing
with the feet side by side, so each foot travels the walkway length ``W`` once, and

    scale_side = W / Σ_swings 2 sin(Δθ_j / 2),     length_j = scale_side · 2 sin(Δθ_j / 2).

Each leg gets its own scale (its model error, e.g. from circumduction on the paretic side, is absorbed), and each
foot's swings then add up to the walkway exactly. A swing whose toe-off or contact fell in lost data uses its lobe's
forward rotation (∫max(ω, 0) dt) times the leg's usual excursion/lobe ratio; swings the sensor did not see at all
are filled in with the median of their neighbours: those hidden in a gap (counted from the time between the swings
around it, in median swing-to-swing times) and those with too much of the lobe lost. A leg whose sensor missed the
start or the end of the walk, or more than ``max_imputed_fraction`` of its swings, borrows the other leg's scale, or
gets no lengths if both are so.
"""

from __future__ import annotations

import numpy as np

from capture_app.core.gait.events import SIDES, Swing
from capture_app.core.gait.strides import other_side
from capture_app.core.verdict import Level, Verdict


def chord(excursion_rad: float) -> float:
    """Chord of a unit pendulum swept through ``excursion_rad``."""
    return float(2.0 * np.sin(0.5 * abs(excursion_rad)))


class WalkwayScaledLengths:
    """Per-swing foot displacements scaled so that each foot's swings sum to the walkway (module docstring).

    Results: ``swing_length_m_`` (dict side → list aligned with that side's swings; ``None`` where unknown),
    ``scale_m_`` (dict side → metres per unit chord, or ``None``), ``borrowed_`` (sides that used the other leg's
    scale), ``n_imputed_`` (dict side → swings filled in: without excursion or hidden in gaps) and ``verdicts_``.
    """

    def __init__(self, max_imputed_fraction: float = 0.15, hidden_factor: float = 1.5):
        #: A leg with more swings than this share filled in gets no scale of its own.
        self.max_imputed_fraction = max_imputed_fraction
        #: Time between two swings above this multiple of the median means swings are hidden between them.
        self.hidden_factor = hidden_factor

    def estimate(
        self,
        swings: dict[str, list[Swing]],
        walkway_length_m: float,
        ends_seen: dict[str, bool],
        lost_s: dict[str, list[tuple[float, float]]] | None = None,
    ) -> WalkwayScaledLengths:
        """Scale each side's swings.

        ``ends_seen[side]``: the side's sensor saw the start and the end of the walk; ``lost_s[side]``: intervals
        (s) where it lost data (swings are only counted as hidden where such an interval lies between two swings).
        """
        self.verdicts_: list[Verdict] = []
        self.scale_m_: dict[str, float | None] = {}
        self.swing_length_m_: dict[str, list[float | None]] = {}
        self.n_imputed_: dict[str, int] = {}
        self.borrowed_: list[str] = []
        chords: dict[str, list[float] | None] = {}
        for side in SIDES:
            own = swings.get(side, [])
            chords[side] = None
            self.scale_m_[side] = None
            self.n_imputed_[side] = 0
            if not own:
                continue
            values = _impute(_excursions(own))
            hidden = self._hidden(own, (lost_s or {}).get(side, []))
            n_imputed = sum(s.excursion_rad is None and s.lobe_rotation_rad is None for s in own) + sum(hidden)
            self.n_imputed_[side] = n_imputed
            if values is None or n_imputed > self.max_imputed_fraction * (len(own) + sum(hidden)):
                continue
            chords[side] = values
            total = float(np.sum(values)) + sum(
                n * float(np.median(values[max(0, k - 1) : k + 3])) for k, n in enumerate(hidden) if n
            )
            if ends_seen.get(side, False) and total > 0:
                self.scale_m_[side] = walkway_length_m / total
        own_scales = {side: self.scale_m_[side] for side in SIDES}
        for side in SIDES:
            borrowed = own_scales[other_side(side)]
            if self.scale_m_[side] is None and chords[side] is not None and borrowed is not None:
                self.scale_m_[side] = borrowed
                self.borrowed_.append(side)
            scale, values = self.scale_m_[side], chords[side]
            n = len(swings.get(side, []))
            self.swing_length_m_[side] = [scale * c for c in values] if scale and values else [None] * n
        for side in self.borrowed_:
            self.verdicts_.append(Verdict(
                Level.WARNING, "gait.length_borrowed_scale",
                f"The {side} shank sensor lost data during the walk, so its stride lengths are scaled with the "
                f"{other_side(side)} leg's.",
                "Check the strap and the sensor's battery and radio before the next walk.",
                f"shank_{side[0]}",
            ))  # fmt: skip
        return self

    def _hidden(self, own: list[Swing], lost: list[tuple[float, float]]) -> list[int]:
        """Swings hidden in lost data between swing k and k+1 (from the time between them, in median intervals)."""
        times = np.array([s.ms_s for s in own])
        if times.size < 3 or not lost:
            return [0] * times.size
        gaps = np.diff(times)
        median = float(np.median(gaps))
        hidden = [
            int(max(0, round(g / median) - 1))
            if g > self.hidden_factor * median and any(t0 < b and a < t1 for a, b in lost)
            else 0
            for g, t0, t1 in zip(gaps, times[:-1], times[1:], strict=True)
        ]
        return [*hidden, 0]


def _excursions(own: list[Swing]) -> list[float | None]:
    """Each swing's chord; without FC or IC, from its lobe rotation times the leg's usual excursion/lobe ratio."""
    pairs = [(s.excursion_rad, s.lobe_rotation_rad) for s in own
             if s.excursion_rad is not None and s.lobe_rotation_rad]  # fmt: skip
    ratio = float(np.median([e / lobe for e, lobe in pairs])) if pairs else None
    out: list[float | None] = []
    for s in own:
        if s.excursion_rad is not None:
            out.append(chord(s.excursion_rad))
        elif s.lobe_rotation_rad is not None and ratio is not None:
            out.append(chord(ratio * s.lobe_rotation_rad))
        else:
            out.append(None)
    return out


def _impute(values: list[float | None]) -> list[float] | None:
    """Fill missing values with the median of up to two known neighbours on each side (``None`` if none known)."""
    known = np.array([np.nan if v is None else v for v in values], dtype=float)
    if not np.isfinite(known).any():
        return None
    out = known.copy()
    for i in np.flatnonzero(np.isnan(known)):
        near = known[max(0, i - 2) : i + 3]
        near = near[np.isfinite(near)]
        out[i] = float(np.median(near)) if near.size else float(np.nanmedian(known))
    return [float(v) for v in out]
