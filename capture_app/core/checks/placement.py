"""Where each kit sensor is expected to sit: the app's placement guide in code (``docs/sensor-placement.md``).

A mounting is ``R_segment_sensor``: the sensor's x, y, z axes (columns) expressed in the segment frame (x anterior,
y left, z superior; ``sensor_drivers/frames.py``). Every kit sensor is worn with its x axis (the arrow on the case)
pointing up along the body and its z axis (out of the label face) pointing out of the skin; only the face of the body
it sits on differs per site. These are the virtual patient's default mountings (``sensor_drivers.sim.default_mounting``;
a test keeps the two equal).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.sites import KIT_SITES, Site

FloatArray = NDArray[np.float64]

#: The shank sensor sits on the flat anteromedial face of the tibia, which faces this far medially from straight ahead.
TIBIA_FACING_DEG = 45.0


def rotation_from_axes(x_up: FloatArray, z_out: FloatArray) -> FloatArray:
    """``R_segment_sensor`` for a sensor whose x axis points along ``x_up`` and z axis along ``z_out`` (segment
    frame, orthogonal unit vectors); y completes the right-handed frame."""
    x = np.asarray(x_up, dtype=float)
    z = np.asarray(z_out, dtype=float)
    return np.column_stack([x, np.cross(z, x), z])


def _expected_rotations() -> dict[Site, FloatArray]:
    up = np.array([0.0, 0.0, 1.0])
    c, s = np.cos(np.radians(TIBIA_FACING_DEG)), np.sin(np.radians(TIBIA_FACING_DEG))
    return {
        Site.PELVIS: rotation_from_axes(up, np.array([-1.0, 0.0, 0.0])),  # sacrum: face out of the back
        Site.THIGH_L: rotation_from_axes(up, np.array([0.0, 1.0, 0.0])),  # lateral thigh: face to the left
        Site.THIGH_R: rotation_from_axes(up, np.array([0.0, -1.0, 0.0])),  # lateral thigh: face to the right
        Site.SHANK_L: rotation_from_axes(up, np.array([c, -s, 0.0])),  # anteromedial tibia: forward and to the right
        Site.SHANK_R: rotation_from_axes(up, np.array([c, s, 0.0])),  # anteromedial tibia: forward and to the left
    }


#: The placement guide: ``R_segment_sensor`` per kit site.
EXPECTED_ROTATION_SEGMENT_SENSOR: dict[Site, FloatArray] = _expected_rotations()

#: Where each sensor goes, in a therapist's words (the placement screen and verdict actions use these).
PLACEMENT_TEXT: dict[Site, str] = {
    Site.PELVIS: "on the centre of the sacrum (the flat bone at the base of the spine, between the two dimples above "
    "the buttocks), label facing out, arrow pointing up to the head",
    Site.THIGH_L: "on the outer side of the left thigh, halfway between the hip and the knee, label facing out, "
    "arrow pointing up to the hip",
    Site.THIGH_R: "on the outer side of the right thigh, halfway between the hip and the knee, label facing out, "
    "arrow pointing up to the hip",
    Site.SHANK_L: "on the flat inner-front face of the left shin bone, a third of the way down from the knee, label "
    "facing out, arrow pointing up to the knee",
    Site.SHANK_R: "on the flat inner-front face of the right shin bone, a third of the way down from the knee, label "
    "facing out, arrow pointing up to the knee",
}

#: The face of the body each sensor should face out of, for verdicts about a sensor turned around the limb.
FACE_TEXT: dict[Site, str] = {
    Site.PELVIS: "the back of the pelvis (on the sacrum, facing backwards)",
    Site.THIGH_L: "the outer side of the thigh",
    Site.THIGH_R: "the outer side of the thigh",
    Site.SHANK_L: "the flat inner-front face of the shin",
    Site.SHANK_R: "the flat inner-front face of the shin",
}


def site_name(site: Site) -> str:
    """A site in plain words: ``left thigh``, ``pelvis``."""
    if site is Site.PELVIS:
        return "pelvis"
    return f"{site.side} {site.segment}"


def expected_up_sensor(rotation_segment_sensor: FloatArray) -> FloatArray:
    """The segment's superior axis (up, when standing) in sensor coordinates: where gravity's reaction should point."""
    return np.asarray(rotation_segment_sensor, dtype=float).T @ np.array([0.0, 0.0, 1.0])


def expected_left_sensor(rotation_segment_sensor: FloatArray) -> FloatArray:
    """The segment's left (mediolateral, flexion) axis in sensor coordinates."""
    return np.asarray(rotation_segment_sensor, dtype=float).T @ np.array([0.0, 1.0, 0.0])


def angle_deg(a: FloatArray, b: FloatArray) -> float:
    """Angle between two vectors, degrees (0 for a zero vector)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def twist_about_up_deg(rotation_estimated: FloatArray, rotation_expected: FloatArray) -> float:
    """How far a sensor is turned about the segment's long axis from its expected mounting, degrees in (-180, 180].

    Both are ``R_segment_sensor``. The relative rotation ``R_est · R_expᵀ`` (in the segment frame) is split into a
    swing of the long axis and a twist about it (swing-twist decomposition); the twist is returned, positive
    counter-clockwise seen from above. Meaningless when the sensor is upside down (check the tilt first).
    """
    relative = np.asarray(rotation_estimated) @ np.asarray(rotation_expected).T
    # Twist of a rotation about z: the angle that carries the projection of x onto the xy plane (robust form of
    # 2·atan2(q_z, q_w) that needs no quaternion).
    x_moved = relative[:, 0]
    y_moved = relative[:, 1]
    return float(np.degrees(np.arctan2(x_moved[1] - y_moved[0], x_moved[0] + y_moved[1])))


__all__ = [
    "EXPECTED_ROTATION_SEGMENT_SENSOR",
    "FACE_TEXT",
    "KIT_SITES",
    "PLACEMENT_TEXT",
    "angle_deg",
    "expected_left_sensor",
    "expected_up_sensor",
    "rotation_from_axes",
    "site_name",
    "twist_about_up_deg",
]
