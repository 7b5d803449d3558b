"""The analysis and live pipelines' seams to the orientation and placement-check packages.

Both packages are optional at import time so that the session, the offline analysis and ``stridetwin analyze`` work
in a build without them (angles and placement verdicts are then absent, with a verdict saying so). Each function
returns a fresh stage object, or ``None`` where the package is not there.
"""

from __future__ import annotations

import importlib
from typing import Any


def _attribute(module: str, name: str) -> Any | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def orientation_pipeline() -> Any | None:
    """A new ``OrientationPipeline`` (batch ``estimate(kit)``, live ``reset()``/``update(block)``), or ``None``."""
    cls = _attribute("capture_app.core.orientation", "OrientationPipeline")
    return cls() if cls is not None else None


def angle_names() -> tuple[str, ...]:
    """Every joint angle the orientation package reports (empty without it)."""
    return tuple(_attribute("capture_app.core.orientation", "ANGLE_NAMES") or ())


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
