"""The analysis and live pipelines' seams to the orientation and placement-check packages: each function returns a
fresh stage object with the default parameters, so that the stages can be swapped in one place."""

from __future__ import annotations

from typing import Any

from capture_app.core.checks import PlacementCheck, QualityMonitor, SensorIdentification, StaticCheck, relabel
from capture_app.core.orientation import ANGLE_NAMES, OrientationFusion, OrientationPipeline
from capture_app.core.signals import KitSignals
from sensor_drivers.sites import Site


def orientation_pipeline() -> OrientationPipeline:
    """A new ``OrientationPipeline`` (batch ``estimate(kit)``, live ``reset()``/``update(block)``)."""
    return OrientationPipeline()


def orientation_fusion(**kwargs: Any) -> OrientationFusion:
    """A new ``OrientationFusion(**kwargs)`` (orientation and angular velocity of each sensor)."""
    return OrientationFusion(**kwargs)


def angle_names() -> tuple[str, ...]:
    """Every joint angle the capture core reports, in the order of the angle CSV."""
    return ANGLE_NAMES


def placement_check() -> PlacementCheck:
    """A new ``PlacementCheck`` (``check(kit, still_interval_s, walking_interval_s)``)."""
    return PlacementCheck()


def relabel_kit(kit: KitSignals, assignment: dict[Site, str]) -> KitSignals:
    """``kit`` with each sensor moved to the site the placement check identified."""
    return relabel(kit, assignment)


def quality_monitor(**kwargs: Any) -> QualityMonitor:
    """A new live ``QualityMonitor(**kwargs)`` (``update(items | block)``, ``verdicts_``)."""
    return QualityMonitor(**kwargs)


def static_check() -> StaticCheck:
    """A new ``StaticCheck`` (``check(kit, still_interval_s)``)."""
    return StaticCheck()


def sensor_identification() -> SensorIdentification:
    """A new ``SensorIdentification`` (``identify(kit, walking_interval_s, still)``)."""
    return SensorIdentification()
