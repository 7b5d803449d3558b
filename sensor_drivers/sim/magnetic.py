"""The magnetic field along the walkway: the Earth's field plus optional indoor disturbances (point dipoles).

Indoors the field near the floor is distorted by steel (bed frames, radiators, door frames, reinforcement bars);
a point dipole of moment m (A·m²) at r gives ``B = μ0/(4π) · (3 (m·r̂) r̂ − m) / |r|³``. The default indoor set puts
five dipoles beside and under a 20 m walkway, giving disturbances of a few µT along most of it and 10–30 µT near the
objects, the order of the distortions measured near the floor of motion labs (de Vries WHK et al., Magnetic
distortion in motion labs, implications for validating inertial magnetic sensors, Gait Posture 2009;29:535-541).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.frames import EARTH_FIELD_WORLD_UT

MU0_OVER_4PI = 1e-7  # T·m/A
TESLA_TO_UT = 1e6


@dataclass(frozen=True)
class Dipole:
    """A magnetic point dipole in the world frame."""

    position_m: tuple[float, float, float]
    moment_a_m2: tuple[float, float, float]


#: Steel beside and under the walkway, positions as fractions of a 20 m walkway in x (scaled with its length).
INDOOR_DIPOLES_20M: tuple[Dipole, ...] = (
    Dipole((1.5, 1.0, 0.5), (40.0, 0.0, -30.0)),  # bed frame beside the start
    Dipole((6.0, -0.9, 0.6), (0.0, -50.0, 20.0)),  # radiator
    Dipole((10.0, 0.0, -0.3), (0.0, 0.0, 15.0)),  # reinforcement under the floor
    Dipole((14.5, 1.0, 1.0), (-30.0, 30.0, 0.0)),  # steel door frame
    Dipole((19.0, -1.0, 0.4), (25.0, 25.0, -25.0)),  # equipment trolley near the end
)


@dataclass(frozen=True)
class MagneticEnvironment:
    """Earth field plus dipoles; evaluates the field (µT, world frame) at positions."""

    earth_field_world_ut: tuple[float, float, float] = tuple(float(x) for x in EARTH_FIELD_WORLD_UT)  # type: ignore[assignment]
    dipoles: tuple[Dipole, ...] = ()

    @classmethod
    def indoor(cls, walkway_length_m: float = 20.0) -> MagneticEnvironment:
        """The default indoor set, stretched along the walkway."""
        k = walkway_length_m / 20.0
        dipoles = tuple(Dipole((d.position_m[0] * k, d.position_m[1], d.position_m[2]), d.moment_a_m2)
                        for d in INDOOR_DIPOLES_20M)
        return cls(dipoles=dipoles)

    def field_ut(self, position_m: NDArray[np.float64]) -> NDArray[np.float64]:
        """Field at (n, 3) world positions, µT."""
        p = np.asarray(position_m, dtype=float)
        field = np.broadcast_to(np.asarray(self.earth_field_world_ut), p.shape).copy()
        for d in self.dipoles:
            r = p - np.asarray(d.position_m)
            dist = np.maximum(np.linalg.norm(r, axis=-1, keepdims=True), 0.05)  # no singularity inside the object
            unit = r / dist
            m = np.asarray(d.moment_a_m2)
            field += MU0_OVER_4PI * TESLA_TO_UT * (3.0 * np.sum(m * unit, axis=-1, keepdims=True) * unit - m) / dist**3
        return field

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "earth_field_world_ut": list(self.earth_field_world_ut),
            "dipoles": [{"position_m": list(d.position_m), "moment_a_m2": list(d.moment_a_m2)} for d in self.dipoles],
        }
