"""The filter equations agree with ``ahrs`` (the reference) and with the frames they claim."""

from __future__ import annotations

import numpy as np
import pytest
from ahrs.common.orientation import acc2q
from ahrs.filters import EKF as AHRS_EKF
from ahrs.filters import Madgwick as AhrsMadgwick
from ahrs.filters import Mahony as AhrsMahony
from scipy.spatial.transform import Rotation

from capture_app.core.orientation.filters import WORLD_FRAME_MARG, Ekf, FilterState, Madgwick, Mahony
from capture_app.core.orientation.fusion import quat_from_gravity, quat_from_gravity_and_field
from capture_app.core.orientation.rotations import matrix_from_quat
from sensor_drivers.frames import EARTH_FIELD_WORLD_UT, G_M_S2
from sensor_drivers.quaternion import wxyz_from_rotation

RATE_HZ = 100.0
M_REF_ENU = EARTH_FIELD_WORLD_UT / np.linalg.norm(EARTH_FIELD_WORLD_UT)


@pytest.fixture(scope="module")
def signals() -> dict[str, np.ndarray]:
    """Rough random IMU rows: fast rotation, accelerations around gravity, a disturbed field."""
    rng = np.random.default_rng(7)
    n = 300
    q0 = np.array([0.9, 0.1, -0.3, 0.2])
    return {
        "gyr": rng.normal(0.0, 1.0, (n, 3)),
        "acc": np.array([0.0, 0.0, G_M_S2]) + rng.normal(0.0, 2.0, (n, 3)),
        "mag": EARTH_FIELD_WORLD_UT + rng.normal(0.0, 5.0, (n, 3)),
        "q0": q0 / np.linalg.norm(q0),
    }


def _ours(flt, s, with_mag: bool) -> np.ndarray:
    _, q = flt.run(FilterState.at(s["q0"]), s["gyr"][1:], s["acc"][1:], s["mag"][1:] if with_mag else None,
                   1.0 / RATE_HZ)
    return np.vstack([s["q0"], q])


def test_madgwick_matches_ahrs(signals) -> None:
    s = signals
    ref = AhrsMadgwick(gyr=s["gyr"], acc=s["acc"], q0=s["q0"], frequency=RATE_HZ, gain=0.1).Q
    np.testing.assert_allclose(_ours(Madgwick(gain=0.1), s, False), ref, atol=1e-12)
    # MARG: ahrs's batch mode ignores q0 for MARG, so compare per-sample updates.
    m = AhrsMadgwick(frequency=RATE_HZ, gain=0.1)
    ref = [s["q0"]]
    for k in range(1, len(s["gyr"])):
        ref.append(m.updateMARG(ref[-1], s["gyr"][k], s["acc"][k], s["mag"][k]))
    np.testing.assert_allclose(_ours(Madgwick(gain=0.1), s, True), np.array(ref), atol=1e-12)


def test_mahony_matches_ahrs(signals) -> None:
    s = signals
    ref = AhrsMahony(gyr=s["gyr"], acc=s["acc"], q0=s["q0"], frequency=RATE_HZ, k_P=0.8, k_I=0.2).Q
    np.testing.assert_allclose(_ours(Mahony(k_p=0.8, k_i=0.2), s, False), ref, atol=1e-12)
    ref = AhrsMahony(gyr=s["gyr"], acc=s["acc"], mag=s["mag"], q0=s["q0"], frequency=RATE_HZ, k_P=0.8, k_I=0.2).Q
    np.testing.assert_allclose(_ours(Mahony(k_p=0.8, k_i=0.2), s, True), ref, atol=1e-12)


def test_ekf_matches_ahrs(signals) -> None:
    s = signals
    # frame="NED" is what gives ahrs's EKF the gravity reference (0, 0, 1), i.e. z up for specific force.
    ref = AHRS_EKF(gyr=s["gyr"], acc=s["acc"], q0=s["q0"], frequency=RATE_HZ, frame="NED").Q
    np.testing.assert_allclose(_ours(Ekf(), s, False), ref, atol=1e-12)
    ref = AHRS_EKF(gyr=s["gyr"], acc=s["acc"], mag=s["mag"], q0=s["q0"], frequency=RATE_HZ, frame="NED",
                  magnetic_ref=M_REF_ENU.copy()).Q
    np.testing.assert_allclose(_ours(Ekf(m_ref=tuple(M_REF_ENU)), s, True), ref, atol=1e-12)


def test_gravity_initialisation_matches_ahrs_acc2q() -> None:
    for acc in ([0.0, 0.0, 9.81], [1.0, -2.0, 9.0], [9.0, 3.0, 1.0], [-0.5, 9.7, 0.3]):
        q = quat_from_gravity(np.array(acc))
        ref = acc2q(np.array(acc, dtype=float))
        assert min(np.abs(q - ref).max(), np.abs(q + ref).max()) < 1e-12


@pytest.mark.parametrize("flt", [Madgwick(gain=0.1), Mahony(k_p=1.0, k_i=0.0), Ekf()], ids=lambda f: f.name)
def test_still_sensor_in_a_known_attitude_gives_the_known_quaternion(flt) -> None:
    """A sensor lying still, tilted 30° about x then 20° about y, with the Earth's field: started from a wrong
    attitude, every filter converges to the true attitude in its stated world frame (6-axis: tilt only)."""
    truth = Rotation.from_euler("xy", [30.0, 20.0], degrees=True)  # sensor → world (ENU)
    R = truth.as_matrix()
    n = 12000  # Mahony turns the heading slowly with the field alone (k_p sets the rate for both)
    acc = np.tile(R.T @ [0.0, 0.0, G_M_S2], (n, 1))
    mag = np.tile(R.T @ EARTH_FIELD_WORLD_UT, (n, 1))
    gyr = np.tile([1e-9, 0.0, 0.0], (n, 1))  # non-zero: an all-zero row means "no update" in ahrs
    # 6-axis: the estimated world z seen from the sensor is the true one.
    _, q = flt.run(FilterState.at([1.0, 0.0, 0.0, 0.0]), gyr, acc, None, 0.01)
    up_in_sensor = matrix_from_quat(q[-1])[2]
    np.testing.assert_allclose(up_in_sensor, R[2], atol=2e-3)
    # 9-axis: the full attitude, in the filter's own world (Madgwick NWU, Mahony and EKF ENU).
    flt9 = Ekf(m_ref=tuple(M_REF_ENU)) if isinstance(flt, Ekf) else flt
    _, q = flt9.run(FilterState.at([1.0, 0.0, 0.0, 0.0]), gyr, acc, mag, 0.01)
    world = WORLD_FRAME_MARG[flt.name]
    enu_to_world = Rotation.from_euler("z", -90.0, degrees=True) if world == "NWU" else Rotation.identity()
    expected = wxyz_from_rotation(enu_to_world * truth)
    got = q[-1] if q[-1][0] >= 0 else -q[-1]
    np.testing.assert_allclose(got, expected, atol=3e-3)


def test_triad_initialisation_is_enu() -> None:
    truth = Rotation.from_euler("zyx", [50.0, -10.0, 15.0], degrees=True)
    R = truth.as_matrix()
    q = quat_from_gravity_and_field(R.T @ [0.0, 0.0, G_M_S2], R.T @ EARTH_FIELD_WORLD_UT)
    np.testing.assert_allclose(matrix_from_quat(q), R, atol=1e-9)


def test_zero_rows_mean_no_update_and_no_correction() -> None:
    q0 = np.array([0.8, 0.2, -0.4, 0.4]) / np.linalg.norm([0.8, 0.2, -0.4, 0.4])
    for flt in (Madgwick(gain=0.5), Mahony(k_p=1.0, k_i=0.0)):
        _, q = flt.run(FilterState.at(q0), np.zeros((5, 3)), np.tile([0.0, 0.0, 9.8], (5, 1)), None, 0.01)
        np.testing.assert_allclose(q, np.tile(q0, (5, 1)), atol=1e-15)
    # Zero accelerometer: pure gyroscope integration (also for the EKF, unlike ahrs; see Ekf's docstring).
    gyr = np.tile([0.0, 0.0, 1.0], (100, 1))
    for flt in (Madgwick(gain=0.5), Mahony(k_p=1.0, k_i=0.0), Ekf()):
        _, q = flt.run(FilterState.at([1.0, 0.0, 0.0, 0.0]), gyr, np.zeros((100, 3)), None, 0.01)
        angle = 2.0 * np.arctan2(q[-1, 3], q[-1, 0])
        assert angle == pytest.approx(1.0, abs=1e-3)
