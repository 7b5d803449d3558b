"""Placement checks against known faults, and the CPU cost of the live quality monitor
(``stridetwin bench accuracy-placement``).

(a) Fault matrix: virtual patients (healthy 1.0 m/s; hemiparetic 0.5 m/s with the left side paretic and 0.35 m/s with
    the right; realistic sensor errors, 0.5 % packet loss, indoor magnetic field, different seeds) with each
    deliberate placement fault of the virtual patient (``swap_lr``, ``swap_thigh_shank[:l|:r]``,
    ``upside_down:<site>``, ``rotated:<site>:<deg>``, ``loose:<site>``), written to clips over a simulated serial
    link and read back onto the 100 Hz grid, then :class:`~capture_app.core.checks.PlacementCheck` on the still
    period (the first 3 s) and on the first five strides. A fault counts as detected when the verdict naming it is
    there (``placement.swap_lr`` with all four leg sensors moved, ``placement.upside_down`` on its site, …); any
    other verdict that is not ``ok`` is a false alarm. Clean clips (more speeds) count false alarms only.
(b) The same on the real OpenSense Xsens recording (``../shared/data``, where present): the placement as recorded,
    and with sites swapped in software.
(c) CPU of :class:`~capture_app.core.checks.QualityMonitor` for 5 sensors × 200 Hz of ``ImuSample`` items fed in
    50 ms batches with verdicts read every 0.5 s (process time / duration of the data).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from capture_app.core.checks import PlacementCheck, QualityMonitor
from capture_app.core.checks.placement import rotation_from_axes
from capture_app.core.signals import signals_from_clip
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.sample import ImuSample
from sensor_drivers.sim import VirtualPatient, from_source_options
from sensor_drivers.sim.clip_export import write_virtual_clip
from sensor_drivers.sites import KIT_SITES, Site

PROFILES: dict[str, tuple[str, dict[str, str]]] = {
    "healthy": ("healthy", {}),
    "hemiparetic_left": ("hemiparetic", {"side": "left"}),
    "hemiparetic_right": ("hemiparetic", {"side": "right", "speed": "0.35"}),
}
#: Extra clean walks for the false-alarm count.
CLEAN_ONLY: dict[str, tuple[str, dict[str, str]]] = {
    "healthy_slow": ("healthy", {"speed": "0.8"}),
    "healthy_fast": ("healthy", {"speed": "1.25"}),
    "hemiparetic_left_fast": ("hemiparetic", {"side": "left", "speed": "0.75"}),
    "hemiparetic_right_slow": ("hemiparetic", {"side": "right", "speed": "0.25"}),
}
ROTATIONS_DEG = (15, 20, 25, 30, 45, 60, 90, 180)
SITES = [s.value for s in KIT_SITES]
FULL_FAULTS = (
    ["swap_lr", "swap_thigh_shank", "swap_thigh_shank:l", "swap_thigh_shank:r"]
    + [f"upside_down:{s}" for s in SITES]
    + [f"rotated:{s}:{d}" for s in SITES for d in ROTATIONS_DEG]
    + [f"loose:{s}" for s in SITES]
)
QUICK_FAULTS = ["swap_lr", "swap_thigh_shank:l", "upside_down:thigh_r", "rotated:shank_l:60", "rotated:pelvis:90",
                "loose:shank_r"]
STILL_S = 3.0
STRIDES = 5
WALKWAY_M = "10"


def expected_hit(fault: str, check: PlacementCheck) -> bool:
    """Whether ``check`` has the verdict that names ``fault``."""
    problems = check.problems_
    kind, *rest = fault.split(":")
    if kind == "swap_lr":
        return any(v.code == "placement.swap_lr" and len(v.details.get("moved", {})) == 4 for v in problems)
    if kind == "swap_thigh_shank":
        sides = [rest[0]] if rest else ["l", "r"]
        moved = {f"{seg}_{s}" for s in sides for seg in ("thigh", "shank")}
        return any(v.code == "placement.swap_thigh_shank" and set(v.details.get("moved", {})) == moved
                   for v in problems)
    site = rest[0]
    if kind == "upside_down":
        return any(v.code == "placement.upside_down" and v.subject == site for v in problems)
    if kind == "rotated":
        return any(v.code == "placement.rotated" and v.subject == site for v in problems)
    if kind == "loose":
        side = {"l": "left", "r": "right"}.get(site[-1]) if site != "pelvis" else None
        return any(v.code == "placement.loose" and (v.subject == site or v.subject == f"{side}_leg")
                   for v in problems)
    raise ValueError(f"unknown fault {fault!r}")


def related(fault: str | None, code: str, subject: str) -> bool:
    """Whether a non-ok verdict is explained by the fault (not a false alarm)."""
    if fault is None:
        return False
    kind, *rest = fault.split(":")
    if kind in ("swap_lr", "swap_thigh_shank"):
        return code.startswith("placement.swap")
    site = rest[0]
    if kind == "upside_down":
        # An upside-down sensor is also "tilted" and its twist is meaningless; those verdicts name the same sensor.
        return subject == site
    if kind == "rotated":
        return subject == site
    if kind == "loose":
        side = {"l": "left", "r": "right"}.get(site[-1]) if site != "pelvis" else None
        return code == "placement.loose" and subject in (site, f"{side}_leg")
    return False


def run_case(profile: str, options: dict[str, str], seed: int, fault: str | None) -> dict:
    """One clip through the placement checks; what was detected and what else was raised."""
    opts = {"walkway": WALKWAY_M, "still_start": str(STILL_S), "still_end": "2", "seed": str(seed), **options}
    if fault:
        opts["fault"] = fault
    recording = VirtualPatient(from_source_options(profile, opts)).generate()
    truth = recording.truth
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "walk.stclip"
        write_virtual_clip(recording, path, transport="serial", seed=seed)
        kit = signals_from_clip(read_clip(path))
    walk = (truth.walk_start_s, min(truth.walk_end_s, truth.walk_start_s + STRIDES * truth.stride_time_s))
    started = time.process_time()
    check = PlacementCheck().check(kit, (0.3, float(opts["still_start"]) - 0.1), walk)
    cpu_s = time.process_time() - started
    others = [f"{v.code}:{v.subject}" for v in check.problems_ if not related(fault, v.code, v.subject)]
    ident = check.identification_
    twist = None
    if fault and fault.startswith("rotated") and ident is not None:
        twist = ident.twist_deg_.get(Site(fault.split(":")[1]))
    return {"fault": fault, "detected": None if fault is None else expected_hit(fault, check),
            "false_alarms": others, "cpu_s": cpu_s, "twist_deg": twist, "walk_s": walk[1] - walk[0]}


def _cases(quick: bool) -> list[tuple[str, dict[str, str], int, str | None, str]]:
    cases = []
    if quick:
        for name in ("healthy", "hemiparetic_left"):
            profile, options = PROFILES[name]
            cases += [(profile, options, 1, f, name) for f in [None, *QUICK_FAULTS]]
        return cases
    for name, (profile, options) in PROFILES.items():
        for seed in (1, 2):
            cases += [(profile, options, seed, f, name) for f in [None, *FULL_FAULTS]]
    for name, (profile, options) in CLEAN_ONLY.items():
        cases += [(profile, options, seed, None, name) for seed in (1, 2, 3)]
    return cases


def _run_one(case: tuple[str, dict[str, str], int, str | None, str]) -> dict:
    profile, options, seed, fault, name = case
    result = run_case(profile, options, seed, fault)
    result["profile"] = name
    return result


def fault_matrix(quick: bool) -> dict:
    """Detection rate per fault kind and false alarms (see the module docstring)."""
    cases = _cases(quick)
    workers = max(1, min(len(cases), os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_run_one, cases, chunksize=1))
    out: dict = {"n_clips": len(results)}
    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_rotation: dict[str, list[bool]] = defaultdict(list)
    twist_errors: list[float] = []
    missed = []
    for r in results:
        fault = r["fault"]
        if fault is None:
            continue
        kind = fault.split(":")[0]
        if kind == "swap_thigh_shank":
            kind = fault
        by_kind[kind].append(bool(r["detected"]))
        if fault.startswith("rotated"):
            _, site, deg = fault.split(":")
            group = "pelvis" if site == "pelvis" else "leg"
            by_rotation[f"{group}_{deg}deg"].append(bool(r["detected"]))
            if r["twist_deg"] is not None and float(deg) < 180:
                twist_errors.append(r["twist_deg"] - float(deg))
        if not r["detected"]:
            missed.append(f"{r['profile']}:{fault}")
    for kind, hits in sorted(by_kind.items()):
        out[f"detect_{kind}"] = f"{sum(hits)}/{len(hits)}"
    for key in sorted(by_rotation, key=lambda k: (k.split("_")[0], int(k.split("_")[1][:-3]))):
        hits = by_rotation[key]
        out[f"detect_rotated_{key}"] = f"{sum(hits)}/{len(hits)}"
    if twist_errors:
        errors = np.abs(twist_errors)
        out["rotation_estimate_error_deg_median"] = round(float(np.median(errors)), 1)
        out["rotation_estimate_error_deg_max"] = round(float(np.max(errors)), 1)
    clean = [r for r in results if r["fault"] is None]
    out["clean_clips"] = len(clean)
    out["clean_clips_with_false_alarm"] = sum(bool(r["false_alarms"]) for r in clean)
    out["fault_clips_with_unrelated_alarm"] = sum(bool(r["false_alarms"]) for r in results if r["fault"])
    alarms = sorted({a for r in results for a in r["false_alarms"]})
    out["false_alarm_kinds"] = alarms[:20]
    out["missed"] = missed[:40]
    out["check_cpu_s_median"] = round(float(np.median([r["cpu_s"] for r in results])), 3)
    return out


def real_data() -> dict:
    """The checks on the OpenSense Xsens walk, as recorded and with sites swapped in software."""
    folder = _shared_data() / "imu" / "opensense_xsens" / "OpenSenseExampleIMUData"
    if not folder.is_dir():
        return {"real_data": "not found"}
    from sensor_drivers.recording.importers import import_files

    up = np.array([0.0, 0.0, 1.0])
    # The OpenSense kit: x up, the case face against the skin (z into the body), thighs and shanks laterally.
    expected = {Site.PELVIS: rotation_from_axes(up, np.array([1.0, 0.0, 0.0])),
                Site.THIGH_L: rotation_from_axes(up, np.array([0.0, -1.0, 0.0])),
                Site.THIGH_R: rotation_from_axes(up, np.array([0.0, 1.0, 0.0])),
                Site.SHANK_L: rotation_from_axes(up, np.array([0.0, -1.0, 0.0])),
                Site.SHANK_R: rotation_from_axes(up, np.array([0.0, 1.0, 0.0]))}
    sites = {"00B42279": "pelvis", "00B4227C": "thigh_r", "00B4227D": "shank_r", "00B421EE": "thigh_l",
             "00B421ED": "shank_l"}
    variants = {
        "as_recorded": {},
        "thighs_swapped": {"00B4227C": "thigh_l", "00B421EE": "thigh_r"},
        "right_thigh_shank_swapped": {"00B4227C": "shank_r", "00B4227D": "thigh_r"},
        "left_right_swapped": {"00B4227C": "thigh_l", "00B421EE": "thigh_r", "00B4227D": "shank_l",
                               "00B421ED": "shank_r"},
    }
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, change in variants.items():
            mapping = {**sites, **change}
            path = Path(tmp) / f"{name}.stclip"
            import_files("xsens", [next(folder.glob(f"*_{key}.txt")) for key in mapping], path, sites=mapping)
            kit = signals_from_clip(read_clip(path))
            check = PlacementCheck(expected=expected).check(kit, (0.5, 4.5), (4.8, 24.5))
            out[f"real_{name}"] = [f"{v.level.value}:{v.code}:{v.subject}" for v in check.problems_] or "ok"
        kit = signals_from_clip(read_clip(Path(tmp) / "as_recorded.stclip"))
        check = PlacementCheck().check(kit, (0.5, 4.5), (4.8, 24.5))
        out["real_against_stridetwin_guide"] = [f"{v.code}:{v.subject}:{v.details.get('twist_deg')}"
                                                for v in check.problems_]
    return out


def _shared_data() -> Path:
    if override := os.environ.get("STRIDETWIN_SHARED_DATA"):
        return Path(override)
    here = Path(__file__).resolve().parents[1]
    for parent in here.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return here.parent / "shared" / "data"


def quality_cpu(duration_s: float) -> dict:
    """Process time of the quality monitor per second of 5 × 200 Hz data (% of one core)."""
    recording = VirtualPatient(from_source_options("healthy", {
        "walkway": "10", "still_start": "2", "still_end": str(max(1.0, duration_s - 11.0)), "seed": "3"})).generate()
    items: list[ImuSample] = []
    for site, track in recording.tracks.items():
        for true_s, reading in track.readings():
            if true_s >= duration_s:
                break
            items.append(ImuSample.from_reading(reading, track.sensor_id, site, true_s + 0.002))
    items.sort(key=lambda s: s.host_time_s)
    times = np.array([s.host_time_s for s in items])
    edges = np.searchsorted(times, np.arange(0.0, duration_s + 0.05, 0.05))
    batches = [items[a:b] for a, b in itertools.pairwise(edges)]
    out = {"quality_samples_per_s": round(len(items) / duration_s)}
    for label, every in (("read_every_0.5s", 10), ("read_every_batch", 1)):
        best = float("inf")
        for _ in range(3):
            monitor = QualityMonitor(nominal_rate_hz=200.0)
            started = time.process_time()
            for i, batch in enumerate(batches):
                monitor.update(batch)
                if i % every == 0:
                    _ = monitor.verdicts_
            best = min(best, time.process_time() - started)
        out[f"quality_cpu_pct_of_core_{label}"] = round(100.0 * best / duration_s, 3)
        out[f"quality_us_per_sample_{label}"] = round(1e6 * best / len(items), 2)
    return out


def run(quick: bool = False) -> dict:
    """Measure; ``quick`` runs a small matrix (2 profiles × 7 clips) and a shorter CPU run."""
    started = time.perf_counter()
    results = fault_matrix(quick)
    results.update(real_data())
    results.update(quality_cpu(20.0 if quick else 60.0))
    results["wall_s"] = round(time.perf_counter() - started, 1)
    return results
