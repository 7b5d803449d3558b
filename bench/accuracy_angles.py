"""Joint-angle accuracy against the virtual patient's truth, and the CPU cost of the live orientation chain.

Issue 3 goals: hip and knee sagittal-angle RMSE ≤ 3° over the walking section on virtual-patient clips (healthy and
hemiparetic, realistic sensor noise); frontal and transverse errors reported as measured; live fusion +
calibration + angles for 5 sensors at 100 Hz as a share of one core.

Each scenario is a virtual patient written to a clip with realistic receive times (serial transport), read back
through ``signals_from_clip`` (100 Hz grid), and run through :class:`OrientationPipeline` twice: batch
(``estimate``) and live (``update`` in 50 ms blocks). Errors are taken over ``[walk_start_s, walk_end_s)`` of the
truth (gait initiation and termination included), where the estimate exists; the truth (200 Hz) is taken at the
nearest sample. Figures: RMSE and mean error (bias) per angle, degrees, and the sensor-to-segment mounting error
(rotation angle between estimated and true ``R_segment_sensor``), degrees. Where ``../shared/data`` exists, the
OpenSense Xsens walk is also run (no truth there: angle ranges; docs/joint-angles.md says what they are compared
with).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from capture_app.core.orientation.joint_angles import ANGLE_NAMES
from capture_app.core.orientation.pipeline import OrientationPipeline
from capture_app.core.orientation.rotations import rotation_angle_deg
from capture_app.core.signals import KitSignals, SiteSignals, signals_from_clip
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.sim import VirtualPatient, from_source_options
from sensor_drivers.sim.clip_export import truth_path_for, write_virtual_clip
from sensor_drivers.sim.truth import GroundTruth

SAGITTAL = ("hip_flexion_l_deg", "hip_flexion_r_deg", "knee_flexion_l_deg", "knee_flexion_r_deg")

#: (name, profile, options). Full runs walk the whole 20 m walkway with 5 s standing at each end.
SCENARIOS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("healthy_1.0", "healthy", {"speed": "1.0", "seed": "11"}),
    ("healthy_1.25", "healthy", {"speed": "1.25", "seed": "12"}),
    ("hemiparetic_left_0.5", "hemiparetic", {"side": "left", "speed": "0.5", "seed": "13"}),
    ("hemiparetic_right_0.35", "hemiparetic", {"side": "right", "speed": "0.35", "seed": "14"}),
)
QUICK_OPTIONS = {"walkway": "6", "still_start": "3", "still_end": "2"}
#: Quick runs (smoke tests) take one healthy and one hemiparetic scenario.
QUICK_SCENARIOS = ("healthy_1.0", "hemiparetic_left_0.5")
LIVE_BLOCK_S = 0.05


def virtual_kit(profile: str, options: dict[str, str], directory: Path) -> tuple[KitSignals, GroundTruth]:
    """A virtual patient's clip, written and read back as the app would see it, and its truth."""
    recording = VirtualPatient(from_source_options(profile, options)).generate()
    path = directory / f"{profile}-{abs(hash(tuple(sorted(options.items()))))}.stclip"
    write_virtual_clip(recording, path, overwrite=True)
    return signals_from_clip(read_clip(path)), GroundTruth.load(truth_path_for(path))


def blocks(kit: KitSignals, block_s: float = LIVE_BLOCK_S):
    """Consecutive blocks of ``block_s`` of a kit, as the live chain receives them."""
    n = max(1, round(block_s * kit.rate_hz))
    for a in range(0, kit.n_samples, n):
        b = min(kit.n_samples, a + n)
        yield KitSignals(kit.rate_hz, kit.time_s[a:b], {
            site: SiteSignals(
                s.sensor_id, s.valid[a:b], s.acc_m_s2[a:b], s.gyr_rad_s[a:b],
                None if s.mag_ut is None else s.mag_ut[a:b], None if s.quat_wxyz is None else s.quat_wxyz[a:b],
            )
            for site, s in kit.sites.items()
        })


def run_live(kit: KitSignals, pipeline: OrientationPipeline | None = None,
             block_s: float = LIVE_BLOCK_S) -> tuple[dict[str, np.ndarray], OrientationPipeline, float]:
    """Feed ``kit`` block by block; returns the angles on the kit's rows (NaN before calibration), the pipeline and
    the CPU time it took, s (process time: other load on a shared machine does not count)."""
    live = (pipeline or OrientationPipeline()).reset()
    angles = {name: np.full(kit.n_samples, np.nan) for name in ANGLE_NAMES}
    row = 0
    parts = list(blocks(kit, block_s))
    t0 = time.process_time()
    for block in parts:
        live.update(block)
        for name, values in live.angles_deg_.items():
            angles[name][row:row + block.n_samples] = values
        row += block.n_samples
    return angles, live, time.process_time() - t0


def angle_errors(angles: dict[str, np.ndarray], time_s: np.ndarray, truth: GroundTruth) -> dict[str, dict[str, float]]:
    """RMSE and bias (degrees) per angle over the truth's walking section, where the estimate exists."""
    step = truth.time_s[1] - truth.time_s[0]
    idx = np.clip(np.round((time_s - truth.time_s[0]) / step).astype(int), 0, truth.time_s.size - 1)
    walking = (time_s >= truth.walk_start_s) & (time_s < truth.walk_end_s)
    out = {}
    for name, values in angles.items():
        ok = walking & np.isfinite(values)
        if not ok.any():
            continue
        err = values[ok] - truth.joint_angles_deg[name][idx[ok]]
        out[name] = {"rmse_deg": float(np.sqrt(np.mean(err**2))), "bias_deg": float(np.mean(err)),
                     "coverage": float(ok.sum() / walking.sum())}
    return out


def mounting_errors_deg(pipeline: OrientationPipeline, truth: GroundTruth) -> dict[str, float]:
    """Angle between estimated and true ``R_segment_sensor`` per site, degrees."""
    cal = pipeline.calibration_
    if cal is None:
        return {}
    return {
        site.value: float(rotation_angle_deg(
            c.R_segment_sensor @ truth.sensors[site].mounting.rotation_segment_sensor.T))
        for site, c in cal.sites_.items()
    }


#: The OpenSense example's sensors on our sites (ids from ../shared/data/SOURCES.md).
OPENSENSE_SITES = {"00B42279": "pelvis", "00B4227C": "thigh_r", "00B4227D": "shank_r", "00B421EE": "thigh_l",
                   "00B421ED": "shank_l"}
#: The window OpenSim's IMU-IK tutorial solves (imuInverseKinematics_Setup.xml, time_range), s.
OPENSENSE_IK_WINDOW_S = (10.5, 17.0)
OPENSENSE_ANGLES = ("hip_flexion_l_deg", "hip_flexion_r_deg", "knee_flexion_l_deg", "knee_flexion_r_deg",
                    "hip_adduction_l_deg", "hip_adduction_r_deg", "hip_rotation_l_deg", "hip_rotation_r_deg")


def shared_data_dir() -> Path | None:
    """``../shared/data`` (the nearest ``shared/data`` above the repository, or ``STRIDETWIN_SHARED_DATA``)."""
    if override := os.environ.get("STRIDETWIN_SHARED_DATA"):
        return Path(override)
    for parent in Path(__file__).resolve().parents[1].parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return None


def opensense_kit(shared_data: Path, directory: Path) -> KitSignals:
    """The OpenSense Xsens walk (8 MTw at 100 Hz; we use the five on our sites), imported as the app would."""
    from sensor_drivers.recording.importers import import_files

    folder = shared_data / "imu" / "opensense_xsens" / "OpenSenseExampleIMUData"
    files = [f for f in sorted(folder.glob("*.txt")) if f.stem.split("_")[-1] in OPENSENSE_SITES]
    out = directory / "opensense.stclip"
    import_files("xsens", files, out, sites=OPENSENSE_SITES, overwrite=True)
    return signals_from_clip(read_clip(out))


def opensense_ranges(pipeline: OrientationPipeline, kit: KitSignals) -> dict:
    """Angle ranges (1st-99th percentile and median, degrees) over the walk and over the IK tutorial's window."""
    out: dict = {}
    walking = pipeline.calibration_.walking_s_ if pipeline.calibration_ is not None else None
    windows = {"walk": walking, "ik_window": OPENSENSE_IK_WINDOW_S}
    for label, window in windows.items():
        if window is None:
            continue
        rows = (kit.time_s >= window[0]) & (kit.time_s < window[1])
        out[label] = {"window_s": [round(window[0], 2), round(window[1], 2)]}
        for name in OPENSENSE_ANGLES:
            values = pipeline.angles_deg_.get(name, np.array([]))[rows]
            values = values[np.isfinite(values)]
            if values.size:
                p1, p50, p99 = np.percentile(values, [1, 50, 99])
                out[label][name] = {"p1": round(float(p1), 1), "median": round(float(p50), 1),
                                    "p99": round(float(p99), 1)}
    return out


def _round(d: dict) -> dict:
    return {k: (_round(v) if isinstance(v, dict) else round(v, 2) if isinstance(v, float) else v) for k, v in d.items()}


def run(quick: bool = False) -> dict:
    """Measure every scenario; ``quick``: two scenarios on a 6 m walkway (rough figures)."""
    results: dict = {}
    worst_sagittal = {"batch": 0.0, "live": 0.0}
    cpu = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, profile, options in SCENARIOS:
            if quick and name not in QUICK_SCENARIOS:
                continue
            opts = {**options, **(QUICK_OPTIONS if quick else {})}
            kit, truth = virtual_kit(profile, opts, Path(tmp))
            t0 = time.process_time()
            batch = OrientationPipeline().estimate(kit)
            batch_s = time.process_time() - t0
            live_angles, _live, live_s = run_live(kit)
            duration_s = float(kit.time_s[-1] - kit.time_s[0])
            errors = {"batch": angle_errors(batch.angles_deg_, kit.time_s, truth),
                      "live": angle_errors(live_angles, kit.time_s, truth)}
            for mode in ("batch", "live"):
                sagittal = [errors[mode][a]["rmse_deg"] for a in SAGITTAL if a in errors[mode]]
                worst_sagittal[mode] = max([worst_sagittal[mode], *sagittal])
            results[name] = {
                "duration_s": round(duration_s, 1),
                "batch_s": round(batch_s, 3),
                "live_cpu_pct_of_core": round(100.0 * live_s / duration_s, 2),
                "rmse_deg": {mode: {a: round(e["rmse_deg"], 2) for a, e in errors[mode].items()} for mode in errors},
                "bias_deg": {mode: {a: round(e["bias_deg"], 2) for a, e in errors[mode].items()} for mode in errors},
                "live_coverage": round(min((e["coverage"] for e in errors["live"].values()), default=0.0), 2),
                "mounting_error_deg": _round(mounting_errors_deg(batch, truth)),
                "verdicts": sorted({v.code for v in batch.verdicts_}),
            }
            if cpu is None:
                cpu = results[name]["live_cpu_pct_of_core"]
        shared = shared_data_dir()
        if shared is not None and (shared / "imu" / "opensense_xsens").is_dir():
            kit = opensense_kit(shared, Path(tmp))
            pipeline = OrientationPipeline().estimate(kit)
            results["opensense_xsens"] = {
                "angle_ranges_deg": opensense_ranges(pipeline, kit),
                "calibration": {site.value: {"method": c.method, "confidence": round(c.confidence, 2),
                                             **_round({k: float(v) for k, v in c.figures.items()})}
                                for site, c in pipeline.calibration_.sites_.items()},
                "verdicts": sorted({v.code for v in pipeline.verdicts_}),
            }
    results["worst_sagittal_rmse_deg"] = _round(worst_sagittal)
    results["target_sagittal_rmse_deg"] = 3.0
    results["live_cpu_pct_of_core_5_sensors_100hz"] = cpu
    return results
