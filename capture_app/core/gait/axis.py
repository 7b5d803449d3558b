"""The shank's sagittal (medio-lateral) rotation axis in the sensor frame, found from the walking itself.

The shank rotates mostly about its medio-lateral axis while walking, so that axis is the principal direction of the
gyroscope's angular velocity (its second moment, uncentred, over moving samples; the functional-axis idea of Seel et
al. 2014 and of PCA-based sensor-to-segment alignment). The sign is chosen so that the swing is positive: the swing
is the short, large rotation of the gait cycle and the stance the long, small one of the opposite sign, so the
projection is positively skewed (third moment > 0). The expected mounting (``EXPECTED_SWING_AXIS_SENSOR``) is a prior
used only to break a near-tie in skew and to report how far the found axis lies from where it should be; placement
itself is judged by the placement checks, not here. No other helper's calibration is needed.

Live and offline share the maths: both accumulate the same sums (:class:`SagittalAxis` ``update``/``fit``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_HALF_SQRT2 = float(np.sqrt(0.5))

#: Where the positive-swing axis should lie in the sensor frame for the documented default mounting (docs/
#: virtual-patient.md "Mountings", docs/gait-metrics.md): shank sensor x up along the shank, z out of the skin on the
#: anteromedial tibia facing 45° medially. A forward swing is a negative rotation about the segment's left (y) axis;
#: expressed in the sensor frame that is (0, √½, √½) on the left shank and (0, √½, −√½) on the right.
EXPECTED_SWING_AXIS_SENSOR: dict[Site, tuple[float, float, float]] = {
    Site.SHANK_L: (0.0, _HALF_SQRT2, _HALF_SQRT2),
    Site.SHANK_R: (0.0, _HALF_SQRT2, -_HALF_SQRT2),
}


class SagittalAxis:
    """Principal rotation axis of a limb segment's gyroscope, signed so that the swing is positive.

    Results: ``axis_`` (unit 3-vector in the sensor frame, or ``None`` until enough movement was seen),
    ``explained_`` (share of the angular-velocity power about that axis, 0–1), ``skew_`` (normalised third moment of
    the projection; > 0 means the swing sign came from the data), ``sign_from_prior_`` (True when the skew was too
    weak and the prior decided the sign), ``angle_to_prior_deg_`` (angle between ``axis_`` and the prior, or ``None``
    without a prior) and ``n_moving_`` (moving samples used).
    """

    def __init__(
        self,
        moving_threshold_rad_s: float = 0.5,
        min_moving_samples: int = 60,
        min_explained: float = 0.5,
        min_skew: float = 0.2,
        prior_axis: tuple[float, float, float] | None = None,
    ):
        #: Samples with |ω| below this are standing or sway and are left out of the sums, rad/s.
        self.moving_threshold_rad_s = moving_threshold_rad_s
        #: Fewer moving samples than this give no axis yet.
        self.min_moving_samples = min_moving_samples
        #: An axis explaining less of the rotation than this is not a walking shank's (no axis is reported).
        self.min_explained = min_explained
        #: |skew| below this leaves the sign to the prior (when there is one).
        self.min_skew = min_skew
        #: Expected positive-swing axis in the sensor frame (``EXPECTED_SWING_AXIS_SENSOR``), or ``None``.
        self.prior_axis = prior_axis
        self.reset()

    def reset(self) -> SagittalAxis:
        """Forget everything accumulated."""
        self._m2 = np.zeros((3, 3))
        self._m3 = np.zeros((3, 3, 3))
        self.n_moving_ = 0
        self.axis_: FloatArray | None = None
        self.explained_ = 0.0
        self.skew_ = 0.0
        self.sign_from_prior_ = False
        self.angle_to_prior_deg_: float | None = None
        return self

    def fit(self, gyr_rad_s: FloatArray, valid: BoolArray | None = None) -> SagittalAxis:
        """Estimate the axis from a whole recording (``reset`` + ``update``); results as in the class docstring."""
        return self.reset().update(gyr_rad_s, valid)

    def update(self, gyr_rad_s: FloatArray, valid: BoolArray | None = None) -> SagittalAxis:
        """Add a block of gyroscope rows (N, 3) in rad/s; rows not ``valid`` or not finite are skipped."""
        gyr = np.asarray(gyr_rad_s, dtype=float).reshape(-1, 3)
        keep = np.all(np.isfinite(gyr), axis=1)
        if valid is not None:
            keep &= np.asarray(valid, dtype=bool)
        gyr = gyr[keep]
        gyr = gyr[np.einsum("ij,ij->i", gyr, gyr) > self.moving_threshold_rad_s**2]
        if gyr.size:
            self._m2 += gyr.T @ gyr
            self._m3 += np.einsum("ni,nj,nk->ijk", gyr, gyr, gyr)
            self.n_moving_ += len(gyr)
        self._solve()
        return self

    def _solve(self) -> None:
        if self.n_moving_ < self.min_moving_samples:
            return
        eigenvalues, eigenvectors = np.linalg.eigh(self._m2)
        total = float(eigenvalues.sum())
        axis = eigenvectors[:, -1]
        explained = float(eigenvalues[-1] / total) if total > 0 else 0.0
        if explained < self.min_explained:
            self.axis_, self.explained_ = None, explained
            return
        second = float(eigenvalues[-1] / self.n_moving_)
        third = float(np.einsum("ijk,i,j,k->", self._m3, axis, axis, axis) / self.n_moving_)
        skew = third / second**1.5 if second > 0 else 0.0
        prior = None if self.prior_axis is None else np.asarray(self.prior_axis, dtype=float)
        self.sign_from_prior_ = abs(skew) < self.min_skew and prior is not None
        flip = float(axis @ prior) < 0 if self.sign_from_prior_ else skew < 0
        if flip:
            axis, skew = -axis, -skew
        self.axis_, self.explained_, self.skew_ = axis, explained, skew
        if prior is not None:
            cos = float(np.clip(axis @ prior / np.linalg.norm(prior), -1.0, 1.0))
            self.angle_to_prior_deg_ = float(np.degrees(np.arccos(cos)))


class FixedAxis:
    """A known swing axis (e.g. from a data set's documented sensor frame), with :class:`SagittalAxis`'s interface.

    Results: ``axis_`` (the given axis, normalised), ``explained_`` (share of the rotation about it, from the data),
    ``n_moving_``.
    """

    def __init__(self, axis_sensor: tuple[float, float, float] = (0.0, 1.0, 0.0), moving_threshold_rad_s: float = 0.5):
        #: Positive-swing axis in the sensor frame.
        self.axis_sensor = axis_sensor
        #: As in :class:`SagittalAxis`, for ``explained_``.
        self.moving_threshold_rad_s = moving_threshold_rad_s
        self.reset()

    def reset(self) -> FixedAxis:
        """Forget the accumulated power (the axis stays)."""
        axis = np.asarray(self.axis_sensor, dtype=float)
        self.axis_: FloatArray | None = axis / np.linalg.norm(axis)
        self._power = np.zeros(2)
        self.explained_ = 0.0
        self.n_moving_ = 0
        return self

    def fit(self, gyr_rad_s: FloatArray, valid: BoolArray | None = None) -> FixedAxis:
        """``reset`` + ``update``."""
        return self.reset().update(gyr_rad_s, valid)

    def update(self, gyr_rad_s: FloatArray, valid: BoolArray | None = None) -> FixedAxis:
        """Accumulate how much of the rotation the axis explains (the axis itself does not change)."""
        gyr = np.asarray(gyr_rad_s, dtype=float).reshape(-1, 3)
        keep = np.all(np.isfinite(gyr), axis=1) if valid is None else np.asarray(valid, dtype=bool)
        gyr = gyr[keep & np.all(np.isfinite(gyr), axis=1)]
        gyr = gyr[np.einsum("ij,ij->i", gyr, gyr) > self.moving_threshold_rad_s**2]
        self._power += (float(np.sum((gyr @ self.axis_) ** 2)), float(np.sum(gyr * gyr)))
        self.n_moving_ += len(gyr)
        self.explained_ = self._power[0] / self._power[1] if self._power[1] > 0 else 0.0
        return self
