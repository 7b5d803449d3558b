"""Session benchmark (``stridetwin bench analysis``): the issue's "Speed" goals for the capture core.

(a) **Live CPU**: a virtual hemiparetic walk (5 sensors × 200 Hz, realistic noise and receive times), written as a
    clip, is replayed as driver items (built beforehand, so only the consumer is timed) as fast as possible through
    the live pipeline — GridAssembler → orientation (fusion, live calibration, joint angles) → live gait → quality
    monitor → placement checks at their states — stepping every 50 ms of the data's clock. Figure: process CPU per
    second of data, as % of one core (goal ≤ 15 %), and as a ratio to a baseline measured in the same run: the timing
    path alone (GridAssembler, stepping the same way). Also the whole session (``WalkTestSession``: journaling to a
    clip, quality log, live events) and the worst single step (the live calibration and the identification each run
    once).
(b) **Offline analysis** of a 60 s clip: process CPU of ``read_clip`` + ``WalkAnalysis().analyze`` (goal ≤ 2 s), the
    best of three, with a per-stage breakdown and the read + grid part as baseline.
(c) **Memory**: a fresh process replays a generated walk 20 times in a row (20 minutes of 5 × 200 Hz data, times and
    counters continuing) as fast as possible through a live ``WalkTestSession`` that records it to disk; its peak
    RSS (goal ≤ 300 MB) and the RSS after each simulated minute.

CPU figures are process time, so other load on a shared machine does not inflate them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.memory import peak_rss_mb, rss_mb

#: The benchmark walk: a hemiparetic patient over the full 20 m walkway, 8 s still before and 10 s after (≈ 60 s).
WALK = {"walkway": "20", "still_start": "8", "still_end": "10", "speed": "0.5", "side": "left", "seed": "41"}
QUICK_WALK = {**WALK, "walkway": "8", "still_start": "3", "still_end": "3"}
TICK_S = 0.05


def write_walk(path: Path, options: dict[str, str]) -> Path:
    """Generate the virtual walk and write it as a clip (realistic serial receive times)."""
    from sensor_drivers.sim import VirtualPatient, from_source_options
    from sensor_drivers.sim.clip_export import write_virtual_clip

    write_virtual_clip(VirtualPatient(from_source_options("hemiparetic", options)).generate(), path)
    return path


class _Therapist:
    """Scripted buttons: placement check at 0.5 s, still period once checked, walking after 2 s of it."""

    def __call__(self, session: Any, update: Any) -> None:
        from capture_app.core.session.state import SessionState as S

        facts = session.machine.facts
        if session.state is S.CONNECTED and update.end_s > 0.5:
            session.request(S.PLACEMENT_CHECK)
        elif session.state is S.PLACEMENT_CHECK and facts.placement_level is not None:
            if facts.placement_level.value == "fail":
                session.override_placement()
            session.request(S.STILL)
        elif session.state is S.STILL and facts.still_s >= facts.min_still_s:
            session.request(S.WALKING)


def _drive(items: list, consumer: Any, step: Any) -> list[float]:
    """Feed ``items``, calling ``step()`` every TICK_S of the data's clock; CPU seconds of each step."""
    from sensor_drivers.sample import ImuSample

    steps = []
    last = None
    clock = time.process_time
    for item in items:
        consumer(item)
        if type(item) is ImuSample:
            if last is None:
                last = item.host_time_s
            elif item.host_time_s - last >= TICK_S:
                last = item.host_time_s
                t0 = clock()
                step()
                steps.append(clock() - t0)
    return steps


def live_cpu(clip_path: Path, repeats: int = 2) -> dict[str, float]:
    """CPU of the live pipeline and of a whole live session per second of data (best of ``repeats``)."""
    from capture_app.core.session.live import LivePipeline
    from capture_app.core.session.recorder import PatientInfo, WalkProtocol
    from capture_app.core.session.replay import clip_duration_s, clip_items, sensor_infos
    from capture_app.core.session.state import SessionState, Transition
    from capture_app.core.session.store import SessionStore
    from capture_app.core.session.walk_test import WalkTestSession
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.timing.assembler import GridAssembler

    clip = read_clip(clip_path)
    items = list(clip_items(clip))
    data_s = clip_duration_s(clip)
    sensors = sensor_infos(clip)

    def timing_only() -> float:
        assembler = GridAssembler(rate_hz=100.0)
        for s in sensors:
            assembler.add_sensor(s.sensor_id, s.nominal_rate_hz)
        latest = [0.0]

        def feed(item: Any) -> None:
            assembler.feed(item)
            latest[0] = max(latest[0], item.host_time_s)

        t0 = time.process_time()
        _drive(items, feed, lambda: assembler.emit(latest[0]))
        assembler.flush()
        return time.process_time() - t0

    def pipeline() -> tuple[float, list[float]]:
        p = LivePipeline(sensors, clock_origin_host_s=0.0)
        # The states a session goes through, at the clip's still period and walk (the checks run in them).
        plan = [(0.5, SessionState.PLACEMENT_CHECK), (2.5, SessionState.STILL), (5.0, SessionState.WALKING)]
        state = [SessionState.CONNECTED]

        def step() -> None:
            update = p.step()
            while update is not None and plan and update.end_s >= plan[0][0]:
                _, new = plan.pop(0)
                p.on_transition(Transition(state[0], new, update.end_s))
                state[0] = new

        t0 = time.process_time()
        steps = _drive(items, p.feed, step)
        p.finish()
        return time.process_time() - t0, steps

    def session() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            s = WalkTestSession(PatientInfo("BENCH"), WalkProtocol(20.0), SessionStore(tmp))
            s.connect(sensors, now_host_s=float(items[0].host_time_s))
            therapist = _Therapist()

            def step() -> None:
                update = s.tick()
                if update is not None:
                    therapist(s, update)

            t0 = time.process_time()
            _drive(items, s.feed, step)
            cpu = time.process_time() - t0
            s.close()
        return cpu

    baseline = min(timing_only() for _ in range(repeats))
    runs = [pipeline() for _ in range(repeats)]
    cpu, steps = min(runs, key=lambda r: r[0])
    whole = min(session() for _ in range(repeats))
    steps_ms = np.array(steps) * 1e3
    return {
        "live_data_s": round(data_s, 1),
        "live_samples": sum(1 for i in items if hasattr(i, "acc_m_s2")),
        "live_timing_only_pct_core": round(100 * baseline / data_s, 2),
        "live_pipeline_pct_core": round(100 * cpu / data_s, 2),
        "live_pipeline_vs_timing_only": round(cpu / baseline, 2),
        "live_session_with_recording_pct_core": round(100 * whole / data_s, 2),
        "live_step_median_ms": round(float(np.median(steps_ms)), 3),
        "live_step_p99_ms": round(float(np.percentile(steps_ms, 99)), 2),
        "live_step_max_ms": round(float(steps_ms.max()), 1),
    }


def offline_cpu(clip_path: Path, repeats: int = 3) -> dict[str, float]:
    """Process CPU of the offline analysis of a clip, with its stages (best of ``repeats``)."""
    from capture_app.core.checks import PlacementCheck
    from capture_app.core.gait import GaitAnalysis
    from capture_app.core.orientation import OrientationPipeline
    from capture_app.core.session.analysis import WalkAnalysis
    from capture_app.core.session.replay import clip_duration_s
    from capture_app.core.signals import signals_from_clip
    from sensor_drivers.recording.clipfile import read_clip

    def timed(fn: Any) -> tuple[float, Any]:
        t0 = time.process_time()
        out = fn()
        return time.process_time() - t0, out

    totals, reads = [], []
    for _ in range(repeats):
        total, analysis = timed(lambda: WalkAnalysis().analyze(read_clip(clip_path)))
        totals.append(total)
        reads.append(timed(lambda: signals_from_clip(read_clip(clip_path)))[0])
    kit = analysis.kit_
    gait_s = min(timed(lambda: GaitAnalysis().analyze(kit, 20.0))[0] for _ in range(repeats))
    intervals = analysis.intervals_
    placement_s = min(timed(lambda: PlacementCheck().check(kit, intervals.still_s, intervals.identification_s))[0]
                      for _ in range(repeats))  # fmt: skip
    orientation_s = min(timed(lambda: OrientationPipeline().estimate(kit))[0] for _ in range(repeats))
    duration = clip_duration_s(read_clip(clip_path))
    return {
        "offline_clip_s": round(duration, 1),
        "offline_analysis_cpu_s": round(min(totals), 3),
        "offline_read_and_grid_cpu_s": round(min(reads), 3),
        "offline_gait_cpu_s": round(gait_s, 3),
        "offline_placement_cpu_s": round(placement_s, 3),
        "offline_orientation_cpu_s": round(orientation_s, 3),
        "offline_analysis_vs_read_and_grid": round(min(totals) / min(reads), 2),
        "offline_level": analysis.level_.value,
        "offline_n_strides": len(analysis.strides_),
    }


def rss_child(clip_path: str, minutes: float, store_dir: str) -> dict[str, Any]:
    """In a fresh process: ``minutes`` of live session from the clip replayed back to back; the RSS curve."""
    from capture_app.core.session.recorder import PatientInfo, WalkProtocol
    from capture_app.core.session.replay import clip_duration_s, clip_items, sensor_infos
    from capture_app.core.session.store import SessionStore
    from capture_app.core.session.walk_test import WalkTestSession
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.sample import ImuSample

    clip = read_clip(clip_path)
    period_s = clip_duration_s(clip) + 0.01
    repeats = int(np.ceil(minutes * 60 / period_s))
    start_rss = rss_mb()
    session = WalkTestSession(PatientInfo("BENCH-RSS"), WalkProtocol(20.0), SessionStore(store_dir))
    first = min(float(s.host_time_s[0]) for s in clip.sensors.values() if s.n_samples)
    session.connect(sensor_infos(clip), now_host_s=first)
    therapist = _Therapist()
    curve = [(0.0, round(rss_mb(), 1))]
    next_mark_s = 60.0
    last = None
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    end_s = first + minutes * 60
    for item in clip_items(clip, repeats=repeats, period_s=period_s):
        if item.host_time_s > end_s:
            break
        session.feed(item)
        if type(item) is not ImuSample:
            continue
        n += 1
        if last is None or item.host_time_s - last >= TICK_S:
            last = item.host_time_s
            update = session.tick()
            if update is not None:
                therapist(session, update)
            if item.host_time_s - first >= next_mark_s:
                curve.append((round(next_mark_s / 60, 1), round(rss_mb(), 1)))
                next_mark_s += 60.0
    session.tick()
    curve.append((round((last - first) / 60, 2) if last is not None else 0.0, round(rss_mb(), 1)))
    path = session.clip_path_
    session.close("benchmark end")
    return {
        "minutes": minutes,
        "n_samples": n,
        "start_rss_mb": round(start_rss, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_curve_min_mb": curve,
        "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(time.process_time() - cpu0, 1),
        "clip_mb": round(Path(path).stat().st_size / 1e6, 1),
        "buffer_mb": round(session.pipeline_.buffer_nbytes / 2**20, 2),
        "state": session.state.value,
    }


def rss_of_live_session(clip_path: Path, minutes: float) -> dict[str, Any]:
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as store:
        out = subprocess.run(
            [sys.executable, "-m", "bench.analysis", "rss-child", str(clip_path), str(minutes), store],
            cwd=repo, capture_output=True, text=True, check=True, timeout=3600,
        )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict:
    """All three parts; ``quick``: an 8 m walk, 2 minutes of session for the memory part."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_walk(Path(tmp) / "walk.stclip", QUICK_WALK if quick else WALK)
        figures: dict[str, Any] = {}
        figures.update(offline_cpu(clip, repeats=1 if quick else 3))
        figures.update(live_cpu(clip, repeats=1 if quick else 2))
        minutes = 2.0 if quick else 20.0
        rss = rss_of_live_session(clip, minutes)
        figures.update({
            f"rss_{minutes:g}min_peak_mb": rss["peak_rss_mb"],
            f"rss_{minutes:g}min_start_mb": rss["start_rss_mb"],
            f"rss_{minutes:g}min_curve_mb": rss["rss_curve_min_mb"],
            f"rss_{minutes:g}min_samples": rss["n_samples"],
            f"rss_{minutes:g}min_cpu_s": rss["cpu_s"],
            f"rss_{minutes:g}min_clip_mb": rss["clip_mb"],
            "live_buffer_mb": rss["buffer_mb"],
        })  # fmt: skip
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "rss-child":
        print(json.dumps(rss_child(sys.argv[2], float(sys.argv[3]), sys.argv[4])))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
