"""Is a sensor lying still? Window statistics of the gyroscope and the accelerometer norm, causal and block-free.

A row is *still* when the window of ``window_s`` ending at it holds at least ``min_valid_fraction`` valid rows (a
lost packet does not end a still period), every gyroscope axis varies by
at most ``gyr_std_rad_s`` (standard deviation) and the accelerometer norm by at most ``acc_std_m_s2``, and the mean
norm is within ``acc_norm_tol_m_s2`` of gravity. Standard deviations, not means, so that an unknown gyroscope bias
(consumer MEMS: up to a few °/s) does not hide a still sensor; the norm test rejects a sensor carried at constant
angular rate. Defaults: quiet standing sways by well under 1 °/s and 0.05 m/s² (e.g. Moe-Nilssen 1998), walking by
tens of °/s and several m/s², so the thresholds sit far from both.

Limit: a sensor turning at a *constant* rate about the vertical looks still (its gyroscope is then indistinguishable
from a bias); people standing or walking do not do that.

The decision for a row depends only on the rows before it, so :meth:`StillDetector.update` over blocks and
:meth:`StillDetector.detect` over a whole recording agree row for row.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.frames import G_M_S2

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class StillDetector:
    """Row-wise still flags for one sensor's stream; bounded memory (one window of history)."""

    def __init__(
        self,
        window_s: float = 1.0,
        gyr_std_rad_s: float = 0.05,
        acc_std_m_s2: float = 0.2,
        acc_norm_tol_m_s2: float = 1.5,
        min_valid_fraction: float = 0.8,
    ) -> None:
        self.window_s = window_s
        self.gyr_std_rad_s = gyr_std_rad_s
        self.acc_std_m_s2 = acc_std_m_s2
        self.acc_norm_tol_m_s2 = acc_norm_tol_m_s2
        self.min_valid_fraction = min_valid_fraction

    def reset(self, rate_hz: float) -> StillDetector:
        """Start a new stream at ``rate_hz``."""
        self.n_window_ = max(2, round(self.window_s * rate_hz))
        self._history = np.full((self.n_window_ - 1, 4), np.nan)  # gyr x/y/z, acc norm
        return self

    def update(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray, valid: BoolArray) -> StillDetector:
        """Flags for the next rows (``still_`` (m,) bool); invalid rows are NaN in the history."""
        acc_norm = np.linalg.norm(acc_m_s2, axis=1)
        rows = np.column_stack([gyr_rad_s, acc_norm])
        rows[~valid] = np.nan
        values = np.concatenate([self._history, rows])
        self._history = values[-(self.n_window_ - 1):]
        self.still_ = self._flags(values)[self.n_window_ - 1:]
        return self

    def detect(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray, valid: BoolArray, rate_hz: float) -> StillDetector:
        """Flags for a whole stream (``still_``)."""
        return self.reset(rate_hz).update(gyr_rad_s, acc_m_s2, valid)

    def _flags(self, values: FloatArray) -> BoolArray:
        """Still flag of the window ending at each row (False without enough valid rows in it)."""
        n = self.n_window_
        out = np.zeros(values.shape[0], dtype=bool)
        finite = np.all(np.isfinite(values), axis=1)
        if values.shape[0] < n or not finite.any():
            return out
        # Window moments by cumulative sums, centred on the block mean to keep the squares well conditioned.
        centre = values[finite].mean(axis=0)
        x = np.where(finite[:, None], values - centre, 0.0)
        c1 = np.concatenate([np.zeros((1, 4)), np.cumsum(x, axis=0)])
        c2 = np.concatenate([np.zeros((1, 4)), np.cumsum(x * x, axis=0)])
        cn = np.concatenate([[0], np.cumsum(finite)])
        count = cn[n:] - cn[:-n]
        denominator = np.maximum(count, 1)[:, None]
        mean = (c1[n:] - c1[:-n]) / denominator
        std = np.sqrt(np.maximum((c2[n:] - c2[:-n]) / denominator - mean * mean, 0.0))
        out[n - 1 :] = (
            (count >= max(2, self.min_valid_fraction * n))
            & np.all(std[:, :3] <= self.gyr_std_rad_s, axis=1)
            & (std[:, 3] <= self.acc_std_m_s2)
            & (np.abs(mean[:, 3] + centre[3] - G_M_S2) <= self.acc_norm_tol_m_s2)
        )
        return out
