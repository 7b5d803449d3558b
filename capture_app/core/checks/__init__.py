"""Placement and signal-quality checks: is each sensor where and how it should be, and is its signal trustworthy.

- :mod:`.placement`: the expected mounting per site (the placement guide in code).
- :mod:`.static`: before the walk, standing still (:class:`StaticCheck`).
- :mod:`.identification`: from the first strides, segment/side identification, rotation and looseness
  (:class:`SensorIdentification`).
- :mod:`.quality`: live per-sensor signal quality (:class:`QualityMonitor`).
- :mod:`.facade`: :class:`PlacementCheck`, the pipeline's one call for both placement stages.
"""

from capture_app.core.checks.facade import PlacementCheck, relabel
from capture_app.core.checks.identification import IdentificationThresholds, SensorIdentification, StillReference
from capture_app.core.checks.placement import EXPECTED_ROTATION_SEGMENT_SENSOR, PLACEMENT_TEXT, site_name
from capture_app.core.checks.quality import QualityMonitor, QualityThresholds, SensorQuality
from capture_app.core.checks.static import DeviceClass, StaticCheck, StaticThresholds

__all__ = [
    "EXPECTED_ROTATION_SEGMENT_SENSOR",
    "PLACEMENT_TEXT",
    "DeviceClass",
    "IdentificationThresholds",
    "PlacementCheck",
    "QualityMonitor",
    "QualityThresholds",
    "SensorIdentification",
    "SensorQuality",
    "StaticCheck",
    "StaticThresholds",
    "StillReference",
    "relabel",
    "site_name",
]
