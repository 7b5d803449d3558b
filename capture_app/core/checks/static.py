"""Checks while the patient stands still before the walk: is everyone still, is each sensor the right way up, does
each sensor behave like its device class.

Per sensor, over the still interval (``docs/sensor-placement.md``, "Before the walk"):

- stillness: spread of acceleration and angular velocity (not still → the other checks are not made);
- gravity direction against the expected mounting: the angle between the measured and the expected "up" in sensor
  coordinates (upside down, on its side, tilted);
- gravity magnitude (a faulty accelerometer or wrong units);
- noise from first differences (slow body sway cancels out) against the device class, and a sensor that sends
  constant values;
- gyroscope bias (the mean angular velocity);
- magnetic field strength against the Earth's field (25-65 µT).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from capture_app.core.checks._tools import angular_velocity_rad_s, interval_mask
from capture_app.core.checks.identification import StillReference
from capture_app.core.checks.placement import (
    EXPECTED_ROTATION_SEGMENT_SENSOR,
    PLACEMENT_TEXT,
    angle_deg,
    expected_up_sensor,
    site_name,
)
from capture_app.core.signals import KitSignals
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.frames import G_M_S2
from sensor_drivers.sites import KIT_SITES, Site

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DeviceClass:
    """White-noise densities of a class of IMUs, for the still-period noise check.

    The default, consumer/wearable MEMS, takes the upper end of common parts: accelerometer 300 µg/√Hz (Bosch BMI160
    180, InvenSense MPU-6050 400, ICM-20948 230, Xsens MTw 200 µg/√Hz), gyroscope 0.014 °/s/√Hz (BMI160 0.007,
    MPU-6050 0.005, ICM-20948 0.015, MTw 0.01 °/s/√Hz); datasheet figures.
    """

    name: str = "consumer MEMS"
    acc_noise_density_ug_sqrt_hz: float = 300.0
    gyr_noise_density_dps_sqrt_hz: float = 0.014

    def acc_noise_m_s2(self, rate_hz: float) -> float:
        """Expected white noise per sample at ``rate_hz``, m/s² (density·√rate, the Kalibr discrete-noise model)."""
        return self.acc_noise_density_ug_sqrt_hz * 1e-6 * G_M_S2 * float(np.sqrt(rate_hz))

    def gyr_noise_rad_s(self, rate_hz: float) -> float:
        """Expected white noise per sample at ``rate_hz``, rad/s."""
        return float(np.radians(self.gyr_noise_density_dps_sqrt_hz) * np.sqrt(rate_hz))


@dataclass(frozen=True)
class StaticThresholds:
    """Limits of the still-period checks; ``docs/sensor-placement.md`` gives the reasons for each."""

    #: Shortest still interval that can be judged, s.
    min_still_s: float = 1.0
    #: Share of grid rows a sensor must deliver in the interval.
    min_valid_fraction: float = 0.5
    #: Spread (norm of the per-axis standard deviations) above which the patient is "moving slightly" (warning) and
    #: "not standing still" (fail): acceleration m/s², angular velocity °/s.
    still_acc_warn_m_s2: float = 0.6
    still_acc_fail_m_s2: float = 1.5
    still_gyr_warn_dps: float = 6.0
    still_gyr_fail_dps: float = 15.0
    #: Angle between measured and expected up, degrees: warning, fail, and "upside down".
    tilt_warn_deg: float = 30.0
    tilt_fail_deg: float = 60.0
    upside_down_deg: float = 135.0
    #: The sacrum slopes: the pelvis sensor gets this much more before a warning or a fail.
    pelvis_tilt_extra_deg: float = 10.0
    #: Deviation of the measured gravity magnitude from 9.81 m/s²: warning, fail.
    gravity_warn_m_s2: float = 0.6
    gravity_fail_m_s2: float = 2.0
    #: Noise above this many times the device class's: warning, fail.
    noise_warn_factor: float = 4.0
    noise_fail_factor: float = 15.0
    #: Gyroscope bias magnitude that earns a warning, °/s.
    gyr_bias_warn_dps: float = 5.0
    #: Earth's field at the surface lies between about 22 and 67 µT (World Magnetic Model 2020, NOAA/BGS); a field
    #: outside this band at a sensor is disturbed, µT.
    mag_min_ut: float = 25.0
    mag_max_ut: float = 65.0
    #: Sensors of one kit standing together should see nearly the same field strength, µT.
    mag_spread_warn_ut: float = 15.0


@dataclass(frozen=True)
class StillStats:
    """What one sensor measured in the still interval."""

    sensor_id: str
    n_valid: int
    acc_mean_m_s2: FloatArray
    acc_spread_m_s2: float
    gyr_spread_dps: float | None
    acc_noise_m_s2: float
    gyr_noise_rad_s: float | None
    gyr_bias_rad_s: FloatArray | None
    mag_norm_ut: float | None
    acc_constant: bool
    gyr_constant: bool
    extra: dict[str, float] = field(default_factory=dict)


class StaticCheck:
    """Checks of each sensor while the patient stands still: stillness, gravity direction against the expected
    mounting, gravity magnitude, noise, gyroscope bias and magnetic field strength.

    ``check(kit, still_interval_s)`` fills:

    - ``verdicts_``: list of :class:`Verdict` (one per check and site, ``ok`` included);
    - ``is_still_``: whether every sensor was still enough to judge (``False`` also when nothing could be judged);
    - ``stats_``: per site, :class:`StillStats`;
    - ``up_sensor_``: per site, the measured up direction in sensor coordinates (unit vector), for calibration and
      for :class:`~capture_app.core.checks.identification.SensorIdentification`;
    - ``tilt_error_deg_``: per site, the angle between measured and expected up;
    - ``gyr_bias_rad_s_``: per site, the mean angular velocity (the gyroscope bias while still), where a gyroscope
      reported;
    - ``reference_``: the above as a :class:`~capture_app.core.checks.identification.StillReference`, for the
      identification from walking.
    """

    def __init__(
        self,
        expected: dict[Site, FloatArray] | None = None,
        device: DeviceClass | None = None,
        thresholds: StaticThresholds | None = None,
        uses_magnetometer: bool = False,
    ) -> None:
        #: ``R_segment_sensor`` per site; ``None``: the placement guide (``EXPECTED_ROTATION_SEGMENT_SENSOR``).
        self.expected = expected
        self.device = device
        self.thresholds = thresholds
        #: Whether orientation uses the magnetometer (9-axis): a disturbed field is then a warning, not a note.
        self.uses_magnetometer = uses_magnetometer

    def check(self, kit: KitSignals, still_interval_s: tuple[float, float]) -> StaticCheck:
        """Judge the still interval ``[start, end)`` (clip clock, s) of ``kit``; returns self."""
        limits = self.thresholds or StaticThresholds()
        expected = self.expected or EXPECTED_ROTATION_SEGMENT_SENSOR
        device = self.device or DeviceClass()
        self.verdicts_: list[Verdict] = []
        self.stats_: dict[Site, StillStats] = {}
        self.up_sensor_: dict[Site, FloatArray] = {}
        self.tilt_error_deg_: dict[Site, float] = {}
        self.gyr_bias_rad_s_: dict[Site, FloatArray] = {}
        self.is_still_ = False
        self.reference_ = StillReference()

        start_s, end_s = still_interval_s
        if not end_s - start_s >= limits.min_still_s:
            self.verdicts_.append(Verdict(
                Level.FAIL, "placement.still.too_short",
                f"The still period was too short to check the sensors ({max(end_s - start_s, 0.0):.1f} s).",
                f"Ask the patient to stand still for at least {limits.min_still_s + 2:.0f} seconds before walking.",
                details={"still_interval_s": [start_s, end_s], "min_still_s": limits.min_still_s}))
            return self
        mask = interval_mask(kit, still_interval_s)
        for site in KIT_SITES:
            if site not in kit.sites:
                self.verdicts_.append(Verdict(
                    Level.FAIL, "placement.missing", f"There is no sensor on the {site_name(site)}.",
                    f"Attach a sensor {PLACEMENT_TEXT[site]} and connect it.", subject=site.value))
                continue
            stats = self._stats(kit, site, mask, device)
            if stats is None:
                self.verdicts_.append(Verdict(
                    Level.FAIL, "placement.no_data",
                    f"The {site_name(site)} sensor sent too little data during the still period to be checked.",
                    "Check that it is switched on and connected, then repeat the still period.", subject=site.value,
                    details={"sensor_id": kit.sites[site].sensor_id}))
                continue
            self.stats_[site] = stats
        if not self.stats_:
            return self
        self.is_still_ = self._judge_stillness(limits)
        if not self.is_still_:
            return self
        spread = [s.mag_norm_ut for s in self.stats_.values() if s.mag_norm_ut is not None]
        median_mag = float(np.median(spread)) if spread else None
        for site, stats in self.stats_.items():
            self._judge_gravity(site, stats, expected[site], limits)
            self._judge_noise(site, stats, device, kit.rate_hz, limits)
            self._judge_bias(site, stats, limits)
            self._judge_magnetic(site, stats, median_mag, limits)
        self.reference_ = StillReference(
            up_sensor=dict(self.up_sensor_),
            acc_m_s2={site: s.acc_mean_m_s2 for site, s in self.stats_.items()},
            gyr_bias_rad_s=dict(self.gyr_bias_rad_s_),
            end_s=end_s,
        )
        return self

    # -- measurements ------------------------------------------------------------------------------------------
    def _stats(self, kit: KitSignals, site: Site, mask: NDArray[np.bool_], device: DeviceClass) -> StillStats | None:
        limits = self.thresholds or StaticThresholds()
        signals = kit.sites[site]
        acc = signals.acc_m_s2[mask]
        rows = signals.valid[mask] & np.all(np.isfinite(acc), axis=1)
        if rows.sum() < max(3, limits.min_valid_fraction * mask.sum()):
            return None
        acc = acc[rows]
        gyr_all = angular_velocity_rad_s(signals, kit.rate_hz)[mask][rows]
        gyr_rows = np.all(np.isfinite(gyr_all), axis=1)
        gyr = gyr_all[gyr_rows] if gyr_rows.sum() >= 3 else None
        # The bias and the noise are only the gyroscope's own; angular velocities derived from device orientation
        # (where a recording has no gyroscope) show neither, but still tell whether the patient moved.
        raw_gyr = signals.gyr_rad_s[mask][rows]
        raw_ok = np.all(np.isfinite(raw_gyr), axis=1)
        raw_gyr = raw_gyr[raw_ok] if raw_ok.sum() >= 3 else None
        # First differences remove slow sway; for white noise std(Δx) = √2·σ.
        acc_noise = float(np.max(np.std(np.diff(acc, axis=0), axis=0)) / np.sqrt(2.0))
        gyr_noise = (None if raw_gyr is None
                     else float(np.max(np.std(np.diff(raw_gyr, axis=0), axis=0)) / np.sqrt(2.0)))
        mag_norm = None
        if signals.mag_ut is not None:
            mag = signals.mag_ut[mask][rows]
            mag = mag[np.all(np.isfinite(mag), axis=1)]
            if mag.shape[0]:
                mag_norm = float(np.mean(np.linalg.norm(mag, axis=1)))
        bias = None if raw_gyr is None else np.mean(raw_gyr, axis=0)
        return StillStats(
            sensor_id=signals.sensor_id,
            n_valid=int(rows.sum()),
            acc_mean_m_s2=np.mean(acc, axis=0),
            acc_spread_m_s2=float(np.linalg.norm(np.std(acc, axis=0))),
            gyr_spread_dps=None if gyr is None else float(np.degrees(np.linalg.norm(np.std(gyr, axis=0)))),
            acc_noise_m_s2=acc_noise,
            gyr_noise_rad_s=gyr_noise,
            gyr_bias_rad_s=bias,
            mag_norm_ut=mag_norm,
            acc_constant=bool(np.all(np.ptp(acc, axis=0) == 0.0)),
            gyr_constant=bool(raw_gyr is not None and np.all(np.ptp(raw_gyr, axis=0) == 0.0)),
        )

    # -- judgements --------------------------------------------------------------------------------------------
    def _judge_stillness(self, limits: StaticThresholds) -> bool:
        worst_acc = max(s.acc_spread_m_s2 for s in self.stats_.values())
        gyr_spreads = [s.gyr_spread_dps for s in self.stats_.values() if s.gyr_spread_dps is not None]
        worst_gyr = max(gyr_spreads, default=0.0)
        moving = [site.value for site, s in self.stats_.items()
                  if s.acc_spread_m_s2 > limits.still_acc_warn_m_s2
                  or (s.gyr_spread_dps or 0.0) > limits.still_gyr_warn_dps]
        details = {"acc_spread_m_s2": round(worst_acc, 3), "gyr_spread_dps": round(worst_gyr, 2), "moving": moving}
        if worst_acc > limits.still_acc_fail_m_s2 or worst_gyr > limits.still_gyr_fail_dps:
            self.verdicts_.append(Verdict(
                Level.FAIL, "placement.still.not_still",
                "The patient was not standing still, so the sensors could not be checked.",
                "Ask the patient to stand still, upright with the feet apart, for a few seconds, then repeat the "
                "still period.", details=details))
            return False
        if moving:
            self.verdicts_.append(Verdict(
                Level.WARNING, "placement.still.moving",
                "The patient moved a little during the still period; the sensor checks may be less exact.",
                "If possible, repeat the still period with the patient standing quietly.", details=details))
        else:
            self.verdicts_.append(Verdict(Level.OK, "placement.still.ok", "The patient stood still.",
                                          details=details))
        return True

    def _judge_gravity(self, site: Site, stats: StillStats, expected: FloatArray, limits: StaticThresholds) -> None:
        measured = stats.acc_mean_m_s2
        magnitude = float(np.linalg.norm(measured))
        name = site_name(site)
        up = measured / magnitude if magnitude > 0.0 else measured
        self.up_sensor_[site] = up
        tilt = angle_deg(up, expected_up_sensor(expected))
        self.tilt_error_deg_[site] = tilt
        extra = limits.pelvis_tilt_extra_deg if site is Site.PELVIS else 0.0
        details = {"sensor_id": stats.sensor_id, "tilt_deg": round(tilt, 1),
                   "up_sensor": [round(float(u), 4) for u in up], "gravity_m_s2": round(magnitude, 3)}
        error_g = abs(magnitude - G_M_S2)
        if error_g > limits.gravity_warn_m_s2:
            level = Level.FAIL if error_g > limits.gravity_fail_m_s2 else Level.WARNING
            self.verdicts_.append(Verdict(
                level, "placement.gravity_magnitude",
                f"The {name} sensor measures gravity as {magnitude:.1f} m/s² instead of 9.8 m/s²: its accelerometer "
                "may be faulty or badly calibrated.",
                "Recalibrate the sensor as its manual describes, or replace it.", subject=site.value, details=details))
        if tilt > limits.upside_down_deg:
            self.verdicts_.append(Verdict(
                Level.FAIL, "placement.upside_down", f"The {name} sensor is upside down.",
                "Turn it so that the arrow on the case points up, or confirm and StrideTwin will correct for it.",
                subject=site.value, details=details))
        elif tilt > limits.tilt_fail_deg + extra:
            self.verdicts_.append(Verdict(
                Level.FAIL, "placement.tilted",
                f"The {name} sensor is tilted by {tilt:.0f}° from how it should sit: it may be on its side or "
                "turned.",
                f"Re-attach it {PLACEMENT_TEXT[site]}.", subject=site.value, details=details))
        elif tilt > limits.tilt_warn_deg + extra:
            self.verdicts_.append(Verdict(
                Level.WARNING, "placement.tilted", f"The {name} sensor is tilted by {tilt:.0f}° more than expected.",
                f"Check that it lies flat {PLACEMENT_TEXT[site]}.", subject=site.value, details=details))
        else:
            self.verdicts_.append(Verdict(Level.OK, "placement.gravity", f"The {name} sensor is the right way up.",
                                          subject=site.value, details=details))

    def _judge_noise(self, site: Site, stats: StillStats, device: DeviceClass, rate_hz: float,
                     limits: StaticThresholds) -> None:
        name = site_name(site)
        if stats.acc_constant or stats.gyr_constant:
            which = "accelerometer" if stats.acc_constant else "gyroscope"
            self.verdicts_.append(Verdict(
                Level.FAIL, "placement.stuck", f"The {name} sensor's {which} sends the same value all the time.",
                "Switch the sensor off and on again; if it persists, replace it.", subject=site.value,
                details={"sensor_id": stats.sensor_id}))
            return
        ratios = {"acc": stats.acc_noise_m_s2 / device.acc_noise_m_s2(rate_hz)}
        if stats.gyr_noise_rad_s is not None:
            ratios["gyr"] = stats.gyr_noise_rad_s / device.gyr_noise_rad_s(rate_hz)
        worst = max(ratios.values())
        details = {"sensor_id": stats.sensor_id, "acc_noise_m_s2": round(stats.acc_noise_m_s2, 4),
                   "gyr_noise_dps": None if stats.gyr_noise_rad_s is None
                   else round(float(np.degrees(stats.gyr_noise_rad_s)), 3),
                   "noise_ratio": {k: round(v, 2) for k, v in ratios.items()}, "device_class": device.name}
        if worst > limits.noise_warn_factor:
            level = Level.FAIL if worst > limits.noise_fail_factor else Level.WARNING
            self.verdicts_.append(Verdict(
                level, "placement.noise",
                f"The {name} sensor is {worst:.0f} times noisier than a sensor of its type should be.",
                "Check that it is strapped firmly and touches nothing that vibrates; if it stays noisy, replace it.",
                subject=site.value, details=details))
        else:
            self.verdicts_.append(Verdict(Level.OK, "placement.noise", f"The {name} sensor's noise is normal.",
                                          subject=site.value, details=details))

    def _judge_bias(self, site: Site, stats: StillStats, limits: StaticThresholds) -> None:
        if stats.gyr_bias_rad_s is None:
            return
        self.gyr_bias_rad_s_[site] = stats.gyr_bias_rad_s
        bias_dps = float(np.degrees(np.linalg.norm(stats.gyr_bias_rad_s)))
        details = {"sensor_id": stats.sensor_id, "gyr_bias_dps": round(bias_dps, 2),
                   "gyr_bias_rad_s": [round(float(b), 5) for b in stats.gyr_bias_rad_s]}
        if bias_dps > limits.gyr_bias_warn_dps:
            self.verdicts_.append(Verdict(
                Level.WARNING, "placement.gyro_bias",
                f"The {site_name(site)} sensor's gyroscope has a large offset ({bias_dps:.1f} °/s). StrideTwin "
                "removes it, but a sensor this far off may need recalibrating.",
                "Recalibrate the sensor as its manual describes (usually: leave it still on a table).",
                subject=site.value, details=details))
        else:
            self.verdicts_.append(Verdict(Level.OK, "placement.gyro_bias",
                                          f"The {site_name(site)} sensor's gyroscope offset is normal.",
                                          subject=site.value, details=details))

    def _judge_magnetic(self, site: Site, stats: StillStats, median_ut: float | None,
                        limits: StaticThresholds) -> None:
        if stats.mag_norm_ut is None or median_ut is None:
            return
        norm = stats.mag_norm_ut
        name = site_name(site)
        details = {"sensor_id": stats.sensor_id, "mag_norm_ut": round(norm, 1), "kit_median_ut": round(median_ut, 1)}
        outside = not limits.mag_min_ut <= norm <= limits.mag_max_ut
        apart = abs(norm - median_ut) > limits.mag_spread_warn_ut
        if not (outside or apart):
            self.verdicts_.append(Verdict(Level.OK, "placement.magnetic",
                                          f"The magnetic field at the {name} sensor is normal ({norm:.0f} µT).",
                                          subject=site.value, details=details))
            return
        why = (f"{norm:.0f} µT, while the Earth's field is 25–65 µT" if outside
               else f"{norm:.0f} µT, against {median_ut:.0f} µT at the other sensors")
        if self.uses_magnetometer:
            self.verdicts_.append(Verdict(
                Level.WARNING, "placement.magnetic",
                f"The magnetic field at the {name} sensor is disturbed ({why}): metal or electrical equipment is "
                "nearby.",
                "Move away from metal furniture and devices, or switch orientation to 6-axis mode.",
                subject=site.value, details=details))
        else:
            self.verdicts_.append(Verdict(
                Level.OK, "placement.magnetic",
                f"The magnetic field at the {name} sensor is disturbed ({why}); this does not matter in 6-axis mode.",
                subject=site.value, details=details))
