"""The analysis and live pipelines' seams to the orientation and placement-check packages: each function returns a
fresh stage object with the default parameters.

The placement-check package is optional at import time, so that the session, the offline analysis and
``stridetwin analyze`` work in a build without it (placement verdicts are then absent, with a verdict saying so);
its functions return ``None`` there.
"""

from __future__ import annotations

import importlib
from typing import Any

from capture_app.core.orientation import ANGLE_NAMES, OrientationPipeline


def _attribute(module: str, name: str) -> Any | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def orientation_pipeline() -> OrientationPipeline:
    """A new ``OrientationPipeline`` (batch ``estimate(kit)``, live ``reset()``/``update(block)``)."""
    return OrientationPipeline()


def angle_names() -> tuple[str, ...]:
    """Every joint angle the capture core reports, in the order of the angle CSV."""
    return ANGLE_NAMES


def placement_check() -> Any | None:
    """A new ``PlacementCheck`` (``check(kit, still_interval_s, walking_interval_s)``), or ``None``."""
    cls = _attribute("capture_app.core.checks", "PlacementCheck")
    return cls() if cls is not None else None


def relabel_function() -> Any | None:
    """``relabel(kit, assignment) -> kit`` of the checks package, or ``None``."""
    return _attribute("capture_app.core.checks", "relabel")


def quality_monitor(**kwargs: Any) -> Any | None:
    """A new live ``QualityMonitor(**kwargs)`` (``update(items | block)``, ``verdicts_``), or ``None``."""
    cls = _attribute("capture_app.core.checks", "QualityMonitor")
    return cls(**kwargs) if cls is not None else None


def static_check() -> Any | None:
    """A new ``StaticCheck`` (``check(kit, still_interval_s)``), or ``None``."""
    cls = _attribute("capture_app.core.checks", "StaticCheck")
    return cls() if cls is not None else None


def sensor_identification() -> Any | None:
    """A new ``SensorIdentification`` (``identify(kit, walking_interval_s, still)``), or ``None``."""
    cls = _attribute("capture_app.core.checks", "SensorIdentification")
    return cls() if cls is not None else None
