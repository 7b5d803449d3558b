"""Small signal helpers shared by the placement checks (private to the package)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from capture_app.core.signals import KitSignals, SiteSignals
from sensor_drivers import quaternion

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def interval_mask(kit: KitSignals, interval_s: tuple[float, float]) -> BoolArray:
    """Grid rows inside ``[start, end)`` on the clip clock."""
    start_s, end_s = interval_s
    return (kit.time_s >= start_s) & (kit.time_s < end_s)


def angular_velocity_rad_s(site: SiteSignals, rate_hz: float) -> FloatArray:
    """The gyroscope where it has values; where it has none (a recording of orientation and acceleration only, e.g.
    the OpenSense Xsens export), the angular velocity implied by consecutive device orientations.

    For ``q_k`` (world ← sensor) the sensor-frame rotation between rows is ``Δq = q_k* ⊗ q_(k+1)``, and
    ``ω = axis(Δq)·angle(Δq)·rate`` (the mean rate over the interval; placed on the row where it starts).
    """
    gyr = np.array(site.gyr_rad_s, dtype=float)
    missing = ~np.all(np.isfinite(gyr), axis=1)
    if not missing.any() or site.quat_wxyz is None:
        return gyr
    q = np.asarray(site.quat_wxyz, dtype=float)
    dq = quaternion.multiply(quaternion.conjugate(q[:-1]), q[1:])
    dq = np.where(dq[:, :1] < 0.0, -dq, dq)  # the shorter of the two equal rotations
    sin_half = np.linalg.norm(dq[:, 1:], axis=1)
    angle = 2.0 * np.arctan2(sin_half, dq[:, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = dq[:, 1:] / sin_half[:, None]
    axis = np.where(sin_half[:, None] > 1e-12, axis, 0.0)
    from_quat = np.vstack([axis * (angle * rate_hz)[:, None], np.full((1, 3), np.nan)])
    gyr[missing] = from_quat[missing]
    return gyr


def filled(values: FloatArray) -> FloatArray:
    """Rows with NaN replaced by linear interpolation between the nearest finite rows (ends held), per column.

    Filters and correlations need a gap-free series; callers check beforehand that only a small share is missing.
    """
    out = np.array(values, dtype=float)
    index = np.arange(out.shape[0])
    for column in range(out.shape[1]):
        bad = ~np.isfinite(out[:, column])
        if bad.all():
            out[:, column] = 0.0
        elif bad.any():
            out[bad, column] = np.interp(index[bad], index[~bad], out[~bad, column])
    return out


def band_pass(values: FloatArray, low_hz: float, high_hz: float, rate_hz: float, order: int = 4) -> FloatArray:
    """Zero-phase Butterworth band-pass along axis 0 (high edge clipped below Nyquist)."""
    high_hz = min(high_hz, 0.45 * rate_hz)
    sos = signal.butter(order, [low_hz, high_hz], btype="band", fs=rate_hz, output="sos")
    return signal.sosfiltfilt(sos, values, axis=0)


def low_pass(values: FloatArray, cutoff_hz: float, rate_hz: float, order: int = 2) -> FloatArray:
    """Zero-phase Butterworth low-pass along axis 0."""
    sos = signal.butter(order, min(cutoff_hz, 0.45 * rate_hz), fs=rate_hz, output="sos")
    return signal.sosfiltfilt(sos, values, axis=0)


def skewness(values: FloatArray) -> float:
    """Third standardised moment (0 for a constant series)."""
    centred = values - values.mean()
    spread = float(np.mean(centred**2))
    return 0.0 if spread == 0.0 else float(np.mean(centred**3) / spread**1.5)


def unit(vector: FloatArray) -> FloatArray:
    """``vector`` scaled to unit length (unchanged if zero)."""
    norm = float(np.linalg.norm(vector))
    return vector if norm == 0.0 else vector / norm


def horizontal(vector: FloatArray, up: FloatArray) -> FloatArray:
    """The unit component of ``vector`` perpendicular to the unit vector ``up``."""
    return unit(vector - np.dot(vector, up) * up)


def principal_axis(values: FloatArray) -> FloatArray:
    """The unit direction of largest second moment of the rows of ``values`` (sign arbitrary)."""
    _, vectors = np.linalg.eigh(values.T @ values)
    return vectors[:, -1]


def stride_period_s(sagittal_rad_s: FloatArray, rate_hz: float, min_s: float = 0.6, max_s: float = 4.0) -> float | None:
    """Stride period from the autocorrelation of one leg's sagittal angular velocity: the lag of its highest peak
    between ``min_s`` and ``max_s`` (one leg repeats once per stride). ``None`` when the series is shorter than
    two of the longest strides searched or has no clear peak."""
    x = sagittal_rad_s - sagittal_rad_s.mean()
    n = x.size
    lo = int(min_s * rate_hz)
    hi = min(int(max_s * rate_hz), n // 2)
    if hi <= lo + 2:
        return None
    spectrum = np.fft.rfft(x, 2 * n)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum))[:n] / np.arange(n, 0, -1)
    if autocorrelation[0] <= 0.0:
        return None
    window = autocorrelation[lo:hi] / autocorrelation[0]
    peaks, _ = signal.find_peaks(window)
    if peaks.size == 0 or window[peaks].max() < 0.2:
        return None
    return float((lo + peaks[np.argmax(window[peaks])]) / rate_hz)


def swing_ends(sagittal_rad_s: FloatArray, rate_hz: float,
               period_s: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Mid-swing peaks and the end of each swing in a leg segment's sagittal angular velocity (about its left axis,
    swing negative).

    Mid-swing is the largest backward-to-forward rotation rate of the stride (Aminian et al. 2002, J Biomech 35:689,
    use it on the shank); the swing ends where the rate turns positive again, within tens of milliseconds of initial
    contact. Returns ``(mid_swing_rows, swing_end_rows)``.
    """
    smooth = low_pass(sagittal_rad_s, 6.0, rate_hz)
    peak = float(np.percentile(-smooth, 99))
    if peak <= 0.0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    mids, _ = signal.find_peaks(-smooth, height=0.4 * peak, distance=max(1, int(0.6 * period_s * rate_hz)))
    ends = []
    search = int(0.4 * period_s * rate_hz)
    kept = []
    for m in mids:
        after = np.flatnonzero(smooth[m:m + search] > 0.0)
        if after.size:
            kept.append(m)
            ends.append(m + after[0])
    return np.asarray(kept, dtype=np.intp), np.asarray(ends, dtype=np.intp)


def phase_at_deg(reference: FloatArray, other: FloatArray, frequency_hz: float, rate_hz: float,
                 keep: NDArray[np.bool_] | None = None) -> float:
    """Phase of ``reference`` relative to ``other`` at one frequency (Hann-windowed Fourier coefficients over the
    rows in ``keep``, default all), degrees."""
    t = np.arange(reference.size) / rate_hz
    kernel = np.hanning(reference.size) * np.exp(-2j * np.pi * frequency_hz * t)
    if keep is not None:
        kernel = kernel * keep
    a = np.sum((reference - reference.mean()) * kernel)
    b = np.sum((other - other.mean()) * kernel)
    return float(np.degrees(np.angle(a * np.conj(b))))
