"""Task terrains: flat ground, ramps and stairs, built as static geoms, with an exact ground-height function.

Every course runs along world +x and is ``2 * COURSE_HALF_WIDTH_M`` wide, centred on y = 0; the walker starts at
x = 0 on flat ground. A feature starts after a flat run-in of ``RUN_IN_M``:

- ``slope:L`` (L = 1..5): a 9 m ramp rising 0, 0.1875, 0.375, 0.5625 or 0.75 m (1:12 at level 5), then a landing.
- ``stairs:L`` (L = 1..5): ``N_STAIR_STEPS`` risers of 0, 3.75, 7.5, 11.25 or 15 cm with 30 cm treads, the last one
  leading onto the landing.

These are the paper's five curriculum levels for each task (Dai et al. 2025, Methods "Curriculum Learning"); level 1
is flat. Beyond the landing's end and outside the course width the ground is the floor plane at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from cloud_trainer.errors import UnknownNameError

COURSE_HALF_WIDTH_M = 2.0
RUN_IN_M = 3.0
#: Where episodes start that are to reach the feature soon, m along the course: on the run-in, 0.5-1.5 m before it
#: (the patients' stair episodes and every feature course of the terrain-aware atlas).
RUN_IN_START_X_M = (RUN_IN_M - 1.5, RUN_IN_M - 0.5)
RAMP_LENGTH_M = 9.0
SLOPE_RISES_M = (0.0, 0.1875, 0.375, 0.5625, 0.75)
STAIR_HEIGHTS_M = (0.0, 0.0375, 0.075, 0.1125, 0.15)
STAIR_TREAD_M = 0.30
N_STAIR_STEPS = 10
#: Flat landing after the feature: long enough that an episode (500 control steps at 30 Hz, 16.7 s) at the fastest
#: goal speed (1.4 m/s) does not walk off it.
LANDING_LENGTH_M = 25.0
#: Thickness of the ramp slab (its top surface is the walking surface; the rest is buried or unseen).
RAMP_THICKNESS_M = 0.2

#: Geom group of terrain geoms (rays and renderings can select them).
TERRAIN_GEOM_GROUP = 2
#: Collision bits: terrain geoms collide with body geoms and not with each other (body geoms use the mirror bits).
TERRAIN_CONTYPE, TERRAIN_CONAFFINITY = 1, 2
GROUND_FRICTION = (1.0, 0.005, 0.0001)
#: Contact softness shared by terrain and body geoms (MuJoCo averages the two sides). The default 0.02 s time
#: constant let a standing body sink into its heels and tip backwards over them within 3 s; 0.012 s is the stiffest
#: the 1/180 s timestep allows (MuJoCo's guide: at least two timesteps), with a near-rigid impedance.
CONTACT_SOLREF = (0.012, 1.0)
CONTACT_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)


@dataclass(frozen=True)
class Terrain:
    """One course: its kind, level and the dimensions that define its surface."""

    name: str
    kind: str  # "flat", "slope" or "stairs"
    level: int  # 1..5 for slope and stairs, 0 for flat
    rise_m: float = 0.0  # total height gained by the feature
    step_height_m: float = 0.0  # stairs only

    @property
    def feature_start_x_m(self) -> float:
        """x where the ramp or the first riser begins."""
        return RUN_IN_M

    @property
    def feature_end_x_m(self) -> float:
        """x where the landing begins."""
        if self.kind == "slope":
            return RUN_IN_M + RAMP_LENGTH_M
        if self.kind == "stairs":
            return RUN_IN_M + (N_STAIR_STEPS - 1) * STAIR_TREAD_M
        return RUN_IN_M

    @property
    def course_end_x_m(self) -> float:
        """x where the landing ends (the floor plane continues beyond, at z = 0)."""
        return self.feature_end_x_m + LANDING_LENGTH_M

    def ground_height_m(self, x_m: np.ndarray | float, y_m: np.ndarray | float = 0.0) -> np.ndarray:
        """Height of the walking surface under world points (x, y), m; exact for the geoms :meth:`add_to_spec` adds."""
        x, y = _points(x_m, y_m)
        height = np.zeros(x.shape)
        if self.rise_m == 0.0:
            return height
        x0 = self.feature_start_x_m
        on_course = self._on_course(x, y) & (x >= x0)
        if self.kind == "slope":
            surface = self.rise_m * np.clip((x - x0) / RAMP_LENGTH_M, 0.0, 1.0)
        else:
            step = np.clip(np.floor((x - x0) / STAIR_TREAD_M), 0, N_STAIR_STEPS - 1)
            surface = (step + 1) * self.step_height_m
        return np.where(on_course, surface, height)

    def pitch_line_height_m(self, x_m: np.ndarray | float, y_m: np.ndarray | float = 0.0) -> np.ndarray:
        """Height of the surface a walker's pelvis height is measured from, m: the walking surface, except on stairs,
        where it is the pitch line: the surface averaged over one tread, a ramp through the treads' midpoints from
        half a tread before the first riser to half a tread onto the landing. A pelvis climbing at a steady height
        above it rises smoothly; above the treads themselves its height would jump by a riser at every riser it
        passes."""
        if self.kind != "stairs" or self.rise_m == 0.0:
            return self.ground_height_m(x_m, y_m)
        x, y = _points(x_m, y_m)
        steps = np.clip((x - self.feature_start_x_m) / STAIR_TREAD_M + 0.5, 0.0, N_STAIR_STEPS)
        return np.where(self._on_course(x, y), steps * self.step_height_m, 0.0)

    def _on_course(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Points within the course's width and before the landing's end (beyond: the floor at z = 0)."""
        return (np.abs(y) <= COURSE_HALF_WIDTH_M) & (x < self.course_end_x_m)

    def add_to_spec(self, spec: mujoco.MjSpec) -> None:
        """Add the floor plane and this course's boxes to the world body of ``spec``."""
        world = spec.worldbody
        floor = world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[60.0, 60.0, 0.1])
        floor.pos = [RUN_IN_M + 10.0, 0.0, 0.0]
        _terrain_geom(floor, rgba=(0.55, 0.6, 0.6, 1.0))
        if self.rise_m == 0.0:
            return
        x0, w = self.feature_start_x_m, COURSE_HALF_WIDTH_M
        rgba = (0.65, 0.55, 0.45, 1.0)
        if self.kind == "slope":
            angle = np.arctan2(self.rise_m, RAMP_LENGTH_M)
            half_len = 0.5 * np.hypot(RAMP_LENGTH_M, self.rise_m)
            normal = np.array([-np.sin(angle), 0.0, np.cos(angle)])
            top_centre = np.array([x0 + RAMP_LENGTH_M / 2, 0.0, self.rise_m / 2])
            ramp = world.add_geom(name="ramp", type=mujoco.mjtGeom.mjGEOM_BOX)
            ramp.size = [half_len, w, RAMP_THICKNESS_M / 2]
            ramp.pos = top_centre - normal * RAMP_THICKNESS_M / 2
            # rotate the box about +y by -angle so that its x axis climbs at the ramp angle
            ramp.quat = [np.cos(-angle / 2), 0.0, np.sin(-angle / 2), 0.0]
            _terrain_geom(ramp, rgba)
        else:
            for k in range(N_STAIR_STEPS - 1):
                top = (k + 1) * self.step_height_m
                _add_block(world, f"step_{k + 1}", x0 + k * STAIR_TREAD_M, x0 + (k + 1) * STAIR_TREAD_M, top, rgba)
        _add_block(world, "landing", self.feature_end_x_m, self.course_end_x_m, self.rise_m, rgba)


def _points(x_m: np.ndarray | float, y_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """World points as float arrays of one shape (``y`` broadcast to ``x``'s)."""
    x = np.asarray(x_m, dtype=float)
    return x, np.broadcast_to(np.asarray(y_m, dtype=float), x.shape)


def _add_block(world: mujoco.MjsBody, name: str, x_start: float, x_end: float, top_m: float, rgba) -> None:
    """A box standing on the floor from x_start to x_end, as wide as the course, with its top at top_m."""
    block = world.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX)
    block.size = [(x_end - x_start) / 2, COURSE_HALF_WIDTH_M, top_m / 2]
    block.pos = [(x_start + x_end) / 2, 0.0, top_m / 2]
    _terrain_geom(block, rgba)


def _terrain_geom(geom: mujoco.MjsGeom, rgba) -> None:
    geom.group = TERRAIN_GEOM_GROUP
    geom.contype, geom.conaffinity = TERRAIN_CONTYPE, TERRAIN_CONAFFINITY
    geom.friction = list(GROUND_FRICTION)
    geom.solref, geom.solimp = list(CONTACT_SOLREF), list(CONTACT_SOLIMP)
    geom.rgba = list(rgba)


def _registry() -> dict[str, Terrain]:
    terrains = {"flat": Terrain("flat", "flat", 0)}
    for level, rise in enumerate(SLOPE_RISES_M, start=1):
        terrains[f"slope:{level}"] = Terrain(f"slope:{level}", "slope", level, rise_m=rise)
    for level, step in enumerate(STAIR_HEIGHTS_M, start=1):
        terrains[f"stairs:{level}"] = Terrain(
            f"stairs:{level}", "stairs", level, rise_m=N_STAIR_STEPS * step, step_height_m=step
        )
    return terrains


#: Every course by name.
TERRAINS: dict[str, Terrain] = _registry()
TERRAIN_NAMES: tuple[str, ...] = tuple(TERRAINS)


def get_terrain(name: str) -> Terrain:
    """The course called ``name``.

    Raises:
        UnknownNameError: ``name`` is not one of ``TERRAIN_NAMES`` (listed in the message).
    """
    try:
        return TERRAINS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown terrain {name!r}; known terrains: {', '.join(TERRAIN_NAMES)}") from None
