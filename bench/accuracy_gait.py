"""Gait accuracy and cost (issue 3): events, strides and speed against known truth, and the live detector's CPU share.

Virtual patients (20 m walkway, realistic sensor errors and packet loss, written as clips with realistic receive
times, then gridded at 100 Hz like the app): healthy at its own speed and at 0.8 m/s, hemiparetic left at 0.5 m/s and
right at 0.3 m/s, each with its own seed. Per walk, in the truth's steady section: signed IC and FC timing error
(mean, SD, mean absolute) of the events placed in received data, and separately of those estimated across a short
bridged gap (``GaitEvent.estimated``; also over the whole walk, there being few), missed and extra events and strides;
gait speed, cadence, stance, double support, stride and step length against the truth. Estimated events being rare
at 0.5 % loss, a burst study measures them: each walk again with a loss burst of 30, 60 and 100 ms (up to the
bridging limit) placed on every steady IC (then every FC) of both legs, the true instant at a random point inside the
burst; per burst length, the events found, missed and estimated, and the estimated events' timing error.

Real data (``../shared/data/imu/gaitmap_foot``, the gaitmap example data, MIT; where present): foot-mounted IMUs,
so the shank logic is applied where it transfers. What was adapted: the swing axis is the data set's documented
medio-lateral axis (gaitmap foot sensor frame: x to the toe, y left, z up; ``gyr_ml = −gyr_y`` for both feet, swing
positive) instead of the PCA axis, because a foot's push-off rotation rivals its swing peak and the shank's
skew-based sign rule does not hold; everything else (event rules, impact refinement, strides, turn detection on the
foot's rotation about 'up') is unchanged. The healthy 2 × 20 m walk has mocap-derived events (``ic``, ``tc``,
``min_vel``) at 204.8 Hz: timing errors and stride counts are measured at the native rate and on the app's 100 Hz
grid. The multiple-sclerosis walk (102.4 Hz) and the stair walks have no event labels: stride counts and stride-time
statistics are reported.

Cost: process CPU time of :class:`LiveGait` fed 100 ms blocks (two shanks at 100 Hz), as a share of one core, and the
offline analysis time of a 60 s-class clip.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

WALKS: dict[str, tuple[str, dict[str, str]]] = {
    "healthy": ("healthy", {"seed": "21"}),
    "healthy_0.8": ("healthy", {"speed": "0.8", "seed": "22"}),
    "hemiparetic_l_0.5": ("hemiparetic", {"side": "left", "speed": "0.5", "seed": "23"}),
    "hemiparetic_r_0.3": ("hemiparetic", {"side": "right", "speed": "0.3", "seed": "24"}),
}
QUICK_WALKS = ("healthy", "hemiparetic_l_0.5")


def _shared_data() -> Path:
    """``../shared/data`` (``STRIDETWIN_SHARED_DATA`` overrides): the nearest ``shared/data`` above the repository."""
    if override := os.environ.get("STRIDETWIN_SHARED_DATA"):
        return Path(override)
    repo = Path(__file__).resolve().parents[1]
    return next((p / "shared" / "data" for p in repo.parents if (p / "shared" / "data").is_dir()),
                repo.parent / "shared" / "data")  # fmt: skip


GAITMAP_DIR = _shared_data() / "imu" / "gaitmap_foot"
#: A missed event counts as explained by lost data when the sensor lost rows this close to it (bridged gaps ≤ 0.1 s).
LOSS_MARGIN_S = 0.12
GAITMAP_RATE_HZ = 204.8
GAITMAP_MS_RATE_HZ = 102.4
#: gaitmap foot sensor frame: swing (dorsiflexion direction of the foot's rotation) is −gyr_y on both feet.
GAITMAP_SWING_AXIS = (0.0, -1.0, 0.0)


def run(quick: bool = False) -> dict:
    """Measure; ``quick`` runs two virtual walks and skips the cost loop repetitions."""
    results: dict = {}
    names = QUICK_WALKS if quick else tuple(WALKS)
    with tempfile.TemporaryDirectory() as folder:
        walks = {name: _virtual_walk(Path(folder), name) for name in names}
        per_walk = {name: _score_walk(*walk) for name, walk in walks.items()}
        results.update({f"vp_{name}_{k}": v for name, scores in per_walk.items() for k, v in scores.items()})
        results.update(_pooled(per_walk))
        results.update(_burst_study(walks))
        results.update(_cost(walks[names[-1]][0], repeats=1 if quick else 3))
    if GAITMAP_DIR.is_dir():
        results.update(gaitmap_healthy_scores())
        results.update(gaitmap_unlabelled_counts())
    else:
        results["gaitmap"] = f"skipped: {GAITMAP_DIR} not found"
    return results


# ---------------------------------------------------------------------------------------------- virtual patients


def _virtual_walk(folder: Path, name: str):
    from capture_app.core.signals import signals_from_clip
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.sim import VirtualPatient, from_source_options
    from sensor_drivers.sim.clip_export import write_virtual_clip

    profile, options = WALKS[name]
    recording = VirtualPatient(from_source_options(profile, {**options, "noise": "realistic"})).generate()
    path = folder / f"{name}.stclip"
    write_virtual_clip(recording, path, seed=int(options["seed"]))
    clip = read_clip(path)
    return signals_from_clip(clip), recording.truth, float(clip.metadata["protocol"]["walkway_length_m"])


def _errors(detected: np.ndarray, truth: np.ndarray, tolerance_s: float = 0.15) -> np.ndarray:
    out = np.full(truth.size, np.nan)
    for k, t in enumerate(truth):
        if detected.size and np.min(np.abs(detected - t)) <= tolerance_s:
            out[k] = detected[np.argmin(np.abs(detected - t))] - t
    return out


def _nearest(detected: np.ndarray, truth: np.ndarray, tolerance_s: float = 0.15) -> np.ndarray:
    """Index into ``detected`` of the detection matched to each truth time (-1 where none lies within tolerance)."""
    out = np.full(truth.size, -1)
    for k, t in enumerate(truth):
        if detected.size and np.min(np.abs(detected - t)) <= tolerance_s:
            out[k] = int(np.argmin(np.abs(detected - t)))
    return out


def _score_walk(kit, truth, walkway_length_m: float) -> dict:
    from capture_app.core.gait.analysis import GaitAnalysis

    analysis = GaitAnalysis().analyze(kit, walkway_length_m)
    out: dict = {}
    steady = (truth.steady_start_s, truth.steady_end_s)
    lost_s = _lost_times(kit)
    for kind in ("ic", "fc"):
        errors, estimated, estimated_walk, n_missed, n_extra, n_near_loss = [], [], [], 0, 0, 0
        for side in ("left", "right"):
            true = np.array([e.time_s for e in truth.events if e.side == side and e.kind == kind
                             and steady[0] <= e.time_s <= steady[1]])  # fmt: skip
            events = [e for e in analysis.events_ if e.side == side and e.kind == kind]
            found = np.array([e.time_s for e in events])
            is_estimated = np.array([e.estimated for e in events], dtype=bool)
            error = _errors(found, true)
            match = _nearest(found, true)
            n_missed += int(np.isnan(error).sum())
            n_near_loss += sum(bool(np.any(np.abs(lost_s[side] - t) <= LOSS_MARGIN_S)) for t in true[np.isnan(error)])
            inside = found[(found >= steady[0]) & (found <= steady[1])]
            n_extra += int(np.isnan(_errors(true, inside)).sum())
            # events placed in received data, and those estimated across a bridged gap, scored apart
            matched_estimated = np.array([m >= 0 and bool(is_estimated[m]) for m in match], dtype=bool)
            errors.append(error[(match >= 0) & ~matched_estimated])
            estimated.append(error[matched_estimated])
            whole = np.array([e.time_s for e in truth.events if e.side == side and e.kind == kind])
            estimated_walk.append(_errors(whole, found[is_estimated]))  # detection − nearest true event, negated
        e_ms = 1000.0 * np.concatenate(errors)
        est_ms = 1000.0 * np.concatenate(estimated)
        walk_ms = -1000.0 * np.concatenate(estimated_walk)
        out[f"{kind}_estimated_n"] = int(est_ms.size)
        out[f"{kind}_estimated_error_ms"] = [round(float(v), 1) for v in est_ms]
        out[f"{kind}_estimated_whole_walk_error_ms"] = [round(float(v), 1) for v in walk_ms if np.isfinite(v)]
        out[f"{kind}_n"] = int(e_ms.size)
        out[f"{kind}_error_mean_ms"] = round(float(e_ms.mean()), 1)
        out[f"{kind}_error_sd_ms"] = round(float(e_ms.std()), 1)
        out[f"{kind}_abs_error_mean_ms"] = round(float(np.abs(e_ms).mean()), 1)
        out[f"{kind}_missed"] = n_missed
        out[f"{kind}_missed_next_to_lost_data"] = n_near_loss
        out[f"{kind}_extra"] = n_extra
    true_strides = [s for s in truth.strides if s.steady]
    found = [s for s in analysis.strides_]
    out["steady_strides_true"] = len(true_strides)
    out["steady_strides_missed_next_to_lost_data"] = sum(
        not _stride_found(found, s)
        and any(np.any(np.abs(lost_s[s.side] - t) <= LOSS_MARGIN_S) for t in (s.ic_s, s.next_ic_s))
        for s in true_strides
    )  # fmt: skip
    out["steady_strides_missed"] = sum(not _stride_found(found, s) for s in true_strides)
    out["steady_strides_extra"] = sum(
        not any(f.side == s.side and abs(f.ic_s - s.ic_s) < 0.05 for s in truth.strides)
        for f in found if steady[0] <= f.ic_s and f.next_ic_s <= steady[1]
    )  # fmt: skip
    out["steady_strides_used"] = sum(s.steady for s in analysis.strides_)
    out["steady_strides_timing_excluded"] = sum(s.steady and bool(s.timing_excluded) for s in analysis.strides_)
    out["steady_strides_used_outside_truth_steady"] = sum(
        s.steady and not (steady[0] - 0.05 <= s.ic_s and s.next_ic_s <= steady[1] + 0.05) for s in analysis.strides_
    )
    m = analysis.metrics_
    out["speed_m_s"] = round(m.get("gait_speed_m_s", float("nan")), 4)
    out["speed_true_m_s"] = round(truth.steady_speed_m_s, 4)
    out["speed_error_pct"] = round(100.0 * (m.get("gait_speed_m_s", np.nan) / truth.steady_speed_m_s - 1), 2)
    first_fc = min(e.time_s for e in truth.events if e.kind == "fc")
    last_ic = max(e.time_s for e in truth.events if e.kind == "ic")
    true_mean = walkway_length_m / (last_ic - first_fc)
    out["mean_speed_error_pct"] = round(100.0 * (m.get("mean_speed_m_s", np.nan) / true_mean - 1), 2)
    out["cadence_error_pct"] = round(100.0 * (m.get("cadence_steps_min", np.nan) / truth.cadence_steps_per_min - 1), 2)
    out["stride_length_error_pct"] = round(100.0 * (
        np.mean([m.get("stride_length_l_m", np.nan), m.get("stride_length_r_m", np.nan)]) / truth.stride_length_m - 1
    ), 2)  # fmt: skip
    out["stance_error_pct_points"] = round(max(
        abs(m.get(f"stance_pct_{s[0]}", np.nan) - truth.stance_pct[s]) for s in ("left", "right")
    ), 2)  # fmt: skip
    out["double_support_error_pct_points"] = round(m.get("double_support_pct", np.nan) - truth.double_support_pct, 2)
    steps = _true_step_lengths(truth)
    out["step_length_error_pct"] = {
        s: round(100.0 * (m.get(f"step_length_{s[0]}_m", np.nan) / steps[s] - 1), 1) for s in ("left", "right")
    }
    out["verdicts"] = sorted({v.code for v in analysis.verdicts_})
    return out


#: Loss bursts (s) of the burst study, up to the bridging limit (``max_bridge_s`` = 0.1 s).
BURST_S = (0.03, 0.06, 0.1)


def _burst_study(walks: dict) -> dict:
    """Timing error of events estimated across a bridged gap, with a loss burst on every steady IC or FC (module
    docstring); pooled over the walks, per kind and burst length."""
    from dataclasses import replace

    from capture_app.core.gait.analysis import GaitAnalysis
    from capture_app.core.signals import KitSignals
    from sensor_drivers.sites import Site

    shanks = {"left": Site.SHANK_L, "right": Site.SHANK_R}
    out: dict = {}
    for kind in ("ic", "fc"):
        for burst_s in BURST_S:
            n_rows = round(burst_s * 100.0)
            errors, n_true, n_missed, n_measured, n_strides_missed = [], 0, 0, 0, 0
            for k, (kit, truth, walkway_length_m) in enumerate(walks.values()):
                rng = np.random.default_rng(100 + k)
                steady = [e for e in truth.events if e.kind == kind
                          and truth.steady_start_s <= e.time_s <= truth.steady_end_s]  # fmt: skip
                sites = dict(kit.sites)
                for side, site in shanks.items():
                    signals = kit.sites[site]
                    valid, acc, gyr = signals.valid.copy(), signals.acc_m_s2.copy(), signals.gyr_rad_s.copy()
                    for e in (e for e in steady if e.side == side):
                        start = int(np.searchsorted(kit.time_s, e.time_s - rng.uniform(0.0, burst_s)))
                        valid[start : start + n_rows] = False
                        acc[start : start + n_rows] = np.nan
                        gyr[start : start + n_rows] = np.nan
                    sites[site] = replace(signals, valid=valid, acc_m_s2=acc, gyr_rad_s=gyr)
                analysis = GaitAnalysis().analyze(KitSignals(kit.rate_hz, kit.time_s, sites), walkway_length_m)
                for side in shanks:
                    events = [e for e in analysis.events_ if e.side == side and e.kind == kind]
                    found = np.array([e.time_s for e in events])
                    true = np.array([e.time_s for e in steady if e.side == side])
                    match = _nearest(found, true)
                    n_true += true.size
                    n_missed += int(np.sum(match < 0))
                    for t, m in zip(true, match, strict=True):
                        if m >= 0 and events[m].estimated:
                            errors.append(1000.0 * (found[m] - t))
                        elif m >= 0:
                            n_measured += 1
                n_strides_missed += sum(not _stride_found(analysis.strides_, s) for s in truth.strides if s.steady)
            e = np.array(errors)
            tag = f"vp_burst_{kind}_{round(1000 * burst_s)}ms"
            out[f"{tag}_events"] = n_true
            out[f"{tag}_missed"] = n_missed
            out[f"{tag}_found_measured"] = n_measured  # found although the burst covered it: the instant lay at its end
            out[f"{tag}_estimated"] = int(e.size)
            if e.size:
                out[f"{tag}_estimated_error_mean_ms"] = round(float(e.mean()), 1)
                out[f"{tag}_estimated_error_sd_ms"] = round(float(e.std()), 1)
                out[f"{tag}_estimated_abs_error_mean_ms"] = round(float(np.abs(e).mean()), 1)
                out[f"{tag}_estimated_abs_error_max_ms"] = round(float(np.abs(e).max()), 1)
            out[f"{tag}_steady_strides_missed"] = n_strides_missed
    return out


def _stride_found(found: list, true) -> bool:
    """A detected stride of the same side with both contacts within 50 ms of the true stride's (150 ms for a contact
    estimated across a short gap: such a contact can be off by up to the gap, or more)."""
    def close(f, name: str, t_true: float) -> bool:
        return abs(getattr(f, f"{name}_s") - t_true) < (0.15 if name in f.estimated else 0.05)

    return any(f.side == true.side and close(f, "ic", true.ic_s) and close(f, "next_ic", true.next_ic_s)
               for f in found)  # fmt: skip


def _lost_times(kit) -> dict[str, np.ndarray]:
    """Grid times at which each shank delivered nothing (packet loss, disconnects)."""
    from sensor_drivers.sites import Site

    return {side: kit.time_s[~kit.sites[site].valid] for side, site in (("left", Site.SHANK_L),
                                                                        ("right", Site.SHANK_R))}  # fmt: skip


def _true_step_lengths(truth) -> dict[str, float]:
    """Mean steady step length per side from the truth's ankle positions at each contact."""
    steps: dict[str, list[float]] = {"left": [], "right": []}
    for e in truth.events:
        if e.kind == "ic" and truth.steady_start_s <= e.time_s <= truth.steady_end_s:
            i = int(np.searchsorted(truth.time_s, e.time_s))
            own = truth.position_world_m[f"foot_{e.side[0]}"][i, 0]
            other = truth.position_world_m["foot_" + ("r" if e.side == "left" else "l")][i, 0]
            steps[e.side].append(own - other)
    return {side: float(np.mean(v)) for side, v in steps.items()}


def _pooled(per_walk: dict[str, dict]) -> dict:
    out: dict = {}
    for kind in ("ic", "fc"):
        n = np.array([w[f"{kind}_n"] for w in per_walk.values()])
        means = np.array([w[f"{kind}_error_mean_ms"] for w in per_walk.values()])
        out[f"vp_all_{kind}_error_mean_ms"] = round(float(np.sum(n * means) / n.sum()), 1)
        out[f"vp_all_{kind}_abs_error_mean_ms"] = round(float(np.sum(
            n * np.array([w[f"{kind}_abs_error_mean_ms"] for w in per_walk.values()])) / n.sum()), 1)  # fmt: skip
        out[f"vp_all_{kind}_missed_extra"] = int(
            sum(w[f"{kind}_missed"] + w[f"{kind}_extra"] for w in per_walk.values())
        )
        estimated = np.array([v for w in per_walk.values() for v in w[f"{kind}_estimated_whole_walk_error_ms"]])
        out[f"vp_all_{kind}_estimated_whole_walk_n"] = int(estimated.size)
        if estimated.size:
            out[f"vp_all_{kind}_estimated_whole_walk_error_mean_ms"] = round(float(estimated.mean()), 1)
            out[f"vp_all_{kind}_estimated_whole_walk_abs_error_max_ms"] = round(float(np.abs(estimated).max()), 1)
    out["vp_all_steady_strides_missed_extra"] = int(
        sum(w["steady_strides_missed"] + w["steady_strides_extra"] for w in per_walk.values())
    )
    out["vp_all_speed_abs_error_max_pct"] = max(abs(w["speed_error_pct"]) for w in per_walk.values())
    return out


def _cost(kit, repeats: int) -> dict:
    from capture_app.core.gait.analysis import GaitAnalysis, LiveGait
    from capture_app.core.signals import KitSignals, SiteSignals
    from sensor_drivers.sites import Site

    shanks = (Site.SHANK_L, Site.SHANK_R)
    block_rows = round(0.1 * kit.rate_hz)
    blocks = [
        KitSignals(kit.rate_hz, kit.time_s[i : i + block_rows], {
            site: SiteSignals(s.sensor_id, s.valid[i : i + block_rows], s.acc_m_s2[i : i + block_rows],
                              s.gyr_rad_s[i : i + block_rows])
            for site, s in kit.sites.items() if site in shanks
        })
        for i in range(0, kit.n_samples, block_rows)
    ]  # fmt: skip
    duration_s = float(kit.time_s[-1] - kit.time_s[0])
    cpu = []
    for _ in range(repeats):
        live = LiveGait(rate_hz=kit.rate_hz)
        start = time.process_time()
        for block in blocks:
            live.update(block)
        cpu.append(time.process_time() - start)
    offline = []
    for _ in range(repeats):
        start = time.process_time()
        GaitAnalysis().analyze(kit, 20.0)
        offline.append(time.process_time() - start)
    return {
        "live_gait_2_shanks_100hz_cpu_pct_of_core": round(100.0 * min(cpu) / duration_s, 2),
        "live_gait_block_cost_ms": round(1000.0 * min(cpu) / len(blocks), 3),
        "offline_gait_analysis_s": round(min(offline), 3),
        "offline_clip_duration_s": round(duration_s, 1),
    }


# ------------------------------------------------------------------------------------------------ gaitmap data


def load_gaitmap_imu(name: str, folder: Path = GAITMAP_DIR) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A gaitmap two-header-row IMU csv (``imu_sample*.csv``): ``{side: (acc_m_s2 (N,3), gyr_rad_s (N,3))}``.

    The files' first two rows name the sensor (``left_sensor``/``right_sensor``) and axis (``acc_x`` … ``gyr_z``) of
    each column; accelerations are m/s², angular rates deg/s (converted here).
    """
    with open(folder / name, newline="") as f:
        rows = list(csv.reader(f))
    sensors, axes = rows[0][1:], rows[1][1:]
    data = np.array([[float(v) for v in row[1:]] for row in rows[2:]])
    out = {}
    for side in ("left", "right"):
        columns = {axis: data[:, i] for i, (sensor, axis) in enumerate(zip(sensors, axes, strict=True))
                   if sensor == f"{side}_sensor"}  # fmt: skip
        acc = np.column_stack([columns[f"acc_{k}"] for k in "xyz"])
        gyr = np.radians(np.column_stack([columns[f"gyr_{k}"] for k in "xyz"]))
        out[side] = (acc, gyr)
    return out


def load_gaitmap_ms(folder: Path = GAITMAP_DIR) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The multiple-sclerosis walk (one file per foot, 102.4 Hz, not synchronised between feet)."""
    out = {}
    for side in ("left", "right"):
        with open(folder / f"imu_sample_ms_{side}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        acc = np.array([[float(r[f"acc_{k}"]) for k in "xyz"] for r in rows])
        gyr = np.radians(np.array([[float(r[f"gyr_{k}"]) for k in "xyz"] for r in rows]))
        out[side] = (acc, gyr)
    return out


def load_gaitmap_events(folder: Path = GAITMAP_DIR) -> dict[str, dict[str, np.ndarray]]:
    """``stride_events_sample.csv`` as ``{side: {"start", "end", "ic", "tc", "min_vel": sample indices}}``."""
    with open(folder / "stride_events_sample.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        side: {key: np.array([float(r[key]) for r in rows if r["foot"] == side]) for key in
               ("start", "end", "ic", "tc", "min_vel")}
        for side in ("left", "right")
    }  # fmt: skip


def foot_kit(imu: dict[str, tuple[np.ndarray, np.ndarray]], rate_hz: float, grid_rate_hz: float | None = None):
    """The foot data as the pipeline's input, on the feet's own rate or resampled to the app's grid.

    The feet stand where the pipeline expects the shanks (sites ``shank_l``/``shank_r``): only the event and stride
    logic is exercised on them.
    """
    from capture_app.core.signals import KitSignals, SiteSignals
    from sensor_drivers.sites import Site
    from sensor_drivers.timing.resample import GridResampler, SensorSeries

    sites = {"left": Site.SHANK_L, "right": Site.SHANK_R}
    n = min(acc.shape[0] for acc, _ in imu.values())
    time_s = np.arange(n) / rate_hz
    if grid_rate_hz is None:
        return KitSignals(rate_hz, time_s, {
            sites[side]: SiteSignals(f"gaitmap-{side}", np.ones(n, bool), acc[:n], gyr[:n])
            for side, (acc, gyr) in imu.items()
        })  # fmt: skip
    series = {side: SensorSeries(time_s, acc[:n], gyr[:n], rate_hz) for side, (acc, gyr) in imu.items()}
    grid = GridResampler(rate_hz=grid_rate_hz).resample(series).grid_
    return KitSignals(grid_rate_hz, grid.time_s, {
        sites[side]: SiteSignals(f"gaitmap-{side}", g.valid, g.acc_m_s2, g.gyr_rad_s)
        for side, g in grid.sensors.items()
    })  # fmt: skip


def foot_swings_and_strides(kit):
    """Events with the documented foot axis, then strides (with turn detection) as for shanks."""
    from capture_app.core.gait.axis import FixedAxis
    from capture_app.core.gait.events import ShankEventDetector
    from capture_app.core.gait.strides import SHANK_SITES, StrideSegmentation

    swings = {}
    for side in ("left", "right"):
        s = kit.sites.get(SHANK_SITES[side])
        if s is None:
            continue
        swings[side] = ShankEventDetector(axis=FixedAxis(GAITMAP_SWING_AXIS)).detect(
            kit.time_s, s.gyr_rad_s, s.acc_m_s2, s.valid, kit.rate_hz, side
        ).swings_
    return swings, StrideSegmentation().segment(swings, kit)


def gaitmap_healthy_scores(folder: Path = GAITMAP_DIR) -> dict:
    """Event timing and stride counts on the labelled healthy 2 × 20 m walk, at 204.8 Hz and on a 100 Hz grid."""
    imu = load_gaitmap_imu("imu_sample.csv", folder)
    labels = load_gaitmap_events(folder)
    out: dict = {}
    for tag, grid in (("204hz", None), ("100hz", 100.0)):
        kit = foot_kit(imu, GAITMAP_RATE_HZ, grid)
        swings, segmentation = foot_swings_and_strides(kit)
        for kind, column in (("ic", "ic"), ("fc", "tc")):
            errors, n_label = [], 0
            for side in ("left", "right"):
                true = labels[side][column] / GAITMAP_RATE_HZ
                found = np.array([getattr(s, f"{kind}_s") for s in swings[side] if getattr(s, f"{kind}_s") is not None])
                error = _errors(found, true)
                n_label += true.size
                errors.append(error)
            e = np.concatenate(errors)
            ok = np.isfinite(e)
            out[f"gaitmap_{tag}_{kind}_matched"] = f"{int(ok.sum())}/{n_label}"
            out[f"gaitmap_{tag}_{kind}_error_mean_ms"] = round(1000.0 * float(e[ok].mean()), 1)
            out[f"gaitmap_{tag}_{kind}_error_sd_ms"] = round(1000.0 * float(e[ok].std()), 1)
            out[f"gaitmap_{tag}_{kind}_abs_error_mean_ms"] = round(1000.0 * float(np.abs(e[ok]).mean()), 1)
        # labelled strides as contact to contact: consecutive labelled strides share a border (end == next start)
        found_strides = segmentation.strides_
        n_label_strides = n_found = 0
        for side in ("left", "right"):
            lab = labels[side]
            pairs = [(lab["ic"][k] / GAITMAP_RATE_HZ, lab["ic"][k + 1] / GAITMAP_RATE_HZ)
                     for k in range(lab["ic"].size - 1) if lab["end"][k] == lab["start"][k + 1]]  # fmt: skip
            n_label_strides += len(pairs)
            n_found += sum(
                any(s.side == side and abs(s.ic_s - a) < 0.1 and abs(s.next_ic_s - b) < 0.1 for s in found_strides)
                for a, b in pairs
            )
        out[f"gaitmap_{tag}_ic_to_ic_strides_found"] = f"{n_found}/{n_label_strides}"
        out[f"gaitmap_{tag}_strides_detected"] = len(found_strides)
        out[f"gaitmap_{tag}_turn_strides"] = sum(s.excluded == "turn" for s in found_strides)
        out[f"gaitmap_{tag}_steady_strides"] = sum(s.steady for s in found_strides)
    return out


def gaitmap_unlabelled_counts(folder: Path = GAITMAP_DIR) -> dict:
    """Strides found on the unlabelled recordings (multiple sclerosis, stairs up and down) and their stride times."""
    out: dict = {}
    recordings = {
        "ms": (load_gaitmap_ms(folder), GAITMAP_MS_RATE_HZ),
        "stair_up": (load_gaitmap_imu("imu_sample_healthy_stair_up.csv", folder), GAITMAP_RATE_HZ),
        "stair_down": (load_gaitmap_imu("imu_sample_healthy_stair_down.csv", folder), GAITMAP_RATE_HZ),
    }
    for name, (imu, rate_hz) in recordings.items():
        for side in ("left", "right"):
            # one foot at a time: the MS feet are not synchronised, and stairs need no bilateral events here
            kit = foot_kit({side: imu[side]}, rate_hz, 100.0)
            swings, segmentation = foot_swings_and_strides(kit)
            durations = np.array([s.duration_s for s in segmentation.strides_])
            out[f"gaitmap_{name}_{side}_swings"] = len(swings[side])
            out[f"gaitmap_{name}_{side}_strides"] = int(durations.size)
            if durations.size:
                out[f"gaitmap_{name}_{side}_stride_time_s"] = round(float(np.median(durations)), 3)
                out[f"gaitmap_{name}_{side}_stride_time_cv_pct"] = round(
                    float(100.0 * durations.std(ddof=1) / durations.mean()) if durations.size > 1 else 0.0, 1
                )
    return out
