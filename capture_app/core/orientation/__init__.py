"""Orientation: per-sensor fusion, sensor-to-segment calibration and joint angles (docs/joint-angles.md).

Start with :class:`OrientationPipeline` (batch ``estimate(kit)``, live ``update(block)``); its parts can be used
and swapped on their own: :class:`OrientationFusion` (filters in :mod:`.filters`), :class:`SegmentCalibration`,
:func:`joint_angles_deg`.
"""

from capture_app.core.orientation.calibration import SegmentCalibration, SiteCalibration, StandingPose
from capture_app.core.orientation.fusion import OrientationFusion, make_filter
from capture_app.core.orientation.joint_angles import ANGLE_NAMES, joint_angles_deg
from capture_app.core.orientation.pipeline import OrientationPipeline
from capture_app.core.orientation.still import StillDetector

__all__ = [
    "ANGLE_NAMES",
    "OrientationFusion",
    "OrientationPipeline",
    "SegmentCalibration",
    "SiteCalibration",
    "StandingPose",
    "StillDetector",
    "joint_angles_deg",
    "make_filter",
]
