"""The pipeline's one call for the placement checks: standing still, then the first strides.

Usage::

    check = PlacementCheck().check(kit, still_interval_s=(0.5, 3.0), walking_interval_s=(3.2, 12.0))
    check.verdicts_          # everything, ok included; check.problems_ for the rest
    kit = relabel(kit, check.assignment_)   # after the therapist confirmed a swap
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from capture_app.core.checks.identification import IdentificationThresholds, SensorIdentification
from capture_app.core.checks.placement import EXPECTED_ROTATION_SEGMENT_SENSOR
from capture_app.core.checks.static import DeviceClass, StaticCheck, StaticThresholds
from capture_app.core.signals import KitSignals
from capture_app.core.verdict import Level, Verdict, worst
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]


class PlacementCheck:
    """Placement checks of a kit: :class:`StaticCheck` on the still interval, then :class:`SensorIdentification` on
    the walking interval (using what the still period measured).

    ``check(kit, still_interval_s, walking_interval_s)`` (either interval may be ``None``: that stage is skipped)
    fills:

    - ``verdicts_``: the verdicts of both stages, ``ok`` included;
    - ``problems_``: the verdicts that are not ``ok``;
    - ``level_``: the worst level;
    - ``assignment_``: site → sensor id as identified (the labels where nothing could be identified); pass it to
      :func:`relabel` to correct swapped labels in software;
    - ``static_``, ``identification_``: the two stages' objects with all their results (``None`` if skipped).
    """

    def __init__(
        self,
        expected: dict[Site, FloatArray] | None = None,
        device: DeviceClass | None = None,
        static_thresholds: StaticThresholds | None = None,
        identification_thresholds: IdentificationThresholds | None = None,
        check_heading: bool = True,
        uses_magnetometer: bool = False,
    ) -> None:
        #: ``R_segment_sensor`` per site; ``None``: the placement guide (docs/sensor-placement.md).
        self.expected = expected
        self.device = device
        self.static_thresholds = static_thresholds
        self.identification_thresholds = identification_thresholds
        #: Whether the rotation about the limb axis is judged against ``expected``.
        self.check_heading = check_heading
        self.uses_magnetometer = uses_magnetometer

    def check(self, kit: KitSignals, still_interval_s: tuple[float, float] | None = None,
              walking_interval_s: tuple[float, float] | None = None) -> PlacementCheck:
        """Run the stages whose interval is given (clip clock, ``[start, end)``); returns self."""
        expected = self.expected or EXPECTED_ROTATION_SEGMENT_SENSOR
        self.static_: StaticCheck | None = None
        self.identification_: SensorIdentification | None = None
        verdicts: list[Verdict] = []
        if still_interval_s is not None:
            self.static_ = StaticCheck(expected, self.device, self.static_thresholds,
                                       self.uses_magnetometer).check(kit, still_interval_s)
            verdicts += self.static_.verdicts_
        if walking_interval_s is not None:
            reference = self.static_.reference_ if self.static_ is not None else None
            self.identification_ = SensorIdentification(expected, self.identification_thresholds,
                                                         self.check_heading).identify(kit, walking_interval_s,
                                                                                      reference)
            verdicts += self.identification_.verdicts_
        if self.static_ is None and self.identification_ is None:
            verdicts.append(Verdict(Level.WARNING, "placement.unchecked",
                                    "The sensor placement was not checked (no still period and no walk).",
                                    "Record a still period and a few steps to have the placement checked."))
        self.verdicts_ = verdicts
        self.problems_ = [v for v in verdicts if v.level is not Level.OK]
        self.level_ = worst(verdicts)
        self.assignment_: dict[Site, str] = (dict(self.identification_.assignment_) if self.identification_
                                             else {site: s.sensor_id for site, s in kit.sites.items()})
        return self


def relabel(kit: KitSignals, assignment: dict[Site, str]) -> KitSignals:
    """``kit`` with each sensor's signals moved to the site ``assignment`` gives it (site → sensor id).

    Sensors the assignment does not mention keep their site unless another sensor takes it. Raises ``ValueError``
    for a sensor id that is not in the kit.
    """
    by_id = {signals.sensor_id: signals for signals in kit.sites.values()}
    unknown = sorted(set(assignment.values()) - set(by_id))
    if unknown:
        raise ValueError(f"sensor id(s) {unknown} are not in this recording; its sensors: {sorted(by_id)}")
    assigned = set(assignment.values())
    sites = {site: by_id[sensor_id] for site, sensor_id in assignment.items()}
    for site, signals in kit.sites.items():
        if signals.sensor_id not in assigned and site not in sites:
            sites[site] = signals
    return replace(kit, sites=sites)
