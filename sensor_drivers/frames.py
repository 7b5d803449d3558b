"""Coordinate frames and physical constants, named once for the whole package.

World frame (``world``): a local East-North-Up frame whose x axis runs along the walkway in the walking direction.
  x: walking direction (East), y: to the walker's left (North), z: up. Gravity is ``(0, 0, -G_M_S2)``.
Segment frame (``segment``): attached to a body segment; at the neutral standing pose, facing along world x, it is
  aligned with the world frame: x anterior (``ap``), y to the left (``ml``, positive left), z superior (``si``).
  (ISB's joint coordinate systems use X anterior, Y superior, Z right; the capture core converts at one boundary.)
Sensor frame (``sensor``): the IMU's own x/y/z axes, as printed on its case. A sensor's mounting is the rotation
  ``R_segment_sensor`` (sensor axes expressed in the segment frame) plus an offset in the segment frame.

An accelerometer measures specific force in the sensor frame: ``f = R_world_sensor.T @ (a_world - g_world)``,
so a sensor lying still with z up reads ``(0, 0, +G_M_S2)``.

Quaternions in this project are w-first (``quat_wxyz``), Hamilton convention, and rotate vectors from the named child
frame into the parent frame (``quat_wxyz_world_sensor`` maps sensor-frame vectors into the world frame).
scipy uses x,y,z,w: convert only with :func:`sensor_drivers.quaternion.wxyz_to_scipy` and its inverse.
"""

from __future__ import annotations

import numpy as np

#: Standard gravity (CGPM 1901), m/s².
G_M_S2 = 9.80665
#: Gravity vector in the world frame (z up).
GRAVITY_WORLD_M_S2 = np.array([0.0, 0.0, -G_M_S2])

#: A typical mid-latitude Earth field in the world frame (ENU), µT: 20 µT north, 44 µT down (≈ 48 µT total,
#: inclination ≈ 65°; e.g. central Europe per the IGRF/WMM models).
EARTH_FIELD_WORLD_UT = np.array([0.0, 20.0, -44.0])
