"""Configuration of a virtual patient, and its parsing from a source string's options
(``sim:hemiparetic?speed=0.5``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sensor_drivers.errors import SourceError
from sensor_drivers.sim.gait_pattern import HemipareticParams
from sensor_drivers.sim.imu_errors import ImuErrorConfig
from sensor_drivers.sim.magnetic import MagneticEnvironment
from sensor_drivers.sim.mounting import Fault, Mounting
from sensor_drivers.sites import KIT_SITES, Site

PROFILES = ("healthy", "hemiparetic")
DEFAULT_HEMIPARETIC_SPEED_M_S = 0.5


@dataclass(frozen=True)
class Disconnect:
    """An interval during which a sensor delivers nothing (its link is down; the device keeps sampling)."""

    site: Site
    start_s: float
    duration_s: float

    @classmethod
    def parse(cls, text: str) -> Disconnect:
        """``<site>:<start_s>:<duration_s>``, e.g. ``shank_l:12:3``."""
        parts = text.split(":")
        if len(parts) != 3:
            raise SourceError(f"bad disconnect {text!r}; expected <site>:<start_s>:<duration_s>, e.g. shank_l:12:3")
        try:
            site = Site.parse(parts[0])
            start, duration = float(parts[1]), float(parts[2])
        except ValueError as exc:
            raise SourceError(f"bad disconnect {text!r}: {exc}") from None
        if start < 0 or duration <= 0:
            raise SourceError(f"bad disconnect {text!r}: start must be ≥ 0 and duration > 0")
        return cls(site, start, duration)


@dataclass(frozen=True)
class VirtualPatientConfig:
    """Everything that defines a virtual walk test. Equal configurations give identical recordings."""

    profile: str = "healthy"
    #: Steady walking speed, m/s (``None``: the recorded cycle's own speed scaled to the body for healthy walking,
    #: 0.5 for hemiparetic).
    speed_m_s: float | None = None
    paretic_side: str = "left"
    height_m: float = 1.75
    mass_kg: float = 75.0
    walkway_length_m: float = 20.0
    still_start_s: float = 5.0
    still_end_s: float = 5.0
    sampling_rate_hz: float = 200.0
    hemiparesis: HemipareticParams = field(default_factory=HemipareticParams)
    imu: ImuErrorConfig = field(default_factory=ImuErrorConfig)
    #: Field model; ``None``: the default indoor disturbances along the walkway.
    magnetic: MagneticEnvironment | None = None
    #: Intended mountings per site; ``None``: the typical placement (``mounting.default_mounting``).
    mountings: dict[Site, Mounting] | None = None
    faults: tuple[Fault, ...] = ()
    disconnects: tuple[Disconnect, ...] = ()
    #: Sensor identities per site; ``None``: ``sim-<site>``.
    sensor_ids: dict[Site, str] | None = None
    #: Ground-truth sample rate (``None``: the sampling rate; lower it for very long recordings).
    truth_rate_hz: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise SourceError(f"unknown gait profile {self.profile!r}; accepted: {', '.join(PROFILES)}")
        if self.paretic_side not in ("left", "right"):
            raise SourceError(f"paretic_side must be 'left' or 'right', got {self.paretic_side!r}")
        checks = {
            "height_m": (self.height_m, 1.2, 2.2), "mass_kg": (self.mass_kg, 25.0, 250.0),
            "still_start_s": (self.still_start_s, 0.5, 3600.0), "still_end_s": (self.still_end_s, 0.5, 36000.0),
            "sampling_rate_hz": (self.sampling_rate_hz, 10.0, 1000.0),
        }
        for name, (value, lo, hi) in checks.items():
            if not lo <= value <= hi:
                raise SourceError(f"{name} = {value} is outside the accepted [{lo:g}, {hi:g}]")


    def sensor_id(self, site: Site) -> str:
        """The identity of the sensor labelled ``site``."""
        return (self.sensor_ids or {}).get(site, f"sim-{site.value}")


#: Accepted source-string options, with what they set.
OPTION_HELP: dict[str, str] = {
    "speed": "steady walking speed, m/s",
    "side": "paretic side, left|right",
    "height": "body height, m",
    "mass": "body mass, kg",
    "walkway": "walkway length, m",
    "still_start": "standing still before walking, s",
    "still_end": "standing still after walking, s",
    "rate": "sampling rate, Hz",
    "seed": "random seed (integer)",
    "noise": "sensor errors, realistic|ideal",
    "loss": "packet loss fraction (0.01) or percentage (1%)",
    "burst": "mean packet-loss burst length, samples",
    "drift_ppm": "clock drift spread (1σ) across sensors, ppm",
    "mag": "magnetic field, indoor|clean",
    "quat": "device orientation output, on|off",
    "fault": "comma-separated faults: swap_lr, swap_thigh_shank[:l|:r], upside_down:<site>, rotated:<site>:<deg>, "
    "loose:<site>",
    "disconnect": "comma-separated <site>:<start_s>:<duration_s>",
}


def from_source_options(profile: str, options: dict[str, str]) -> VirtualPatientConfig:
    """A configuration from a ``sim:<profile>?key=value&…`` source string's parts, with clear errors."""
    profile = (profile or "healthy").strip().lower()
    if profile not in PROFILES:
        raise SourceError(f"unknown virtual patient profile {profile!r}; accepted: {', '.join(PROFILES)}")
    unknown = sorted(set(options) - set(OPTION_HELP))
    if unknown:
        accepted = "; ".join(f"{k} ({v})" for k, v in OPTION_HELP.items())
        raise SourceError(f"unknown sim option(s) {', '.join(unknown)}; accepted: {accepted}")

    def number(key: str, kind: type = float) -> float | int | None:
        if key not in options:
            return None
        text = options[key].strip()
        try:
            if key == "loss" and text.endswith("%"):
                return float(text[:-1]) / 100.0
            return kind(text)
        except ValueError:
            raise SourceError(f"sim option {key}={text!r}: expected a number ({OPTION_HELP[key]})") from None

    def choice(key: str, accepted: tuple[str, ...]) -> str | None:
        if key not in options:
            return None
        value = options[key].strip().lower()
        if value not in accepted:
            raise SourceError(f"sim option {key}={value!r}; accepted: {', '.join(accepted)}")
        return value

    kwargs: dict[str, object] = {"profile": profile}
    for key, name in (("speed", "speed_m_s"), ("height", "height_m"), ("mass", "mass_kg"),
                      ("walkway", "walkway_length_m"), ("still_start", "still_start_s"),
                      ("still_end", "still_end_s"), ("rate", "sampling_rate_hz")):
        value = number(key)
        if value is not None:
            kwargs[name] = value
    seed = number("seed", int)
    if seed is not None:
        kwargs["seed"] = seed
    side = choice("side", ("left", "right", "l", "r"))
    if side is not None:
        kwargs["paretic_side"] = {"l": "left", "r": "right"}.get(side, side)
    imu = ImuErrorConfig.ideal() if choice("noise", ("realistic", "ideal")) == "ideal" else ImuErrorConfig()
    loss = number("loss")
    if loss is not None:
        if not 0.0 <= loss < 1.0:
            raise SourceError(f"sim option loss={options['loss']!r}: must lie in [0, 1) (or 0%–99%)")
        imu = replace(imu, packet_loss=float(loss))
    burst = number("burst")
    if burst is not None:
        if burst < 1.0:
            raise SourceError(f"sim option burst={options['burst']!r}: mean burst length must be ≥ 1 sample")
        imu = replace(imu, loss_burst_mean=float(burst))
    drift = number("drift_ppm")
    if drift is not None:
        imu = replace(imu, clock_drift_ppm_sigma=abs(float(drift)))
    quat = choice("quat", ("on", "off"))
    if quat is not None:
        imu = replace(imu, device_quaternion=quat == "on")
    kwargs["imu"] = imu
    if choice("mag", ("indoor", "clean")) == "clean":
        kwargs["magnetic"] = MagneticEnvironment()
    if options.get("fault"):
        kwargs["faults"] = tuple(Fault.parse(f) for f in options["fault"].split(",") if f.strip())
    if options.get("disconnect"):
        kwargs["disconnects"] = tuple(Disconnect.parse(d) for d in options["disconnect"].split(",") if d.strip())
    return VirtualPatientConfig(**kwargs)  # type: ignore[arg-type]


__all__ = ["KIT_SITES", "OPTION_HELP", "Disconnect", "VirtualPatientConfig", "from_source_options"]
