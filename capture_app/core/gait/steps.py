"""Step lengths: how each stride splits into its two steps, from the shanks' inclinations at initial contact.

At an initial contact both feet are on the floor. With each leg approximated as a straight segment along its shank
(the leading knee is nearly straight at contact, the trailing one in late stance), the distance from the trailing
to the leading ankle is ``L (sin φ_trail − sin φ_lead)``, φ being the shank's inclination from vertical in the
sagittal plane (+ = knee ahead of the ankle): the inverted-pendulum step geometry (e.g. Zijlstra & Hof 2003 for the
body, Aminian et al. 2002 for the legs). The leg length cancels: over the steady strides, each side's mean
``u = sin φ_trail − sin φ_lead`` sets its share of the stride, and the two steps add up to the mean stride length
(:mod:`.distance`):

    step_length_side = stride_length · ū_side / (ū_left + ū_right).

Shank inclination without a fusion filter: the gyroscope is integrated to the sensor's rotation relative to the
start (bias from the still rows removed); over one stride of steady walking the mean linear acceleration is zero, so
the specific force, rotated into that integration frame and averaged over the stride, points straight up (the
stride-wise zero-mean-acceleration assumption behind foot-trajectory drift correction, e.g. Rampp et al. 2015, here
used for tilt). That gives 'up' in the sensor frame at every sample of the stride; the inclination is its angle to
the shank's long axis (the gravity direction while standing, or the stride-mean one when there was no still period)
in the plane normal to the swing axis.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from capture_app.core.gait.events import SIDES
from capture_app.core.gait.strides import Stride, integrate_rotation, other_side
from sensor_drivers.frames import G_M_S2

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class ShankInclination:
    """Sagittal inclination of one shank during the strides given (module docstring).

    Results: ``inclination_rad_`` (per grid row; NaN outside the strides and in gaps; + = knee ahead of the ankle)
    and ``long_axis_`` (the shank's long axis in the sensor frame).
    """

    def __init__(self, still_gyr_rad_s: float = 0.1, still_acc_m_s2: float = 0.5):
        #: Still rows for the gyroscope bias and the long axis: |ω| below this, rad/s …
        self.still_gyr_rad_s = still_gyr_rad_s
        #: … and |a| within this of g, m/s².
        self.still_acc_m_s2 = still_acc_m_s2

    def estimate(
        self,
        time_s: FloatArray,
        gyr_rad_s: FloatArray,
        acc_m_s2: FloatArray,
        valid: BoolArray,
        swing_axis: FloatArray,
        strides: list[tuple[float, float]],
    ) -> ShankInclination:
        """Inclination over each ``(start_s, end_s)`` stride (a stride must lie in one run of valid rows)."""
        n = time_s.size
        self.inclination_rad_ = np.full(n, np.nan)
        axis = np.asarray(swing_axis, dtype=float)
        ok = np.asarray(valid, dtype=bool) & np.all(np.isfinite(gyr_rad_s), 1) & np.all(np.isfinite(acc_m_s2), 1)
        still = ok.copy()
        still[ok] = (np.linalg.norm(gyr_rad_s[ok], axis=1) < self.still_gyr_rad_s) & (
            np.abs(np.linalg.norm(acc_m_s2[ok], axis=1) - G_M_S2) < self.still_acc_m_s2
        )
        has_still = still.sum() >= 10
        bias = np.median(gyr_rad_s[still], axis=0) if has_still else np.zeros(3)
        long_axis = acc_m_s2[still].mean(axis=0) if has_still else None
        for start_s, end_s in strides:
            i0, i1 = np.searchsorted(time_s, [start_s, end_s])
            i1 = min(i1 + 1, n)
            if i1 - i0 < 10 or not ok[i0:i1].all():
                continue
            gyr, acc = gyr_rad_s[i0:i1] - bias, acc_m_s2[i0:i1]
            rotation = integrate_rotation(gyr, np.diff(time_s[i0:i1]))
            force = np.einsum("nij,nj->ni", rotation, acc)
            up = force.mean(axis=0)
            if np.linalg.norm(up) < 0.5 * G_M_S2:
                continue
            up /= np.linalg.norm(up)
            up_sensor = np.einsum("nji,j->ni", rotation, up)  # world up in the sensor frame, per row
            shank = long_axis if long_axis is not None else up_sensor.mean(axis=0)
            shank = shank - (shank @ axis) * axis
            shank /= np.linalg.norm(shank)
            forward = np.cross(shank, axis)  # a swing (positive about the axis) moves the ankle forward
            self.inclination_rad_[i0:i1] = np.arctan2(-(up_sensor @ forward), up_sensor @ shank)
        self.long_axis_ = long_axis
        return self


def step_lengths_m(
    strides: list[Stride], time_s: FloatArray, inclination: dict[str, FloatArray]
) -> dict[tuple[str, float], float]:
    """Step length ending at each stride's ``ic_s`` (key ``(side, ic_s)``), from the module docstring's split.

    Empty unless both sides have at least two steady strides with inclinations and stride lengths.
    """
    u: dict[tuple[str, float], float] = {}
    for stride in strides:
        other = other_side(stride.side)
        if stride.side not in inclination or other not in inclination:
            continue
        i = int(np.clip(np.searchsorted(time_s, stride.ic_s), 0, time_s.size - 1))
        lead, trail = inclination[stride.side][i], inclination[other][i]
        if np.isfinite(lead) and np.isfinite(trail):
            u[stride.side, stride.ic_s] = float(np.sin(trail) - np.sin(lead))
    steady = [s for s in strides if s.steady and s.length_m is not None and (s.side, s.ic_s) in u]
    means = {side: [u[s.side, s.ic_s] for s in steady if s.side == side] for side in SIDES}
    if any(len(values) < 2 for values in means.values()):
        return {}
    total = sum(float(np.mean(values)) for values in means.values())
    if total <= 0:
        return {}
    scale = float(np.mean([s.length_m for s in steady])) / total  # type: ignore[misc]
    return {key: scale * value for key, value in u.items()}
