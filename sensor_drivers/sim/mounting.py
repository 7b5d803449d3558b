"""Where and how each sensor sits on the body, including deliberate placement faults.

A mounting is the segment a sensor is strapped to, the rotation ``rotation_segment_sensor`` (sensor axes in the segment
frame, as ``quat_wxyz_segment_sensor``) and the offset of the sensor from the segment origin in the segment frame.

Default placement (typical of IMU gait kits, e.g. the Xsens MVN and APDM placement guides):

- pelvis: on the sacrum, case flat on the skin. Sensor x up, y left, z pointing backwards out of the body.
- thighs: lateral mid-thigh (half-way from hip to knee). Sensor x up along the thigh, z pointing outwards (lateral).
- shanks: on the flat anteromedial surface of the tibia, a third of the way down from the knee, facing 45° medially
  from straight ahead. Sensor x up along the shank, z pointing out of the skin.

Offsets scale with height (distances from bone axis to skin for a 1.75 m adult: sacrum 9.6 cm behind and 6.1 cm above
the hip-joint-centre midpoint, mid-thigh skin 8 cm, tibia surface 4.4 cm); they change the simulated lever arms but
not the character of the signals.

Faults (see :class:`Fault`): ``swap_lr`` (left and right sensors exchanged), ``swap_thigh_shank[:l|:r]`` (thigh and
shank sensors exchanged on one or both sides), ``upside_down:<site>`` (turned 180° in the plane of the skin, so its x
points down the limb), ``rotated:<site>:<deg>`` (moved around the limb's long axis by deg), ``loose:<site>`` (a loose
strap: the sensor wobbles on the segment after every heel strike). The ground truth records the actual mountings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sensor_drivers.errors import SourceError
from sensor_drivers.quaternion import rotation_from_wxyz, wxyz_from_rotation
from sensor_drivers.sim.body import BodyModel, axis_rotation
from sensor_drivers.sites import KIT_SITES, Site

REFERENCE_HEIGHT_M = 1.75
SACRUM_BEHIND_M = 0.096
SACRUM_ABOVE_M = 0.061
THIGH_SKIN_M = 0.08
TIBIA_SKIN_M = 0.044
SHANK_SENSOR_FRACTION = 1.0 / 3.0
TIBIA_FACING_DEG = 45.0

FAULT_KINDS = ("swap_lr", "swap_thigh_shank", "upside_down", "rotated", "loose")


@dataclass(frozen=True)
class Mounting:
    """One sensor's placement: the segment it is on, its orientation there and its offset from the segment origin."""

    segment: str
    quat_wxyz_segment_sensor: tuple[float, float, float, float]
    offset_m: tuple[float, float, float]
    #: A loose strap: the sensor rings on its segment after heel strikes (see ``docs/virtual-patient.md``).
    loose: bool = False

    @property
    def rotation_segment_sensor(self) -> np.ndarray:
        """Rotation matrix taking sensor-frame vectors into the segment frame."""
        return rotation_from_wxyz(self.quat_wxyz_segment_sensor).as_matrix()

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "segment": self.segment,
            "quat_wxyz_segment_sensor": list(self.quat_wxyz_segment_sensor),
            "offset_m": list(self.offset_m),
            "loose": self.loose,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Mounting:
        """Inverse of :meth:`to_dict`."""
        return cls(
            segment=str(data["segment"]),
            quat_wxyz_segment_sensor=tuple(float(x) for x in data["quat_wxyz_segment_sensor"]),  # type: ignore[arg-type]
            offset_m=tuple(float(x) for x in data["offset_m"]),  # type: ignore[arg-type]
            loose=bool(data.get("loose", False)),
        )


def _mounting(segment: str, axes_in_segment: np.ndarray, offset_m: np.ndarray) -> Mounting:
    """A mounting from the sensor's x, y, z axes (columns) expressed in the segment frame."""
    from scipy.spatial.transform import Rotation

    quat = wxyz_from_rotation(Rotation.from_matrix(axes_in_segment))
    return Mounting(segment, tuple(float(q) for q in quat), tuple(float(o) for o in offset_m))  # type: ignore[arg-type]


def default_mounting(site: Site, body: BodyModel) -> Mounting:
    """The typical placement of a kit sensor at ``site`` on this body."""
    k = body.height_m / REFERENCE_HEIGHT_M
    up = np.array([0.0, 0.0, 1.0])
    if site is Site.PELVIS:
        out = np.array([-1.0, 0.0, 0.0])
        axes = np.column_stack([up, np.cross(out, up), out])
        return _mounting("pelvis", axes, k * np.array([-SACRUM_BEHIND_M, 0.0, SACRUM_ABOVE_M]))
    lateral = 1.0 if site.side == "left" else -1.0
    if site.segment == "thigh":
        out = np.array([0.0, lateral, 0.0])
        offset = np.array([0.0, lateral * k * THIGH_SKIN_M, -0.5 * body.thigh_m])
    else:
        angle = np.radians(TIBIA_FACING_DEG)
        out = np.array([np.cos(angle), -lateral * np.sin(angle), 0.0])  # anterior, turned medially
        offset = k * TIBIA_SKIN_M * out + np.array([0.0, 0.0, -SHANK_SENSOR_FRACTION * body.shank_m])
    axes = np.column_stack([up, np.cross(out, up), out])
    return _mounting(site.value, axes, offset)


@dataclass(frozen=True)
class Fault:
    """A deliberate placement fault."""

    kind: str
    site: Site | None = None
    side: str | None = None
    angle_deg: float | None = None

    @classmethod
    def parse(cls, text: str) -> Fault:
        """Parse ``swap_lr``, ``swap_thigh_shank[:l|:r]``, ``upside_down:<site>``, ``rotated:<site>:<deg>``,
        ``loose:<site>``."""
        parts = [p.strip() for p in text.strip().split(":")]
        kind = parts[0].lower()
        usage = ("swap_lr, swap_thigh_shank[:l|:r], upside_down:<site>, rotated:<site>:<deg>, loose:<site> "
                 f"(sites: {', '.join(s.value for s in KIT_SITES)})")
        try:
            if kind == "swap_lr" and len(parts) == 1:
                return cls(kind)
            if kind == "swap_thigh_shank" and len(parts) in (1, 2):
                side = parts[1].lower() if len(parts) == 2 else None
                if side not in (None, "l", "r"):
                    raise ValueError(f"side must be l or r, got {side!r}")
                return cls(kind, side=side)
            if kind in ("upside_down", "loose") and len(parts) == 2:
                return cls(kind, site=Site.parse(parts[1]))
            if kind == "rotated" and len(parts) == 3:
                return cls(kind, site=Site.parse(parts[1]), angle_deg=float(parts[2]))
        except ValueError as exc:
            raise SourceError(f"bad fault {text!r}: {exc}; accepted: {usage}") from None
        raise SourceError(f"unknown fault {text!r}; accepted: {usage}")

    def __str__(self) -> str:
        if self.kind == "swap_thigh_shank" and self.side:
            return f"{self.kind}:{self.side}"
        if self.kind == "rotated":
            return f"{self.kind}:{self.site}:{self.angle_deg:g}"
        if self.site is not None:
            return f"{self.kind}:{self.site}"
        return self.kind


def apply_faults(mountings: dict[Site, Mounting], faults: tuple[Fault, ...], body: BodyModel) -> dict[Site, Mounting]:
    """The actual mountings after the faults, applied in order. Swaps put each sensor where the other one belongs,
    placed as a sensor at that site normally is."""
    out = dict(mountings)
    for fault in faults:
        if fault.kind == "swap_lr":
            for a, b in ((Site.THIGH_L, Site.THIGH_R), (Site.SHANK_L, Site.SHANK_R)):
                out[a], out[b] = default_mounting(b, body), default_mounting(a, body)
        elif fault.kind == "swap_thigh_shank":
            sides = [fault.side] if fault.side else ["l", "r"]
            for side in sides:
                thigh, shank = Site(f"thigh_{side}"), Site(f"shank_{side}")
                out[thigh], out[shank] = default_mounting(shank, body), default_mounting(thigh, body)
        elif fault.kind == "upside_down":
            m = out[fault.site]  # type: ignore[index]
            flipped = m.rotation_segment_sensor @ axis_rotation(2, np.pi)
            out[fault.site] = _with_rotation(m, flipped)  # type: ignore[index]
        elif fault.kind == "rotated":
            m = out[fault.site]  # type: ignore[index]
            turn = axis_rotation(2, np.radians(fault.angle_deg or 0.0))
            moved = _with_rotation(m, turn @ m.rotation_segment_sensor)
            out[fault.site] = replace(moved, offset_m=tuple(float(x) for x in turn @ np.array(m.offset_m)))  # type: ignore[index]
        elif fault.kind == "loose":
            out[fault.site] = replace(out[fault.site], loose=True)  # type: ignore[index]
    return out


def _with_rotation(m: Mounting, R: np.ndarray) -> Mounting:
    from scipy.spatial.transform import Rotation

    quat = wxyz_from_rotation(Rotation.from_matrix(R))
    return replace(m, quat_wxyz_segment_sensor=tuple(float(q) for q in quat))
