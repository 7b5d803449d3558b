"""A synthetic shank sensor with known event times: the waveform of a shank gyroscope, built piece by piece.

Per stride of one leg: a shallow negative stance rotation, the pre-swing dip whose end is the toe-off (FC), a
half-sine swing, the terminal-swing descent through zero and, at initial contact (IC), a heel-strike impact in the
accelerometer and a deceleration dip in the gyroscope. The sagittal angular velocity lies along ``axis`` in the
sensor frame; the other axes carry a smaller out-of-plane rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensor_drivers.frames import G_M_S2


@dataclass(frozen=True)
class SyntheticShank:
    time_s: np.ndarray
    gyr_rad_s: np.ndarray
    acc_m_s2: np.ndarray
    valid: np.ndarray
    ic_s: np.ndarray
    fc_s: np.ndarray
    axis: np.ndarray


def synthetic_shank(
    n_swings: int = 8,
    stride_s: float = 1.2,
    stance_fraction: float = 0.6,
    swing_peak_rad_s: float = 5.0,
    rate_hz: float = 100.0,
    still_s: float = 2.0,
    start_s: float = 0.0,
    axis: tuple[float, float, float] = (0.0, np.sqrt(0.5), np.sqrt(0.5)),
    seed: int = 0,
) -> SyntheticShank:
    """``n_swings`` swings; contacts at ``still_s + k·stride_s + 0.0051`` (off the grid), toe-offs before them."""
    rng = np.random.default_rng(seed)
    duration = still_s * 2 + (n_swings + 1) * stride_s
    t = start_s + np.arange(int(duration * rate_hz)) / rate_hz
    ic = start_s + still_s + np.arange(n_swings + 1) * stride_s + 0.0051
    swing_s = (1 - stance_fraction) * stride_s
    fc = ic[1:] - swing_s  # toe-off of the swing that ends at ic[k + 1]
    omega = np.zeros_like(t)
    impact = np.zeros_like(t)
    for k in range(n_swings):
        c0, f, c1 = ic[k], fc[k], ic[k + 1]
        stance = (t >= c0) & (t < f)
        omega[stance] -= 0.8 * np.sin(np.pi * (t[stance] - c0) / (f - c0)) if k > 0 else 0.0
        omega -= 1.5 * np.exp(-0.5 * ((t - (f - 0.015)) / 0.03) ** 2)  # pre-swing dip, ending at toe-off
        lobe_end = c1 - 0.05
        swing = (t >= f) & (t < lobe_end)
        omega[swing] += swing_peak_rad_s * np.sin(np.pi * (t[swing] - f) / (lobe_end - f))
        terminal = (t >= lobe_end) & (t < c1)
        omega[terminal] -= 1.0 * (t[terminal] - lobe_end) / (c1 - lobe_end)
        after = t >= c1
        omega[after] -= 2.5 * np.exp(-(t[after] - c1) / 0.04) * (t[after] - c1 < 0.3) * np.minimum(
            1.0, (t[after] - c1) / 0.02
        )  # deceleration after contact: minimum about 20 ms after IC
        impact[after] += 30.0 * np.exp(-(t[after] - c1) / 0.01)
    a = np.asarray(axis, dtype=float)
    a /= np.linalg.norm(a)
    other = np.cross(a, [1.0, 0.0, 0.0])
    other /= np.linalg.norm(other)
    gyr = omega[:, None] * a + 0.3 * np.sin(2 * np.pi * t / stride_s)[:, None] * other * (np.abs(omega) > 0)[:, None]
    gyr += rng.normal(0.0, 0.002, gyr.shape)
    acc = np.zeros((t.size, 3))
    acc[:, 0] = G_M_S2 + impact + 0.5 * omega
    acc[:, 1] = 0.3 * omega
    acc += rng.normal(0.0, 0.02, acc.shape)
    return SyntheticShank(t, gyr, acc, np.ones(t.size, dtype=bool), ic[1:], fc, a)
