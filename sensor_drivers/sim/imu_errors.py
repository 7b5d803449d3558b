"""Error models of a consumer MEMS IMU, and the stateful per-sensor generator that applies them chunk by chunk.

Measured = quantise(saturate(M · true + bias(t) + noise)), per axis, with
- M = I + diag(scale error) + off-diagonal axis misalignment (small angles), drawn once per sensor;
- bias(t) = turn-on bias (constant) + first-order Gauss–Markov bias instability + random walk;
- white noise of standard deviation ``noise_density · √(rate)`` (the discrete-time equivalent of a continuous white
  noise of that density, as in Kalibr's IMU model) plus ``noise_std``;
- saturation at ± full scale (clipped samples are counted) and quantisation to the LSB.

Timing: each sensor samples at exactly ``rate`` on its own clock, which runs ``drift_ppm`` fast and started at a random
device time; true sample times follow from that. Packet loss follows a two-state (Gilbert–Elliott) chain: all samples
in the "bad" state are lost, none in the "good" one; the mean bad run is ``loss_burst_mean`` samples and the long-run
loss fraction ``packet_loss``. Disconnects are intervals without any delivered sample.

Every random stream is its own numpy Generator spawned from the configuration's seed, so a recording is reproducible
and independent of how it is cut into chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from sensor_drivers.frames import G_M_S2

FloatArray = NDArray[np.float64]
DEG = np.pi / 180.0
MICRO_G = 1e-6 * G_M_S2


@dataclass(frozen=True)
class AxisErrors:
    """Errors of one triaxial sensor, in its output unit (m/s², rad/s or µT)."""

    #: White noise density, unit/√Hz (per-sample std = density · √rate).
    noise_density: float = 0.0
    #: Additional white noise, standard deviation per sample (magnetometers are specified this way).
    noise_std: float = 0.0
    #: Turn-on bias, standard deviation per axis.
    bias_sigma: float = 0.0
    #: Bias instability: stationary standard deviation and correlation time of a first-order Gauss–Markov process.
    bias_instability_sigma: float = 0.0
    bias_instability_tau_s: float = 100.0
    #: Bias random walk, unit/√s.
    bias_random_walk: float = 0.0
    #: Scale-factor error, standard deviation (fraction).
    scale_sigma: float = 0.0
    #: Axis misalignment (non-orthogonality), standard deviation of each off-diagonal small angle, rad.
    misalignment_sigma_rad: float = 0.0
    #: Quantisation step (0: none).
    lsb: float = 0.0
    #: Saturation at ± this value.
    full_scale: float = np.inf


#: Accelerometer of a consumer MEMS IMU (Bosch BMI160 datasheet BST-BMI160-DS000-07, typical values ≈ 1σ): noise
#: 180 µg/√Hz, zero-g offset residual after the device's own calibration 20 mg (raw ±40 mg), sensitivity and
#: cross-axis about 0.5 %; ±16 g range and the 16-bit resolution of the WitMotion protocols (16 g / 32768).
CONSUMER_ACC = AxisErrors(
    noise_density=180.0 * MICRO_G,
    bias_sigma=20e-3 * G_M_S2,
    bias_instability_sigma=0.5e-3 * G_M_S2,
    bias_instability_tau_s=100.0,
    scale_sigma=0.005,
    misalignment_sigma_rad=0.5 * DEG,
    lsb=16.0 * G_M_S2 / 32768.0,
    full_scale=16.0 * G_M_S2,
)
#: Gyroscope (BMI160: noise 0.007 °/s/√Hz, zero-rate offset ±3 °/s raw; 1 °/s residual assumed here,
#: sensitivity ±1 %); in-run bias instability of consumer MEMS gyros, tens of °/h; ±2000 °/s, 2000/32768 °/s LSB.
CONSUMER_GYR = AxisErrors(
    noise_density=0.007 * DEG,
    bias_sigma=1.0 * DEG,
    bias_instability_sigma=0.02 * DEG,
    bias_instability_tau_s=100.0,
    scale_sigma=0.01,
    misalignment_sigma_rad=0.5 * DEG,
    lsb=2000.0 * DEG / 32768.0,
    full_scale=2000.0 * DEG,
)
#: Magnetometer (Bosch BMM150-class: ≈0.3 µT rms noise and resolution, ±1300 µT): hard-iron residual after a
#: user calibration 3 µT, soft-iron 2 %, 1° misalignment.
CONSUMER_MAG = AxisErrors(
    noise_std=0.3,
    bias_sigma=3.0,
    scale_sigma=0.02,
    misalignment_sigma_rad=1.0 * DEG,
    lsb=0.3,
    full_scale=1300.0,
)


@dataclass(frozen=True)
class ImuErrorConfig:
    """All sensor-level imperfections. :meth:`realistic` (the default) and :meth:`ideal` are the presets."""

    acc: AxisErrors = CONSUMER_ACC
    gyr: AxisErrors = CONSUMER_GYR
    mag: AxisErrors = CONSUMER_MAG
    #: Sensor clock drift, standard deviation across sensors (crystal tolerance ±20 ppm class), ppm.
    clock_drift_ppm_sigma: float = 20.0
    #: Fixed clock drift per site (overrides the random draw), ppm.
    clock_drift_ppm: dict[str, float] = field(default_factory=dict)
    #: Long-run fraction of samples lost, and mean length of a loss burst (samples).
    packet_loss: float = 0.005
    loss_burst_mean: float = 3.0
    #: Random disconnects: rate per sensor and minute, mean duration (exponential), s.
    disconnect_rate_per_min: float = 0.0
    disconnect_mean_s: float = 2.0
    #: Whether sensors send an onboard orientation (``quat_wxyz``), and its errors: a per-sensor heading offset
    #: (uniform, its own world frame), a heading drift (1σ, °/min) and a fixed tilt error (1σ, °).
    device_quaternion: bool = True
    quat_heading_drift_deg_per_min: float = 0.5
    quat_tilt_error_deg: float = 0.5
    #: Heel-strike transients on tightly strapped sensors (a small, stiff ringing of sensor on skin).
    impacts: bool = True
    #: Battery level at the start, %, and drain, %/h.
    battery_start_pct: float = 95.0
    battery_drain_pct_per_h: float = 8.0

    @classmethod
    def realistic(cls) -> ImuErrorConfig:
        """Consumer MEMS IMU over BLE (the default)."""
        return cls()

    @classmethod
    def ideal(cls) -> ImuErrorConfig:
        """No noise, bias, scale, quantisation, saturation, clock drift, loss or transients: the exact physics."""
        return cls(
            acc=AxisErrors(), gyr=AxisErrors(), mag=AxisErrors(), clock_drift_ppm_sigma=0.0, packet_loss=0.0,
            quat_heading_drift_deg_per_min=0.0, quat_tilt_error_deg=0.0, impacts=False,
        )


@dataclass
class _AxisState:
    matrix: FloatArray
    bias: FloatArray
    markov: FloatArray
    walk: FloatArray
    noise_rng: np.random.Generator
    drift_rng: np.random.Generator
    clipped: int = 0


class SensorErrors:
    """Turn-on draws and running state of one sensor's errors; :meth:`apply` processes consecutive chunks."""

    def __init__(self, config: ImuErrorConfig, seed_sequence: np.random.SeedSequence, rate_hz: float,
                 drift_ppm: float | None = None):
        self.config = config
        self.rate_hz = rate_hz
        seeds = seed_sequence.spawn(9)
        draw = np.random.default_rng(seeds[0])
        self.drift_ppm = float(drift_ppm if drift_ppm is not None else draw.normal(0.0, config.clock_drift_ppm_sigma))
        #: Device clock at true time 0 (time since the sensor was switched on), s.
        self.device_time_at_zero_s = float(draw.uniform(30.0, 600.0))
        #: Offset of the first sample after true time 0, s.
        self.first_sample_s = float(draw.uniform(0.0, 1.0 / rate_hz))
        self.first_seq = int(draw.integers(0, 50_000))
        self.quat_heading_rad = float(draw.uniform(-np.pi, np.pi))
        self.quat_heading_rate_rad_s = float(draw.normal(0.0, config.quat_heading_drift_deg_per_min)) * DEG / 60.0
        tilt_axis = np.array([*draw.normal(size=2), 0.0])
        tilt_axis /= max(np.linalg.norm(tilt_axis), 1e-12)
        self.quat_tilt_rotvec = tilt_axis * float(draw.normal(0.0, config.quat_tilt_error_deg)) * DEG
        self.axes = {
            kind: self._draw_axis(errors, draw, seeds[1 + 2 * i], seeds[2 + 2 * i])
            for i, (kind, errors) in enumerate((("acc", config.acc), ("gyr", config.gyr), ("mag", config.mag)))
        }
        self._loss_rng = np.random.default_rng(seeds[7])
        self._disconnect_rng = np.random.default_rng(seeds[8])
        self._loss_state_bad = False
        self._loss_run_left = 0

    @staticmethod
    def _draw_axis(errors: AxisErrors, draw: np.random.Generator, noise_seed: np.random.SeedSequence,
                   drift_seed: np.random.SeedSequence) -> _AxisState:
        matrix = np.eye(3) + np.diag(draw.normal(0.0, errors.scale_sigma, 3))
        off = draw.normal(0.0, errors.misalignment_sigma_rad, 6)
        matrix[0, 1], matrix[0, 2], matrix[1, 0], matrix[1, 2], matrix[2, 0], matrix[2, 1] = off
        markov = draw.normal(0.0, errors.bias_instability_sigma, 3)
        return _AxisState(matrix, draw.normal(0.0, errors.bias_sigma, 3), markov, np.zeros(3),
                          np.random.default_rng(noise_seed), np.random.default_rng(drift_seed))

    # -- timing ---------------------------------------------------------------------------------------------------
    def sample_times(self, first_index: int, n: int) -> tuple[FloatArray, FloatArray]:
        """True and device times of samples ``first_index … first_index + n − 1``."""
        k = np.arange(first_index, first_index + n, dtype=float)
        scale = 1.0 + 1e-6 * self.drift_ppm
        true_s = self.first_sample_s + k / (self.rate_hz * scale)
        device_s = self.device_time_at_zero_s + scale * true_s
        return true_s, device_s

    def index_at(self, true_time_s: float) -> int:
        """Index of the first sample at or after ``true_time_s``."""
        scale = 1.0 + 1e-6 * self.drift_ppm
        return max(0, int(np.ceil((true_time_s - self.first_sample_s) * self.rate_hz * scale - 1e-9)))

    # -- measurement errors ----------------------------------------------------------------------------------------
    def apply(self, kind: str, true: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Measured values for the next ``len(true)`` samples of ``kind`` ("acc", "gyr", "mag"), and which ones
        clipped. Consecutive calls continue the bias processes and noise streams."""
        errors: AxisErrors = getattr(self.config, kind)
        st = self.axes[kind]
        n = len(true)
        dt = 1.0 / self.rate_hz
        out = true @ st.matrix.T + st.bias
        if errors.bias_instability_sigma > 0 or errors.bias_random_walk > 0:
            drift = st.drift_rng.standard_normal((n, 6))
            if errors.bias_instability_sigma > 0:
                a = np.exp(-dt / errors.bias_instability_tau_s)
                b = errors.bias_instability_sigma * np.sqrt(1.0 - a * a)
                markov, zf = lfilter([b], [1.0, -a], drift[:, :3], axis=0, zi=(a * st.markov)[None, :])
                st.markov = zf[0] / a
                out += markov
            if errors.bias_random_walk > 0:
                walk = st.walk + np.cumsum(errors.bias_random_walk * np.sqrt(dt) * drift[:, 3:], axis=0)
                st.walk = walk[-1]
                out += walk
        sigma = errors.noise_density * np.sqrt(self.rate_hz) + errors.noise_std
        if sigma > 0:
            out += sigma * st.noise_rng.standard_normal((n, 3))
        clipped = np.any(np.abs(out) > errors.full_scale, axis=1)
        if np.isfinite(errors.full_scale):
            out = np.clip(out, -errors.full_scale, errors.full_scale)
        if errors.lsb > 0:
            out = np.round(out / errors.lsb) * errors.lsb
        st.clipped += int(clipped.sum())
        return out, clipped

    def clip_count(self, kind: str) -> int:
        """Clipped samples so far."""
        return self.axes[kind].clipped

    def lost(self, n: int) -> NDArray[np.bool_]:
        """Packet loss of the next ``n`` samples (Gilbert–Elliott runs)."""
        p = self.config.packet_loss
        out = np.zeros(n, dtype=bool)
        if p <= 0.0:
            return out
        burst = max(self.config.loss_burst_mean, 1.0)
        p_leave_bad = 1.0 / burst
        p_leave_good = p_leave_bad * p / (1.0 - p)
        i = 0
        while i < n:
            if self._loss_run_left <= 0:
                self._loss_state_bad = not self._loss_state_bad
                leave = p_leave_bad if self._loss_state_bad else p_leave_good
                self._loss_run_left = int(self._loss_rng.geometric(leave))
            take = min(self._loss_run_left, n - i)
            out[i : i + take] = self._loss_state_bad
            self._loss_run_left -= take
            i += take
        return out

    def random_disconnects(self, duration_s: float) -> list[tuple[float, float]]:
        """(start, end) true times of random disconnects over a recording of ``duration_s``."""
        rate = self.config.disconnect_rate_per_min / 60.0
        if rate <= 0:
            return []
        rng = self._disconnect_rng
        out, t = [], 0.0
        while True:
            t += rng.exponential(1.0 / rate)
            if t >= duration_s:
                return out
            length = rng.exponential(self.config.disconnect_mean_s)
            out.append((t, min(t + length, duration_s)))
            t += length
